-- Clara AIAA config import (docs/aiaa-config.md): a v2/v3 config_aiaa.json
-- becomes the text of a lumen package pipeline, and a folder holding one
-- (config_aiaa.json + an ONNX model) loads like a lumen package.
--
--   print(lumen.aiaa_pipeline_source("config_aiaa.json"))   -- `lumen convert-aiaa`
--   local pkg <close> = lumen.load_aiaa_package("models/clara_spleen")
--   local labels, params = pkg.infer(img, {params = {points = {...}}})
--
-- The generated pipeline returns {infer = function(img, opts)}: img is the
-- image the server loaded ((X, Y, Z) or channels first), opts.model the
-- network, opts.params the request's params (annotation: points; deepgrow:
-- foreground, background, current_point); infer returns the label map and
-- a table of result params (FetchExtremePoints' points, deepgrow's crop).
-- lumen.aiaa holds the helpers the generated text calls.
local lumen = ...

local aiaa = {}
lumen.aiaa = aiaa

-- ---- reading the config ----------------------------------------------------

local function read_file(path)
  local f, err = io.open(path, "rb")
  if not f then error(err, 0) end
  local text = f:read("a")
  f:close()
  return text
end

-- The server-side registry dump (aiaa-api.md 3.1, HeaortaNet) is an object
-- keyed by model name with flattened inference_* keys: take its one model
-- and fold those keys back into `inference`.
local function unwrap_registry_dump(cfg)
  if cfg.pre_transforms ~= nil or cfg.inference ~= nil or cfg.type ~= nil then return cfg end
  local only, count = nil, 0
  for _, v in pairs(cfg) do
    count = count + 1
    only = v
  end
  if count ~= 1 or type(only) ~= "table" then return cfg end
  local inner = {}
  for k, v in pairs(only) do inner[k] = v end
  inner.inference = type(inner.inference) == "table" and inner.inference or {}
  for k, v in pairs(only) do
    local key = type(k) == "string" and k:match("^inference_(.+)$")
    if key and inner.inference[key] == nil then inner.inference[key] = v end
  end
  return inner
end

-- (config table or path) -> config table, the name errors start with.
local function load_config(config, opts)
  local where = opts.source
  if type(config) == "string" then
    where = where or config
    local ok, text = pcall(read_file, config)
    if not ok then error(text, 0) end  -- io.open's message names the file
    local okj, v = pcall(lumen.json_decode, text)
    if not okj then error(("%s: %s"):format(where, tostring(v)), 0) end
    config = v
  end
  where = where or "config_aiaa.json"
  if type(config) ~= "table" then
    error(("%s: the config must be a JSON object"):format(where), 0)
  end
  return unwrap_registry_dump(config), where
end

-- ---- values ------------------------------------------------------------------

-- Clara configs write booleans as JSON booleans or as strings ("false").
local function truthy(v)
  if v == nil or v == lumen.json_null then return nil end
  if type(v) == "boolean" then return v end
  if type(v) == "string" then
    local s = v:lower()
    if s == "true" or s == "1" or s == "yes" then return true end
    if s == "false" or s == "0" or s == "no" or s == "" then return false end
  end
  if type(v) == "number" then return v ~= 0 end
  return nil
end

-- Lua text for a number: integers as integers, floats in their shortest
-- round-tripping form and always with a decimal point (1.0 stays 1.0).
local function num(x)
  if math.type(x) == "integer" then return ("%d"):format(x) end
  if x ~= x or x == math.huge or x == -math.huge then
    error("not a finite number: " .. tostring(x), 0)
  end
  local s
  for digits = 15, 17 do
    s = ("%." .. digits .. "g"):format(x)
    if tonumber(s) == x then break end
  end
  if not s:find("[%.eEn]") then s = s .. ".0" end
  return s
end

-- Lua text for a JSON value (numbers, strings, booleans, lists).
local function lua_value(v)
  local t = type(v)
  if t == "number" then return num(v) end
  if t == "string" then return ("%q"):format(v) end
  if t == "boolean" then return tostring(v) end
  if t == "table" then
    local parts = {}
    for i = 1, #v do parts[i] = lua_value(v[i]) end
    return "{" .. table.concat(parts, ", ") .. "}"
  end
  return "nil"
end

