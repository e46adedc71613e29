-- The application behind tests/server/test_http.py: lumen.http_serve with
-- endpoints that show what the transport hands a handler and what it sends
-- back.  Usage: lumen run http_app.lua UPLOAD_DIR
-- Prints "ports MAIN TIMEOUT" once both servers listen.
local upload_dir = assert(arg[1], "usage: http_app.lua UPLOAD_DIR")

-- SHA-256 (FIPS 180-4) in plain Lua 5.4, so the handler can prove that an
-- upload arrived byte for byte.
local K = {
  0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
  0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
  0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
  0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
  0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
  0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
  0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
  0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2}
local M32 = 0xffffffff
local function rotr(x, n) return ((x >> n) | (x << (32 - n))) & M32 end

local function sha256(data)
  local h = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19}
  local len = #data
  data = data .. "\128" .. string.rep("\0", (55 - len) % 64) .. string.pack(">I8", len * 8)
  local w = {}
  for chunk = 1, #data, 64 do
    for i = 1, 16 do w[i] = string.unpack(">I4", data, chunk + (i - 1) * 4) end
    for i = 17, 64 do
      local a, b = w[i - 15], w[i - 2]
      local s0 = rotr(a, 7) ~ rotr(a, 18) ~ (a >> 3)
      local s1 = rotr(b, 17) ~ rotr(b, 19) ~ (b >> 10)
      w[i] = (w[i - 16] + s0 + w[i - 7] + s1) & M32
    end
    local a, b, c, d, e, f, g, hh = table.unpack(h)
    for i = 1, 64 do
      local S1 = rotr(e, 6) ~ rotr(e, 11) ~ rotr(e, 25)
      local ch = (e & f) ~ (~e & g)
      local t1 = (hh + S1 + ch + K[i] + w[i]) & M32
      local S0 = rotr(a, 2) ~ rotr(a, 13) ~ rotr(a, 22)
      local maj = (a & b) ~ (a & c) ~ (b & c)
      local t2 = (S0 + maj) & M32
      hh, g, f, e, d, c, b, a = g, f, e, (d + t1) & M32, c, b, a, (t1 + t2) & M32
    end
    local v = {a, b, c, d, e, f, g, hh}
    for i = 1, 8 do h[i] = (h[i] + v[i]) & M32 end
  end
  return string.format(string.rep("%08x", 8), table.unpack(h))
end

local function read_file(path)
  local f = assert(io.open(path, "rb"))
  local s = f:read("a")
  f:close()
  return s
end

local function json(status, t)
  return {status = status, headers = {["Content-Type"] = "application/json"},
          body = lumen.json_encode(t)}
end

local stats = {cancelled = 0, slept = 0}
local server

local function describe_files(req)
  local files = {}
  for name, f in pairs(req.files or {}) do
    files[name] = {filename = f.filename, size = f.size, content_type = f.content_type,
                   sha256 = sha256(read_file(f.path)), path = f.path}
  end
  return files
end

local routes = {}

routes["/echo"] = function(req)
  return json(200, {method = req.method, path = req.path, query = req.query, headers = req.headers,
                    version = req.version, remote = req.remote, body = req.body,
                    gone = req.gone()})
end

-- What a multipart upload became: form fields and files (with their sha256).
routes["/upload"] = function(req)
  return json(200, {form = req.form, files = describe_files(req), body = req.body})
end

-- The AIAA reply shape: a params part and the uploaded file sent back.
routes["/echo-multipart"] = function(req)
  local _, f = next(req.files or {})
  local parts = {{name = "params", content_type = "application/json",
                  body = lumen.json_encode{points = {{1, 2, 3}}, form = req.form}}}
  if f then parts[2] = {name = "image", filename = "result.nii.gz", path = f.path} end
  return {status = 200, parts = parts}
end

routes["/file"] = function(req)
  return {status = 200, file = {path = req.query.path, content_type = "application/x-test",
                                filename = "sent.bin"}}
end

-- No body at all: an empty reply with Content-Length: 0.
routes["/empty"] = function(req)
  return {status = 200}
end

routes["/error"] = function(req)
  error('handler failed: "quoted"\nsecond line', 0)
end

routes["/bad-reply"] = function(req)
  return {status = 200, parts = {{name = "image", path = upload_dir .. "/no-such-file"}}}
end

-- Sleeps req.query.s seconds; a cancelled sleep is counted.
routes["/sleep"] = function(req)
  local ok, err = pcall(lumen.sleep, tonumber(req.query.s or "1"))
  if not ok then
    stats.cancelled = stats.cancelled + 1
    stats.last_cancel = tostring(err)
    error(err, 0)
  end
  stats.slept = stats.slept + 1
  return json(200, {slept = true, inflight = server.inflight})
end

routes["/stats"] = function(req)
  return json(200, {cancelled = stats.cancelled, slept = stats.slept,
                    last_cancel = stats.last_cancel, inflight = server.inflight})
end

local timeout_server
routes["/close"] = function(req)
  server:close()
  timeout_server:close()
  return json(200, {closing = true})
end

local function handler(req)
  local route = routes[req.path]
  if not route then return json(404, {error = "no route " .. req.path}) end
  return route(req)
end

server = lumen.http_serve{host = "127.0.0.1", port = 0, handler = handler,
                          upload_dir = upload_dir, max_body = 4 << 20}
-- on_error may answer a failed handler itself.
timeout_server = lumen.http_serve{host = "::1", port = 0, handler = handler,
                                  upload_dir = upload_dir, timeout = 0.3,
                                  on_error = function(msg, req)
                                    return {status = 418, body = req.path .. ": " .. msg}
                                  end}
print(("ports %d %d"):format(server.port, timeout_server.port))
io.stdout:flush()
server:wait()
timeout_server:wait()
print("closed")
