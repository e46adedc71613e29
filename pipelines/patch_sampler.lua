-- Training patches around given centres (the LUNA16 nodule sampler of the
-- VNet training): per volume, patches centred on each listed centre with a
-- random offset (every centre used equally often) and random negative
-- patches away from all the centres, with the label patches beside them.
--
-- usage: lumen run pipelines/patch_sampler.lua VOLUMES CENTERS OUT_DIR [key=value ...]
--   VOLUMES  a text file, one volume per line: "image [label]" (NIfTI, or
--            any format LoadImage reads when that op exists); relative
--            paths are relative to the list's folder; '#' starts a comment.
--   CENTERS  a CSV file with a header line "volume,x,y,z": volume is the
--            1-based line number of the volume in VOLUMES (counting volumes,
--            not comments) or its image path as written there; x, y, z are
--            world coordinates in RAS mm (coords=voxel: voxel indices).
--   OUT_DIR  created; per volume V (the image's file name without its
--            extension): V_pos.EXT, V_pos_label.EXT, V_neg.EXT,
--            V_neg_label.EXT, each a batch of shape (N, C, X, Y, Z), EXT =
--            npy when SaveNpy exists, else nii.gz; and patches.csv, one line
--            per patch: file,index,volume,kind,center,x,y,z (the patch
--            centre in voxels of the volume; center = the centre's row in
--            CENTERS for positives, empty for negatives).
--   options  size=64 (or 64,64,32) patch size in voxels; per_center=2
--            patches per centre; negatives=4 per volume; offset=8 largest
--            random shift in voxels; radius=30 mm a negative patch keeps
--            from every centre; pad=-1000 image padding; coords=world|voxel;
--            seed=0 (volume i uses seed + i: reruns give the same patches).
--
-- As a module (dofile returns it):
--   M.sample(img, label, centers, opts) -> {pos=, pos_label=, neg=,
--     neg_label=, pos_info=, neg_info=} for one loaded volume; centers a
--     flat list {x1, y1, z1, ...}; opts as above (keys as Lua values).
--   M.run(volumes, centers, out_dir, opts) -> summary {volumes=, pos=, neg=}
--   M.main(args) -> summary: the command line (args as `arg`).

local M = {}

M.defaults = {size = {64, 64, 64}, per_center = 2, negatives = 4, offset = 8,
              radius = 30, pad = -1000, coords = "world", seed = 0}

local function with_defaults(opts)
  local o = {}
  for k, v in pairs(M.defaults) do o[k] = v end
  for k, v in pairs(opts or {}) do o[k] = v end
  if type(o.size) == "number" then o.size = {o.size, o.size, o.size} end
  return o
end

-- Channel-first view unless the layout already starts with C.
local function channels_first(t)
  if t == nil or t:layout():sub(1, 1) == "C" then return t end
  return ConvertToChannelsFirst(t)
end

-- op(img, [label], opts) -> patches, label patches (nil without a label), results
local function crop(op, x, y, opts)
  if y then return op(x, y, opts) end
  local p, info = op(x, opts)
  return p, nil, info
end