-- Lua text for an options table with its keys in the given order.
local function options(pairs_list)
  local parts = {}
  for _, kv in ipairs(pairs_list) do
    if kv[2] ~= nil then parts[#parts + 1] = kv[1] .. " = " .. lua_value(kv[2]) end
  end
  return "{" .. table.concat(parts, ", ") .. "}"
end

local function is_number_list(v, n)
  if type(v) ~= "table" or #v == 0 or (n and #v ~= n) then return false end
  for i = 1, #v do
    if type(v[i]) ~= "number" then return false end
  end
  return true
end

-- roi: a list of sizes, or one number for every spatial axis (3).
local function size_list(v)
  if type(v) == "number" then return {math.tointeger(v) or v, math.tointeger(v) or v,
                                      math.tointeger(v) or v} end
  if is_number_list(v) then
    local out = {}
    for i = 1, #v do out[i] = math.tointeger(v[i]) or v[i] end
    return out
  end
  return nil
end

-- ---- Lua names for the config's fields -----------------------------------------

local KEYWORDS = {}
for w in ([[and break do else elseif end false for function goto if in local nil not
            or repeat return then true until while]]):gmatch("%a+") do KEYWORDS[w] = true end
-- Locals of the generated infer that a field must not shadow.
local RESERVED = {img = true, opts = true, result = true, net = true, infer = true,
                  swap = true, params = true, points = true, box = true, lumen = true,
                  package_model = true, math = true, string = true, table = true}

local function lua_name(field)
  local s = field:gsub("[^%w_]", "_")
  if s:match("^%d") or s == "" then s = "_" .. s end
  if KEYWORDS[s] or RESERVED[s] or _ENV[s] ~= nil then s = s .. "_field" end
  return s
end

-- ---- the transform mappings ----------------------------------------------------

-- Each mapping gets (ctx, args, at) and emits lines with ctx:line; ctx
-- knows which fields exist and their Lua names.  `at` is the position,
-- "pre_transforms[2]", for errors.
local MAP = {}

local function field_list(v)
  if type(v) == "string" then return {v} end
  if type(v) == "table" then
    local out = {}
    for i = 1, #v do
      if type(v[i]) == "string" then out[#out + 1] = v[i] end
    end
    return out
  end
  return {}
end

-- The fields a transform acts on: `fields` (string or list), else `field`.
local function target_fields(ctx, args, at)
  local list = field_list(args.fields)
  if #list == 0 then list = field_list(args.field) end
  if #list == 0 then ctx:fail(at, "no 'fields' (or 'field') in its args") end
  return list
end

MAP.LoadNifti = function(ctx, args, at)
  ctx:line(("-- %s LoadNifti: the server gives the image (nothing to do)"):format(at))
  if truthy(args.as_closest_canonical) then
    for _, f in ipairs(target_fields(ctx, args, at)) do
      local v = ctx:use(f, at)
      ctx:line("-- as_closest_canonical: nibabel's closest canonical orientation is RAS")
      ctx:line(("%s = swap(%s, Orientation(%s, {axcodes = \"RAS\"}))"):format(v, v, v))
    end
  end
end

MAP.ConvertToChannelsFirst = function(ctx, args, at)
  ctx:line(("-- %s ConvertToChannelsFirst"):format(at))
  for _, f in ipairs(target_fields(ctx, args, at)) do
    local v = ctx:use(f, at)
    ctx:line(("if %s:layout():sub(1, 1) ~= \"C\" then %s = ConvertToChannelsFirst(%s) end")
             :format(v, v, v))
  end
end

MAP.ScaleByResolution = function(ctx, args, at)
  local res = args.target_resolution
  if not is_number_list(res) then
    ctx:fail(at, "ScaleByResolution needs 'target_resolution' (a list of numbers)")
  end
  local label = truthy(args.is_label)
  ctx:line(("-- %s ScaleByResolution%s"):format(at, label and " (a label map: nearest)" or ""))
  for _, f in ipairs(target_fields(ctx, args, at)) do
    local v = ctx:use(f, at)
    local o = label and options{{"pixdim", res}, {"mode", "nearest"}, {"is_label", true}}
                    or options{{"pixdim", res}, {"mode", "bilinear"}}
    ctx:line(("%s = swap(%s, ScaleByResolution(%s, %s))"):format(v, v, v, o))
  end
end

MAP.ScaleIntensityRange = function(ctx, args, at)
  for _, k in ipairs{"a_min", "a_max", "b_min", "b_max"} do
    if type(args[k]) ~= "number" then
      ctx:fail(at, ("ScaleIntensityRange needs the number '%s'"):format(k))
    end
  end
  ctx:line(("-- %s ScaleIntensityRange"):format(at))
  local o = options{{"a_min", args.a_min}, {"a_max", args.a_max}, {"b_min", args.b_min},
                    {"b_max", args.b_max}, {"clip", truthy(args.clip) or false}}
  for _, f in ipairs(target_fields(ctx, args, at)) do
    local v = ctx:use(f, at)
    ctx:line(("%s = swap(%s, ScaleIntensityRange(%s, %s))"):format(v, v, v, o))
  end
end

MAP.NormalizeNonzeroIntensities = function(ctx, args, at)
  ctx:line(("-- %s NormalizeNonzeroIntensities: z-score over the non-zero voxels"):format(at))
  for _, f in ipairs(target_fields(ctx, args, at)) do
    local v = ctx:use(f, at)
    ctx:line(("%s = swap(%s, NormalizeIntensity(%s, {nonzero = true}))"):format(v, v, v))
  end
end

MAP.ScaleByFactor = function(ctx, args, at)
  local factor = args.factor
  if type(factor) == "number" then factor = {factor} end
  if not is_number_list(factor) then
    ctx:fail(at, "ScaleByFactor needs 'factor' (a number or a list of numbers)")
  end
  local label = truthy(args.is_label)
  ctx:line(("-- %s ScaleByFactor: Resize to round(size * factor) per spatial axis"):format(at))
  for _, f in ipairs(target_fields(ctx, args, at)) do
    local v = ctx:use(f, at)
    ctx:line(("%s = swap(%s, Resize(%s, {spatial_size = lumen.aiaa.scaled_size(%s, %s), mode = %q}))")
             :format(v, v, v, v, lua_value(factor), label and "nearest" or "bilinear"))
  end
end

MAP.ArgmaxAcrossChannels = function(ctx, args, at)
  ctx:line(("-- %s ArgmaxAcrossChannels"):format(at))
  for _, f in ipairs(target_fields(ctx, args, at)) do
    local v = ctx:use(f, at)
    ctx:line(("%s = swap(%s, Argmax(%s))"):format(v, v, v))
  end
end

MAP.FetchExtremePoints = function(ctx, args, at)
  local label = args.label_field or args.field or args.fields
  if type(label) == "table" then label = label[1] end
  if type(label) ~= "string" then ctx:fail(at, "FetchExtremePoints needs 'label_field'") end
  local key = type(args.points) == "string" and args.points or "points"
  local v = ctx:use(label, at)
  ctx:line(("-- %s FetchExtremePoints: the 6 extreme points of %s's foreground (min and max"):format(at, label))
  ctx:line("-- along each axis, the first in C order), as voxel indices of the input image")
  ctx:line(("result[%q] = lumen.aiaa.extreme_points(%s, img)"):format(key, v))
end

MAP.CopyProperties = function(ctx, args, at)
  ctx:line(("-- %s CopyProperties: lumen tensors carry their affine through every op:"):format(at))
  ctx:line("-- nothing to copy")
end

MAP.RestoreOriginalShape = function(ctx, args, at)
  local src = args.src_field
  if type(src) ~= "string" then ctx:fail(at, "RestoreOriginalShape needs 'src_field'") end
  local label = truthy(args.is_label)
  local s = ctx:use(src, at)
  ctx:line(("-- %s RestoreOriginalShape: undo %s's spatial steps"):format(at, src))
  for _, f in ipairs(target_fields(ctx, args, at)) do
    local v = ctx:use(f, at)
    ctx:line(("%s = swap(%s, RestoreOriginalShape(%s, %s%s))")
             :format(v, v, v, s, label == nil and "" or (", {is_label = " .. tostring(label) .. "}")))
  end
  ctx.restored = true
end

-- Transforms seen in Clara configs that have no lumen mapping, and why.
local REJECT = {
  SplitBasedOnLabel = "SplitBasedOnLabel (one field per label, for training-time metrics) has "
                      .. "no lumen mapping: an AIAA reply carries one label map; remove it",
}

MAP.AddExtremePointsChannel = function(ctx, args, at)
  local f = args.image_field or args.fields or args.field
  if type(f) == "table" then f = f[1] end
  if type(f) ~= "string" then ctx:fail(at, "AddExtremePointsChannel needs 'image_field'") end
  if ctx.kind ~= "annotation" then
    ctx:fail(at, "AddExtremePointsChannel takes the request's points: only in an annotation "
                 .. "model (type 'annotation')")
  end
  local v = ctx:use(f, at)
  local sigma = type(args.sigma) == "number" and args.sigma or ctx.sigma
  ctx:line(("-- %s AddExtremePointsChannel: the points of params.points, mapped onto %s's grid")
           :format(at, f))
  -- the options are written out here: points is an expression, not a value
  ctx:line(("%s = swap(%s, AddExtremePointsChannel(%s, {points = lumen.aiaa.map_points(points, img, %s), sigma = {%s}, rescale_min = %s, rescale_max = %s}))")
           :format(v, v, v, v, num(sigma),
                   num(type(args.rescale_min) == "number" and args.rescale_min or -1.0),
                   num(type(args.rescale_max) == "number" and args.rescale_max or 1.0)))
  ctx.points_added = true
end

-- Writers: the reply's image is the field cast to the writer's dtype.
local WRITERS = {WriteNifti = true, NiftiWriter = true, Writer = true}

-- The last component of "ai4med.components.transforms.Foo" or "mod.Foo".
local function short_name(t)
  local name = t.name
  if type(name) ~= "string" or name == "" then name = t.path end
  if type(name) ~= "string" then return nil end
  return name:match("([^%.]+)$")
end

-- ---- the generator --------------------------------------------------------------

local Ctx = {}
Ctx.__index = Ctx

function Ctx:line(s)
  self.lines[#self.lines + 1] = s == "" and "" or (self.indent .. s)
end

function Ctx:fail(at, msg)
  error({aiaa_error = ("%s: %s: %s"):format(self.where, at, msg)}, 0)
end

-- The Lua name of an existing field (an error names the field otherwise).
function Ctx:use(field, at)
  local v = self.fields[field]
  if not v then
    local known = {}
    for k in pairs(self.fields) do known[#known + 1] = "'" .. k .. "'" end
    table.sort(known)
    self:fail(at, ("field '%s' is not set by any earlier step (set so far: %s)")
                  :format(field, table.concat(known, ", ")))
  end
  return v
end

function Ctx:define(field)
  local v = lua_name(field)
  self.fields[field] = v
  self.order[#self.order + 1] = field
  return v
end

local function transform_list(ctx, cfg, key)
  local list = cfg[key]
  if list == nil or list == lumen.json_null then return {} end
  if type(list) ~= "table" then
    error({aiaa_error = ("%s: %s must be a list of transforms"):format(ctx.where, key)}, 0)
  end
  return list
end

-- Every transform of the config that lumen cannot map, in one message.
local function check_names(ctx, cfg)
  local bad = {}
  for _, key in ipairs{"pre_transforms", "post_transforms"} do
    for i, t in ipairs(transform_list(ctx, cfg, key)) do
      local at = ("%s[%d]"):format(key, i - 1)
      local name = type(t) == "table" and short_name(t)
      if not name then
        bad[#bad + 1] = ("%s: %s: a transform needs a 'name'"):format(ctx.where, at)
      elseif REJECT[name] then
        bad[#bad + 1] = ("%s: %s: %s"):format(ctx.where, at, REJECT[name])
      elseif not MAP[name] then
        bad[#bad + 1] = ("%s: %s: unknown transform '%s'"):format(ctx.where, at, t.name or t.path)
      end
    end
  end
  local w = cfg.writer
  if type(w) == "table" and not WRITERS[short_name(w) or ""] then
    bad[#bad + 1] = ("%s: writer: unknown writer '%s'"):format(ctx.where, tostring(w.name))
  end
  if #bad > 0 then error({aiaa_error = table.concat(bad, "\n")}, 0) end
end

-- The network's input and output fields: inference.image, node_mapping,
-- the tf / trtis node names, else Clara's defaults "image" and "model".
local function io_fields(inf)
  local input = type(inf.image) == "string" and inf.image or nil
  local output
  local nm = type(inf.node_mapping) == "table" and inf.node_mapping or {}
  input = input or (type(nm.NV_MODEL_INPUT) == "string" and nm.NV_MODEL_INPUT or nil)
  output = type(nm.NV_MODEL_OUTPUT) == "string" and nm.NV_MODEL_OUTPUT or nil
  local function first_key(t)
    if type(t) ~= "table" then return nil end
    local keys = {}
    for k in pairs(t) do
      if type(k) == "string" then keys[#keys + 1] = k end
    end
    table.sort(keys)
    return keys[1]
  end
  if not output and type(inf.tf) == "table" then output = first_key(inf.tf.output_nodes) end
  if not output and type(inf.trtis) == "table" then output = first_key(inf.trtis.output_channels) end
  if not input and type(inf.tf) == "table" then input = first_key(inf.tf.input_nodes) end
  return input or "image", output or "model"
end

local function model_type(cfg)
  return type(cfg.type) == "string" and cfg.type:lower() or "segmentation"
end

-- padding (mm), roi and sigma of an annotation or deepgrow model: the
-- config's top level, else its inference block, else the AIAA defaults
-- (aiaa-api.md 1.4: 20, 128^3, 3).
local function interaction_params(cfg)
  local inf = type(cfg.inference) == "table" and cfg.inference or {}
  local padding = cfg.padding or inf.padding
  local roi = size_list(cfg.roi or inf.roi)
  local sigma = cfg.sigma or inf.sigma
  return type(padding) == "number" and padding or 20, roi or {128, 128, 128},
         type(sigma) == "number" and sigma or 3.0
end

local function deepgrow_dims(cfg)
  local inf = type(cfg.inference) == "table" and cfg.inference or {}
  local info = type(inf.additional_info) == "table" and inf.additional_info or {}
  local d = type(info.deepgrow) == "string" and info.deepgrow:upper() or nil
  if d == "2D" or d == "3D" then return d end
  local roi = size_list(cfg.roi or inf.roi)
  return (roi and #roi == 2) and "2D" or "3D"
end

-- lumen.aiaa_pipeline_source(config [, opts]) -> the Lua text of a package
-- pipeline.  config: a decoded config_aiaa.json or its path; opts.source:
-- the name errors start with (default: the path, or "config_aiaa.json").
function lumen.aiaa_pipeline_source(config, opts)
  opts = opts or {}
  local cfg, where = load_config(config, opts)
  local ctx = setmetatable({where = where, lines = {}, indent = "  ", fields = {}, order = {}},
                           Ctx)
  local ok, err = pcall(function()
    check_names(ctx, cfg)
    local inf = cfg.inference
    if inf == nil then inf = {} end
    if type(inf) ~= "table" then ctx:fail("inference", "must be an object") end
    local kind = model_type(cfg)
    ctx.kind = kind
    local padding, roi, sigma = interaction_params(cfg)
    ctx.sigma = sigma
    local input, output = io_fields(inf)
    local interactive = kind == "annotation" or kind == "deepgrow"

    local head = {}
    local function h(s) head[#head + 1] = s end
    h(("-- Generated by lumen from %s (version %s, type %s)."):format(
      where:match("([^/]+)$"), tostring(cfg.version or "?"), kind))
    if type(cfg.description) == "string" then h("-- " .. cfg.description:gsub("\n", " ")) end
    if type(cfg.labels) == "table" and #cfg.labels > 0 then
      local names = {}
      for i, l in ipairs(cfg.labels) do names[i] = ("%d = %s"):format(i, tostring(l)) end
      h("-- labels: " .. table.concat(names, ", "))
    end
    h("-- A lumen package pipeline (models/README.md): runs with (dir, model) as `...`;")
    h("-- infer(img, opts) returns the label map and a table of result params.")
    h("local _, package_model = ...")
    h("")
    if interactive then
      h(("local PADDING = %s  -- mm around the points"):format(num(padding)))
      h(("local ROI = %s"):format(lua_value(roi)))
      h(("local SIGMA = %s"):format(num(sigma)))
      h("")
    end
    h("local function infer(img, opts)")
    h("  opts = opts or {}")
    h("  local net = opts.model or package_model")
    h("  local params = lumen.aiaa.params(opts)")
    h("  local result = {}")
    h("  -- each step's output replaces its field's value, which is released at once")
    h("  -- (never the caller's img)")
    h("  local function swap(old, new)")
    h("    if not rawequal(old, new) and not rawequal(old, img) then old:free() end")
    h("    return new")
    h("  end")

    local v = ctx:define(input)
    ctx:line(("local %s = img"):format(v))

    if kind == "annotation" then
      ctx:line("-- annotation (DEXTR3D): params.points are voxel indices of img; crop around them")
      ctx:line("-- with PADDING mm on each side and resample the crop to ROI, as the AIAA clients")
      ctx:line("-- do before they upload (an image already of ROI's size is taken as that crop)")
      ctx:line("local points = lumen.aiaa.points(params.points, img, \"points\")")
      ctx:line(("if %s:layout():sub(1, 1) ~= \"C\" then %s = ConvertToChannelsFirst(%s) end")
               :format(v, v, v))
      ctx:line(("%s = swap(%s, lumen.aiaa.crop_to_roi(%s, points, PADDING, ROI, opts.crop))")
               :format(v, v, v))
    elseif kind == "deepgrow" then
      local dims = deepgrow_dims(cfg)
      ctx.deepgrow = dims
      ctx:line(("-- deepgrow %s: foreground / background clicks (voxel indices of img) become two"):format(dims))
      ctx:line(dims == "2D"
        and "-- guidance channels on the slice of current_point, cropped around the clicks"
        or "-- guidance channels, cropped around the clicks")
      ctx:line("local fg, bg = lumen.aiaa.guidance(params, img)")
      ctx:line(("if %s:layout():sub(1, 1) ~= \"C\" then %s = ConvertToChannelsFirst(%s) end")
               :format(v, v, v))
      if dims == "2D" then
        ctx:line("local slice = lumen.aiaa.current_slice(params, img)")
        ctx:line("fg, bg = lumen.aiaa.on_slice(fg, slice, \"foreground\"), lumen.aiaa.on_slice(bg, slice)")
        ctx:line(("%s = swap(%s, lumen.aiaa.crop_to_roi(%s, fg, PADDING, ROI, opts.crop, bg, slice))")
                 :format(v, v, v))
      else
        ctx:line(("%s = swap(%s, lumen.aiaa.crop_to_roi(%s, fg, PADDING, ROI, opts.crop, bg))")
                 :format(v, v, v))
      end
      ctx:line("result.crop = lumen.aiaa.crop_of(" .. v .. ")")
    end

    for i, t in ipairs(transform_list(ctx, cfg, "pre_transforms")) do
      MAP[short_name(t)](ctx, type(t.args) == "table" and t.args or {},
                         ("pre_transforms[%d]"):format(i - 1))
    end

    local x = ctx:use(input, "inference")
    if kind == "annotation" and not ctx.points_added then
      ctx:line("-- the points channel (not among the config's pre_transforms: added, as Clara's")
      ctx:line("-- DEXTR3D engine does)")
      ctx:line(("%s = swap(%s, AddExtremePointsChannel(%s, {points = lumen.aiaa.map_points(points, img, %s), sigma = {SIGMA}, rescale_min = -1.0, rescale_max = 1.0}))")
               :format(x, x, x, x))
    elseif kind == "deepgrow" then
      ctx:line("-- the guidance channels: foreground, then background clicks (Gaussians scaled to 0..1)")
      ctx:line(("%s = swap(%s, lumen.aiaa.add_guidance(%s, fg, img, SIGMA))"):format(x, x, x))
      ctx:line(("%s = swap(%s, lumen.aiaa.add_guidance(%s, bg, img, SIGMA))"):format(x, x, x))
    end

    local y = ctx:define(output)
    local scanning = truthy(inf.scanning_window)
    local sw_roi = size_list(inf.roi)
    if scanning and not interactive then
      if not sw_roi then ctx:fail("inference", "scanning_window needs 'roi' (the window size)") end
      local batch = math.tointeger(inf.batch_size) or 1
      local overlap = type(inf.overlap) == "number" and inf.overlap or 0.25
      ctx:line(("-- inference: sliding window %s, %d window%s per run")
               :format(table.concat(sw_roi, "x"), batch, batch == 1 and "" or "s"))
      ctx:line(("local %s = SlidingWindowInfer(net, %s, {roi = %s, sw_batch_size = opts.sw_batch_size or lumen.aiaa.batch_size(net, %d), overlap = %s, mode = \"constant\"})")
               :format(y, x, lua_value(sw_roi), batch, num(overlap)))
    elseif kind == "deepgrow" and deepgrow_dims(cfg) == "2D" then
      ctx:line("-- inference: the 2-D network on the slice")
      ctx:line(("local %s = SlidingWindowInfer(net, %s, {roi = {ROI[1], ROI[2]}, slice_axis = 2})")
               :format(y, x))
    else
      ctx:line("-- inference: the whole image at once")
      ctx:line(("local %s = Infer(net, %s, {output = 0})"):format(y, x))
    end

    for i, t in ipairs(transform_list(ctx, cfg, "post_transforms")) do
      MAP[short_name(t)](ctx, type(t.args) == "table" and t.args or {},
                         ("post_transforms[%d]"):format(i - 1))
    end

    if interactive and not ctx.restored then
      ctx:line("-- back through the ROI resampling and the crop onto img's grid (0 outside the")
      ctx:line("-- crop; not among the config's post_transforms: added)")
      ctx:line(("%s = swap(%s, RestoreOriginalShape(%s, %s, {is_label = true}))"):format(y, y, y, x))
    end

    local w = cfg.writer
    if type(w) == "table" then
      local args = type(w.args) == "table" and w.args or {}
      local field = type(args.field) == "string" and args.field or output
      local dtype = type(args.dtype) == "string" and args.dtype or nil
      y = ctx:use(field, "writer")
      if dtype then
        ctx:line(("-- writer %s: %s as %s"):format(short_name(w), field, dtype))
        ctx:line(("%s = swap(%s, Cast(%s, {dtype = %q}))"):format(y, y, y, dtype))
      else
        ctx:line(("-- writer %s: %s as it is"):format(short_name(w), field))
      end
    end

    ctx:line("-- release what the reply does not carry")
    for _, f in ipairs(ctx.order) do
      local fv = ctx.fields[f]
      if fv ~= y then
        ctx:line(("if not rawequal(%s, img) and not rawequal(%s, %s) then %s:free() end")
                 :format(fv, fv, y, fv))
      end
    end
    ctx:line(("return %s, result"):format(y))
    local body = ctx.lines
    ctx.lines = head
    for _, l in ipairs(body) do head[#head + 1] = l end
    head[#head + 1] = "end"
    head[#head + 1] = ""
    head[#head + 1] = "return {infer = infer}"
  end)
  if not ok then
    if type(err) == "table" and err.aiaa_error then error(err.aiaa_error, 0) end
    error(err, 0)
  end
  return table.concat(ctx.lines, "\n") .. "\n"
end

-- lumen.aiaa_convert(path) -> the pipeline text, or nil and the config's
-- errors (what `lumen convert-aiaa` prints).
function lumen.aiaa_convert(path)
  local ok, text = pcall(lumen.aiaa_pipeline_source, path)
  if not ok then return nil, tostring(text) end
  return (text:gsub("\n$", ""))  -- the command prints a newline after it
end

-- ---- helpers the generated pipelines call ----------------------------------------

-- opts.params as a table (a JSON text is decoded).
function aiaa.params(opts)
  local p = opts.params
  if type(p) == "string" then
    local ok, v = pcall(lumen.json_decode, p)
    if not ok then error("params: " .. tostring(v), 0) end
    p = v
  end
  if p == nil or p == lumen.json_null then return {} end
  if type(p) ~= "table" then error("params must be a JSON object", 0) end
  return p
end

-- The spatial shape of a tensor: the axes after a leading channel axis
-- (layout "C..."), else the last 3, as the ops take them.
local function spatial_shape(t)
  local s = t:shape()
  local first = t:layout():sub(1, 1) == "C" and 2 or math.max(1, #s - 2)
  local out = {}
  for i = first, #s do out[#out + 1] = s[i] end
  return out
end

-- Clara's batch_size, at most the network's fixed batch size (an ONNX
-- export often has batch 1).
function aiaa.batch_size(net, want)
  local inp = net.inputs and net.inputs[1]
  local fixed = inp and inp.shape and inp.shape[1]
  if type(fixed) == "number" and fixed > 0 then return math.min(want, fixed) end
  return want
end

-- ScaleByFactor's size: round(n * factor) per spatial axis (half to even,
-- as Python's round; one factor for all axes or one per axis).
function aiaa.scaled_size(t, factor)
  local sp = spatial_shape(t)
  local out = {}
  for i, n in ipairs(sp) do
    local f = factor[i] or factor[#factor]
    local x = n * f
    local r = math.floor(x + 0.5)
    if r - x == 0.5 and r % 2 == 1 then r = r - 1 end
    out[i] = math.max(1, r)
  end
  return out
end

-- A list of points ({{x, y, z}, ...}, a single {x, y, z} is one point) as
-- integer voxel indices inside img's spatial shape; `name` names the param
-- in errors.
function aiaa.points(v, img, name, allow_empty)
  if v == nil or v == lumen.json_null then
    if allow_empty then return {} end
    error(("params.%s: missing (a list of [x, y, z] voxel indices)"):format(name), 0)
  end
  if type(v) ~= "table" then error(("params.%s: must be a list of points"):format(name), 0) end
  if #v > 0 and type(v[1]) == "number" then v = {v} end
  local sp = spatial_shape(img)
  local out = {}
  for i, p in ipairs(v) do
    if type(p) ~= "table" or #p ~= #sp then
      error(("params.%s[%d]: must be %d voxel indices"):format(name, i - 1, #sp), 0)
    end
    local q = {}
    for d = 1, #sp do
      if type(p[d]) ~= "number" or p[d] ~= p[d] then
        error(("params.%s[%d]: must be %d voxel indices"):format(name, i - 1, #sp), 0)
      end
      local c = math.floor(p[d] + 0.5)
      if c < 0 or c >= sp[d] then
        error(("params.%s[%d]: [%s] is outside the image (%s)"):format(name, i - 1,
              table.concat(p, ", "), table.concat(sp, "x")), 0)
      end
      q[d] = c
    end
    out[#out + 1] = q
  end
  if #out == 0 and not allow_empty then
    error(("params.%s: no points given"):format(name), 0)
  end
  return out
end

-- 4x4 inverse by Gauss-Jordan elimination with partial pivoting.
local function inverse4(a)
  local m = {}
  for i = 1, 4 do
    m[i] = {}
    for j = 1, 4 do m[i][j] = a[i][j] end
    for j = 1, 4 do m[i][4 + j] = i == j and 1 or 0 end
  end
  for c = 1, 4 do
    local p = c
    for r = c + 1, 4 do
      if math.abs(m[r][c]) > math.abs(m[p][c]) then p = r end
    end
    if m[p][c] == 0 then error("the image's affine is singular", 0) end
    m[c], m[p] = m[p], m[c]
    local d = m[c][c]
    for j = 1, 8 do m[c][j] = m[c][j] / d end
    for r = 1, 4 do
      if r ~= c and m[r][c] ~= 0 then
        local f = m[r][c]
        for j = 1, 8 do m[r][j] = m[r][j] - f * m[c][j] end
      end
    end
  end
  local inv = {}
  for i = 1, 4 do inv[i] = {m[i][5], m[i][6], m[i][7], m[i][8]} end
  return inv
end

local function apply(a, p)
  local out = {}
  for i = 1, 3 do
    out[i] = a[i][1] * p[1] + a[i][2] * p[2] + a[i][3] * p[3] + a[i][4]
  end
  return out
end

-- Voxel indices of `from` -> voxel indices of `to` through world
-- coordinates (the two affines), rounded and clamped to `to`'s shape.
function aiaa.map_points(points, from, to)
  local sp = spatial_shape(to)
  local fwd, inv = from:affine(), inverse4(to:affine())
  local out = {}
  for i, p in ipairs(points) do
    local q = apply(inv, apply(fwd, p))
    local r = {}
    for d = 1, 3 do
      local c = math.floor(q[d] + 0.5)
      r[d] = math.min(math.max(c, 0), sp[d] - 1)
    end
    out[i] = r
  end
  return out
end

-- The 6 extreme points of label's foreground (label != 0): for each
-- spatial axis the voxel with the smallest and the largest coordinate, the
-- first in C order on ties (MONAI get_extreme_points without randomness),
-- as voxel indices of `ref` (default: the label's own grid).  {} when the
-- label is empty.  Uses the ExtremePoints op where it is registered (and
-- `how` is not "lua"), else the same rule from the foreground's bounding
-- box (CropForeground) and the first foreground voxel of each of its faces.
function aiaa.extreme_points(label, ref, how)
  local pts = {}
  local sp = spatial_shape(label)
  local lead = #label:shape() - #sp
  if lumen.ExtremePoints and how ~= "lua" then
    local ok, t = pcall(lumen.ExtremePoints, label)
    if not ok then
      if tostring(t):find("no foreground voxel", 1, true) then return {} end
      error(t, 0)
    end
    local vals, shape = t:values(), t:shape()
    t:free()
    local n = shape[#shape]
    for i = 0, shape[1] - 1 do
      local p = {}
      for d = 1, n do p[d] = math.tointeger(vals[i * n + d]) end
      pts[#pts + 1] = p
    end
    return ref and aiaa.map_points(pts, label, ref) or pts
  end
  local crop, res = lumen.CropForeground(label)
  crop:free()
  local lo, hi = {}, {}
  for d = 1, #sp do
    lo[d], hi[d] = math.tointeger(res.box_start[d]), math.tointeger(res.box_end[d])
    if not lo[d] or not hi[d] or hi[d] <= lo[d] then return {} end
  end
  for d = 1, #sp do
    for _, at in ipairs{lo[d], hi[d] - 1} do
      local s, e = {}, {}
      for k = 1, #sp do s[k], e[k] = lo[k], hi[k] end
      s[d], e[d] = at, at + 1
      local face = lumen.SpatialCrop(label, {roi_start = s, roi_end = e})
      local vals, shape = face:values(), face:shape()
      face:free()
      for idx, val in ipairs(vals) do
        if val ~= 0 then
          -- flat C-order index -> per-axis offsets inside the face
          local rem, p = idx - 1, {}
          for k = #shape, lead + 1, -1 do
            p[k - lead] = rem % shape[k]
            rem = rem // shape[k]
          end
          for k = 1, #sp do p[k] = p[k] + s[k] end
          pts[#pts + 1] = p
          break
        end
      end
    end
  end
  return ref and aiaa.map_points(pts, label, ref) or pts
end

-- The crop of the AIAA clients (client_api.py image_pre_process): pad mm
-- on each side of the points' bounding box, int(pad / spacing) voxels per
-- axis, clipped to the image; lumen's box includes the last voxel
-- (end = max + pad + 1), the client's stops one short.
local function crop_box(image, points, pad)
  local sp, spacing = spatial_shape(image), image:spacing()
  local start, stop = {}, {}
  for d = 1, #sp do
    local v = spacing[d] > 0 and math.floor(pad / spacing[d]) or math.floor(pad)
    local lo, hi = math.huge, -math.huge
    for _, p in ipairs(points) do
      lo, hi = math.min(lo, p[d]), math.max(hi, p[d])
    end
    start[d] = math.max(lo - v, 0)
    stop[d] = math.min(hi + v + 1, sp[d])
  end
  return start, stop
end

-- image (C, X, Y, Z) cropped around points (and `more`, e.g. background
-- clicks) with pad mm, then resampled (bilinear) to roi.  An image already
-- of roi's size is the clients' crop and is kept (crop = false keeps any
-- image, crop = true always crops).  `slice` (2-D deepgrow) crops that
-- one slice along the last axis.  SpatialCrop and Resize leave their trace
-- entries, so RestoreOriginalShape pastes the result back, 0 elsewhere.
function aiaa.crop_to_roi(image, points, pad, roi, crop, more, slice)
  local sp = spatial_shape(image)
  if crop == false then return image end
  if crop == nil and slice == nil then
    local same = #roi == #sp
    for d = 1, #sp do same = same and roi[d] == sp[d] end
    if same then return image end
  end
  local all = {}
  for _, p in ipairs(points) do all[#all + 1] = p end
  for _, p in ipairs(more or {}) do all[#all + 1] = p end
  if #all == 0 then error("params: no points to crop around", 0) end
  local start, stop = crop_box(image, all, pad)
  if slice then start[3], stop[3] = slice, slice + 1 end
  local cropped = lumen.SpatialCrop(image, {roi_start = start, roi_end = stop})
  local size = {}
  for d = 1, #sp do size[d] = roi[d] or -1 end
  if slice then size[3] = -1 end
  local out = lumen.Resize(cropped, {spatial_size = size, mode = "bilinear"})
  cropped:free()
  return out
end

-- The crop box of a crop_to_roi result in img's voxels, [[x0, x1], [y0,
-- y1], [z0, z1]] (end exclusive), the `crop` deepgrow replies carry.
function aiaa.crop_of(image)
  local trace = image:trace()
  for i = #trace, 1, -1 do
    local e = trace[i]
    local params = type(e) == "table" and (e.params or e.args) or nil
    if type(e) == "table" and e.op == "SpatialCrop" and type(params) == "string" then
      local s = params:match("box_start=([%-%d,]+)")
      local en = params:match("box_end=([%-%d,]+)")
      if s and en then
        local a, b, out = {}, {}, {}
        for n in s:gmatch("%-?%d+") do a[#a + 1] = tonumber(n) end
        for n in en:gmatch("%-?%d+") do b[#b + 1] = tonumber(n) end
        for d = 1, #a do out[d] = {a[d], b[d]} end
        return out
      end
    end
  end
  return nil
end

-- Deepgrow clicks: params.foreground (at least one) and params.background.
function aiaa.guidance(params, img)
  local fg = aiaa.points(params.foreground, img, "foreground")
  local bg = aiaa.points(params.background, img, "background", true)
  return fg, bg
end

-- The slice (last axis) of current_point, given as [x, y, z] or [[x, y, z]]
-- (aiaa-api.md 1.5); else the last foreground click's.
function aiaa.current_slice(params, img)
  local cp = params.current_point
  if cp ~= nil and cp ~= lumen.json_null then
    return aiaa.points(cp, img, "current_point")[1][3]
  end
  local fg = aiaa.points(params.foreground, img, "foreground")
  return fg[#fg][3]
end

-- The clicks on slice z (2-D deepgrow uses only those); `name` given: at
-- least one is required.
function aiaa.on_slice(points, z, name)
  local out = {}
  for _, p in ipairs(points) do
    if p[3] == z then out[#out + 1] = p end
  end
  if name and #out == 0 then
    error(("params.%s: no click on the slice of current_point (z = %d)"):format(name, z), 0)
  end
  return out
end

-- One guidance channel: Gaussians (sigma) at the points mapped onto x's
-- grid, scaled to 0..1 (MONAI AddGuidanceSignal's normalisation); no
-- points: a channel of zeros (any point's channel rescaled to 0..0).
function aiaa.add_guidance(x, points, img, sigma)
  local top = 1.0
  if #points == 0 then
    points, top = {{0, 0, 0}}, 0.0
    img = x
  end
  return lumen.AddExtremePointsChannel(x, {points = aiaa.map_points(points, img, x),
                                           sigma = {sigma}, rescale_min = 0.0, rescale_max = top})
end

-- ---- AIAA packages -------------------------------------------------------------------

-- The network of an AIAA folder: model.onnx, else its one *.onnx file.
local function find_weights(dir)
  if lumen.fs.stat(dir .. "/model.onnx") == "file" then return dir .. "/model.onnx" end
  local entries, err = lumen.fs.list(dir)
  if not entries then error(("%s: %s"):format(dir, err), 0) end
  local found = {}
  for _, e in ipairs(entries) do
    if e:match("%.onnx$") and lumen.fs.stat(dir .. "/" .. e) == "file" then
      found[#found + 1] = e
    end
  end
  if #found == 0 then error(("%s: no model.onnx (or other .onnx file) beside config_aiaa.json"):format(dir), 0) end
  if #found > 1 then
    error(("%s: %d .onnx files (%s) and no model.onnx: which is the network?"):format(
          dir, #found, table.concat(found, ", ")), 0)
  end
  return dir .. "/" .. found[1]
end

-- The model object of /v1/models (aiaa-api.md 1.4) from a config.
local function metadata_of(cfg, name)
  local kind = model_type(cfg)
  local inf = type(cfg.inference) == "table" and cfg.inference or {}
  local labels = {}
  if type(cfg.labels) == "table" then
    for i, l in ipairs(cfg.labels) do labels[i] = tostring(l) end
  end
  local version = cfg.version
  if type(version) == "number" then
    version = math.tointeger(version) and tostring(math.tointeger(version)) or tostring(version)
  end
  local meta = {name = name, type = kind, labels = labels,
                description = type(cfg.description) == "string" and cfg.description or "",
                version = type(version) == "string" and version or "1"}
  if kind == "annotation" or kind == "deepgrow" then
    meta.padding, meta.roi, meta.sigma = interaction_params(cfg)
  end
  if type(inf.additional_info) == "table" then meta.additional_info = inf.additional_info end
  return meta
end

local AiaaPackage = {}
AiaaPackage.__index = AiaaPackage
function AiaaPackage:free()
  if self.model and self.owns_model then self.model:free() end
end
AiaaPackage.__close = AiaaPackage.free

-- lumen.load_aiaa_package(dir [, opts]) -> {model, dir, metadata, pipeline,
-- infer, config, source}, as lumen.load_package: dir/config_aiaa.json
-- becomes the pipeline (its generated source is pkg.source), the network
-- is dir/model.onnx or the folder's one .onnx file (opts.model: a Model to
-- use instead, which the package then does not free).  pkg.infer(img [,
-- opts]) -> labels, result params.
function lumen.load_aiaa_package(path, opts)
  opts = opts or {}
  if type(path) ~= "string" or path == "" then
    error("bad argument #1 to 'load_aiaa_package' (folder expected)", 2)
  end
  local dir = (path:gsub("/+$", ""))
  local cfg_path = dir .. "/config_aiaa.json"
  if lumen.fs.stat(cfg_path) ~= "file" then error(cfg_path .. ": no such file", 2) end
  local cfg, where = load_config(cfg_path, {})
  local source = lumen.aiaa_pipeline_source(cfg, {source = where})
  -- the chunk name (at most 60 characters in messages) names the config
  local chunk, err = load(source, "=" .. (dir:match("([^/]+)$") or dir) .. "/config_aiaa.json", "t")
  if not chunk then error(err, 2) end
  local model, owns = opts.model, false
  if not model then
    model = lumen.LoadModel{path = find_weights(dir)}
    owns = true
  end
  local ok, pipeline = pcall(chunk, dir, model)
  if not ok then
    if owns then model:free() end
    error(pipeline, 2)
  end
  local name = dir:match("([^/]+)$")
  local pkg = setmetatable({model = model, owns_model = owns, dir = dir, config = cfg,
                            source = source, pipeline = pipeline,
                            metadata = metadata_of(cfg, name)}, AiaaPackage)
  lumen.package_bind_infer(pkg, pipeline)
  return pkg
end
