-- A distinct token on every request, cycling through a file of tokens (one per line).
-- Args after "--": <token file> <start line (0-based)>. The driver moves the start past the
-- tokens an Envoy process has already seen, so no token reaches the same cache twice.
-- Tokens are loaded in init(), i.e. only in the thread's Lua state (the main state that runs
-- done() never sees them); each request is formatted in request() (wrk's dynamic path).
local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
dofile(dir .. "report.lua")

local tokens = {}
local n = 0
local i = 0

function init(args)
  local path = args[1]
  local start = tonumber(args[2] or "0")
  for line in io.lines(path) do
    if line ~= "" then
      n = n + 1
      tokens[n] = line
    end
  end
  if n == 0 then
    error("no tokens in " .. tostring(path))
  end
  i = start % n
end

function request()
  i = i + 1
  if i > n then i = 1 end
  return wrk.format(nil, nil, { ["Authorization"] = "Bearer " .. tokens[i] }, nil)
end
