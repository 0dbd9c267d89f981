-- One fixed request (wrk's fast path: no request() function, the request is built once).
-- Args after "--": an optional Authorization header value, e.g. `-- "Bearer eyJ..."`.
-- wrk runs init() in each thread's Lua state before it formats the static request.
local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
dofile(dir .. "report.lua")

function init(args)
  if args[1] ~= nil and args[1] ~= "" then
    wrk.headers["Authorization"] = args[1]
  end
end
