-- Runs Orientation, ScaleByResolution (Spacing), Resize and
-- RestoreOriginalShape on real files and saves every result, for
-- test_parity_spatial.py to compare with nibabel / scipy / numpy.
-- usage: lumen run parity_spatial.lua DATA_DIR OUTDIR
local data, out = arg[1], arg[2]

local function save(t, name)
  local s <close> = SaveNifti(t, {path = out .. "/" .. name})
end

-- Orientation: LIA T1, LPS CT, oblique 4-D (channel-first)
local t1 <close> = LoadNifti{path = data .. "/mri/brainchop_t1_crop.nii.gz"}
local t1_ras <close> = Orientation(t1, {axcodes = "RAS"})
save(t1_ras, "orient_t1_ras.nii")
local lps <close> = LoadNifti{path = data .. "/ct/totalseg_aorta_ct_cropped.nii.gz"}
local lps_ras <close> = Orientation(lps, {axcodes = "RAS"})
save(lps_ras, "orient_ct_ras.nii")
local lps_psl <close> = Orientation(lps, {axcodes = "PSL"})
save(lps_psl, "orient_ct_psl.nii")
local v <close> = LoadNifti{path = data .. "/4d/example4d.nii.gz"}
local vc <close> = ConvertToChannelsFirst(v)
local v_lps <close> = Orientation(vc, {axcodes = "LPS"})
save(v_lps, "orient_4d_lps.nii")

-- Spacing, MONAI rule, the three orders and padding modes, on a real CT
local ct <close> = LoadNifti{path = data .. "/ct/totalseg_example_ct_sm.nii.gz"}
for _, mode in ipairs{"nearest", "bilinear", "cubic"} do
  for _, pad in ipairs{"border", "zeros", "reflection"} do
    local r <close> = Spacing(ct, {pixdim = {2.2, 1.7, 4.1}, mode = mode, padding_mode = pad})
    save(r, "spacing_" .. mode .. "_" .. pad .. ".nii")
  end
end
-- oblique 4-D, linear, channel-first
local v_sp <close> = Spacing(vc, {pixdim = {3.1, 2.5, 1.7}})
save(v_sp, "spacing_4d_linear.nii")

-- labels: anisotropic torso label map to 1.5 mm, and back
local lab <close> = LoadNifti{path = data .. "/labels/torsoLabel.nii.gz", dtype = "native"}
local labc <close> = ConvertToChannelsFirst(lab)
local lab_sp <close> = Spacing(labc, {pixdim = {1.5, 1.5, 1.5}, is_label = true})
save(lab_sp, "spacing_label.nii")
local lab_back <close> = RestoreOriginalShape(lab_sp, lab_sp, {rounding = "exact"})
save(lab_back, "spacing_label_inverse.nii")
-- probabilities back with linear: a float map on the resampled grid
local prob <close> = Spacing(ct, {pixdim = {2.2, 1.7, 4.1}})
local prob_back <close> = RestoreOriginalShape(prob, prob, {mode = "linear"})
save(prob_back, "spacing_linear_inverse.nii")

-- Resize (torch interpolate rules)
local rz <close> = Resize(ct, {spatial_size = {90, 140, 37}})
save(rz, "resize_linear.nii")
local rzn <close> = Resize(ct, {spatial_size = {90, 140, 37}, mode = "nearest"})
save(rzn, "resize_nearest.nii")
