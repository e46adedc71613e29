-- nnU-Net v2 preprocessing of one case (DefaultPreprocessor.run_case_npy):
--   LoadNifti -> ConvertToChannelsFirst
--   -> CropForeground{rule='nnunet'}        crop_to_nonzero (seg: -1 outside the mask)
--   -> NormalizeIntensity per the plans     CTNormalization from the plans' intensity
--                                           properties, or ZScore (with the mask if
--                                           use_mask_for_norm)
--   -> ScaleByResolution{rule='nnunet'}     to the configuration's spacing, separate z
--                                           by nnU-Net's anisotropy rule
--   -> SaveNifti, and with a label: the resampled seg and its class locations
-- (v2 order: normalisation before resampling.)
--
-- usage: lumen run pipelines/nnunet_preprocess.lua IMAGE PLANS.json OUT_DIR [LABEL [CONFIG]]
--   CONFIG: a key of the plans' "configurations" (default 3d_fullres).
--   LABEL may be "-" to give a CONFIG without a label.
-- Writes, for IMAGE = NAME.nii.gz (NAME_0000 -> NAME, as nnU-Net's raw data):
--   OUT_DIR/NAME.nii.gz       preprocessed image, float32, (1, X, Y, Z)
--   OUT_DIR/NAME_seg.nii.gz   resampled seg (int16; -1 = outside the nonzero mask)
--   OUT_DIR/NAME.json         nnU-Net's properties: spacing, shapes, crop box and
--                             class_locations {"label": [[x, y, z], ...]} (at most 10000
--                             voxels per class, at least 1 %, seed 1234; lumen's own
--                             seeded draw, see `lumen ops ClassLocations`)
--
-- Axis order: nnU-Net's arrays are (z, y, x) after SimpleITK, then transposed by the
-- plans' transpose_forward; its spacings in plans.json are in that order.  lumen keeps
-- (X, Y, Z) and maps the plans' spacing back: plans axis d is lumen axis
-- 2 - transpose_forward[d].  Spacing here is the affine's column norms (nnU-Net:
-- the header pixdim through SimpleITK; the same for ordinary mm files).

local json_decode = lumen.json_decode
if not json_decode then error("nnunet_preprocess: this lumen has no lumen.json_decode", 0) end

local fs = lumen.fs

local function usage()
  error("usage: lumen run pipelines/nnunet_preprocess.lua IMAGE PLANS.json OUT_DIR " ..
        "[LABEL [CONFIG]]", 0)
end

local function read_file(path)
  local f, err = io.open(path, "rb")
  if not f then error(("nnunet_preprocess: cannot read %s: %s"):format(path, err), 0) end
  local s = f:read("a")
  f:close()
  return s
end

