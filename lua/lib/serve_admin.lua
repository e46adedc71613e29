-- lumen serve: the admin API, /admin/model/{name} (Clara AIAA's model
-- administration, aiaa-api.md section 1.1).  lumen.serve_admin_routes(app)
-- returns the routes; serve.lua adds them to its router.
--
--   PUT    multipart `config` (config_aiaa.json) + `data` (an ONNX file): a new
--          folder MODELS/name holding config_aiaa.json and model.onnx;
--          multipart `data` alone: a zip, tar or tar.gz/bz2/xz of a lumen
--          package (metadata.json, weights, pipeline.lua) or of an AIAA folder
--          (config_aiaa.json + weights), at the top of the archive or inside
--          one top-level folder (with `config` too, that config is written
--          over the archive's);
--          a JSON body {"path": ...} (download from NGC): 501.
--   GET    the model's config_aiaa.json, else its metadata.json.
--   PATCH  a JSON body that replaces config_aiaa.json (metadata.json for a
--          lumen package); the model is reloaded; if it does not load, the
--          previous file is put back and the loaded model stays.
--   DELETE unload the model and remove MODELS/name.
--
-- Access.  With a token (lumen serve --admin-token T, or LUMEN_ADMIN_TOKEN)
-- every admin request needs `Authorization: Bearer T` (401 without it or
-- with another token; compared in constant time).  Without a token the admin
-- API is open only when the server listens on a loopback address (127.0.0.0/8,
-- ::1, localhost), where only local users reach it; on any other address it
-- answers 403 "admin API disabled: set --admin-token" and the server logs a
-- warning at start.  A lumen package's pipeline.lua is Lua code that the
-- server runs: whoever holds the token can run code as the server.
--
-- Safety of uploads.  Names: 1 to 64 of A-Z a-z 0-9 _ . - with no leading dot
-- (400 otherwise), so a name is a plain folder name.  Archives go through
-- lumen.extract_archive (lua/src/archive.c: no absolute paths, no '..', no
-- links, no devices, at most app.admin_max_bytes extracted bytes, else
-- $LUMEN_ADMIN_MAX_BYTES, else 2 GiB, and app.admin_max_files entries, else
-- $LUMEN_ADMIN_MAX_FILES, else 10000).  An uploaded file over that many bytes
-- is refused too (413); the transport's max_body bounds what arrives at all.  Everything is built in a staging
-- folder MODELS/.upload-XXXXXX (the server skips dot folders), loaded once
-- there to prove it loads, then swapped with MODELS/name in one rename
-- (renameat2 RENAME_EXCHANGE) and installed; if installing fails the old
-- folder is swapped back.  The staging folder is removed whatever happens.
-- One admin operation per model name at a time (409 while one runs).
local lumen = ...

local DEFAULT_MAX_BYTES = 2 << 30
local DEFAULT_MAX_FILES = 10000
local ROUTE = "/admin/model/:name"
local PATTERN = "^/admin/model/([^/]+)/?$"

-- Replies -------------------------------------------------------------------

local function json_reply(status, value, headers)
  local h = {["Content-Type"] = "application/json"}
  for k, v in pairs(headers or {}) do h[k] = v end
  return {status = status, headers = h, body = lumen.json_encode(value)}
end

local function fail(status, message, headers)
  return json_reply(status, {error = message}, headers)
end

-- A refusal raised from deep inside a handler: {status, message}.
local Refusal = {}
Refusal.__index = Refusal
Refusal.__tostring = function(r) return r.message end
local function refuse(status, message)
  error(setmetatable({status = status, message = message}, Refusal), 0)
end

-- Access -------------------------------------------------------------------

local function valid_name(name)
  return type(name) == "string" and #name >= 1 and #name <= 64
         and name:find("^[A-Za-z0-9_.-]+$") ~= nil and name:sub(1, 1) ~= "."
end

-- Is host a loopback address?  127.0.0.0/8, ::1 (any spelling of it that
-- the transport accepts: [::1], 0:0:0:0:0:0:0:1, ::ffff:127.x.y.z), localhost.
local function is_loopback(host)
  if type(host) ~= "string" then return false end
  local h = host:lower():gsub("^%[(.*)%]$", "%1")
  if h == "localhost" or h == "localhost." then return true end
  local v4 = h:match("^::ffff:(%d+%.%d+%.%d+%.%d+)$") or h
  local a, b, c, d = v4:match("^(%d+)%.(%d+)%.(%d+)%.(%d+)$")
  if a then
    a, b, c, d = tonumber(a), tonumber(b), tonumber(c), tonumber(d)
    return a == 127 and b <= 255 and c <= 255 and d <= 255
  end
  -- IPv6: ::1 with any number of zero groups written out.
  if h:find("^[0:]*1$") and h:find("::", 1, true) or h == "0:0:0:0:0:0:0:1" then
    return true
  end
  return false
end

-- Compare the presented token with the configured one in a time that
-- depends only on the configured token's length, not on where they differ.
local function same_secret(given, secret)
  local diff = #given ~ #secret
  for i = 1, #secret do
    diff = diff | ((given:byte(i) or 0) ~ secret:byte(i))
  end
  return diff == 0
end

local function bearer_token(req)
  local h = req.headers and req.headers.authorization
  if type(h) ~= "string" then return nil end
  return h:match("^%s*[Bb][Ee][Aa][Rr][Ee][Rr]%s+(%S+)%s*$")
end

-- nil when the request may use the admin API, else the reply to send.
local function check_access(req, app)
  if app.admin_token then
    local token = bearer_token(req)
    local challenge = {["WWW-Authenticate"] = 'Bearer realm="lumen admin"'}
    if not token then
      return fail(401, "admin API: missing token (send Authorization: Bearer <token>)", challenge)
    end
    if not same_secret(token, app.admin_token) then
      return fail(401, "admin API: wrong token", challenge)
    end
    return nil
  end
  if not is_loopback(app.host) then
    return fail(403, ("admin API disabled: set --admin-token (the server listens on %s, not "
                      .. "on a loopback address)"):format(tostring(app.host)))
  end
  return nil
end

-- Files ----------------------------------------------------------------------

local function read_file(path)
  local f, err = io.open(path, "rb")
  if not f then return nil, err end
  local s = f:read("a")
  f:close()
  return s
end

local function write_file(path, data)
  local f, err = io.open(path, "wb")
  if not f then return nil, err end
  local ok, werr = f:write(data)
  local cok, cerr = f:close()
  if not ok or not cok then return nil, ("%s: %s"):format(path, tostring(werr or cerr)) end
  return true
end

local function copy_file(src, dst)
  local i, err = io.open(src, "rb")
  if not i then return nil, err end
  local o, oerr = io.open(dst, "wb")
  if not o then i:close() return nil, oerr end
  while true do
    local chunk = i:read(1 << 20)
    if not chunk then break end
    local ok, werr = o:write(chunk)
    if not ok then i:close() o:close() return nil, ("%s: %s"):format(dst, tostring(werr)) end
  end
  i:close()
  local ok, cerr = o:close()
  if not ok then return nil, ("%s: %s"):format(dst, tostring(cerr)) end
  return true
end

-- Is the file an archive lumen.extract_archive reads (by its first bytes,
-- not its name)?
local function is_archive(path)
  local f = io.open(path, "rb")
  if not f then return false end
  local head = f:read(262) or ""
  f:close()
  return head:sub(1, 4) == "PK\3\4" or head:sub(1, 4) == "PK\5\6"   -- zip (empty: PK56)
      or head:sub(1, 2) == "\31\139"                                 -- gzip
      or head:sub(1, 3) == "BZh"                                     -- bzip2
      or head:sub(1, 6) == "\253\55\122\88\90\0"                     -- xz
      or head:sub(258, 262) == "ustar"                               -- tar
end

local function must(ok, err, status)
  if not ok then refuse(status or 500, tostring(err)) end
  return ok
end

local package_kind = lumen.package_kind

local function config_file(dir)
  return package_kind(dir) == "aiaa" and "config_aiaa.json" or "metadata.json"
end

-- The package inside an extracted archive: its top, or the one folder at its
-- top (macOS's __MACOSX and dot files aside).  any: the folder need not hold
-- a config (the upload brings it).
local function find_package_root(dir, any)
  if package_kind(dir) then return dir end
  local names = lumen.fs.list(dir) or {}
  local visible = {}
  for _, n in ipairs(names) do
    if n ~= "__MACOSX" and n:sub(1, 1) ~= "." then visible[#visible + 1] = n end
  end
  if #visible == 1 and lumen.fs.stat(dir .. "/" .. visible[1]) == "dir"
     and (any or package_kind(dir .. "/" .. visible[1])) then
    return dir .. "/" .. visible[1]
  end
  return any and dir or nil
end

-- A config must be a JSON object; a lumen package's metadata.json may only
-- name files inside the package (its weights are read by the server).
local function check_config(text, what, kind)
  local ok, v = pcall(lumen.json_decode, text)
  if not ok then refuse(400, ("%s is not valid JSON: %s"):format(what, tostring(v))) end
  if type(v) ~= "table" or (next(v) == nil and text:match("^%s*%[")) or #v > 0 then
    refuse(400, what .. " must be a JSON object")
  end
  if kind == "lumen" then
    for _, field in ipairs{"weights", "network"} do
      local p = v[field]
      if p ~= nil and (type(p) ~= "string" or p:sub(1, 1) == "/" or ("/" .. p .. "/"):find("/../", 1, true)) then
        refuse(400, ("%s: field '%s' must name a file inside the package"):format(what, field))
      end
    end
  end
  return v
end

-- Load the package in dir and release it: proves it loads before the
-- repository's folder is touched (app:install loads it again in place).
local function trial_load(dir)
  local kind = package_kind(dir)
  local ok, pkg = pcall(function()
    if kind == "lumen" then return lumen.load_package(dir) end
    if kind == "aiaa" then
      if type(lumen.load_aiaa_package) ~= "function" then
        error("config_aiaa.json packages need lumen.load_aiaa_package, which this build lacks", 0)
      end
      return lumen.load_aiaa_package(dir)
    end
    error("no metadata.json or config_aiaa.json", 0)
  end)
  if not ok then refuse(400, "the model does not load: " .. tostring(pkg)) end
  if type(pkg) ~= "table" or type(pkg.infer) ~= "function" then
    refuse(400, "the model does not load: its package has no infer function")
  end
  if type(pkg.free) == "function" then pkg:free() end
  return kind
end

-- Swap the folder newdir with MODELS/name (or move it there), install it,
-- and swap back if installing fails.  stage is the staging folder, where the
-- old folder ends up.
local function put_in_place(app, name, newdir, stage)
  local final = app.models_dir .. "/" .. name
  local previous = lumen.fs.lstat(final) ~= nil
  local swapped
  if previous then
    local ok, err, code = lumen.fs.exchange(newdir, final)
    if ok then
      swapped = function() return lumen.fs.exchange(newdir, final) end
    elseif code == "LM_ENOTSUP" then
      -- no atomic exchange on this file system: two renames
      local aside = stage .. "/previous"
      must(os.rename(final, aside))
      local rok, rerr = os.rename(newdir, final)
      if not rok then os.rename(aside, final) must(nil, rerr) end
      swapped = function()
        os.rename(final, newdir)
        return os.rename(aside, final)
      end
    else
      must(nil, err)
    end
  else
    must(os.rename(newdir, final))
    swapped = function() return os.rename(final, newdir) end
  end
  local ok, err = pcall(app.install, app, name, final)
  if not ok then
    swapped()
    refuse(400, "the model does not install: " .. tostring(err))
  end
  return previous
end

-- Per-name exclusion: admin requests on one name run one at a time (a load
-- yields, so two could otherwise interleave on one folder).
local function with_lock(app, name, fn, ...)
  local busy = app._admin_busy
  if busy[name] then
    return fail(409, ("an admin operation on model '%s' is in progress"):format(name))
  end
  busy[name] = true
  local ok, resp = pcall(fn, ...)
  busy[name] = nil
  if ok then return resp end
  if getmetatable(resp) == Refusal then
    app:log{level = "warning", msg = "admin request refused", model = name, status = resp.status,
            error = resp.message}
    return fail(resp.status, resp.message)
  end
  error(resp, 0)
end

-- Handlers -------------------------------------------------------------------

-- Common start: access, then the name.
local function admit(req, app, name)
  local deny = check_access(req, app)
  if deny then return deny end
  if not valid_name(name) then
    return fail(400, ("bad model name '%s': use 1 to 64 of A-Z a-z 0-9 _ . - (no leading dot)")
                :format(tostring(name)))
  end
  return nil
end

-- app.<field>, else the environment variable, else the default (values that
-- are not non-negative integers are ignored).
local function limit(value, env, default)
  local function count(v)
    local n = v ~= nil and math.tointeger(tonumber(v)) or nil
    return n and n >= 0 and n or nil
  end
  return count(value) or count(os.getenv(env)) or default
end

local function max_bytes(app)
  return limit(app.admin_max_bytes, "LUMEN_ADMIN_MAX_BYTES", DEFAULT_MAX_BYTES)
end

-- The `config` part: a file part (curl -F config=@config_aiaa.json) or a
-- text part.
local function config_part(req)
  local f = req.files and req.files.config
  if f then return must(read_file(f.path)) end
  return req.form and req.form.config or nil
end

local function build_upload(req, app, name, stage)
  local data = req.files and req.files.data
  local config = config_part(req)
  if not data then
    if req.form and req.form.data then
      refuse(400, "part 'data' must be a file part (the model, or an archive of the package)")
    end
    refuse(400, "missing part 'data' (the ONNX model with 'config', or a zip or tar of the package)")
  end
  if data.size and data.size > max_bytes(app) then
    refuse(413, ("part 'data' is %d bytes, over the limit of %d"):format(data.size, max_bytes(app)))
  end
  if config then check_config(config, "part 'config'", "aiaa") end
  local root
  local stats = {files = 0, bytes = 0}
  if is_archive(data.path) then
    local r, err, code = lumen.extract_archive(data.path, stage .. "/x",
        {max_bytes = max_bytes(app),
         max_files = limit(app.admin_max_files, "LUMEN_ADMIN_MAX_FILES", DEFAULT_MAX_FILES)})
    if not r then
      -- The message names the upload's temporary file: name the client's file.
      local shown = "archive '" .. tostring(data.filename or "data") .. "': "
      refuse(code == "LM_EINVAL" and 400 or 500, (err:gsub("^archive [^:]*: ", function() return shown end)))
    end
    stats = r
    root = find_package_root(stage .. "/x", config ~= nil)
    if not root then
      refuse(400, "the archive holds no model package: no metadata.json or config_aiaa.json "
                  .. "at its top or in its one top-level folder")
    end
    if config then must(write_file(root .. "/config_aiaa.json", config)) end
  else
    if not config then
      refuse(400, "part 'data' is not a zip or tar archive; a single model file needs the "
                  .. "part 'config' (config_aiaa.json) with it")
    end
    root = stage .. "/pkg"
    must(lumen.fs.mkdir(root))
    must(write_file(root .. "/config_aiaa.json", config))
    must(copy_file(data.path, root .. "/model.onnx"))
    stats = {files = 2, bytes = #config + (data.size or 0)}
  end
  local kind = package_kind(root)
  if kind == "lumen" then check_config(must(read_file(root .. "/metadata.json")), "metadata.json", "lumen") end
  trial_load(root)
  local replaced = put_in_place(app, name, root, stage)
  app:log{msg = "admin: model uploaded", model = name, kind = kind, replaced = replaced,
          files = stats.files, bytes = stats.bytes, remote = req.remote}
  return json_reply(200, {name = name, kind = kind, replaced = replaced, files = stats.files,
                          bytes = stats.bytes})
end

local function put_model(req, app, name)
  local deny = admit(req, app, name)
  if deny then return deny end
  local multipart = (req.files and next(req.files)) or (req.form and next(req.form))
  if not multipart then
    local body = req.body or ""
    local ok, v = pcall(lumen.json_decode, body)
    if ok and type(v) == "table" and v.path ~= nil then
      return fail(501, "downloading models from NGC ({\"path\": ...}) is not supported: upload "
                       .. "the model as multipart 'config' + 'data', or 'data' = a zip or tar of the package")
    end
    return fail(400, "PUT /admin/model/NAME takes multipart/form-data: 'config' (config_aiaa.json) "
                     .. "+ 'data' (the ONNX model), or 'data' alone (a zip or tar of the package)")
  end
  return with_lock(app, name, function()
    local stage = must(lumen.fs.mkdtemp(app.models_dir .. "/.upload-"))
    local ok, resp = pcall(build_upload, req, app, name, stage)
    lumen.fs.remove_tree(stage)
    if not ok then error(resp, 0) end
    return resp
  end)
end

local function get_model(req, app, name)
  local deny = admit(req, app, name)
  if deny then return deny end
  local entry = app:entry(name)
  if not entry then return fail(404, ("no model '%s'"):format(name)) end
  local file = entry.dir .. "/" .. config_file(entry.dir)
  local text, err = read_file(file)
  if not text then return fail(500, tostring(err)) end
  local ok, perr = pcall(lumen.json_decode, text)
  if not ok then return fail(500, ("%s: %s"):format(file, tostring(perr))) end
  return {status = 200, headers = {["Content-Type"] = "application/json"}, body = text}
end

local function patch_model(req, app, name)
  local deny = admit(req, app, name)
  if deny then return deny end
  local entry = app:entry(name)
  if not entry then return fail(404, ("no model '%s'"):format(name)) end
  -- A linked folder is someone else's (a shared store, a source tree):
  -- PATCH edits only folders the repository holds.
  if lumen.fs.lstat(entry.dir) == "link" or lumen.fs.lstat(app.models_dir .. "/" .. name) == "link" then
    return fail(409, ("the folder of model '%s' is a link: PATCH edits only folders inside the "
                      .. "repository (PUT the package to make one)"):format(name))
  end
  return with_lock(app, name, function()
    local dir = entry.dir
    local cfg = config_file(dir)
    local body = req.body or ""
    check_config(body, "the request body", cfg == "metadata.json" and "lumen" or "aiaa")
    local path = dir .. "/" .. cfg
    local old = must(read_file(path))
    -- Written beside the file and renamed over it: readers see the old
    -- file or the new one, never half of one.
    local tmp = dir .. "/.lumen-admin-patch"
    must(write_file(tmp, body))
    must(os.rename(tmp, path))
    local ok, err = pcall(app.install, app, name, dir)
    if not ok then
      local rok = write_file(tmp, old) and os.rename(tmp, path)
      os.remove(tmp)
      refuse(400, ("the new %s does not load: %s (%s)"):format(cfg, tostring(err),
             rok and "the previous one is kept" or "AND the previous one could not be restored"))
    end
    app:log{msg = "admin: config patched", model = name, file = cfg, remote = req.remote}
    return json_reply(200, {name = name, patched = cfg})
  end)
end

local function delete_model(req, app, name)
  local deny = admit(req, app, name)
  if deny then return deny end
  local final = app.models_dir .. "/" .. name
  local entry = app:entry(name)
  local on_disk = lumen.fs.lstat(final) ~= nil
  if not entry and not on_disk then return fail(404, ("no model '%s'"):format(name)) end
  return with_lock(app, name, function()
    if entry then app:remove(name) end
    if on_disk then
      -- Out of the repository in one rename, then removed; only the folder
      -- in MODELS is ever removed (a link there goes, not its target).
      local trash = must(lumen.fs.mkdtemp(app.models_dir .. "/.delete-"))
      local ok, err = os.rename(final, trash .. "/" .. name)
      if not ok then
        lumen.fs.remove_tree(trash)
        refuse(500, ("cannot remove %s: %s"):format(final, tostring(err)))
      end
      lumen.fs.remove_tree(trash)
    end
    app:log{msg = "admin: model deleted", model = name, remote = req.remote}
    return json_reply(200, {name = name, deleted = true})
  end)
end

-- lumen.serve_admin_routes(app) -> the routes {method, pattern, fn, route}
-- of the admin API for serve.lua's router; logs a warning when the API is
-- disabled (no token, not on loopback).
function lumen.serve_admin_routes(app)
  app._admin_busy = app._admin_busy or {}
  if not app.admin_token and not is_loopback(app.host) then
    app:log{level = "warning", msg = ("admin API disabled: set --admin-token (or LUMEN_ADMIN_TOKEN) "
            .. "to manage models on %s, which is not a loopback address"):format(tostring(app.host))}
  end
  return {
    {method = "GET", pattern = PATTERN, fn = get_model, route = ROUTE},
    {method = "PUT", pattern = PATTERN, fn = put_model, route = ROUTE},
    {method = "PATCH", pattern = PATTERN, fn = patch_model, route = ROUTE},
    {method = "DELETE", pattern = PATTERN, fn = delete_model, route = ROUTE},
  }
end

-- For the tests: the pieces with rules of their own.
lumen._serve_admin = {is_loopback = is_loopback, same_secret = same_secret,
                      valid_name = valid_name}
