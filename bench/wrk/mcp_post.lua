-- The MCP policy cells: one fixed JSON-RPC POST, repeated (wrk's fast path: built once).
-- Args after "--": <Authorization header value> <workload>, the workload one of
--   call       tools/call echo (message "hi"), 2025 era: the body says what is called
--   call_2026  the same with the 2026 routing headers Mcp-Method: tools/call, Mcp-Name: echo
--   list_json  tools/list, answered by the route with 50 tools as application/json
--   list_sse   the same answered as text/event-stream
local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
dofile(dir .. "report.lua")

local CALL = '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo",' ..
  '"arguments":{"message":"hi"}}}'
local LIST = '{"jsonrpc":"2.0","id":1,"method":"tools/list"}'

function init(args)
  local workload = args[2]
  wrk.method = "POST"
  wrk.headers["Authorization"] = args[1]
  wrk.headers["Content-Type"] = "application/json"
  wrk.headers["Accept"] = "application/json, text/event-stream"
  if workload == "call" then
    wrk.body = CALL
  elseif workload == "call_2026" then
    wrk.body = CALL
    wrk.headers["Mcp-Method"] = "tools/call"
    wrk.headers["Mcp-Name"] = "echo"
  elseif workload == "list_json" then
    wrk.body = LIST
    wrk.headers["x-bench-response"] = "tools-json"
  elseif workload == "list_sse" then
    wrk.body = LIST
    wrk.headers["x-bench-response"] = "tools-sse"
  else
    error("unknown workload " .. tostring(workload))
  end
end