-- A JSON writer for the properties file (numbers, strings, lists, objects).  A table
-- with the metatable OBJECT is written as an object even when its keys are 1..n
-- (label-keyed tables).
local function to_json(v, out)
  local t = type(v)
  if t == "number" then
    if math.type(v) == "integer" then out[#out + 1] = tostring(v)
    else out[#out + 1] = ("%.17g"):format(v) end
  elseif t == "string" then
    out[#out + 1] = '"' .. v:gsub('[%c"\\]', function(c)
      return ("\\u%04x"):format(c:byte()) end) .. '"'
  elseif t == "boolean" then
    out[#out + 1] = tostring(v)
  elseif t == "table" then
    local mt = getmetatable(v)
    if not (mt and mt.json_object) and (#v > 0 or next(v) == nil) then
      out[#out + 1] = "["
      for i, x in ipairs(v) do
        if i > 1 then out[#out + 1] = "," end
        to_json(x, out)
      end
      out[#out + 1] = "]"
    else
      local keys = {}
      for k in pairs(v) do keys[#keys + 1] = k end
      table.sort(keys, function(a, b)
        if type(a) == type(b) then return a < b end
        return type(a) == "number"
      end)
      out[#out + 1] = "{"
      for i, k in ipairs(keys) do
        if i > 1 then out[#out + 1] = "," end
        to_json(tostring(k), out)
        out[#out + 1] = ":"
        to_json(v[k], out)
      end
      out[#out + 1] = "}"
    end
  else
    error("nnunet_preprocess: cannot write a " .. t .. " as JSON")
  end
  return out
end

local OBJECT = {json_object = true}

local function write_json(path, v)
  local tmp = path .. ".part"
  local f = assert(io.open(tmp, "wb"))
  f:write(table.concat(to_json(v, {})), "\n")
  f:close()
  assert(os.rename(tmp, path))
end

-- The plans' field, or a clear error naming it.
local function field(tbl, name, where)
  local v = tbl[name]
  if v == nil then error(("nnunet_preprocess: %s has no field '%s'"):format(where, name), 0) end
  return v
end

-- Spacing and resampling settings of one configuration, in lumen's axis order.
local function read_plans(path, config)
  local plans = json_decode(read_file(path))
  local configs = field(plans, "configurations", path)
  local c = configs[config]
  if not c then error(("nnunet_preprocess: %s has no configuration '%s'"):format(path, config), 0) end
  local where = path .. " configurations." .. config
  local sp = field(c, "spacing", where)
  if #sp ~= 3 then error(("nnunet_preprocess: %s.spacing must have 3 numbers"):format(where), 0) end
  local tf = plans.transpose_forward or {0, 1, 2}
  local target = {}
  for d = 1, 3 do target[3 - tf[d]] = sp[d] end  -- plans axis d -> lumen axis 2 - tf[d]
  local function kwargs(name, order, order_z)
    local k = c[name] or {}
    local fs_ = k.force_separate_z
    local sep = (fs_ == true and "true") or (fs_ == false and "false") or "auto"
    return {order = k.order or order, order_z = k.order_z or order_z, separate_z = sep}
  end
  local props = field(plans, "foreground_intensity_properties_per_channel", path)
  return {
    target = target,
    schemes = c.normalization_schemes or {"ZScoreNormalization"},
    use_mask = c.use_mask_for_norm or {false},
    data = kwargs("resampling_fn_data_kwargs", 3, 0),
    seg = kwargs("resampling_fn_seg_kwargs", 1, 0),
    props = props,
    where = path,
  }
end

-- nnU-Net's normalisation of channel 0 (single-channel images).
local function normalize(img, seg, p)
  local scheme = p.schemes[1]
  if scheme == "CTNormalization" then
    local ip = p.props["0"] or p.props[0]
    if not ip then
      error(("nnunet_preprocess: %s: foreground_intensity_properties_per_channel has no " ..
             "channel 0"):format(p.where), 0)
    end
    local where = p.where .. " foreground_intensity_properties_per_channel.0"
    return NormalizeIntensity(img, {scheme = "ct",
      clip_min = {field(ip, "percentile_00_5", where)},
      clip_max = {field(ip, "percentile_99_5", where)},
      mean = {field(ip, "mean", where)}, std = {field(ip, "std", where)}})
  elseif scheme == "ZScoreNormalization" then
    if p.use_mask[1] then return NormalizeIntensity(img, seg, {scheme = "nnunet_zscore"}) end
    return NormalizeIntensity(img, {scheme = "nnunet_zscore"})
  end
  error(("nnunet_preprocess: normalization scheme '%s' is not supported (CTNormalization, " ..
         "ZScoreNormalization)"):format(tostring(scheme)), 0)
end

local function case_name(path)
  local name = path:match("([^/]+)$"):gsub("%.nii%.gz$", ""):gsub("%.nii$", "")
  return (name:gsub("_0000$", ""))
end

local function shape3(t)
  local s = t:shape()
  return {s[#s - 2], s[#s - 1], s[#s]}
end

local image, plans_path, out_dir = arg and arg[1], arg and arg[2], arg and arg[3]
local label = arg and arg[4]
local config = arg and arg[5] or "3d_fullres"
if not (image and plans_path and out_dir) then usage() end
if label == "-" then label = nil end

local p = read_plans(plans_path, config)
local kind = fs.stat(out_dir)
if kind ~= "dir" then assert(fs.mkdir(out_dir)) end
local name = case_name(image)
local t0 = lumen.clock()

local raw <close> = LoadNifti{path = image}
local img <close> = ConvertToChannelsFirst(raw)
local raw_lab <close> = label and LoadNifti{path = label, dtype = "int16"} or nil
local lab <close> = raw_lab and ConvertToChannelsFirst(raw_lab) or nil
local cropped, seg, box
if lab then
  cropped, seg, box = CropForeground(img, lab, {rule = "nnunet"})
else
  cropped, seg, box = CropForeground(img, {rule = "nnunet"})
end
local cropped_ <close> = cropped
local seg_ <close> = seg
local normed <close> = normalize(cropped, seg, p)
local out <close> = ScaleByResolution(normed, {rule = "nnunet", pixdim = p.target,
  order = p.data.order, order_z = p.data.order_z, separate_z = p.data.separate_z})
local saved <close> = SaveNifti(out, {path = out_dir .. "/" .. name .. ".nii.gz"})

local props = {
  spacing = raw:spacing(),
  shape_before_cropping = shape3(img),
  bbox_used_for_cropping = {box.box_start, box.box_end},
  shape_after_cropping_and_before_resampling = shape3(cropped),
  target_spacing = p.target,
  shape_after_resampling = shape3(out),
  configuration = config,
}
if lab then
  local rseg <close> = ScaleByResolution(seg, {rule = "nnunet", pixdim = p.target,
    is_label = true, order = p.seg.order, order_z = p.seg.order_z,
    separate_z = p.seg.separate_z})
  local seg_saved <close> = SaveNifti(rseg, {path = out_dir .. "/" .. name .. "_seg.nii.gz"})
  local res = ClassLocations(rseg)
  props.class_locations = setmetatable(res.locations, OBJECT)
  props.class_voxel_counts = setmetatable(res.counts, OBJECT)
end
write_json(out_dir .. "/" .. name .. ".json", props)
print(("nnunet_preprocess: %s -> %s/%s.nii.gz %s, %.2f s"):format(image, out_dir, name,
  tostring(out), lumen.clock() - t0))
