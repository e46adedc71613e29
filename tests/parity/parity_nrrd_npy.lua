-- Reads the NRRD and .npy files test_nrrd_npy_parity.py wrote by hand and
-- writes them back through lumen (NIfTI, NRRD gzip and raw, .npy), for the
-- script to check with nibabel, numpy and its own NRRD parser.
-- usage: lumen run parity_nrrd_npy.lua DIR NAME...   (NAME.nrrd or NAME.npy in DIR)
local dir = arg[1]
for i = 2, #arg do
  local name = arg[i]
  local base = dir .. "/" .. name
  if name:match("%.npy$") then
    local a <close> = LoadNpy{path = base}
    local s <close> = SaveNpy(a, {path = base:gsub("%.npy$", "_lumen.npy")})
  else
    local img <close> = LoadNrrd{path = base .. ".nrrd", dtype = "native"}
    local n <close> = SaveNifti(img, {path = base .. "_lumen.nii.gz"})
    local g <close> = SaveNrrd(img, {path = base .. "_lumen.nrrd"})
    local r <close> = SaveImage(img, {path = base .. "_lumen_raw.nhdr", encoding = "raw"})
    local back <close> = LoadImage{path = base .. "_lumen.nrrd", dtype = "native"}
    print(name, img:dtype(), img:layout(), back:orientation())
  end
end
