-- The full-stack workload: `tools/call echo` (message "hi", repeat_count 2) on one MCP session,
-- each request with its own JSON-RPC id (requests in flight on one session must not share one).
-- Args after "--": <Authorization header value or ""> <Mcp-Session-Id or "">. The driver runs
-- `initialize` and `notifications/initialized` first and passes the session it got (none from a
-- stateless server).
local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
dofile(dir .. "report.lua")

local headers = {}
local id = 0
local threads = {}
unanswered = 0 -- responses without the tool's result, per thread (read back in done())

function init(args)
  headers["Content-Type"] = "application/json"
  headers["Accept"] = "application/json, text/event-stream"
  headers["Mcp-Protocol-Version"] = "2025-06-18"
  if args[1] ~= nil and args[1] ~= "" then
    headers["Authorization"] = args[1]
  end
  if args[2] ~= nil and args[2] ~= "" then
    headers["Mcp-Session-Id"] = args[2]
  end
end

function request()
  id = id + 1
  local body = '{"jsonrpc":"2.0","id":' .. id .. ',"method":"tools/call","params":{"name":"echo",' ..
    '"arguments":{"message":"hi","repeat_count":2}}}'
  return wrk.format("POST", nil, headers, body)
end

-- wrk only counts statuses: a 200 carrying a JSON-RPC error is counted here.
function response(status, _, body)
  if status ~= 200 or not string.find(body, '"text":"hihi"', 1, true) then
    unanswered = unanswered + 1
  end
end

function setup(thread)
  table.insert(threads, thread)
end

local report_done = done
function done(summary, latency, requests)
  local total = 0
  for _, thread in ipairs(threads) do
    total = total + (thread:get("unanswered") or 0)
  end
  io.write(string.format("WRK_UNANSWERED %d\n", total))
  report_done(summary, latency, requests)
end
