-- AIAA config import (lua/lib/aiaa_config.lua, docs/aiaa-config.md): the
-- verbatim spleen config of aiaa-api.md 3.1 converts and runs; a v2 config
-- for the demo model gives the labels of the hand-written pipeline with the
-- same steps; unmapped transforms are rejected all at once; `lumen
-- convert-aiaa` prints a pipeline that loads and runs; the extreme points
-- against a brute-force scan; an annotation model crops around the points
-- and pastes its mask back.
--
-- arg[1]: the lumen executable; arg[2]: the source root (models/demo_ct_unet).
local TESTDIR = arg[0]:match("^(.*/)") or "./"
local tap = dofile(TESTDIR .. "tap.lua")
local lumen = lumen or require "lumen"
local LUMEN, SRC = arg[1], arg[2]

-- The verbatim v2 example (fzbuzz/Clara-Train-Spleen config/config_aiaa.json).
local SPLEEN = [[
{ "version": "2", "type": "segmentation", "labels": ["spleen"],
  "description": "A pre-trained model for volumetric (3D) segmentation of the spleen from CT image",
  "pre_transforms": [
    {"name": "LoadNifti", "args": {"fields": "image"}},
    {"name": "ConvertToChannelsFirst", "args": {"fields": "image"}},
    {"name": "ScaleByResolution", "args": {"fields": "image", "target_resolution": [1.0, 1.0, 1.0]}},
    {"name": "ScaleIntensityRange", "args": {"fields": "image", "a_min": -57, "a_max": 164, "b_min": 0.0, "b_max": 1.0, "clip": true}}
  ],
  "inference": {
    "image": "image", "scanning_window": true, "batch_size": 3, "roi": [160, 160, 160],
    "tf": {"input_nodes": {"image": "NV_MODEL_INPUT"}, "output_nodes": {"model": "NV_MODEL_OUTPUT"}},
    "trtis": {"input_channels": {"image": 1}, "output_channels": {"model": 2}, "gpu_instance_count": 1, "max_batch_size": 8}
  },
  "post_transforms": [
    {"name": "ArgmaxAcrossChannels", "args": {"fields": "model"}},
    {"name": "FetchExtremePoints", "args": {"image_field": "image", "label_field": "model", "points": "points"}},
    {"name": "CopyProperties", "args": {"fields": ["model"], "from_field": "image", "properties": ["affine"]}},
    {"name": "RestoreOriginalShape", "args": {"field": "model", "src_field": "image", "is_label": true}}
  ],
  "writer": {"name": "WriteNifti", "args": {"field": "model", "dtype": "uint8"}}
}
]]

-- A v2 config for models/demo_ct_unet: 3 mm, window -57..164, 48^3 windows.
local DEMO = [[
{ "version": "2", "type": "segmentation",
  "labels": ["liver", "spleen", "kidney", "stomach", "urinary_bladder"],
  "description": "demo CT U-Net behind a Clara config",
  "pre_transforms": [
    {"name": "ai4med.components.transforms.LoadNifti", "args": {"fields": "image"}},
    {"name": "ConvertToChannelsFirst", "args": {"fields": "image"}},
    {"name": "ScaleByResolution", "args": {"fields": "image", "target_resolution": [3.0, 3.0, 3.0]}},
    {"name": "ScaleIntensityRange", "args": {"fields": "image", "a_min": -57, "a_max": 164, "b_min": 0.0, "b_max": 1.0, "clip": true}}
  ],
  "inference": {"image": "image", "scanning_window": true, "batch_size": 2, "roi": [48, 48, 48],
                "name": "TRTISInference", "something_new": {"tolerated": true}},
  "post_transforms": [
    {"name": "ArgmaxAcrossChannels", "args": {"fields": "model"}},
    {"name": "CopyProperties", "args": {"fields": ["model"], "from_field": "image", "properties": ["affine"]}},
    {"name": "RestoreOriginalShape", "args": {"field": "model", "src_field": "image", "is_label": true}}
  ],
  "writer": {"name": "WriteNifti", "args": {"field": "model", "dtype": "uint8"}}
}
]]

