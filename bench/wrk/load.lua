-- wrk script for bench/overload.sh and bench/keys.sh (one thread: run wrk with -t1).
-- POSTs the JSON body in $BODY_FILE with extra headers from $WRK_HDR1..$WRK_HDR9 ("Name: value"),
-- like the harness' post.lua, and also:
--   * counts answers by status (200, 429, 503, other) and prints them in the JSON line;
--   * KEY_COUNT=n: each request carries "Authorization: Bearer <KEY_PREFIX><KEY_FROM + i>" (the
--     number zero-padded to KEY_WIDTH digits) for i = 0, 1, ... n-1; then it wraps around, or with
--     KEY_ONCE=1 it stops sending once every key has been sent and creates the file $DONE_FILE
--     (wrk itself runs on until -d ends or it gets SIGINT: the caller sends that);
--   * END_USER_PREFIX=p: each request's body gets "user": "<p><request number>" (distinct end users).
-- Prints one machine-readable line starting with "JSON " at the end.
local f = assert(io.open(os.getenv("BODY_FILE"), "rb"))
local base = f:read("*a"):gsub("%s+$", "")
f:close()
local headers = { ["Content-Type"] = "application/json" }
for i = 1, 9 do
  local h = os.getenv("WRK_HDR" .. i)
  if h and #h > 0 then
    local k, v = h:match("^([^:]+):%s*(.*)$")
    if k then headers[k] = v end
  end
end
local key_count = tonumber(os.getenv("KEY_COUNT") or "0")
local key_from = tonumber(os.getenv("KEY_FROM") or "0")
local key_prefix = os.getenv("KEY_PREFIX") or "sk-seed-key-"
local key_fmt = "%s%0" .. (os.getenv("KEY_WIDTH") or "6") .. "d"
local key_once = os.getenv("KEY_ONCE") == "1"
local end_user = os.getenv("END_USER_PREFIX")
local head = base:sub(1, -2) -- the body without its closing brace

local sent = 0
local signalled = false
local counts = { s200 = 0, s429 = 0, s503 = 0, other = 0 }
local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

-- wrk calls request() once on the first thread's state before the run, to check it, and throws
-- the request away: that call must not use up a key (each phase's first key went unsent).
local checked = false

function request()
  if not checked then
    checked = true
    return wrk.format("POST", nil, headers, base)
  end
  local n = sent
  if key_count > 0 then
    if key_once and n >= key_count then
      -- wrk's main thread sleeps for the whole -d: the caller ends the run early with SIGINT
      -- when DONE_FILE appears (bench/keys.sh).
      if not signalled then
        signalled = true
        local done_file = os.getenv("DONE_FILE")
        if done_file then io.open(done_file, "w"):close() end
        wrk.thread:stop()
      end
      n = key_count - 1
    end
    headers["Authorization"] = "Bearer " .. string.format(key_fmt, key_prefix, key_from + (n % key_count))
  end
  sent = sent + 1
  nsent = sent
  local body = base
  if end_user then
    body = string.format('%s,"user":"%s%d"}', head, end_user, n)
  end
  return wrk.format("POST", nil, headers, body)
end

function response(status, hdrs, body)
  if status == 200 then
    counts.s200 = counts.s200 + 1
  elseif status == 429 then
    counts.s429 = counts.s429 + 1
  elseif status == 503 then
    counts.s503 = counts.s503 + 1
  else
    counts.other = counts.other + 1
  end
  s200, s429, s503, other = counts.s200, counts.s429, counts.s503, counts.other
end

done = function(summary, latency, requests)
  local c = { s200 = 0, s429 = 0, s503 = 0, other = 0, sent = 0 }
  for _, t in ipairs(threads) do
    c.s200 = c.s200 + (t:get("s200") or 0)
    c.s429 = c.s429 + (t:get("s429") or 0)
    c.s503 = c.s503 + (t:get("s503") or 0)
    c.other = c.other + (t:get("other") or 0)
    c.sent = c.sent + (t:get("nsent") or 0)
  end
  local e = summary.errors
  io.write(string.format(
    'JSON {"requests":%d,"duration_us":%d,"bytes":%d,"err_connect":%d,"err_read":%d,"err_write":%d,"err_status":%d,"err_timeout":%d,' ..
    '"lat_mean_us":%.1f,"lat_stdev_us":%.1f,"p50_us":%d,"p90_us":%d,"p99_us":%d,"p999_us":%d,"max_us":%d,' ..
    '"s200":%d,"s429":%d,"s503":%d,"s_other":%d,"sent":%d}\n',
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write, e.status, e.timeout,
    latency.mean, latency.stdev, latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency:percentile(99.9), latency.max, c.s200, c.s429, c.s503, c.other, c.sent))
end
