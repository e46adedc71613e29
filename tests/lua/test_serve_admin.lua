-- The admin API of lumen serve (lua/lib/serve_admin.lua) through the app's
-- request handler (lumen.serve_app + app:handle, no HTTP): access rules,
-- names, uploads of the demo package as a tar and as config_aiaa.json + ONNX,
-- hostile and broken uploads refused with the repository unchanged, GET,
-- PATCH (and its rollback), DELETE.
-- arg[1]: the source root (for models/demo_ct_unet).
local dir = arg[0]:match("^(.*/)") or "./"
local tap = dofile(dir .. "tap.lua")
local W = dofile(dir .. "archive_writer.lua")
local test = tap.test
local SRC = arg[1] or "."
if SRC:sub(1, 1) ~= "/" then SRC = os.getenv("PWD") .. "/" .. SRC end -- links need it absolute
local DEMO_DIR = SRC .. "/models/demo_ct_unet"

local A = lumen._serve_admin

local function read(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local s = f:read("a")
  f:close()
  return s
end

local function write(path, data)
  local f = assert(io.open(path, "wb"))
  f:write(data)
  f:close()
end

-- A v2 config for the demo network (as tests/lua/test_aiaa_config.lua).
local DEMO_CONFIG = [[
{ "version": "2", "type": "segmentation",
  "labels": ["liver", "spleen", "kidney", "stomach", "urinary_bladder"],
  "description": "demo CT U-Net uploaded with its config",
  "pre_transforms": [
    {"name": "LoadNifti", "args": {"fields": "image"}},
    {"name": "ConvertToChannelsFirst", "args": {"fields": "image"}},
    {"name": "ScaleByResolution", "args": {"fields": "image", "target_resolution": [3.0, 3.0, 3.0]}},
    {"name": "ScaleIntensityRange", "args": {"fields": "image", "a_min": -57, "a_max": 164, "b_min": 0.0, "b_max": 1.0, "clip": true}}
  ],
  "inference": {"image": "image", "scanning_window": true, "batch_size": 1, "roi": [48, 48, 48]},
  "post_transforms": [
    {"name": "ArgmaxAcrossChannels", "args": {"fields": "model"}},
    {"name": "RestoreOriginalShape", "args": {"field": "model", "src_field": "image", "is_label": true}}
  ],
  "writer": {"name": "WriteNifti", "args": {"field": "model", "dtype": "uint8"}}
}
]]

-- The demo package as tar entries under `top` ("" = at the archive's top),
-- with metadata.json replaced by `meta` when given.
local function demo_entries(top, meta)
  local p = top ~= "" and (top .. "/") or ""
  local list = {}
  if top ~= "" then list[#list + 1] = {name = top .. "/", type = "5"} end
  list[#list + 1] = {name = p .. "metadata.json", data = meta or read(DEMO_DIR .. "/metadata.json")}
  list[#list + 1] = {name = p .. "model.onnx", data = read(DEMO_DIR .. "/model.onnx")}
  list[#list + 1] = {name = p .. "pipeline.lua", data = read(DEMO_DIR .. "/pipeline.lua")}
  return list
end

local function with_description(text)
  local meta = lumen.json_decode(read(DEMO_DIR .. "/metadata.json"))
  meta.description = text
  return lumen.json_encode(meta)
end

-- A repository folder and an app on it; closed (models released, folder
-- removed) by the returned closer.
local function new_app(t, opts)
  local models = assert(lumen.fs.mkdtemp((os.getenv("TMPDIR") or "/tmp") .. "/lumen-admin-"))
  local o = {models = models, quiet = true, host = "127.0.0.1"}
  for k, v in pairs(opts or {}) do o[k] = v end
  local app = lumen.serve_app(o)
  return app, setmetatable({}, {__close = function()
    app:free()
    t:ok(lumen.fs.remove_tree(models))
  end})
end

local function call(app, method, path, r)
  r = r or {}
  r.method, r.path = method, path
  r.headers = r.headers or {}
  r.remote = "127.0.0.1:1"
  local resp = app:handle(r)
  local ok, v = pcall(lumen.json_decode, resp.body or "")
  return resp.status, ok and v or resp.body, resp
end

-- An upload request: files {part = bytes} written to temporary files.
local function upload(app, files, form)
  local req = {files = {}, form = form or {}}
  for part, bytes in pairs(files) do
    local path = app.models_dir .. "/../" .. "lumen-admin-upload-" .. part .. "-" .. tostring(math.random(1 << 30))
    write(path, bytes)
    req.files[part] = {path = path, filename = part .. ".bin", size = #bytes,
                       content_type = "application/octet-stream"}
  end
  return req, function() for _, f in pairs(req.files) do os.remove(f.path) end end
end

local function put(app, name, files, form)
  local req, cleanup = upload(app, files, form)
  local status, body, resp = call(app, "PUT", "/admin/model/" .. name, req)
  cleanup()
  return status, body, resp
end

-- The repository's folder names (staging folders would show here).
local function listing(app) return lumen.fs.list(app.models_dir) end

-- Access ------------------------------------------------------------------------

test("loopback addresses and the token compare", function(t)
  for _, h in ipairs{"127.0.0.1", "127.1.2.3", "::1", "[::1]", "0:0:0:0:0:0:0:1", "localhost",
                     "LOCALHOST", "::ffff:127.0.0.1"} do
    t:ok(A.is_loopback(h), h .. " is loopback")
  end
  for _, h in ipairs{"0.0.0.0", "::", "10.0.0.1", "128.0.0.1", "127.0.0.256", "192.168.1.127",
                     "::2", "example.org", "localhost.example.org", "", "1"} do
    t:ok(not A.is_loopback(h), h .. " is not loopback")
  end
  t:ok(A.same_secret("s3cret", "s3cret"))
  t:ok(not A.same_secret("s3cre", "s3cret"))
  t:ok(not A.same_secret("s3cret!", "s3cret"))
  t:ok(not A.same_secret("s3creT", "s3cret"))
  t:ok(not A.same_secret("", "s3cret"))
  for _, n in ipairs{"a", "demo_ct_unet", "A-1.2_b", ("x"):rep(64)} do t:ok(A.valid_name(n), n) end
  for _, n in ipairs{"", ".hidden", "..", "a b", "a/b", "é", ("x"):rep(65), "a\0b"} do
    t:ok(not A.valid_name(n), ("%q refused"):format(n))
  end
end)

test("with a token: 401 without it or with another; the right one passes", function(t)
  local app, closer = new_app(t, {admin_token = "tok-123"})
  local _ <close> = closer
  local status, body, resp = call(app, "GET", "/admin/model/demo")
  t:eq(status, 401)
  t:ok(body.error:find("missing token"), body.error)
  t:ok(resp.headers["WWW-Authenticate"]:find("Bearer"), "challenge")
  status, body = call(app, "GET", "/admin/model/demo", {headers = {authorization = "Bearer tok-12"}})
  t:eq(status, 401)
  t:ok(body.error:find("wrong token"), body.error)
  status = call(app, "DELETE", "/admin/model/demo", {headers = {authorization = "Basic dG9rLTEyMw=="}})
  t:eq(status, 401, "another scheme")
  status = call(app, "PUT", "/admin/model/demo", {headers = {authorization = "Bearer tok-1234"}})
  t:eq(status, 401, "a longer token")
  status, body = call(app, "GET", "/admin/model/demo", {headers = {authorization = "bearer tok-123"}})
  t:eq(status, 404, "authorised, and no such model")
  t:ok(body.error:find("no model 'demo'"), body.error)
  -- the token also guards bad names: 401 before 400
  status = call(app, "GET", "/admin/model/.bad")
  t:eq(status, 401)
end)

test("no token: open on loopback, 403 elsewhere with a warning at start", function(t)
  local app, closer = new_app(t, {host = "0.0.0.0"})
  local _ <close> = closer
  local status, body = call(app, "GET", "/admin/model/demo")
  t:eq(status, 403)
  t:ok(body.error:find("admin API disabled: set %-%-admin%-token"), body.error)
  status = call(app, "PUT", "/admin/model/demo", {headers = {authorization = "Bearer x"}})
  t:eq(status, 403)
  t:ok(table.concat(app:log_tail(100), "\n"):find("admin API disabled", 1, true),
       "warning logged")
  local app2, closer2 = new_app(t, {host = "::1"})
  local _2 <close> = closer2
  t:eq((call(app2, "GET", "/admin/model/demo")), 404, "open on ::1")
  t:ok(not table.concat(app2:log_tail(100), "\n"):find("admin API disabled", 1, true))
end)

test("bad names are 400; other methods 405", function(t)
  local app, closer = new_app(t)
  local _ <close> = closer
  for _, n in ipairs{".hidden", "..", "a%20b", "a b", ("x"):rep(65), "a;b"} do
    local status, body = call(app, "GET", "/admin/model/" .. n)
    t:eq(status, 400, n)
    t:ok(body.error:find("bad model name"), body.error)
  end
  t:eq((call(app, "POST", "/admin/model/demo")), 405)
end)

-- Uploads -------------------------------------------------------------------------

test("PUT a tarred package, GET, list, replace, PATCH, DELETE", function(t)
  local app, closer = new_app(t)
  local _ <close> = closer
  local status, body = put(app, "ct1", {data = W.tar(demo_entries("demo_ct_unet"))})
  t:eq(status, 200, lumen.json_encode(body))
  t:eq(body.name, "ct1")
  t:eq(body.kind, "lumen")
  t:eq(body.replaced, false)
  t:eq(body.files, 3)
  t:same(listing(app), {"ct1"}, "the folder in place, no staging folder left")
  t:eq(read(app.models_dir .. "/ct1/model.onnx"), read(DEMO_DIR .. "/model.onnx"))
  local entry = app:entry("ct1")
  t:ok(entry and entry.pkg, "installed")
  t:eq(entry.dir, app.models_dir .. "/ct1")

  -- GET: metadata.json as it is on disk
  local _, got, resp = call(app, "GET", "/admin/model/ct1/")
  t:eq(resp.status, 200)
  t:eq(resp.body, read(DEMO_DIR .. "/metadata.json"))
  t:eq(got.name, "demo_ct_unet")
  -- listed by /v1/models under its folder name
  local st, models = call(app, "GET", "/v1/models")
  t:eq(st, 200)
  local names = {}
  for _, m in ipairs(models) do names[#names + 1] = m.name end
  t:same(names, {"ct1"})

  -- PUT again: the package at the archive's top this time
  status, body = put(app, "ct1", {data = W.tar(demo_entries("", with_description("second")))})
  t:eq(status, 200, lumen.json_encode(body))
  t:eq(body.replaced, true)
  t:same(listing(app), {"ct1"})
  t:eq(select(2, call(app, "GET", "/admin/model/ct1")).description, "second")
  t:ok(app:entry("ct1") ~= entry, "a new entry")

  -- PATCH: a new metadata.json, reloaded
  status, body = call(app, "PATCH", "/admin/model/ct1", {body = with_description("patched")})
  t:eq(status, 200, lumen.json_encode(body))
  t:eq(body.patched, "metadata.json")
  t:eq(select(2, call(app, "GET", "/admin/model/ct1")).description, "patched")
  t:eq(app:entry("ct1").metadata.description, "patched", "reloaded")

  -- DELETE
  status, body = call(app, "DELETE", "/admin/model/ct1")
  t:eq(status, 200)
  t:eq(body.deleted, true)
  t:eq(app:entry("ct1"), nil)
  t:same(listing(app), {})
  t:eq((call(app, "DELETE", "/admin/model/ct1")), 404)
  t:eq((call(app, "GET", "/admin/model/ct1")), 404)
  t:eq((call(app, "PATCH", "/admin/model/ct1", {body = "{}"})), 404)
end)

test("PUT config_aiaa.json + an ONNX file; a zip with the config beside", function(t)
  if type(lumen.load_aiaa_package) ~= "function" then t:skip("no lumen.load_aiaa_package") end
  local app, closer = new_app(t)
  local _ <close> = closer
  local status, body = put(app, "clara", {config = DEMO_CONFIG, data = read(DEMO_DIR .. "/model.onnx")})
  t:eq(status, 200, lumen.json_encode(body))
  t:eq(body.kind, "aiaa")
  t:same(lumen.fs.list(app.models_dir .. "/clara"), {"config_aiaa.json", "model.onnx"})
  t:eq(read(app.models_dir .. "/clara/config_aiaa.json"), DEMO_CONFIG)
  local _, got = call(app, "GET", "/admin/model/clara")
  t:eq(got.description, "demo CT U-Net uploaded with its config")
  -- the config as a text part, the weights zipped
  status, body = put(app, "clara2", {data = W.zip{{name = "w/model.onnx", data = read(DEMO_DIR .. "/model.onnx")}}},
                     {config = DEMO_CONFIG})
  t:eq(status, 200, lumen.json_encode(body))
  t:ok(app:entry("clara2"), "installed")
  -- PATCH an AIAA model: config_aiaa.json
  local cfg = lumen.json_decode(DEMO_CONFIG)
  cfg.description = "patched clara"
  status, body = call(app, "PATCH", "/admin/model/clara", {body = lumen.json_encode(cfg)})
  t:eq(status, 200, lumen.json_encode(body))
  t:eq(body.patched, "config_aiaa.json")
  t:eq(app:entry("clara").metadata.description, "patched clara")
  -- a config that does not map: refused, the old one kept
  cfg.pre_transforms[2].name = "NoSuchTransform"
  status, body = call(app, "PATCH", "/admin/model/clara", {body = lumen.json_encode(cfg)})
  t:eq(status, 400)
  t:ok(body.error:find("NoSuchTransform", 1, true) and body.error:find("previous one is kept"), body.error)
  t:eq(select(2, call(app, "GET", "/admin/model/clara")).description, "patched clara")
  t:same(lumen.fs.list(app.models_dir .. "/clara"), {"config_aiaa.json", "model.onnx"})
end)

test("hostile archives are refused and leave the repository as it was", function(t)
  local app, closer = new_app(t)
  local _ <close> = closer
  t:eq((put(app, "ct1", {data = W.tar(demo_entries("p"))})), 200)
  local before = read(app.models_dir .. "/ct1/metadata.json")
  local outside = app.models_dir .. "/../lumen-admin-escaped-" .. tostring(math.random(1 << 30))
  local cases = {
    {W.tar{{name = "p/metadata.json", data = "{}"}, {name = "p/../../" .. outside:match("[^/]+$"), data = "x"}},
     "'%.%.' component refused"},
    {W.tar{{name = outside, data = "x"}}, "absolute path refused"},
    {W.tar{{name = "p/metadata.json", data = "{}"}, {name = "p/model.onnx", type = "2", link = "/etc/passwd"}},
     "symbolic link refused"},
    {W.zip{{name = "p/metadata.json", data = "{}"}, {name = "p/x", data = "/etc", mode = 0xA1FF}},
     "symbolic link refused"},
    {W.tar{{name = "a", data = "x"}, {name = "b", type = "1", link = "a"}}, "hard link refused"},
    {W.zip{{name = "../../escaped", data = "x"}}, "'%.%.' component refused"},
  }
  for i, c in ipairs(cases) do
    local status, body = put(app, i % 2 == 0 and "ct1" or "fresh", {data = c[1]})
    t:eq(status, 400, c[2])
    t:ok(body.error:find(c[2]) and body.error:find("archive 'data.bin'", 1, true), body.error)
  end
  t:eq(lumen.fs.stat(outside), nil, "nothing written outside")
  t:same(listing(app), {"ct1"}, "no staging folder, no new model")
  t:eq(read(app.models_dir .. "/ct1/metadata.json"), before)
  t:ok(app:entry("ct1"), "still installed")
  -- an upload over the size limit (the limit on extracted bytes, which a
  -- compressed archive meets first, is in test_archive.lua and
  -- tests/server/test_admin.py)
  app.admin_max_bytes = 1000
  local status, body = put(app, "big", {data = ("x"):rep(1001)})
  t:eq(status, 413)
  t:ok(body.error:find("over the limit of 1000"), body.error)
  app.admin_max_bytes = nil
  t:same(listing(app), {"ct1"})
  local log = table.concat(app:log_tail(200), "\n")
  t:ok(log:find("admin request refused", 1, true), "refusals logged")
end)

test("broken uploads: 400, and the installed model and its folder stay", function(t)
  local app, closer = new_app(t)
  local _ <close> = closer
  t:eq((put(app, "ct1", {data = W.tar(demo_entries(""))})), 200)
  local entry = app:entry("ct1")
  local before = read(app.models_dir .. "/ct1/pipeline.lua")
  local function refused(files, pattern, form, want)
    local status, body = put(app, "ct1", files, form)
    t:eq(status, want or 400, pattern)
    t:ok(type(body) == "table" and tostring(body.error):find(pattern), lumen.json_encode(body))
    t:eq(app:entry("ct1"), entry, "the same entry")
    t:eq(read(app.models_dir .. "/ct1/pipeline.lua"), before, "the same folder")
    t:same(listing(app), {"ct1"})
  end
  local broken = demo_entries("")
  broken[3].data = "return 42"
  refused({data = W.tar(broken)}, "does not load: .*pipeline.lua: must return a table")
  refused({data = W.tar{{name = "readme.txt", data = "hi"}}}, "holds no model package")
  refused({data = W.tar{{name = "a/metadata.json", data = "{}"}, {name = "b/x", data = ""}}},
          "holds no model package")
  refused({data = "not an archive, not with a config"}, "needs the part 'config'")
  refused({data = "\31\139garbage"}, "not a zip or tar archive")
  refused({}, "missing part 'data'", {config = DEMO_CONFIG})
  refused({config = "{not json", data = "x"}, "part 'config' is not valid JSON")
  refused({config = "[1, 2]", data = "x"}, "part 'config' must be a JSON object")
  local meta = lumen.json_decode(read(DEMO_DIR .. "/metadata.json"))
  meta.weights = "../../../etc/passwd"
  local escaping = demo_entries("", lumen.json_encode(meta))
  refused({data = W.tar(escaping)}, "field 'weights' must name a file inside the package")
  -- installing fails after the trial load: the old folder is swapped back
  local install = app.install
  app.install = function() error("simulated install failure", 0) end
  refused({data = W.tar(demo_entries("", with_description("never")))}, "simulated install failure")
  app.install = install
  t:ok(read(app.models_dir .. "/ct1/metadata.json") == read(DEMO_DIR .. "/metadata.json"))
  -- and for a new name: nothing left
  app.install = function() error("simulated install failure", 0) end
  local status = put(app, "other", {data = W.tar(demo_entries(""))})
  app.install = install
  t:eq(status, 400)
  t:same(listing(app), {"ct1"})
end)

test("PUT without multipart; PATCH refusals; one operation per name", function(t)
  local app, closer = new_app(t)
  local _ <close> = closer
  local status, body = call(app, "PUT", "/admin/model/x", {body = '{"path": "nvidia/med/clara_pt_spleen", "version": "1"}'})
  t:eq(status, 501)
  t:ok(body.error:find("NGC"), body.error)
  status, body = call(app, "PUT", "/admin/model/x", {body = ""})
  t:eq(status, 400)
  t:ok(body.error:find("multipart/form%-data"), body.error)
  t:eq((put(app, "ct1", {data = W.tar(demo_entries(""))})), 200)
  local before = read(app.models_dir .. "/ct1/metadata.json")
  for _, c in ipairs{{"{oops", "not valid JSON"}, {"[]", "must be a JSON object"},
                     {'{"weights": "/etc/passwd"}', "must name a file inside"},
                     {'{"weights": "missing.onnx"}', "does not load"}} do
    status, body = call(app, "PATCH", "/admin/model/ct1", {body = c[1]})
    t:eq(status, 400, c[1])
    t:ok(body.error:find(c[2]), body.error)
    t:eq(read(app.models_dir .. "/ct1/metadata.json"), before, "metadata.json kept")
  end
  t:same(lumen.fs.list(app.models_dir .. "/ct1"), {"metadata.json", "model.onnx", "pipeline.lua"},
         "no temporary file left")
  app._admin_busy.ct1 = true
  status, body = call(app, "DELETE", "/admin/model/ct1")
  t:eq(status, 409)
  t:ok(body.error:find("in progress"), body.error)
  app._admin_busy.ct1 = nil
  t:eq((call(app, "DELETE", "/admin/model/ct1")), 200)
end)

test("DELETE removes a link in the repository, not its target; and unloaded folders", function(t)
  local app, closer = new_app(t)
  local _ <close> = closer
  t:ok(os.execute(("ln -s '%s' '%s/linked'"):format(DEMO_DIR, app.models_dir)))
  app:load_repository()
  t:ok(app:entry("linked"), "the linked package loaded")
  local before = read(DEMO_DIR .. "/metadata.json")
  local status, body = call(app, "PATCH", "/admin/model/linked", {body = with_description("no")})
  t:eq(status, 409)
  t:ok(body.error:find("is a link"), body.error)
  t:eq(read(DEMO_DIR .. "/metadata.json"), before, "the link's target is not edited")
  t:eq((call(app, "DELETE", "/admin/model/linked")), 200)
  t:same(listing(app), {})
  t:eq(lumen.fs.stat(DEMO_DIR .. "/model.onnx"), "file", "the target is intact")
  -- a folder that is not loaded (it did not load) can still be deleted
  assert(lumen.fs.mkdir(app.models_dir .. "/broken"))
  write(app.models_dir .. "/broken/metadata.json", "{")
  t:eq((call(app, "DELETE", "/admin/model/broken")), 200)
  t:same(listing(app), {})
end)

tap.run()
