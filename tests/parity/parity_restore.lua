-- lumen's side of test_restore_monai.py: the MONAI CT preprocessing geometry
-- (channels first, orientation RAS, spacing PIXDIM linear), then an index
-- encoding on the resampled grid restored with nearest to the original grid.
-- usage: lumen run parity_restore.lua IMAGE.nii PX PY PZ CODE.npy OUT.npy
local path, code, out = arg[1], arg[5], arg[6]
local pixdim = {tonumber(arg[2]), tonumber(arg[3]), tonumber(arg[4])}
local img <close> = LoadNifti{path = path}
local chw <close> = ConvertToChannelsFirst(img)
local ras <close> = Orientation(chw, {axcodes = "RAS"})
local iso <close> = ScaleByResolution(ras, {pixdim = pixdim, mode = "linear"})
local pred <close> = LoadNpy{path = code}
local back <close> = RestoreOriginalShape(pred, iso, {mode = "nearest"})
SaveNpy(back, {path = out})
