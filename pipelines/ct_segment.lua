-- CT organ segmentation with the demo model package models/demo_ct_unet
-- (a small 3D U-Net the project trained on its own phantoms:
-- models/train_demo_unet.py): the package's pipeline.lua does the
-- preprocessing, the sliding-window inference and the inversion back to the
-- input grid.
--
-- usage: lumen run pipelines/ct_segment.lua [--package PACKAGE] [IN OUT [PACKAGE]]
--   IN a CT (.nii/.nii.gz/.nrrd, HU), OUT the label map (uint8, labels as in
--   the package's metadata.json).  PACKAGE: a package folder or name
--   (default demo_ct_unet).
--   With no arguments: segments a synthetic CT phantom (Phantom, a seed the
--   model never saw), writes out/segment_phantom_ct.nii.gz and
--   out/segment_phantom_labels.nii.gz (not the ct_preprocess demo's files), and
--   prints the Dice of each organ against the phantom's own label map.

local fs, clock = lumen.fs, lumen.clock

local here = debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or "."
local DEFAULT_PACKAGE = here .. "/../models/demo_ct_unet"
local DEMO_SEED = 4242      -- not among the training or validation seeds

-- Dice per class of the package between two label maps of one shape; ref
-- holds the phantom's TotalSegmentator ids, mapped through
-- metadata.phantom_label_ids.
local function dice_table(pred, ref, meta)
  local class_of = {}
  for k, name in pairs(meta.labels) do
    for _, id in ipairs((meta.phantom_label_ids or {})[name] or {}) do
      class_of[id] = math.tointeger(tonumber(k))
    end
  end
  local p, r = pred:values(), ref:values()
  local inter, np, nr = {}, {}, {}
  for i = 1, #p do
    local a, b = p[i], class_of[r[i]] or 0
    if a ~= 0 then np[a] = (np[a] or 0) + 1 end
    if b ~= 0 then
      nr[b] = (nr[b] or 0) + 1
      if a == b then inter[a] = (inter[a] or 0) + 1 end
    end
  end
  local rows = {}
  for k, name in pairs(meta.labels) do
    k = math.tointeger(tonumber(k))
    if k ~= 0 then
      local den = (np[k] or 0) + (nr[k] or 0)
      rows[#rows + 1] = {k = k, name = name, dice = den > 0 and 2 * (inter[k] or 0) / den or 0 / 0,
                         pred = np[k] or 0, ref = nr[k] or 0}
    end
  end
  table.sort(rows, function(x, y) return x.k < y.k end)
  return rows
end

local args = {table.unpack(arg)}
local package
if args[1] == "--package" then
  package = args[2]
  table.remove(args, 1)
  table.remove(args, 1)
end
local src, dst = args[1], args[2]
package = package or args[3]
if src and not dst then
  io.stderr:write("usage: lumen run pipelines/ct_segment.lua [--package PACKAGE] [IN OUT [PACKAGE]]\n")
  os.exit(2)
end

local t0 = clock()
local pkg <close> = lumen.load_package(package or DEFAULT_PACKAGE)
local t_load = clock() - t0

if src then
  local img <close> = LoadImage{path = src}
  local t1 = clock()
  local labels <close> = pkg.infer(img)
  local t2 = clock()
  SaveImage(labels, {path = dst})
  print(("%s -> %s: %s (model %.2f s, segmentation %.2f s)"):format(src, dst, tostring(labels),
                                                                  t_load, t2 - t1))
  return
end

-- The demo: a phantom with an unseen seed, on a grid unlike the training
-- grid (2 mm, segmented at 3 mm and mapped back).
fs.mkdir("out")
local phantom_img, phantom_ref = Phantom{shape = {192, 192, 128}, spacing = {2, 2, 2},
                                         seed = DEMO_SEED}
local img <close> = phantom_img
local ref <close> = phantom_ref
local t1 = clock()
local labels <close> = pkg.infer(img)
local t2 = clock()
SaveNifti(img, {path = "out/segment_phantom_ct.nii.gz"})
SaveNifti(labels, {path = "out/segment_phantom_labels.nii.gz"})
print(("phantom (seed %d) %s"):format(DEMO_SEED, tostring(img)))
print(("labels %s"):format(tostring(labels)))
print(("model %s loaded in %.2f s; segmentation (preprocess, sliding window, argmax, restore) "
       .. "%.2f s"):format(pkg.metadata.name or "?", t_load, t2 - t1))
print("Dice against the phantom's labels:")
local sum, n = 0, 0
for _, row in ipairs(dice_table(labels, ref, pkg.metadata)) do
  print(("  %-16s %.3f   (%d voxels predicted, %d in the phantom)"):format(row.name, row.dice,
                                                                        row.pred, row.ref))
  if row.dice == row.dice then sum, n = sum + row.dice, n + 1 end
end
print(("  %-16s %.3f"):format("mean", n > 0 and sum / n or 0 / 0))
print("wrote out/segment_phantom_ct.nii.gz, out/segment_phantom_labels.nii.gz")
