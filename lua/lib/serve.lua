-- lumen serve: the application behind the HTTP transport (lumen.http_serve).
--
--   local app = lumen.serve{models = "models", host = "127.0.0.1", port = 0}
--
-- This file holds the app object (the model repository, sessions, the
-- bounded inference queue, the server log, metrics), the router and the
-- request wrapper (access log, errors as JSON).  The AIAA and MONAI Label
-- endpoints are in serve_aiaa.lua, the admin API (lumen.serve_admin_routes)
-- in serve_admin.lua.  docs/serve.md describes the whole server.
local lumen = ...

local S = {}           -- helpers shared with serve_aiaa.lua
lumen._serve = S

---------------------------------------------------------------------------
-- JSON: lumen.json_encode writes an empty table as [], but the wire needs
-- {} in places ({"trainers": {}}, empty params).  S.object(t) marks t as
-- an object; everything else follows json_encode's rule.
local OBJECT = {}
function S.object(t) return setmetatable(t or {}, OBJECT) end

local function is_array(t)
  if getmetatable(t) == OBJECT then return false end
  local n = #t
  for k in pairs(t) do
    if math.type(k) ~= "integer" or k < 1 or k > n then return false end
  end
  return true
end

local function encode(v, depth)
  if type(v) ~= "table" then return lumen.json_encode(v) end
  if depth > 100 then error("json: nesting too deep", 0) end
  local out = {}
  if is_array(v) then
    for i = 1, #v do out[i] = encode(v[i], depth + 1) end
    return "[" .. table.concat(out, ",") .. "]"
  end
  local keys = {}
  for k in pairs(v) do keys[#keys + 1] = tostring(k) end
  table.sort(keys)
  for i, k in ipairs(keys) do
    local val = v[k]
    if val == nil then val = v[math.tointeger(tonumber(k))] end
    out[i] = lumen.json_encode(k) .. ":" .. encode(val, depth + 1)
  end
  return "{" .. table.concat(out, ",") .. "}"
end
function S.encode(v) return encode(v, 0) end

---------------------------------------------------------------------------
-- Replies.
function S.json(status, value, headers)
  local h = {["Content-Type"] = "application/json"}
  for k, v in pairs(headers or {}) do h[k] = v end
  return {status = status, headers = h, body = S.encode(value)}
end

-- Every 4xx/5xx carries {"error": "..."}.
function S.fail(status, message, headers)
  return S.json(status, {error = message}, headers)
end

function S.text(status, text, content_type)
  return {status = status, headers = {["Content-Type"] = content_type or "text/plain; charset=utf-8"},
          body = text}
end

-- Was the error err the transport cancelling the request (the client went
-- away, the request timed out, the server is stopping)?  -> the status the
-- access log records (499 as nginx, 504, 503), or nil.
function S.cancelled(req, err)
  if req and type(req.gone) == "function" and req.gone() then return 499 end
  local msg = tostring(err)
  if msg:find("cancelled: the client went away", 1, true) then return 499 end
  if msg:find("cancelled: the request timed out", 1, true) then return 504 end
  if msg:find("cancelled: the server is stopping", 1, true) then return 503 end
  return nil
end

-- For a pcall that turns errors into replies: a cancellation must go on
-- up (the coroutine is told once, at the wait it was in).
function S.rethrow_cancel(err)
  if S.cancelled(nil, err) then error(err, 0) end
end

-- Model names: a safe character set, so a name is also a folder name.
function S.valid_name(name)
  return type(name) == "string" and #name >= 1 and #name <= 64
         and name:find("^[A-Za-z0-9_.-]+$") ~= nil and name:sub(1, 1) ~= "."
end

-- 32 hex digits from the kernel's random source (session ids).
function S.random_id()
  local f = io.open("/dev/urandom", "rb")
  local bytes = f and f:read(16)
  if f then f:close() end
  if not bytes or #bytes ~= 16 then error("cannot read /dev/urandom", 0) end
  return (bytes:gsub(".", function(c) return ("%02x"):format(c:byte()) end))
end

local function iso_time(t)
  local sec = math.floor(t)
  return os.date("!%Y-%m-%dT%H:%M:%S", sec) .. ("%.3fZ"):format(t - sec):sub(2)
end

-- Wall-clock seconds with milliseconds: os.time() ticks in whole seconds,
-- so the monotonic clock supplies the fraction from a fixed origin.
local wall0, mono0 = os.time(), lumen.clock()
local function wall_now() return wall0 + (lumen.clock() - mono0) end
S.wall_now = wall_now

---------------------------------------------------------------------------
-- The app object.
local App = {}
App.__index = App

local LOG_RING = 2000 -- lines of the server log kept for GET /logs

-- app:log(fields): one JSON object per line (time and level added) into
-- the ring behind GET /logs and onto stderr.
function App:log(fields)
  local rec = {}
  for k, v in pairs(fields) do rec[k] = v end
  rec.time = rec.time or iso_time(wall_now())
  rec.level = rec.level or "info"
  local ok, line = pcall(S.encode, rec)
  if not ok then line = S.encode({time = rec.time, level = "error", msg = "unloggable record"}) end
  self:ring_push(line)
  if not self.quiet then io.stderr:write(line, "\n") end
end

function App:ring_push(line)
  local r = self.ring
  r.head = r.head % LOG_RING + 1
  r[r.head] = line
  r.count = math.min(r.count + 1, LOG_RING)
end

-- The last n lines of the server log, oldest first.
function App:log_tail(n)
  local r = self.ring
  n = math.max(0, math.min(n, r.count))
  local out = {}
  for i = n - 1, 0, -1 do
    out[#out + 1] = r[(r.head - 1 - i) % LOG_RING + 1]
  end
  return out
end

-- The repository -------------------------------------------------------

local package_kind = lumen.package_kind

local function load_folder(dir)
  local kind = package_kind(dir)
  if kind == "lumen" then return lumen.load_package(dir), kind end
  if kind == "aiaa" then
    if type(lumen.load_aiaa_package) ~= "function" then
      error(dir .. ": config_aiaa.json packages need lumen.load_aiaa_package, "
            .. "which this build lacks", 0)
    end
    return lumen.load_aiaa_package(dir), kind
  end
  error(dir .. ": not a model package (no metadata.json or config_aiaa.json)", 0)
end

-- app:install(name, dir): load the package in dir and swap it in under
-- name.  Raises on a bad name or a package that does not load; the
-- previous entry then stays.  Requests running on the previous package
-- finish with it (it is released when the last one is done).
function App:install(name, dir)
  if not S.valid_name(name) then
    error(("bad model name '%s': use 1 to 64 of A-Z a-z 0-9 _ . - (no leading dot)")
          :format(tostring(name)), 0)
  end
  dir = (dir:gsub("/+$", ""))
  local pkg, kind = load_folder(dir)
  if type(pkg) ~= "table" or type(pkg.infer) ~= "function" then
    error(dir .. ": the package has no infer function", 0)
  end
  local entry = {name = name, dir = dir, kind = kind, metadata = pkg.metadata or {}, pkg = pkg,
                 users = 0, loaded = wall_now()}
  local old = self.models[name]
  self.models[name] = entry
  if old then self:retire(old) end
  self:log{msg = "model loaded", model = name, dir = dir, kind = kind}
  return entry
end

-- app:remove(name): unload (the folder is left as it is).  Returns whether
-- there was such a model.
function App:remove(name)
  local old = self.models[name]
  if not old then return false end
  self.models[name] = nil
  self:retire(old)
  self:log{msg = "model removed", model = name}
  return true
end

function App:retire(entry)
  entry.retired = true
  if entry.users == 0 and entry.pkg and entry.pkg.free then
    entry.pkg:free()
  end
end

-- app:entry(name) -> {name, dir, metadata, pkg, kind} or nil.
function App:entry(name)
  return self.models[name]
end

-- app:model_names() -> sorted names.
function App:model_names()
  local names = {}
  for name in pairs(self.models) do names[#names + 1] = name end
  table.sort(names)
  return names
end

-- local use <close> = app:use(entry): counts the requests running on a
-- package, so a package replaced or removed meanwhile is released after
-- them.
function App:use(entry)
  entry.users = entry.users + 1
  return setmetatable({}, {__close = function()
    entry.users = entry.users - 1
    if entry.retired and entry.users == 0 and entry.pkg.free then entry.pkg:free() end
  end})
end

-- Every sub-folder that is a package, loaded now.  A folder that fails to
-- load is logged and skipped: one bad package does not stop the server.
function App:load_repository()
  local names, err = lumen.fs.list(self.models_dir)
  if not names then error("--models " .. self.models_dir .. ": " .. tostring(err), 0) end
  for _, name in ipairs(names) do
    local dir = self.models_dir .. "/" .. name
    if lumen.fs.stat(dir) == "dir" and name:sub(1, 1) ~= "." then
      local kind = package_kind(dir)
      if not kind then
        -- not a package: nothing to say
      elseif not S.valid_name(name) then
        self:log{level = "warning", msg = "skipped: the folder name is not a valid model name",
                 dir = dir}
      elseif kind == "aiaa" and type(lumen.load_aiaa_package) ~= "function" then
        self:log{level = "warning", dir = dir,
                 msg = "skipped: config_aiaa.json folders need lumen.load_aiaa_package (not in this build)"}
      else
        local ok, e = pcall(self.install, self, name, dir)
        if not ok then
          self:log{level = "error", msg = "model not loaded", model = name, error = tostring(e)}
        end
      end
    end
  end
end

-- The bounded inference queue --------------------------------------------

-- local slot <close> = app:admit(): nil when --queue inferences are already
-- running (the caller answers 503).
function App:admit()
  if self.active >= self.queue then
    self.metrics.rejected = self.metrics.rejected + 1
    return nil
  end
  self.active = self.active + 1
  return setmetatable({}, {__close = function() self.active = self.active - 1 end})
end

-- Sessions (and MONAI Label datastore images): decoded images kept in
-- memory, expiring after `expiry` seconds without use.  At most `max` in a
-- store: beyond, the least recently used one goes (its client gets 440 and
-- uploads again, which every AIAA client does).
function App:session_put(store, id, rec, max)
  local count, oldest, oldest_id = 0, math.huge, nil
  for k, r in pairs(store) do
    count = count + 1
    if r.last < oldest and k ~= id then oldest, oldest_id = r.last, k end
  end
  if max and count >= max and oldest_id and not store[id] then
    self:session_drop(store, oldest_id)
    self:log{level = "warning", msg = "session evicted: too many open", session_id = oldest_id}
  end
  rec.id = id
  rec.created = wall_now()
  rec.last = lumen.clock()
  local old = store[id]
  store[id] = rec
  if old and old.image then old.image:free() end
  return rec
end

-- The record, refreshed; nil when unknown or expired.
function App:session_get(store, id)
  local rec = type(id) == "string" and store[id] or nil
  if not rec then return nil end
  if lumen.clock() - rec.last > rec.expiry then
    self:session_drop(store, id)
    return nil
  end
  rec.last = lumen.clock()
  return rec
end

function App:session_drop(store, id)
  local rec = store[id]
  if not rec then return false end
  store[id] = nil
  if rec.image then rec.image:free() end
  return true
end

function App:sweep()
  local now = lumen.clock()
  for _, store in ipairs{self.sessions, self.datastore} do
    local gone = {}
    for id, rec in pairs(store) do
      if now - rec.last > rec.expiry then gone[#gone + 1] = id end
    end
    for _, id in ipairs(gone) do
      self:session_drop(store, id)
      self:log{msg = "session expired", session_id = id}
    end
  end
end

---------------------------------------------------------------------------
-- Metrics (Prometheus text exposition).
local BUCKETS = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120}

function App:observe(route, status, seconds)
  local m = self.metrics
  local key = route .. "\0" .. status
  m.requests[key] = (m.requests[key] or 0) + 1
  local h = m.latency[route]
  if not h then
    h = {sum = 0, count = 0, buckets = {}}
    for i = 1, #BUCKETS do h.buckets[i] = 0 end
    m.latency[route] = h
  end
  h.sum = h.sum + seconds
  h.count = h.count + 1
  for i, b in ipairs(BUCKETS) do
    if seconds <= b then h.buckets[i] = h.buckets[i] + 1 end
  end
end

local function prom_label(s)
  return (tostring(s):gsub("\\", "\\\\"):gsub('"', '\\"'):gsub("\n", "\\n"))
end

local function resident_bytes()
  local f = io.open("/proc/self/status", "r")
  if not f then return nil end
  local text = f:read("a")
  f:close()
  local kb = text:match("VmRSS:%s*(%d+)%s*kB")
  return kb and tonumber(kb) * 1024 or nil
end
S.resident_bytes = resident_bytes

function App:metrics_text()
  local out = {}
  local function add(s) out[#out + 1] = s end
  add("# HELP lumen_http_requests_total HTTP requests answered, by route and status.")
  add("# TYPE lumen_http_requests_total counter")
  local keys = {}
  for k in pairs(self.metrics.requests) do keys[#keys + 1] = k end
  table.sort(keys)
  for _, k in ipairs(keys) do
    local route, status = k:match("^(.*)%z(.*)$")
    add(('lumen_http_requests_total{route="%s",status="%s"} %d')
        :format(prom_label(route), status, self.metrics.requests[k]))
  end
  add("# HELP lumen_http_request_duration_seconds Time from the request's arrival to its reply.")
  add("# TYPE lumen_http_request_duration_seconds histogram")
  local routes = {}
  for r in pairs(self.metrics.latency) do routes[#routes + 1] = r end
  table.sort(routes)
  for _, r in ipairs(routes) do
    local h, lr = self.metrics.latency[r], prom_label(r)
    for i, b in ipairs(BUCKETS) do
      add(('lumen_http_request_duration_seconds_bucket{route="%s",le="%s"} %d'):format(lr, b, h.buckets[i]))
    end
    add(('lumen_http_request_duration_seconds_bucket{route="%s",le="+Inf"} %d'):format(lr, h.count))
    add(('lumen_http_request_duration_seconds_sum{route="%s"} %.6f'):format(lr, h.sum))
    add(('lumen_http_request_duration_seconds_count{route="%s"} %d'):format(lr, h.count))
  end
  local function gauge(name, help, value, kind)
    add("# HELP " .. name .. " " .. help)
    add("# TYPE " .. name .. " " .. (kind or "gauge"))
    add(("%s %s"):format(name, math.type(value) == "float" and ("%.17g"):format(value) or tostring(value)))
  end
  gauge("lumen_inference_in_flight", "Inferences admitted and running (the queue depth).", self.active)
  gauge("lumen_inference_queue_limit", "Inferences admitted at once (--queue).", self.queue)
  gauge("lumen_inference_rejected_total", "Inference requests refused with 503 (queue full).",
        self.metrics.rejected, "counter")
  local inflight = self.server and self.server.inflight or 0
  gauge("lumen_http_in_flight", "Requests whose handler is running.", inflight)
  local nsessions, nmodels = 0, 0
  for _ in pairs(self.sessions) do nsessions = nsessions + 1 end
  for _ in pairs(self.models) do nmodels = nmodels + 1 end
  gauge("lumen_sessions", "Open sessions.", nsessions)
  gauge("lumen_models", "Models loaded.", nmodels)
  local rss = resident_bytes()
  if rss then gauge("process_resident_memory_bytes", "Resident set size of the process.", rss) end
  local ok, info = pcall(lumen.engine_info)
  if ok and type(info) == "table" then
    if info.host_bytes then
      gauge("lumen_host_tensor_bytes", "Host bytes held by live tensors.", info.host_bytes)
    end
    if info.host_cached_bytes then
      gauge("lumen_host_cached_bytes", "Freed host bytes kept by lumen's allocator.", info.host_cached_bytes)
    end
    if info.device_bytes and (info.cuda_devices or 0) > 0 then
      gauge("lumen_gpu_memory_bytes", "GPU bytes held by live tensors.", info.device_bytes)
    end
  end
  gauge("lumen_uptime_seconds", "Seconds since the server started.", lumen.clock() - self.started)
  return table.concat(out, "\n") .. "\n"
end

---------------------------------------------------------------------------
-- Routing.  Paths match case-insensitively, with or without a trailing
-- slash, after any prefix (a client configured with
-- http://host/some/prefix sends /some/prefix/v1/models): the path starts
-- at its first segment that is one of the API's roots.
local ROOTS = {v1 = true, session = true, logs = true, healthz = true, metrics = true, auth = true,
               info = true, datastore = true, infer = true, admin = true}

-- The path as segments from the first root on, and that canonical path
-- ("/" .. segments, the first segment lower-cased, and the second too under
-- /v1 and /admin, where it is a fixed word).
local function split_path(path)
  local segs = {}
  for s in path:gmatch("[^/]+") do segs[#segs + 1] = s end
  local start
  for i, s in ipairs(segs) do
    if ROOTS[s:lower()] then start = i break end
  end
  if not start then return nil end
  local out = {}
  for i = start, #segs do out[#out + 1] = segs[i] end
  out[1] = out[1]:lower()
  if (out[1] == "v1" or out[1] == "admin") and out[2] then out[2] = out[2]:lower() end
  return out, "/" .. table.concat(out, "/")
end
S.split_path = split_path

-- A route: method, a template ("/v1/models", "/session/:id") and
-- fn(req, app, captures...).
function App:add_route(method, template, fn)
  local segs = {}
  for s in template:gmatch("[^/]+") do segs[#segs + 1] = s end
  self.routes[#self.routes + 1] = {method = method, template = template, segs = segs, fn = fn}
end

local function match_template(route, segs)
  if #route.segs ~= #segs then return nil end
  local caps = {}
  for i, t in ipairs(route.segs) do
    if t:sub(1, 1) == ":" then
      caps[#caps + 1] = segs[i]
    elseif t ~= segs[i]:lower() then
      return nil
    end
  end
  return caps
end

-- -> fn, captures, route name; or nil, status (404 / 405).
function App:find_route(method, path)
  local segs, canon = split_path(path)
  if not segs then return nil, 404 end
  local allowed = false
  for _, r in ipairs(self.routes) do
    local caps = match_template(r, segs)
    if caps then
      if r.method == method then return r.fn, caps, r.template end
      allowed = true
    end
  end
  for _, r in ipairs(self.admin_routes) do
    local caps = {canon:match(r.pattern)}
    if caps[1] ~= nil then
      if r.method == method then
        -- a pattern without captures yields the whole match: drop it
        if not r.pattern:find("(", 1, true) then caps = {} end
        return r.fn, caps, r.route or r.pattern
      end
      allowed = true
    end
  end
  return nil, allowed and 405 or 404
end

-- Bytes a reply carries (for the access log).
local function reply_bytes(resp)
  if resp.body then return #resp.body end
  local n = 0
  for _, p in ipairs(resp.parts or {}) do
    n = n + (p.body and #p.body or p.size or 0)
  end
  return n
end

-- The request wrapper: route, run, turn errors into JSON, log, count.
function App:handle(req)
  local t0 = lumen.clock()
  local method = (req.method or "GET"):upper()
  local path = req.path or "/"
  local fn, caps, route = self:find_route(method, path)
  local resp
  if not fn then
    local status = caps
    resp = S.fail(status, status == 405 and ("method %s not allowed on %s"):format(method, path)
                                          or ("no such endpoint: %s"):format(path))
    route = "other"
  else
    local ok, r = pcall(fn, req, self, table.unpack(caps))
    local cancelled = not ok and S.cancelled(req, r)
    if cancelled then
      -- the transport cancelled us (and answered itself, or nobody
      -- listens): this reply only feeds the access log and the metrics
      resp = S.fail(cancelled, tostring(r))
    elseif not ok then
      local msg = tostring(r)
      self:log{level = "error", msg = "handler failed", method = method, path = path, error = msg}
      resp = S.fail(500, msg)
    elseif type(r) ~= "table" then
      resp = S.fail(500, "handler returned no reply")
    else
      resp = r
    end
  end
  resp.status = resp.status or 200
  local ms = (lumen.clock() - t0) * 1000
  self:observe(route, resp.status, ms / 1000)
  local rec = {time = iso_time(wall_now()), remote = req.remote, method = method, path = path,
               status = resp.status, bytes = reply_bytes(resp), ms = math.floor(ms * 10 + 0.5) / 10,
               model = req.query and req.query.model or caps and route == "/infer/:model" and caps[1] or nil}
  local line = S.encode(rec)
  self:ring_push(line)
  if self.access_log then
    self.access_log:write(line, "\n")
    self.access_log:flush()
  end
  return resp
end

---------------------------------------------------------------------------
-- lumen.serve_app(opts) -> app (routes set, repository loaded, no server):
-- what lumen.serve starts, and what tests call app:handle(req) on.
--   opts.models          the model repository folder (default: lumen's)
--   opts.host, opts.port where lumen.serve listens (127.0.0.1, 5000)
--   opts.queue           inferences admitted at once (8)
--   opts.timeout         seconds per request (transport; nil: none)
--   opts.session_expiry  the longest session life in seconds (3600)
--   opts.max_sessions    sessions kept at once (64; the least recently used goes)
--   opts.admin_token     bearer token of the admin API (nil: see serve_admin)
--   opts.access_log      a file name, or "-" for stdout (nil: none)
--   opts.upload_dir      temporary files (default $TMPDIR or /tmp)
--   opts.quiet           do not copy the server log to stderr
function lumen.serve_app(opts)
  opts = opts or {}
  local queue = math.tointeger(opts.queue or 8)
  if not queue or queue < 1 then error("serve: queue must be a positive integer", 2) end
  local expiry = tonumber(opts.session_expiry or 3600)
  expiry = math.tointeger(expiry) or expiry -- 3600, not 3600.0, in session_info
  if not expiry or expiry <= 0 then error("serve: session_expiry must be a positive number", 2) end
  local app = setmetatable({
    models_dir = ((opts.models or lumen.model_repository()):gsub("/+$", "")),
    host = opts.host or "127.0.0.1",
    port = opts.port or 5000,
    admin_token = opts.admin_token ~= "" and opts.admin_token or nil,
    queue = queue,
    timeout = opts.timeout,
    session_expiry = expiry,
    max_sessions = math.tointeger(opts.max_sessions) or 64,
    upload_dir = opts.upload_dir or os.getenv("TMPDIR") or "/tmp",
    quiet = opts.quiet,
    models = {}, sessions = {}, datastore = {},
    active = 0,
    ring = {head = 0, count = 0},
    routes = {}, admin_routes = {},
    metrics = {requests = {}, latency = {}, rejected = 0},
    started = lumen.clock(),
  }, App)
  if opts.access_log == "-" then
    app.access_log = io.stdout
  elseif opts.access_log then
    local f, err = io.open(opts.access_log, "a")
    if not f then error("serve: --access-log: " .. tostring(err), 2) end
    app.access_log = f
  end
  S.add_aiaa_routes(app)
  if type(lumen.serve_admin_routes) == "function" then
    for _, r in ipairs(lumen.serve_admin_routes(app)) do
      app.admin_routes[#app.admin_routes + 1] = {method = r.method or r[1], pattern = r.pattern or r[2],
                                                 fn = r.fn or r[3], route = r.route}
    end
  end
  app:load_repository()
  return app
end

-- app:close(): stop accepting; requests in flight finish.
function App:close()
  if self.server and not self.closing then
    self.closing = true
    self.server:close()
  end
end

-- Release every model and session (after the server has stopped).
function App:free()
  for _, name in ipairs(self:model_names()) do self:remove(name) end
  for id in pairs(self.sessions) do self:session_drop(self.sessions, id) end
  for id in pairs(self.datastore) do self:session_drop(self.datastore, id) end
  if self.access_log and self.access_log ~= io.stdout then self.access_log:close() end
  self.access_log = nil
end

-- lumen.serve(opts) -> app: lumen.serve_app(opts), then the HTTP server
-- (app.server, app.port) and the line "lumen serve: listening on
-- http://HOST:PORT (N models)" on stderr.  With opts.stop (a function), it
-- then serves until stop() returns true (the `lumen serve` command passes
-- one that turns true on SIGTERM or SIGINT), closes the server, waits for
-- the requests in flight and releases everything.
function lumen.serve(opts)
  if type(lumen.http_serve) ~= "function" then
    error("serve: this build has no HTTP transport (lumen.http_serve)", 2)
  end
  opts = opts or {}
  local app = lumen.serve_app(opts)
  app.server = lumen.http_serve{
    host = app.host, port = app.port, upload_dir = app.upload_dir, timeout = app.timeout,
    max_body = opts.max_body,
    handler = function(req) return app:handle(req) end,
  }
  app.port = app.server.port
  local shown = app.host:find(":", 1, true) and ("[" .. app.host .. "]") or app.host
  local n = #app:model_names()
  app:log{msg = "listening", host = app.host, port = app.port, models = n}
  io.stderr:write(("lumen serve: listening on http://%s:%d (%d model%s)\n")
                  :format(shown, app.port, n, n == 1 and "" or "s"))
  io.stderr:flush()
  if type(opts.stop) ~= "function" then return app end
  local last_sweep = lumen.clock()
  while not opts.stop() do
    lumen.sleep(0.1)
    if lumen.clock() - last_sweep >= 1 then
      app:sweep()
      last_sweep = lumen.clock()
    end
  end
  app:log{msg = "shutting down: requests in flight finish, new ones are refused"}
  app:close()
  app.server:wait() -- the requests in flight are answered, the daemon stopped
  app:free()
  app:log{msg = "stopped"}
  return app
end
