-- Runs the intensity and activation transforms on one CT and one 4-D file
-- and saves every result, for test_parity_intensity.py to compare with
-- numpy.  usage: lumen run parity_intensity.lua CT FOUR_D OUTDIR
local ct, four_d, out = arg[1], arg[2], arg[3]

local function save(t, name)
  local s <close> = SaveNifti(t, {path = out .. "/" .. name})
end

local img <close> = LoadNifti{path = ct}
local c <close> = ConvertToChannelsFirst(img)
local sir <close> = ScaleIntensityRange(c, {a_min = -57, a_max = 164, b_min = 0, b_max = 1, clip = true})
save(sir, "sir_spleen.nii")
local raw <close> = ScaleIntensityRange(c, {a_min = -1000, a_max = 1000})
save(raw, "sir_nob.nii")
local p <close> = ScaleIntensityRangePercentiles(c, {lower = 0.5, upper = 99.5, b_min = 0, b_max = 1, clip = true})
save(p, "sirp.nii")
local pr <close> = ScaleIntensityRangePercentiles(c, {lower = 5, upper = 95, b_min = -1, b_max = 1, relative = true})
save(pr, "sirp_relative.nii")
local logits <close> = ScaleIntensityRange(c, {a_min = -500, a_max = 500, b_min = -6, b_max = 6})
local sig <close> = Sigmoid(logits)
save(sig, "sigmoid.nii")
local thr <close> = Threshold(sig, {threshold = 0.5})
save(thr, "threshold.nii")
local i16 <close> = Cast(sir, {dtype = "int16"})
save(i16, "cast.nii")

local v <close> = LoadNifti{path = four_d}
local ch <close> = ConvertToChannelsFirst(v)
local am <close> = Argmax(ch)
save(am, "argmax.nii")
local sm <close> = Softmax(ch)
local am2 <close> = Argmax(sm)
save(am2, "argmax_softmax.nii")
