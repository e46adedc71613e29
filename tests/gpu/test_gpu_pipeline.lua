-- The demo CT package's whole pipeline (channels first, orientation, spacing,
-- intensity window, sliding-window U-Net, argmax, restore, cast) on a CUDA
-- device against the same pipeline on the CPU: the input goes to the device
-- once, every step stays there (no host round trip) and the labels agree
-- exactly in float32 and on >= 99.9% of voxels in float16.
-- Exit 77 (skipped) without a CUDA device; the emulated plugin
-- (LUMEN_CUDA_PLUGIN=liblumen_cuda_emu.so) provides one everywhere.
-- arg[1]: the source root.
local TESTDIR = arg[0]:match("^(.*/)") or "./"
local tap = dofile(TESTDIR .. "../lua/tap.lua")
local lumen = lumen or require "lumen"
local ROOT = arg[1]

local info = lumen.engine_info()
if info.cuda_devices == 0 then
  print("1..0 # SKIP " .. info.cuda_status)
  os.exit(77)
end

local function agreement(a, b)
  local va, vb = a:values(), b:values()
  assert(#va == #vb)
  local same = 0
  for i = 1, #va do if va[i] == vb[i] then same = same + 1 end end
  return same / #va, #va - same
end

-- A small body: 2.5 mm voxels resampled to the package's 3 mm, windows of
-- 48^3 with overlap 0.25 over a grid that is not a multiple of them.
local function ct()
  local img, label = Phantom{shape = {72, 60, 40}, spacing = {2.5, 2.5, 2.5}, seed = 3}
  label:free()
  return img
end

tap.test("demo package on cuda: every step on the device, labels equal to the CPU's", function(t)
  local pkg <close> = lumen.load_package(ROOT .. "/models/demo_ct_unet")
  local img <close> = ct()
  local cpu <close> = pkg.infer(img)
  local dev <close> = img:to("cuda")
  local gpu <close> = pkg.infer(dev, {precision = "float32"})
  t:eq(gpu:device(), "cuda:0", "the labels stay on the device")
  t:eq(gpu:dtype(), "uint8")
  local back <close> = gpu:to("cpu")
  t:same(back:shape(), cpu:shape(), "shape")
  t:same(back:affine(), cpu:affine(), "affine")
  local frac, ndiff = agreement(back, cpu)
  t:eq(ndiff, 0, ("float32 labels differ on %d voxels"):format(ndiff))
  -- the phantom's organs are found at all (a pipeline that lost its input
  -- would agree with itself on background only)
  local s = back:stats()
  t:ok(s.max >= 1, "some foreground label")
  t:ok(frac == 1.0)
end)

tap.test("demo package on cuda in float16: >= 99.9% of labels equal", function(t)
  local pkg <close> = lumen.load_package(ROOT .. "/models/demo_ct_unet")
  local img <close> = ct()
  local cpu <close> = pkg.infer(img)
  local dev <close> = img:to("cuda")
  local gpu <close> = pkg.infer(dev, {precision = "float16"})
  local back <close> = gpu:to("cpu")
  local frac, ndiff = agreement(back, cpu)
  t:ok(frac >= 0.999, ("float16 agreement %.5f (%d voxels differ)"):format(frac, ndiff))
end)

tap.run()
