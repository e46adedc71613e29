-- The whole CT pipeline on the GPU, lumen's side of bench/gpu/bench_gpu_pipeline.py:
-- LoadNifti -> ConvertToChannelsFirst -> ToDevice -> Orientation RAS -> ScaleByResolution 1.5 mm
-- -> ScaleIntensityRange -> SlidingWindowInfer (96^3, overlap 0.25, batch 4, Gaussian) -> Argmax
-- -> RestoreOriginalShape -> ToHost -> SaveNifti (uint8 .nii.gz).
-- usage: lumen run bench/gpu/ct_pipeline_gpu.lua CT.nii.gz NET.onnx OUT.nii.gz RUNS [PRECISION]
-- The model is loaded once (as a server holds it); the case runs RUNS + 1 times, the first a
-- warm-up (plan, cuDNN engines, CUDA graph).  Prints per-step times of the median run as JSON.
local ct, net, out, runs, precision = arg[1], arg[2], arg[3], tonumber(arg[4]), arg[5] or 'float16'
local clock = lumen.clock
local model <close> = LoadModel(net)

local function case()
  local t = {}
  local t0 = clock()
  local img <close> = LoadNifti{path = ct}
  local chw <close> = ConvertToChannelsFirst(img)
  t.load = clock() - t0
  local t1 = clock()
  local dev <close> = ToDevice(chw, {device = 'cuda'})
  local ras <close> = Orientation(dev, {axcodes = 'RAS'})
  local iso <close> = ScaleByResolution(ras, {pixdim = {1.5, 1.5, 1.5}, mode = 'linear'})
  local x <close> = ScaleIntensityRange(iso, {a_min = -1000, a_max = 1000, b_min = 0, b_max = 1, clip = true,
                                              dtype = 'float32'})
  local logits <close> = SlidingWindowInfer(model, x, {roi = {96, 96, 96}, overlap = 0.25, sw_batch_size = 4,
                                                       mode = 'gaussian', precision = precision,
                                                       channels_last = precision ~= 'float32'})
  local lab <close> = Argmax(logits)
  local back <close> = RestoreOriginalShape(lab, x)
  local host <close> = ToHost(back)         -- waits for the GPU
  t.gpu = clock() - t1
  local t2 = clock()
  SaveNifti(host, {path = out})
  t.save = clock() - t2
  t.total = clock() - t0
  return t
end

local first = case()
local all = {}
for i = 1, runs do all[i] = case() end
table.sort(all, function(a, b) return a.total < b.total end)
local m = all[(#all + 1) // 2]
print(string.format('{"load": %.4f, "gpu": %.4f, "save": %.4f, "total": %.4f, "first_total": %.4f}',
                    m.load, m.gpu, m.save, m.total, first.total))
