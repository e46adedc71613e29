-- Infer's streamed path (models/src/conv_stream.c, infer_stream.c): a chain of
-- dilated convolutions run slice by slice gives the whole-volume result, as
-- logits and as fused argmax labels, for XYZ and ZYX models; the real
-- brainchop MeshNet (tfjs copy) likewise on a crop of the real T1.
local TESTDIR = arg[0]:match("^(.*/)") or "./"
local tap = dofile(TESTDIR .. "tap.lua")
local lumen = lumen or require "lumen"
local nn = lumen.nn

local seed = 12345
local function rand()
  seed = (seed * 1103515245 + 12345) % 2147483648
  return seed / 2147483648 - 0.5
end

local function rand_list(n, scale)
  local t = {}
  for i = 1, n do t[i] = rand() * scale end
  return t
end

-- 1 -> 4 -> 4 -> 3 channels, dilations 1, 4, 1(k1); ReLU and ELU between.
local function chain(axes)
  local g = nn.graph{inputs = {x = {1, 1, -1, -1, -1}}}
  local function conv(x, cin, cout, k, dil)
    local w = g:constant(nil, {data = rand_list(cout * cin * k * k * k, 0.6),
                               shape = {cout, cin, k, k, k}})
    local b = g:constant(nil, {data = rand_list(cout, 0.2), shape = {cout}})
    return g:conv(x, {weight = w, bias = b, kernel = k, dilation = dil, pad = dil * (k - 1) // 2})
  end
  local h = g:relu(conv(g.x, 1, 4, 3, 1))
  h = g:elu(conv(h, 4, 4, 3, 4))
  g:output(conv(h, 4, 3, 1, 1))
  return g:build{axes = axes}
end

local function image(nx, ny, nz)
  local x = lumen.zeros({1, nx, ny, nz}, "float32")
  for i = 0, nx - 1 do
    for j = 0, ny - 1 do
      for k = 0, nz - 1 do x:set(0, i, j, k, rand()) end
    end
  end
  return x
end

local function max_diff(a, b)
  local s = a:shape()
  local m = 0
  for c = 0, s[1] - 1 do
    for i = 0, s[2] - 1 do
      for j = 0, s[3] - 1 do
        for k = 0, s[4] - 1 do
          local d = math.abs(a:get(c, i, j, k) - b:get(c, i, j, k))
          if d > m then m = d end
        end
      end
    end
  end
  return m
end

for _, axes in ipairs({"XYZ", "ZYX"}) do
  tap.test("streamed chain equals the whole-volume run (" .. axes .. ")", function(t)
    local m <close> = chain(axes)
    local x <close> = image(11, 9, 13)
    local whole <close> = Infer(m, x, {stream = "never"})
    local streamed <close> = Infer(m, x, {stream = "always"})
    t:same(streamed:shape(), {3, 11, 9, 13})
    t:eq(streamed:dtype(), "float32")
    t:ok(max_diff(whole, streamed) < 1e-5, "logits agree")
    local lab_whole <close> = Argmax(whole)
    local lab <close> = Infer(m, x, {stream = "always", argmax = true})
    t:same(lab:shape(), {1, 11, 9, 13})
    t:eq(lab:dtype(), "uint8")
    t:eq(max_diff(lab, lab_whole), 0)
    local lab2 <close> = Infer(m, x, {stream = "never", argmax = true})
    t:eq(max_diff(lab2, lab_whole), 0)
  end)
end

tap.test("stream options are checked", function(t)
  local m <close> = chain("XYZ")
  local x <close> = image(4, 4, 4)
  t:raises("option 'stream'", function() return Infer(m, x, {stream = "sometimes"}) end)
end)

tap.test("a non-chain cannot be forced to stream", function(t)
  local g = nn.graph{inputs = {x = {1, 1, -1, -1, -1}}}
  local w = g:constant(nil, {data = {1}, shape = {1, 1, 1, 1, 1}})
  local h = g:conv(g.x, {weight = w})
  g:output(g:add(h, h))
  local m <close> = g:build{}
  local x <close> = image(4, 4, 4)
  t:raises("cannot stream", function() return Infer(m, x, {stream = "always"}) end)
  local y <close> = Infer(m, x)   -- 'auto' runs it whole
  t:same(y:shape(), {1, 4, 4, 4})
end)

tap.test("brainchop MeshNet (tfjs) streamed on a crop of the real T1", function(t)
  local model_json = t:data("models/model5_gw_ae/model.json")
  local t1 = t:data("mri/brainchop_t1_crop.nii.gz")
  local m <close> = LoadModel(model_json)
  local img <close> = LoadNifti{path = t1}
  local x <close> = ConvertToChannelsFirst(img)
  local c <close> = SpatialCrop(x, {roi_start = {100, 90, 100}, roi_end = {140, 124, 132}})
  local f <close> = ScaleIntensityRange(c, {a_min = 0, a_max = 255, b_min = 0, b_max = 1})
  local whole <close> = Infer(m, f, {stream = "never"})
  local streamed <close> = Infer(m, f, {stream = "always"})
  t:ok(max_diff(whole, streamed) < 1e-4, "logits agree")
  local lab_whole <close> = Argmax(whole)
  local lab <close> = Infer(m, f, {argmax = true, stream = "always"})
  t:eq(max_diff(lab, lab_whole), 0)
end)

tap.run()