function M.sample(img, label, centers, opts)
  local o = with_defaults(opts)
  local x, y = channels_first(img), channels_first(label)
  local out = {}
  if #centers > 0 then
    local p, pl, info = crop(RandCropAroundCenters, x, y, {
      centers = centers, coords = o.coords, spatial_size = o.size,
      offset_range = {o.offset}, num_samples = o.per_center * (#centers // 3),
      value = o.pad, seed = o.seed})
    out.pos, out.pos_label, out.pos_info = p, pl, info
  end
  if o.negatives > 0 then
    local n, nl, info = crop(RandNegativeCrop, x, y, {
      centers = #centers > 0 and centers or nil, coords = o.coords,
      spatial_size = o.size, exclusion_radius = o.radius,
      num_samples = o.negatives, value = o.pad, seed = o.seed + 7919})
    out.neg, out.neg_label, out.neg_info = n, nl, info
  end
  return out
end

local function dirname(path) return path:match("^(.*)/[^/]*$") or "." end

local function resolve(base, path)
  if path:sub(1, 1) == "/" then return path end
  return base .. "/" .. path
end

local function stem(path)
  local name = path:match("([^/]+)$")
  return (name:gsub("%.gz$", ""):gsub("%.[^.]+$", ""))
end

-- The volumes list: {{image=, label=, key=}, ...}.
local function read_volumes(path)
  local f = assert(io.open(path), "cannot open the volumes list " .. path)
  local vols, base = {}, dirname(path)
  for line in f:lines() do
    line = line:gsub("#.*$", "")
    local image, label = line:match("^%s*(%S+)%s*(%S*)%s*$")
    if image then
      vols[#vols + 1] = {key = image, image = resolve(base, image),
                         label = label ~= "" and resolve(base, label) or nil}
    end
  end
  f:close()
  return vols
end

-- The centres file: per volume index, a flat list and the CSV rows.
local function read_centers(path, vols)
  local f = assert(io.open(path), "cannot open the centres file " .. path)
  local by_key = {}
  for i, v in ipairs(vols) do by_key[v.key] = i end
  local per, rows, n = {}, {}, 0
  for line in f:lines() do
    n = n + 1
    local vol, x, y, z = line:match("^%s*([^,]+),%s*([^,]+),%s*([^,]+),%s*([^,%s]+)")
    if n > 1 and vol then
      local i = tonumber(vol) or by_key[vol]
      local cx, cy, cz = tonumber(x), tonumber(y), tonumber(z)
      if not (i and vols[i] and cx and cy and cz) then
        error(("%s line %d: unknown volume or bad coordinates: %s"):format(path, n, line))
      end
      per[i] = per[i] or {}
      rows[i] = rows[i] or {}
      table.insert(per[i], cx); table.insert(per[i], cy); table.insert(per[i], cz)
      table.insert(rows[i], n - 1)
    elseif n > 1 and line:match("%S") then
      error(("%s line %d: expected volume,x,y,z: %s"):format(path, n, line))
    end
  end
  f:close()
  return per, rows
end

local function load(path)
  if LoadImage and not path:match("%.nii") then return LoadImage{path = path} end
  return LoadNifti{path = path}
end

function M.run(volumes, centers, out_dir, opts)
  local o = with_defaults(opts)
  local vols = read_volumes(volumes)
  local per, rows = read_centers(centers, vols)
  assert(lumen.fs.mkdir(out_dir) or lumen.fs.stat(out_dir), "cannot create " .. out_dir)
  local ext = SaveNpy and "npy" or "nii.gz"
  local save = SaveNpy or SaveNifti
  local index = assert(io.open(out_dir .. "/patches.csv", "w"))
  index:write("file,index,volume,kind,center,x,y,z\n")
  local summary = {volumes = 0, pos = 0, neg = 0}
  for i, v in ipairs(vols) do
    local img <close> = load(v.image)
    local label = v.label and load(v.label) or nil
    local vo = {}
    for k, val in pairs(o) do vo[k] = val end
    vo.seed = o.seed + i
    local s = M.sample(img, label, per[i] or {}, vo)
    local name = stem(v.image)
    for _, kind in ipairs({"pos", "neg"}) do
      local batch, info = s[kind], s[kind .. "_info"]
      if batch then
        local file = ("%s_%s.%s"):format(name, kind, ext)
        local saved <close> = save(batch, {path = out_dir .. "/" .. file})
        if s[kind .. "_label"] then
          local l <close> = save(s[kind .. "_label"],
                                 {path = ("%s/%s_%s_label.%s"):format(out_dir, name, kind, ext)})
        end
        local n = batch:shape()[1]
        for k = 1, n do
          local c = info.center_index and rows[i][info.center_index[k] + 1] or ""
          index:write(("%s,%d,%d,%s,%s,%d,%d,%d\n"):format(file, k - 1, i, kind, c,
            info.centers[3 * k - 2], info.centers[3 * k - 1], info.centers[3 * k]))
        end
        summary[kind] = summary[kind] + n
        batch:free()
        if s[kind .. "_label"] then s[kind .. "_label"]:free() end
      end
    end
    if label then label:free() end
    summary.volumes = summary.volumes + 1
  end
  index:close()
  return summary
end

-- key=value options from the command line.
local function parse_options(args, first)
  local o = {}
  for k = first, #args do
    local key, val = args[k]:match("^([%w_]+)=(.*)$")
    if not key or M.defaults[key] == nil then
      error("unknown option " .. args[k] .. " (see the usage at the top of patch_sampler.lua)")
    end
    if key == "size" then
      local t = {}
      for n in val:gmatch("[^,]+") do t[#t + 1] = assert(tonumber(n), "size: " .. val) end
      o.size = #t == 1 and {t[1], t[1], t[1]} or t
    elseif key == "coords" then
      o.coords = val
    else
      o[key] = assert(tonumber(val), key .. ": not a number: " .. val)
      if math.type(o[key]) == "float" and o[key] == math.floor(o[key]) and key ~= "radius" then
        o[key] = math.tointeger(o[key])
      end
    end
  end
  return o
end

function M.main(args)
  if #args < 3 then
    io.stderr:write("usage: lumen run pipelines/patch_sampler.lua VOLUMES CENTERS OUT_DIR [key=value ...]\n")
    os.exit(2)
  end
  return M.run(args[1], args[2], args[3], parse_options(args, 4))
end

-- Run as a script (not loaded by another one): this chunk is arg[0].
if arg and arg[0] and debug.getinfo(1, "S").source == "@" .. arg[0] then
  local s = M.main(arg)
  print(("%d volumes: %d positive and %d negative patches in %s"):format(
    s.volumes, s.pos, s.neg, arg[3]))
end
return M
