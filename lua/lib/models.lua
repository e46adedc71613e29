-- Models from Lua: model:infer, the model repository and model packages
-- (models/README.md describes the package format).
--
--   local pkg = lumen.load_package("models/demo_unet")   -- or a bare name
--   local labels = pkg.infer(LoadImage{path = "ct.nii.gz"})
--   pkg:free()
local lumen = ...

-- model:infer(x [, opts]) -> the logits: Infer(model, x, opts).
function lumen.Model.infer(model, x, opts)
  if opts ~= nil then return lumen.Infer(model, x, opts) end
  return lumen.Infer(model, x)
end

local function is_bare_name(s)
  return not s:find("/", 1, true) and not s:find(".", 1, true)
end

-- lumen.resolve_package(name_or_dir) -> the package folder: a bare name
-- ("demo_unet") is looked up in the model repository.
function lumen.resolve_package(path)
  if type(path) ~= "string" or path == "" then
    error("bad argument #1 to 'resolve_package' (package folder or name expected)", 2)
  end
  if is_bare_name(path) then return lumen.model_repository() .. "/" .. path end
  return (path:gsub("/+$", ""))
end

local function read_json(path)
  local f, err = io.open(path, "rb")
  if not f then return nil, err end
  local text = f:read("a")
  f:close()
  local ok, v = pcall(lumen.json_decode, text)
  if not ok then return nil, path .. ": " .. tostring(v) end
  return v
end

local function count_labels(labels)
  if type(labels) ~= "table" then return 0 end
  local n = 0
  for _ in pairs(labels) do n = n + 1 end
  return n
end

-- A package whose network is a Lua file (metadata.json: "network":
-- "net.lua", "weights": "net.safetensors"): the file runs with (dir,
-- metadata) as `...` and returns a lumen.nn graph; its weights are bound
-- from the safetensors file, and metadata.json travels with the graph JSON
-- into the model's metadata.
local function load_lua_network(dir, meta, opts)
  local file = dir .. "/" .. meta.network
  local chunk, err = loadfile(file)
  if not chunk then error(err, 3) end
  local g = chunk(dir, meta)
  if type(g) ~= "table" or type(g.table) ~= "function" then
    error(file .. ": must return a lumen.nn graph (lumen.nn.graph{...} or lumen.nn.meshnet(...))",
          3)
  end
  local t = g:table(meta.weights)
  t.metadata = meta
  t.name = meta.name or dir:match("([^/]+)$")
  return lumen.load_graph(lumen.json_encode(t), dir,
                          {axes = opts.axes or meta.axes, precision = opts.precision or meta.precision})
end

-- lumen.load_model(path [, {format, precision, axes}]) -> Model: LoadModel,
-- and also packages whose network is a lumen.nn Lua file (which the C
-- library cannot build on its own).
function lumen.load_model(path, opts)
  opts = opts or {}
  local dir = lumen.resolve_package(path)
  if lumen.fs.stat(dir .. "/metadata.json") == "file" then
    local meta, err = read_json(dir .. "/metadata.json")
    if type(meta) == "table" and meta.network ~= nil then
      if type(meta.network) ~= "string" then
        error(dir .. "/metadata.json: field 'network' must be a string", 2)
      end
      if type(meta.weights) ~= "string" then
        error(dir .. "/metadata.json: field 'weights' is missing (the .safetensors file)", 2)
      end
      return load_lua_network(dir, meta, opts)
    end
  end
  local o = {path = path}
  for k, v in pairs(opts) do o[k] = v end
  return lumen.LoadModel(o)
end

