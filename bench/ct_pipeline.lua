-- The whole CT pipeline, lumen's side of bench/bench_ct_pipeline.py (one case):
-- LoadNifti -> ConvertToChannelsFirst -> Orientation RAS -> ScaleByResolution 1.5x1.5x2 mm
-- -> ScaleIntensityRange -> SlidingWindowInfer (96^3, overlap 0.25) -> Argmax
-- -> RestoreOriginalShape -> Cast uint8 -> SaveNifti.
-- usage: lumen run bench/ct_pipeline.lua CT.nii.gz NET.onnx OUT.nii.gz
local ct, net, out = arg[1], arg[2], arg[3]
local clock = lumen.clock
local t = {}
local t0 = clock()
local model <close> = LoadModel(net)
local img <close> = LoadNifti{path = ct}
local chw <close> = ConvertToChannelsFirst(img)
local ras <close> = Orientation(chw, {axcodes = "RAS"})
local iso <close> = ScaleByResolution(ras, {pixdim = {1.5, 1.5, 2.0}, mode = "linear"})
local x <close> = ScaleIntensityRange(iso, {a_min = -1000, a_max = 1000, b_min = 0, b_max = 1, clip = true})
t.pre = clock() - t0
local t1 = clock()
local logits <close> = SlidingWindowInfer(model, x, {roi = {96, 96, 96}, overlap = 0.25, sw_batch_size = 1})
t.infer = clock() - t1
local t2 = clock()
local lab <close> = Argmax(logits)
local back <close> = RestoreOriginalShape(lab, x)
local u8 <close> = Cast(back, {dtype = "uint8"})
SaveNifti(u8, {path = out})
t.post = clock() - t2
t.total = clock() - t0
print(string.format('{"pre": %.4f, "infer": %.4f, "post": %.4f, "total": %.4f}', t.pre, t.infer, t.post, t.total))
