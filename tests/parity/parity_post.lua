-- Runs the post-processing ops on one label map for test_parity_contours.py
-- and test_parity_components.py.
--   lumen run parity_post.lua contours LABEL OUT.json AXIS
--   lumen run parity_post.lua components LABEL OUTDIR
--   lumen run parity_post.lua cc MASK OUTDIR   (LabelComponents only)
local mode, path, out = arg[1], arg[2], arg[3]
local lbl <close> = LoadNifti{path = path}

if mode == "contours" then
  local res = Contours(lbl, {axis = tonumber(arg[4]), path = out})
  assert(res.count >= 0)
elseif mode == "cc" then
  for _, conn in ipairs{6, 18, 26} do
    local c <close>, res = LabelComponents(lbl, {connectivity = conn})
    assert(res.count >= 0)
    local s <close> = SaveNifti(c, {path = out .. "/cc" .. conn .. ".nii"})
  end
elseif mode == "components" then
  local function save(t, name)
    local s <close> = SaveNifti(t, {path = out .. "/" .. name})
  end
  for _, conn in ipairs{6, 18, 26} do
    local c <close> = LabelComponents(lbl, {connectivity = conn})
    save(c, "cc" .. conn .. ".nii")
    local k <close> = KeepLargestConnectedComponent(lbl, {connectivity = conn})
    save(k, "keep" .. conn .. ".nii")
  end
  local u <close> = KeepLargestConnectedComponent(lbl, {independent = false, num_components = 2})
  save(u, "keep_union2.nii")
else
  error("unknown mode " .. tostring(mode))
end
