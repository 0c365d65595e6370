-- wrk script: replays pre-signed requests from the file named by REQUESTS, one per line:
-- path \t signature \t form-body. Each thread takes its own share of the lines, so no request
-- (no MessageSid, no CallSid) is sent twice while the file lasts.
local threads = {}
local requests = {}
local counter = 0

function setup(thread)
  thread:set("tid", #threads)
  table.insert(threads, thread)
end

function init(args)
  local n = tonumber(os.getenv("WRK_THREADS") or "1")
  local close = os.getenv("WRK_CLOSE") == "1"
  local i = 0
  for line in io.lines(os.getenv("REQUESTS")) do
    if i % n == tid then
      local path, sig, body = line:match("([^\t]*)\t([^\t]*)\t(.*)")
      local headers = {
        ["Content-Type"] = "application/x-www-form-urlencoded",
        ["X-Twilio-Signature"] = sig,
      }
      if close then headers["Connection"] = "close" end
      requests[#requests + 1] = wrk.format("POST", path, headers, body)
    end
    i = i + 1
  end
end

function request()
  counter = counter % #requests + 1
  return requests[counter]
end