-- lumen.model_list([dir]) -> {{name, type, labels, description, path}, ...}
-- for every package (a folder with metadata.json) in dir (default: the
-- model repository), sorted by folder; a package whose metadata.json does
-- not parse has an `error` field instead.
function lumen.model_list(dir)
  dir = dir or lumen.model_repository()
  local entries, err = lumen.fs.list(dir)
  if not entries then return nil, err end
  local list = {}
  for _, e in ipairs(entries) do
    local path = dir .. "/" .. e
    if lumen.fs.stat(path .. "/metadata.json") == "file" then
      local meta, merr = read_json(path .. "/metadata.json")
      local item = {path = path, name = e}
      if type(meta) == "table" then
        item.name = type(meta.name) == "string" and meta.name or e
        item.type = type(meta.type) == "string" and meta.type or nil
        item.description = type(meta.description) == "string" and meta.description or nil
        item.labels = count_labels(meta.labels)
      else
        item.error = merr or "metadata.json is not an object"
      end
      list[#list + 1] = item
    end
  end
  return list
end

-- lumen.model_table([dir]) -> text: what `lumen models [DIR]` prints.
function lumen.model_table(dir)
  dir = dir or lumen.model_repository()
  local list, err = lumen.model_list(dir)
  if not list then return nil, err end
  if #list == 0 then return ("no model packages in %s"):format(dir) end
  local rows = {{"name", "type", "labels", "description"}}
  for _, m in ipairs(list) do
    rows[#rows + 1] = {m.name, m.type or "-", m.error and "-" or tostring(m.labels),
                       m.error and ("error: " .. m.error) or (m.description or "")}
  end
  local w = {0, 0, 0}
  for _, r in ipairs(rows) do
    for i = 1, 3 do w[i] = math.max(w[i], #r[i]) end
  end
  local lines = {}
  for _, r in ipairs(rows) do
    lines[#lines + 1] = ("%-" .. w[1] .. "s  %-" .. w[2] .. "s  %" .. w[3] .. "s  %s")
        :format(r[1], r[2], r[3], r[4])
  end
  lines[#lines + 1] = ("(%d package%s in %s)"):format(#list, #list == 1 and "" or "s", dir)
  return table.concat(lines, "\n")
end

-- lumen.load_package(dir_or_name [, load_opts]) -> a package object:
--   pkg.model      the Model (LoadModel of the folder)
--   pkg.dir, pkg.metadata
--   pkg.pipeline   the table pipeline.lua returned
--   pkg.infer(img [, opts]) -> labels: pipeline.infer(img, opts) with
--                  opts.model, opts.package (the folder) and opts.metadata set
--   pkg:free()     releases the model now (also `local pkg <close>`)
-- pipeline.lua runs with (dir, model) as its `...` and returns
-- {infer = function(img, opts) ... return labels end}.
local Package = {}
Package.__index = Package

-- lumen.package_kind(dir) -> "lumen" (metadata.json), "aiaa"
-- (config_aiaa.json) or nil: what kind of model package a folder holds
-- (a folder with both is a lumen package).
function lumen.package_kind(dir)
  if lumen.fs.stat(dir .. "/metadata.json") == "file" then return "lumen" end
  if lumen.fs.stat(dir .. "/config_aiaa.json") == "file" then return "aiaa" end
  return nil
end

-- pkg.infer(img, opts) over pipeline.infer: opts copied, with the package's
-- model (unless opts.model), folder and metadata added.  Shared by lumen and
-- AIAA packages (aiaa_config.lua).
function lumen.package_bind_infer(pkg, pipeline)
  function pkg.infer(img, o)
    local call = {}
    for k, v in pairs(o or {}) do call[k] = v end
    call.model = call.model or pkg.model
    call.package = pkg.dir
    call.metadata = pkg.metadata
    return pipeline.infer(img, call)
  end
end
function Package:free()
  if self.model then self.model:free() end
end
Package.__close = Package.free

function lumen.load_package(path, load_opts)
  local dir = lumen.resolve_package(path)
  -- A bare name goes to LoadModel as it is: its error names the repository.
  local model = lumen.load_model(path, load_opts)
  local pfile = dir .. "/pipeline.lua"
  local chunk, err = loadfile(pfile)
  if not chunk then
    model:free()
    error(("%s: %s"):format(pfile, err), 2)
  end
  local ok, pipeline = pcall(chunk, dir, model)
  if not ok or type(pipeline) ~= "table" or type(pipeline.infer) ~= "function" then
    model:free()
    error(ok and (pfile .. ": must return a table {infer = function(img, opts) ... end}")
             or pipeline, 2)
  end
  local pkg = setmetatable({model = model, dir = dir, pipeline = pipeline,
                            metadata = model.metadata}, Package)
  lumen.package_bind_infer(pkg, pipeline)
  return pkg
end

-- lumen.run_package(dir_or_name, input, output [, opts]): load the image,
-- run the package's pipeline, save the labels (what `lumen run PACKAGE IN
-- OUT` does).  Returns the saved label tensor's summary.
function lumen.run_package(path, input, output, opts)
  local pkg <close> = lumen.load_package(path)
  local img <close> = lumen.LoadImage{path = input}
  local labels <close> = pkg.infer(img, opts)
  if not lumen.istensor(labels) then
    error(("%s/pipeline.lua: infer returned %s, not a label tensor"):format(pkg.dir,
          type(labels)), 0)
  end
  lumen.SaveImage(labels, {path = output})
  return tostring(labels)
end
