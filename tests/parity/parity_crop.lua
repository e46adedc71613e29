-- Runs the crops, pads, FillHoles and NormalizeIntensity on one real CT and
-- its TotalSegmentator label map, saving every result and the boxes, for
-- test_parity_crop.py to compare with numpy/scipy written by MONAI's and
-- nnU-Net's rules.   usage: lumen run parity_crop.lua CT SEG OUTDIR
local ct, seg, out = arg[1], arg[2], arg[3]

local boxes = assert(io.open(out .. "/boxes.txt", "w"))
local function save(t, name, res)
  local s <close> = SaveNifti(t, {path = out .. "/" .. name})
  if res and res.box_start then
    boxes:write(name, " ", table.concat(res.box_start, ","), " ",
                table.concat(res.box_end, ","), "\n")
  end
  if res and res.subtrahend then
    boxes:write(name, " ", table.concat(res.subtrahend, ","), " ",
                table.concat(res.divisor, ","), "\n")
  end
end

local img <close> = LoadNifti{path = ct}
local c <close> = ConvertToChannelsFirst(img)
local l0 <close> = LoadNifti{path = seg}
local lab <close> = ConvertToChannelsFirst(l0)

local fg, fgl, r = CropForeground(c, lab, {margin = {2}, k_divisible = {16}})
save(fg, "cf_monai.nii", r); save(fgl, "cf_monai_label.nii")
local fgs <close>, r2 = CropForeground(c, {select_threshold = 200, margin = {3, 0, 5}, allow_smaller = true})
save(fgs, "cf_monai_thr.nii", r2)
local nimg, nseg, r3 = CropForeground(lab, {rule = "nnunet"})
save(nimg, "cf_nnunet.nii", r3); save(nseg, "cf_nnunet_seg.nii")
local nimg2, nseg2 = CropForeground(lab, lab, {rule = "nnunet"})
save(nseg2, "cf_nnunet_seg_label.nii")

local sc <close>, r4 = SpatialCrop(c, {roi_center = {100, 10, 20}, roi_size = {50, 40, 30}})
save(sc, "spatial_crop.nii", r4)
local cc <close>, r5 = CenterCrop(c, {roi_size = {64, 200, 0}})
save(cc, "center_crop.nii", r5)
local sp <close>, r6 = SpatialPad(c, {spatial_size = {131, 101, 45}})
save(sp, "spatial_pad.nii", r6)
local spr <close> = SpatialPad(c, {spatial_size = {140, 120, 50}, mode = "reflect", method = "end"})
save(spr, "spatial_pad_reflect.nii")
local dp <close>, r7 = DivisiblePad(c, {k = {16}, mode = "edge"})
save(dp, "divisible_pad.nii", r7)
local dps <close> = DivisiblePad(c, {k = {32, 0, 7}, mode = "symmetric"})
save(dps, "divisible_pad_sym.nii")

local fh <close> = FillHoles(lab)
save(fh, "fill_holes.nii")
local fh1 <close> = FillHoles(lab, {connectivity = 1, applied_labels = {5, 2, 3}})
save(fh1, "fill_holes_c1.nii")

local z <close>, r8 = NormalizeIntensity(c)
save(z, "z.nii", r8)
local znz <close>, r9 = NormalizeIntensity(fg, {nonzero = true})
save(znz, "z_nonzero.nii", r9)
local zn <close>, r10 = NormalizeIntensity(nimg, nseg, {scheme = "nnunet_zscore"})
save(zn, "z_nnunet_mask.nii", r10)
local ctn <close>, r11 = NormalizeIntensity(c, {scheme = "ct", clip_min = {-958}, clip_max = {327},
                                                 mean = {82.3}, std = {136.6}})
save(ctn, "ct_norm.nii", r11)
boxes:close()
