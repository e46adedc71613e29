-- Every op called from Lua, with values checked.
local dir = arg[0]:match("^(.*/)") or "./"
local tap = dofile(dir .. "tap.lua")
local test = tap.test

local function vec(values, dtype) return lumen.tensor(values, {#values}, dtype or "float32") end

test("Phantom: geometry, tissue values, determinism", function(t)
  local img <close>, label = Phantom{shape = {48, 40, 40}, spacing = {8, 8, 8}, noise = 0}
  local lab <close> = label
  t:same(img:shape(), {48, 40, 40}, "shape")
  t:eq(img:dtype(), "int16")
  t:eq(lab:dtype(), "uint8")
  t:same(img:spacing(), {8, 8, 8}, "spacing")
  t:eq(img:orientation(), "RAS")
  -- centre voxel ((n-1)/2) at the world origin
  local a = img:affine()
  t:near(a[1][4], -(48 - 1) / 2 * 8, 1e-9, "x origin")
  t:near(a[2][4], -(40 - 1) / 2 * 8, 1e-9, "y origin")
  -- a corner is air outside the body; the liver centre (70, 10, 45) mm is
  -- liver: HU 60, label 5 (TotalSegmentator v2 id)
  t:eq(img:get(0, 0, 0), -1000, "air HU")
  t:eq(lab:get(0, 0, 0), 0, "air label")
  t:eq(img:get(32, 21, 25), 60, "liver HU")
  t:eq(lab:get(32, 21, 25), 5, "liver label")
  local s = img:stats()
  t:eq(s.min, -1000, "min HU")
  t:ok(s.max >= 150, "contrast aorta or bone present")
  local n1 <close> = Phantom{shape = {16, 16, 8}, seed = 3}
  local n2 <close> = Phantom{shape = {16, 16, 8}, seed = 3}
  local n3 <close> = Phantom{shape = {16, 16, 8}, seed = 4}
  t:same(n1:values(), n2:values(), "same seed, same noise")
  t:ok(not (n1:stats().mean == n3:stats().mean and n1:stats().std == n3:stats().std),
       "other seed, other noise")
end)

test("ScaleIntensityRange: window, clip, no clip", function(t)
  local x <close> = vec({-2000, -1000, 0, 500, 1000, 3000}, "int16")
  local y <close> = ScaleIntensityRange(x, {a_min = -1000, a_max = 1000, b_min = 0, b_max = 1, clip = true})
  t:eq(y:dtype(), "float32")
  t:same(y:values(), {0, 0, 0.5, 0.75, 1, 1}, "clipped", 1e-7)
  local z <close> = ScaleIntensityRange(x, {a_min = -1000, a_max = 1000, b_min = 0, b_max = 1})
  t:same(z:values(), {-0.5, 0, 0.5, 0.75, 1, 2}, "unclipped", 1e-7)
  local w <close> = ScaleIntensityRange(x, {a_min = 0, a_max = 1000})
  t:same(w:values(), {-2, -1, 0, 0.5, 1, 3}, "no output affine", 1e-7)
end)

test("ScaleIntensityRangePercentiles maps percentiles to b_min/b_max", function(t)
  local v = {}
  for i = 0, 100 do v[#v + 1] = i end
  local x <close> = vec(v)
  local y <close> = ScaleIntensityRangePercentiles(x, {lower = 10, upper = 90, b_min = 0, b_max = 1, clip = true})
  t:near(y:get(10), 0, 1e-6, "10th percentile")
  t:near(y:get(50), 0.5, 1e-6, "median")
  t:near(y:get(90), 1, 1e-6, "90th percentile")
  t:eq(y:get(100), 1, "clipped")
  t:eq(y:get(0), 0, "clipped low")
end)

test("ConvertToChannelsFirst adds the channel axis, same values", function(t)
  local img <close> = Phantom{shape = {6, 5, 4}, seed = 1}
  local c <close> = ConvertToChannelsFirst(img)
  t:same(c:shape(), {1, 6, 5, 4})
  t:eq(c:layout(), "CXYZ")
  t:same(c:affine(), img:affine(), "affine kept")
  for _, p in ipairs{{0, 0, 0}, {5, 4, 3}, {2, 3, 1}} do
    t:eq(c:get(0, p[1], p[2], p[3]), img:get(p[1], p[2], p[3]), "voxel")
  end
end)

test("Cast truncates toward zero and saturates", function(t)
  local x <close> = vec({1.7, -1.7, 40000, -40000, 12})
  local y <close> = Cast(x, {dtype = "int16"})
  t:eq(y:dtype(), "int16")
  t:same(y:values(), {1, -1, 32767, -32768, 12})
end)

test("Argmax over channels", function(t)
  local x <close> = lumen.tensor({0.1, 0.9, 0.2,
                                  0.5, 0.05, 0.7,
                                  0.4, 0.05, 0.1}, {3, 3})
  local y <close> = Argmax(x)
  t:same(y:shape(), {1, 3}, "keepdim")
  t:eq(y:dtype(), "uint8")
  t:same(y:values(), {1, 0, 1})
  local z <close> = Argmax(x, {axis = 1, keepdim = false})
  t:same(z:shape(), {3})
  t:same(z:values(), {1, 2, 0})
end)

test("Softmax and Sigmoid", function(t)
  local x <close> = lumen.tensor({0, 0, math.log(3), 0}, {2, 2})
  local s <close> = Softmax(x)
  t:same(s:values(), {0.25, 0.5, 0.75, 0.5}, "softmax over axis 0", 1e-6)
  local g <close> = Sigmoid(vec({0, 2, -2}))
  t:same(g:values(), {0.5, 1 / (1 + math.exp(-2)), 1 / (1 + math.exp(2))}, "sigmoid", 1e-6)
end)

test("Threshold: >= by default, > when strict", function(t)
  local x <close> = vec({0.2, 0.5, 0.7})
  local a <close> = Threshold(x)
  t:eq(a:dtype(), "uint8")
  t:same(a:values(), {0, 1, 1})
  local b <close> = Threshold(x, {threshold = 0.5, strict = true})
  t:same(b:values(), {0, 0, 1})
end)

test("SaveNifti / LoadNifti round trip keeps values, dtype and affine", function(t)
  local d = t:tmpdir()
  local img <close> = Phantom{shape = {20, 18, 12}, spacing = {1.5, 2, 3}, seed = 7}
  local saved <close> = SaveNifti(img, {path = d .. "/p.nii.gz"})
  t:eq(saved, img, "SaveNifti passes its input through")
  local back <close>, info = LoadNifti{path = d .. "/p.nii.gz", dtype = "native"}
  t:eq(back:dtype(), "int16")
  t:same(back:shape(), {20, 18, 12})
  t:same(back:affine(), img:affine(), "affine", 1e-6)
  t:same(back:values(), img:values(), "values")
  t:eq(type(info), "table", "results table last")
  t:eq(info.datatype, 4, "NIfTI datatype int16")
  local f <close> = LoadNifti{path = d .. "/p.nii.gz"}
  t:eq(f:dtype(), "float32", "default dtype")
  t:eq(f:stats().mean, back:stats().mean, "same values as float32")
  local plain <close> = SaveNifti(img, {path = d .. "/p.nii"})
  local back2 <close> = LoadNifti{path = d .. "/p.nii", dtype = "native"}
  t:same(back2:values(), img:values(), ".nii values")
end)

test("LoadNifti on a real CT (TotalSegmentator example)", function(t)
  local path = t:data("ct/totalseg_example_ct_sm.nii.gz")
  local img <close>, info = LoadNifti{path = path}
  t:same(img:shape(), {122, 101, 30})
  t:same(img:spacing(), {3, 3, 3}, "spacing", 1e-5)
  local s = img:stats()
  t:eq(s.min, -1100, "HU min (README)")
  t:eq(s.max, 1207, "HU max (README)")
  t:eq(info.sform_code, 2)
end)

test("ToHost keeps a CPU tensor; ToDevice without a GPU fails cleanly", function(t)
  local x <close> = vec({1, 2, 3})
  local h <close> = ToHost(x)
  t:eq(h:device(), "cpu")
  t:same(h:values(), {1, 2, 3})
  if lumen.engine_info().cuda_devices > 0 then t:skip("a GPU is present") end
  local err = t:raises("ToDevice", ToDevice, x, {device = "cuda"})
  t:ok(lumen.is_error(err), "structured error")
  t:eq(err.op, "ToDevice")
end)

tap.run()