-- x (1, 1, X, Y, Z) -> y = (x, 0.5 - x): class 1 where x < 0.25.
local POINTWISE = [[
{"name": "pointwise", "opset": 17,
 "inputs": [{"name": "x", "shape": [-1, 1, -1, -1, -1], "dtype": "float32"}],
 "outputs": ["y"],
 "nodes": [{"op": "Conv", "name": "conv", "inputs": ["x", "w", "b"], "outputs": ["y"],
            "attrs": {"kernel_shape": [1, 1, 1]}}],
 "weights": [{"name": "w", "dtype": "float32", "shape": [2, 1, 1, 1, 1], "data": [1, -1]},
             {"name": "b", "dtype": "float32", "shape": [2], "data": [0, 0.5]}]}
]]

-- An annotation network: (image, points channel) -> 3x3x3 convolution
-- with seeded pseudo-random weights, plus a strong 1x1x1 pull of the points
-- channel into class 1, so the mask lies around the points.
local function annotation_graph()
  local state = 12345
  local function rnd()
    state = (state * 1103515245 + 12345) % 2147483648
    return (state / 2147483648 - 0.5) * 0.02
  end
  local w = {}
  for o = 0, 1 do
    for c = 0, 1 do
      for k = 0, 26 do
        local v = rnd()
        if k == 13 and c == 1 then v = v + (o == 1 and 4 or -4) end
        w[#w + 1] = v
      end
    end
  end
  local parts = {}
  for i, v in ipairs(w) do parts[i] = ("%.9g"):format(v) end
  return ([[
{"name": "ann", "opset": 17,
 "inputs": [{"name": "x", "shape": [1, 2, -1, -1, -1], "dtype": "float32"}],
 "outputs": ["y"],
 "nodes": [{"op": "Conv", "name": "conv", "inputs": ["x", "w", "b"], "outputs": ["y"],
            "attrs": {"kernel_shape": [3, 3, 3], "pads": [1, 1, 1, 1, 1, 1]}}],
 "weights": [{"name": "w", "dtype": "float32", "shape": [2, 2, 3, 3, 3], "data": [%s]},
             {"name": "b", "dtype": "float32", "shape": [2], "data": [0, -1]}]}
]]):format(table.concat(parts, ", "))
end

local ANNOTATION = [[
{ "version": "3", "type": "annotation", "labels": ["spleen"],
  "description": "DEXTR3D-style annotation test model",
  "padding": 12, "roi": [32, 32, 32], "sigma": 2,
  "pre_transforms": [
    {"name": "LoadNifti", "args": {"fields": "image"}},
    {"name": "ConvertToChannelsFirst", "args": {"fields": "image"}},
    {"name": "ScaleIntensityRange", "args": {"fields": "image", "a_min": -57, "a_max": 164, "b_min": 0.0, "b_max": 1.0, "clip": true}},
    {"name": "AddExtremePointsChannel", "args": {"image_field": "image", "label_field": "label", "sigma": 2, "rescale_min": -1.0, "rescale_max": 1.0}}
  ],
  "inference": {"image": "image", "name": "TRTISInference"},
  "post_transforms": [
    {"name": "ArgmaxAcrossChannels", "args": {"fields": "model"}}
  ],
  "writer": {"name": "WriteNifti", "args": {"field": "model", "dtype": "uint8"}}
}
]]

local function write(path, text)
  local f = assert(io.open(path, "wb"))
  f:write(text)
  f:close()
end

local function copy(from, to)
  local f = assert(io.open(from, "rb"))
  write(to, f:read("a"))
  f:close()
end

-- Lines of `text` that contain `needle` (plain).
local function has(text, needle)
  return text:find(needle, 1, true) ~= nil
end

local function count_diff(a, b)
  local va, vb = a:values(), b:values()
  local n = 0
  for i = 1, #va do
    if va[i] ~= vb[i] then n = n + 1 end
  end
  return n, #va
end

tap.test("spleen config: the generated text has the ops with the config's numbers", function(t)
  local src = lumen.aiaa_pipeline_source(lumen.json_decode(SPLEEN))
  local want = {
    'if image:layout():sub(1, 1) ~= "C" then image = ConvertToChannelsFirst(image) end',
    'ScaleByResolution(image, {pixdim = {1.0, 1.0, 1.0}, mode = "bilinear"})',
    'ScaleIntensityRange(image, {a_min = -57, a_max = 164, b_min = 0.0, b_max = 1.0, clip = true})',
    'local model = SlidingWindowInfer(net, image, {roi = {160, 160, 160}, '
      .. 'sw_batch_size = opts.sw_batch_size or lumen.aiaa.batch_size(net, 3)',
    'model = swap(model, Argmax(model))',
    'result["points"] = lumen.aiaa.extreme_points(model, img)',
    'model = swap(model, RestoreOriginalShape(model, image, {is_label = true}))',
    'model = swap(model, Cast(model, {dtype = "uint8"}))',
    'return model, result',
  }
  local last = 0
  for _, w in ipairs(want) do
    local at = src:find(w, 1, true)
    t:ok(at, "missing: " .. w)
    t:ok(at > last, "out of order: " .. w)
    last = at
  end
  t:ok(not has(src, "LoadNifti("), "LoadNifti is the server's")
  t:ok(has(src, "CopyProperties"), "CopyProperties is named in a comment")
  t:ok(has(src, "-- labels: 1 = spleen"))
end)

tap.test("spleen config runs: labels on the input grid, points of the label", function(t)
  local net <close> = lumen.load_graph(POINTWISE, "/tmp")
  local pipe = load(lumen.aiaa_pipeline_source(lumen.json_decode(SPLEEN)), "=spleen")(nil, net)
  local img <close> = Phantom{shape = {48, 40, 8}, spacing = {8, 8, 8}, noise = 0}
  local labels <close>, params = pipe.infer(img)
  t:same(labels:shape(), {1, 48, 40, 8})
  t:eq(labels:dtype(), "uint8")
  t:same(labels:affine(), img:affine())
  -- class 1 where the windowed intensity is below 0.25 (HU < -1.75): the
  -- air and fat of the phantom; the 1 mm round trip moves only borders
  local vals, hu = labels:values(), img:values()
  local agree, ones = 0, 0
  for i = 1, #vals do
    if vals[i] == ((hu[i] < -1.75) and 1 or 0) then agree = agree + 1 end
    ones = ones + vals[i]
  end
  t:ok(ones > 0 and ones < #vals, "both classes present")
  t:ok(agree >= 0.97 * #vals, ("label agrees with the threshold on %d of %d voxels"):format(agree, #vals))
  t:eq(#params.points, 6)
  for _, p in ipairs(params.points) do
    t:eq(#p, 3)
    for d = 1, 3 do t:ok(p[d] >= 0 and p[d] < ({48, 40, 8})[d], "point inside the image") end
  end
end)

tap.test("equivalence: load_aiaa_package of a v2 config = the hand-written pipeline", function(t)
  local onnx = SRC .. "/models/demo_ct_unet/model.onnx"
  if lumen.fs.stat(onnx) ~= "file" then t:skip("no " .. onnx) end
  local dir = t:tmpdir() .. "/clara_demo"
  assert(lumen.fs.mkdir(dir))
  write(dir .. "/config_aiaa.json", DEMO)
  copy(onnx, dir .. "/model.onnx")
  local pkg <close> = lumen.load_aiaa_package(dir)
  t:eq(pkg.metadata.name, "clara_demo")
  t:eq(pkg.metadata.type, "segmentation")
  t:eq(pkg.metadata.version, "2")
  t:same(pkg.metadata.labels, {"liver", "spleen", "kidney", "stomach", "urinary_bladder"})
  t:eq(pkg.metadata.description, "demo CT U-Net behind a Clara config")
  t:eq(pkg.metadata.padding, nil)

  local img <close> = Phantom{shape = {56, 40, 36}, spacing = {6, 6, 6}, seed = 7}
  local got <close>, params = pkg.infer(img)
  t:same(params, {})

  local x <close> = ConvertToChannelsFirst(img)
  local iso <close> = ScaleByResolution(x, {pixdim = {3, 3, 3}, mode = "bilinear"})
  local norm <close> = ScaleIntensityRange(iso, {a_min = -57, a_max = 164, b_min = 0, b_max = 1,
                                                 clip = true})
  local logits <close> = SlidingWindowInfer(pkg.model, norm, {roi = {48, 48, 48}, sw_batch_size = 1,
                                                              overlap = 0.25, mode = "constant"})
  local am <close> = Argmax(logits)
  local back <close> = RestoreOriginalShape(am, norm, {is_label = true})
  local want <close> = Cast(back, {dtype = "uint8"})
  t:same(got:shape(), want:shape())
  local diff, n = count_diff(got, want)
  t:eq(diff, 0, ("voxels that differ of %d"):format(n))
  local s = got:stats()
  t:ok(s.max >= 1, "the network found organs")
end)

tap.test("unmapped transforms: one error naming each and its position", function(t)
  local cfg = lumen.json_decode(SPLEEN)
  table.insert(cfg.pre_transforms, 3, {name = "my.module.Foo", args = {}})
  table.insert(cfg.post_transforms, {name = "Bar"})
  table.insert(cfg.post_transforms, {name = "SplitBasedOnLabel", args = {field = "model"}})
  local ok, err = pcall(lumen.aiaa_pipeline_source, cfg)
  t:ok(not ok)
  err = tostring(err)
  t:ok(has(err, "config_aiaa.json: pre_transforms[2]: unknown transform 'my.module.Foo'"), err)
  t:ok(has(err, "config_aiaa.json: post_transforms[4]: unknown transform 'Bar'"), err)
  t:ok(has(err, "config_aiaa.json: post_transforms[5]: SplitBasedOnLabel"), err)
  -- a module.Class name of a known transform is accepted
  cfg = lumen.json_decode(SPLEEN)
  cfg.post_transforms[1].name = "ai4med.components.transforms.ArgmaxAcrossChannels"
  t:ok(has(lumen.aiaa_pipeline_source(cfg), "Argmax(model)"))
  -- a field no earlier step sets
  cfg = lumen.json_decode(SPLEEN)
  cfg.pre_transforms[4].args.fields = "label"
  t:raises("pre_transforms%[3%]: field 'label' is not set by any earlier step",
           lumen.aiaa_pipeline_source, cfg)
  cfg = lumen.json_decode(SPLEEN)
  cfg.pre_transforms[3].args.target_resolution = nil
  t:raises("pre_transforms%[2%]: ScaleByResolution needs 'target_resolution'",
           lumen.aiaa_pipeline_source, cfg)
  t:raises("No such file", lumen.aiaa_pipeline_source, "/nonexistent/config_aiaa.json")
end)

tap.test("lumen convert-aiaa prints a pipeline that loads and runs", function(t)
  local dir = t:tmpdir()
  write(dir .. "/config_aiaa.json", SPLEEN)
  local p = assert(io.popen(("%q convert-aiaa %q"):format(LUMEN, dir .. "/config_aiaa.json")))
  local text = p:read("a")
  t:ok(p:close(), "convert-aiaa exits 0")
  t:ok(has(text, "ScaleByResolution(image, {pixdim = {1.0, 1.0, 1.0}"), text)
  local net <close> = lumen.load_graph(POINTWISE, "/tmp")
  local pipe = assert(load(text, "=convert-aiaa"))(nil, net)
  local img <close> = Phantom{shape = {40, 32, 6}, spacing = {9, 9, 9}, noise = 0}
  local a <close>, pa = pipe.infer(img)
  local ref = load(lumen.aiaa_pipeline_source(lumen.json_decode(SPLEEN)), "=ref")(nil, net)
  local b <close>, pb = ref.infer(img)
  t:eq((count_diff(a, b)), 0)
  t:same(pa, pb)
  -- errors go to stderr with exit status 1
  write(dir .. "/bad.json", '{"pre_transforms": [{"name": "Nope"}]}')
  local q = assert(io.popen(("%q convert-aiaa %q 2>&1"):format(LUMEN, dir .. "/bad.json")))
  local out = q:read("a")
  t:ok(not q:close(), "exit status 1")
  t:ok(has(out, "pre_transforms[0]: unknown transform 'Nope'"), out)
end)

-- Brute force: for each axis the first voxel in C order with the smallest,
-- then the largest coordinate.
local function brute_extremes(label)
  local sh = label:shape()
  local vals = label:values()
  local X, Y, Z = sh[2], sh[3], sh[4]
  local best = {}
  local i = 0
  for x = 0, X - 1 do
    for y = 0, Y - 1 do
      for z = 0, Z - 1 do
        i = i + 1
        if vals[i] ~= 0 then
          local p = {x, y, z}
          for d = 1, 3 do
            if not best[2 * d - 1] or p[d] < best[2 * d - 1][d] then best[2 * d - 1] = p end
            if not best[2 * d] or p[d] > best[2 * d][d] then best[2 * d] = p end
          end
        end
      end
    end
  end
  return best
end

tap.test("extreme points: min and max along each axis, first in C order", function(t)
  local ct, lab <close> = Phantom{shape = {30, 24, 20}, spacing = {10, 10, 10}, noise = 0}
  ct:free()
  local x <close> = ConvertToChannelsFirst(lab)
  -- the spleen (label 1) only, on the phantom's 10 mm grid
  local mask <close> = Threshold(x, {threshold = 1})
  local le <close> = Threshold(x, {threshold = 2})
  local mv, lv = mask:values(), le:values()
  local n, k = 0, 0
  for i = 0, 29 do
    for j = 0, 23 do
      for l = 0, 19 do
        k = k + 1
        if lv[k] ~= 0 then
          mask:set(0, i, j, l, 0)
        elseif mv[k] ~= 0 then
          n = n + 1
        end
      end
    end
  end
  t:ok(n > 10, "the spleen has voxels")
  t:same(lumen.aiaa.extreme_points(mask, nil, "lua"), brute_extremes(mask))
  if lumen.ExtremePoints then t:same(lumen.aiaa.extreme_points(mask), brute_extremes(mask)) end
  -- mapped onto a grid of half the spacing: the same world positions
  local fine <close> = ScaleByResolution(mask, {pixdim = {5, 5, 5}, is_label = true})
  local pts = lumen.aiaa.extreme_points(mask, fine)
  for i, p in ipairs(brute_extremes(mask)) do
    t:same(pts[i], {p[1] * 2, p[2] * 2, p[3] * 2})
  end
  local empty <close> = lumen.zeros({1, 4, 4, 4}, "uint8")
  t:same(lumen.aiaa.extreme_points(empty), {})
  t:same(lumen.aiaa.extreme_points(empty, nil, "lua"), {})
end)

tap.test("annotation: points in, a mask of the full image out, nothing outside the crop", function(t)
  if not lumen.AddExtremePointsChannel then t:skip("the op AddExtremePointsChannel is not registered") end
  local net <close> = lumen.load_graph(annotation_graph(), "/tmp")
  local dir = t:tmpdir() .. "/clara_ann"
  assert(lumen.fs.mkdir(dir))
  write(dir .. "/config_aiaa.json", ANNOTATION)
  local pkg <close> = lumen.load_aiaa_package(dir, {model = net})
  t:eq(pkg.metadata.type, "annotation")
  t:eq(pkg.metadata.padding, 12)
  t:same(pkg.metadata.roi, {32, 32, 32})
  t:eq(pkg.metadata.sigma, 2)
  t:eq(pkg.metadata.version, "3")
  t:ok(has(pkg.source, "lumen.aiaa.crop_to_roi(image, points, PADDING, ROI, opts.crop)"))
  t:ok(has(pkg.source, "AddExtremePointsChannel(image, {points = lumen.aiaa.map_points(points, img, image), sigma = {2}"))

  local img <close> = Phantom{shape = {64, 56, 40}, spacing = {3, 3, 3}, noise = 0}
  -- six points around the spleen (voxel indices of img)
  local points = {{26, 9, 22}, {38, 11, 23}, {31, 4, 24}, {32, 18, 22}, {31, 11, 14}, {32, 12, 32}}
  local mask <close>, params = pkg.infer(img, {params = {points = points}})
  t:same(mask:shape(), {1, 64, 56, 40})
  t:eq(mask:dtype(), "uint8")
  t:same(mask:affine(), img:affine())
  -- the crop: 12 mm = 4 voxels around the points' box, end inclusive
  local lo, hi = {22, 0, 10}, {42, 22, 36}
  local vals = mask:values()
  local inside, outside, k = 0, 0, 0
  for x = 0, 63 do
    for y = 0, 55 do
      for z = 0, 39 do
        k = k + 1
        if vals[k] ~= 0 then
          if x >= lo[1] and x <= hi[1] and y >= lo[2] and y <= hi[2] and z >= lo[3] and z <= hi[3] then
            inside = inside + 1
          else
            outside = outside + 1
          end
        end
      end
    end
  end
  t:ok(inside > 0, "a mask inside the crop")
  t:eq(outside, 0, "voxels set outside the crop")
  -- each point lies in the mask (the network marks the points' Gaussians)
  for _, p in ipairs(points) do t:eq(mask:get(0, p[1], p[2], p[3]), 1) end
  t:same(params, {})
  t:raises("params.points: missing", pkg.infer, img, {params = {}})
  t:raises("outside the image", pkg.infer, img, {params = {points = {{64, 0, 0}}}})
end)

-- Deepgrow networks: (image, foreground, background) -> class 1 where
-- foreground - background guidance > 0.25 (1x1 convolutions, 3-D and 2-D).
local function deepgrow_graph(dims)
  local spatial = dims == 3 and "-1, -1, -1" or "-1, -1"
  local k = dims == 3 and "1, 1, 1" or "1, 1"
  return ([[
{"name": "dg", "opset": 17,
 "inputs": [{"name": "x", "shape": [1, 3, %s], "dtype": "float32"}],
 "outputs": ["y"],
 "nodes": [{"op": "Conv", "name": "conv", "inputs": ["x", "w", "b"], "outputs": ["y"],
            "attrs": {"kernel_shape": [%s]}}],
 "weights": [{"name": "w", "dtype": "float32", "shape": [2, 3, %s], "data": [0, 0, 0, 0, 1, -1]},
             {"name": "b", "dtype": "float32", "shape": [2], "data": [0, -0.25]}]}
]]):format(spatial, k, k)
end

local function deepgrow_config(dims)
  return ([[
{ "version": "3", "type": "deepgrow", "labels": [], "description": "deepgrow test",
  "padding": 9, "roi": %s, "sigma": 2,
  "pre_transforms": [
    {"name": "ConvertToChannelsFirst", "args": {"fields": "image"}},
    {"name": "ScaleIntensityRange", "args": {"fields": "image", "a_min": -57, "a_max": 164, "b_min": 0.0, "b_max": 1.0, "clip": true}}],
  "inference": {"image": "image", "additional_info": {"deepgrow": "%s"}},
  "post_transforms": [{"name": "ArgmaxAcrossChannels", "args": {"fields": "model"}}],
  "writer": {"name": "WriteNifti", "args": {"field": "model", "dtype": "uint8"}}}
]]):format(dims == 3 and "[24, 24, 24]" or "[32, 32]", dims == 3 and "3D" or "2D")
end

-- Voxels set outside box ({{x0, x1}, ...}, end exclusive), and inside it.
local function outside_inside(mask, box)
  local sh, vals = mask:shape(), mask:values()
  local out, inn, k = 0, 0, 0
  for x = 0, sh[2] - 1 do
    for y = 0, sh[3] - 1 do
      for z = 0, sh[4] - 1 do
        k = k + 1
        if vals[k] ~= 0 then
          if x >= box[1][1] and x < box[1][2] and y >= box[2][1] and y < box[2][2]
             and z >= box[3][1] and z < box[3][2] then
            inn = inn + 1
          else
            out = out + 1
          end
        end
      end
    end
  end
  return out, inn
end

tap.test("deepgrow 3D: clicks in, a mask in the crop it reports", function(t)
  if not lumen.AddExtremePointsChannel then t:skip("the op AddExtremePointsChannel is not registered") end
  local net <close> = lumen.load_graph(deepgrow_graph(3), "/tmp")
  local pipe = load(lumen.aiaa_pipeline_source(lumen.json_decode(deepgrow_config(3))), "=dg3")(nil, net)
  local img <close> = Phantom{shape = {64, 56, 40}, spacing = {3, 3, 3}, noise = 0}
  local mask <close>, params = pipe.infer(img, {params = {
    foreground = {{30, 10, 20}, {34, 12, 24}}, background = {{40, 14, 20}}}})
  t:same(mask:shape(), {1, 64, 56, 40})
  -- 9 mm = 3 voxels around the clicks' box, end exclusive
  t:same(params.crop, {{27, 44}, {7, 18}, {17, 28}})
  local out, inn = outside_inside(mask, params.crop)
  t:eq(out, 0, "voxels set outside the crop")
  t:ok(inn > 0)
  t:eq(mask:get(0, 30, 10, 20), 1, "at a foreground click")
  t:eq(mask:get(0, 40, 14, 20), 0, "at the background click")
  -- no background clicks: a zero background channel
  local m2 <close>, p2 = pipe.infer(img, {params = {foreground = {{30, 10, 20}}, background = {}}})
  t:same(p2.crop, {{27, 34}, {7, 14}, {17, 24}})
  t:eq(m2:get(0, 30, 10, 20), 1)
  t:raises("params.foreground: missing", pipe.infer, img, {params = {background = {{1, 1, 1}}}})
end)

tap.test("deepgrow 2D: the slice of current_point, given as [x,y,z] or [[x,y,z]]", function(t)
  if not lumen.AddExtremePointsChannel then t:skip("the op AddExtremePointsChannel is not registered") end
  local net <close> = lumen.load_graph(deepgrow_graph(2), "/tmp")
  local pipe = load(lumen.aiaa_pipeline_source(lumen.json_decode(deepgrow_config(2))), "=dg2")(nil, net)
  local img <close> = Phantom{shape = {64, 56, 40}, spacing = {3, 3, 3}, noise = 0}
  local fg, bg = {{30, 10, 20}, {34, 12, 20}, {31, 11, 25}}, {{40, 14, 20}}
  local a <close>, pa = pipe.infer(img, {params = {foreground = fg, background = bg,
                                                   current_point = {{34, 12, 20}}}})
  local b <close>, pb = pipe.infer(img, {params = {foreground = fg, background = bg,
                                                   current_point = {34, 12, 20}}})
  t:same(pa.crop, {{27, 44}, {7, 18}, {20, 21}}, "the click on slice 25 is not used")
  t:same(pb, pa)
  t:eq((count_diff(a, b)), 0)
  local out, inn = outside_inside(a, pa.crop)
  t:eq(out, 0, "voxels set outside the slice's crop")
  t:ok(inn > 0)
  t:eq(a:get(0, 30, 10, 20), 1)
  t:eq(a:get(0, 40, 14, 20), 0)
  t:raises("no click on the slice", pipe.infer, img, {params = {foreground = {{30, 10, 20}},
                                                                 current_point = {30, 10, 21}}})
end)

tap.run()
