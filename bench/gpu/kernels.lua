-- Transform kernels on the GPU, lumen's side of bench/gpu/bench_gpu_kernels.py.
-- usage: lumen run bench/gpu/kernels.lua X Y Z RUNS
-- A Phantom CT of X x Y x Z (int16, 0.8 x 0.8 x 2.5 mm) goes to the GPU once; each op then runs
-- RUNS times back to back on the device (outputs freed at once: the allocator is stream-ordered),
-- then a 1-voxel crop of the last output is copied to the host, which waits for all of them.
-- Time per run = the whole / RUNS (the crop and its copy are a few microseconds).  Bytes moved =
-- the op's compulsory traffic: every input element read once, every output element written once.
-- One JSON line per op: {"op", "ms", "bytes"} or {"op", "error"}.
local X, Y, Z, RUNS = tonumber(arg[1]), tonumber(arg[2]), tonumber(arg[3]), tonumber(arg[4])
local clock = lumen.clock

local info = lumen.engine_info()
print(string.format('{"status": %q}', info.cuda_status))

local img, lab = Phantom{shape = {X, Y, Z}, spacing = {0.8, 0.8, 2.5}, seed = 3}
local ct16 = ToDevice(ConvertToChannelsFirst(img), {device = 'cuda'})           -- int16 (1, X, Y, Z)
local ct = Cast(ct16, {dtype = 'float32'})
local unit = ScaleIntensityRange(ct, {a_min = -1000, a_max = 1000, b_min = 0, b_max = 1, clip = true})
local labels = ToDevice(ConvertToChannelsFirst(lab), {device = 'cuda'})          -- uint8 labels
local N = X * Y * Z

local function sync(t)
  local one = SpatialCrop(t, {roi_start = {0, 0, 0}, roi_end = {1, 1, 1}})
  local h = ToHost(one)
  one:free()
  h:free()
end

local function bench(name, bytes, fn)
  local ok, err = pcall(function()
    for _ = 1, 2 do local y = fn(); sync(y); y:free() end     -- warm-up (and plan caches)
    local t0 = clock()
    local y
    for i = 1, RUNS do
      y = fn()
      if i < RUNS then y:free() end
    end
    sync(y)
    local dt = (clock() - t0) / RUNS
    local outb = y:nbytes()
    y:free()
    print(string.format('{"op": %q, "ms": %.4f, "bytes": %d}', name, dt * 1e3, bytes(outb)))
  end)
  if not ok then print(string.format('{"op": %q, "error": %q}', name, tostring(err))) end
end

local f32, i16, u8 = 4 * N, 2 * N, N
local function plus(inb) return function(outb) return inb + outb end end

bench("ScaleIntensityRange f32->f32", plus(f32), function()
  return ScaleIntensityRange(ct, {a_min = -1000, a_max = 1000, b_min = 0, b_max = 1, clip = true}) end)
bench("ScaleIntensityRange i16->f32", plus(i16), function()
  return ScaleIntensityRange(ct16, {a_min = -1000, a_max = 1000, b_min = 0, b_max = 1, clip = true,
                                    dtype = 'float32'}) end)
bench("Cast i16->f32", plus(i16), function() return Cast(ct16, {dtype = 'float32'}) end)
bench("Cast f32->f16", plus(f32), function() return Cast(ct, {dtype = 'float16'}) end)
bench("Threshold f32->u8", plus(f32), function() return Threshold(unit, {threshold = 0.5}) end)
bench("Sigmoid f32", plus(f32), function() return Sigmoid(ct) end)
bench("NormalizeIntensity f32", plus(f32), function() return NormalizeIntensity(ct) end)
bench("Orientation RAS->LPS f32", plus(f32), function() return Orientation(ct, {axcodes = 'LPS'}) end)
bench("Orientation RAS->SLP f32 (permute)", plus(f32), function() return Orientation(ct, {axcodes = 'SLP'}) end)
bench("SpatialCrop centre half f32", plus(f32 // 8), function()
  return SpatialCrop(ct, {roi_center = {X // 2, Y // 2, Z // 2}, roi_size = {X // 2, Y // 2, Z // 2}}) end)
bench("SpatialPad +16 f32", plus(f32), function()
  return SpatialPad(ct, {spatial_size = {X + 32, Y + 32, Z + 32}}) end)
bench("ScaleByResolution 1.5 mm linear f32", plus(f32), function()
  return ScaleByResolution(ct, {pixdim = {1.5, 1.5, 1.5}, mode = 'linear'}) end)
bench("ScaleByResolution 1.5 mm nearest u8", plus(u8), function()
  return ScaleByResolution(labels, {pixdim = {1.5, 1.5, 1.5}, mode = 'nearest', is_label = true}) end)
bench("Resize half trilinear f32", plus(f32), function()
  return Resize(ct, {spatial_size = {X // 2, Y // 2, Z // 2}, mode = 'trilinear'}) end)
bench("Argmax 1 channel f32->u8", plus(f32), function() return Argmax(ct) end)
bench("Softmax 1 channel f32", plus(f32), function() return Softmax(ct) end)
bench("KeepLargestConnectedComponent u8 (not a streaming kernel)", plus(u8), function()
  return KeepLargestConnectedComponent(labels) end)
