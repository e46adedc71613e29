-- Models from Lua: LoadModel / Infer / model:infer, Model fields, release
-- (free, <close>, the collector), errors, lumen.load_graph, packages and
-- the repository (lumen.model_list, lumen.load_package, `lumen models`,
-- `lumen run PACKAGE IN OUT`).
--
-- The network is a lumen graph with inline weights: x (1, 1, D, H, W) ->
-- Conv 1->2, kernel (2, 1, 1), no padding -> Relu, so
-- y[c, i, j, k] = relu(s_c * (x[i,j,k] + 10 x[i+1,j,k]) + b_c), s = (1, -1),
-- b = (0.5, 0.25).  The first spatial axis the network sees shrinks by one.
--
-- arg[1]: the lumen executable (for the command-line tests).
local TESTDIR = arg[0]:match("^(.*/)") or "./"
local tap = dofile(TESTDIR .. "tap.lua")
local lumen = lumen or require "lumen"
local LUMEN = arg[1]

local GRAPH = [[
{"name": "tiny", "opset": 17,
 "inputs": [{"name": "x", "shape": [1, 1, -1, -1, -1], "dtype": "float32"}],
 "outputs": ["y"],
 "nodes": [
  {"op": "Conv", "name": "conv", "inputs": ["x", "w", "b"], "outputs": ["h"],
   "attrs": {"kernel_shape": [2, 1, 1]}},
  {"op": "Relu", "name": "relu", "inputs": ["h"], "outputs": ["y"]}],
 "weights": [
  {"name": "w", "dtype": "float32", "shape": [2, 1, 2, 1, 1], "data": [1, 10, -1, -10]},
  {"name": "b", "dtype": "float32", "shape": [2], "data": [0.5, 0.25]}]}
]]

local function xval(i, j, k) return (i * 7 + j * 3 + k * 5) % 7 - 3 end

local function expect(c, a, b)
  local s, bias = c == 0 and 1 or -1, c == 0 and 0.5 or 0.25
  return math.max(0, s * (a + 10 * b) + bias)
end

-- x as (1, X, Y, Z) channels first.
local function make_x(nx, ny, nz)
  local x = lumen.zeros({1, nx, ny, nz}, "float32")
  for i = 0, nx - 1 do
    for j = 0, ny - 1 do
      for k = 0, nz - 1 do x:set(0, i, j, k, xval(i, j, k)) end
    end
  end
  return x
end

local function write(path, text)
  local f = assert(io.open(path, "w"))
  f:write(text)
  f:close()
end

-- A package folder dir (inside a t:tmpdir(), removed after the test).
local function package(t, dir, metadata, pipeline)
  assert(lumen.fs.mkdir(dir))
  t.dirs[#t.dirs + 1] = dir
  write(dir .. "/net.json", GRAPH)
  write(dir .. "/metadata.json", metadata)
  if pipeline then write(dir .. "/pipeline.lua", pipeline) end
end

tap.test("load_graph: fields, tostring, free", function(t)
  local m = lumen.load_graph(GRAPH)
  t:ok(lumen.ismodel(m))
  t:eq(m.name, "tiny")
  t:eq(m.axes, "XYZ")
  t:eq(#m.inputs, 1)
  t:eq(m.inputs[1].name, "x")
  t:same(m.inputs[1].shape, {1, 1, -1, -1, -1})
  t:eq(m.outputs[1].name, "y")
  t:eq(m.metadata.format, "graph")
  t:same(m.labels, {})
  t:eq(tostring(m), "Model tiny (graph, axes XYZ, input x (1, 1, ?, ?, ?), 1 output)")
  t:eq(m:is_released(), false)
  m:free()
  t:eq(m:is_released(), true)
  m:free() -- idempotent
  t:eq(tostring(m), "Model (released)")
  t:raises("released model", function() return m.name end)
  t:raises("released model", function() return Infer(m, lumen.zeros({1, 2, 2, 2})) end)
end)

tap.test("Infer and model:infer: values, grid, axes XYZ", function(t)
  local m <close> = lumen.load_graph(GRAPH)
  local x <close> = make_x(4, 3, 2)
  local y <close> = Infer(m, x)
  t:same(y:shape(), {2, 3, 3, 2}) -- X shrank: the network saw XYZ
  t:eq(y:dtype(), "float32")
  local bad = 0
  for c = 0, 1 do
    for i = 0, 2 do
      for j = 0, 2 do
        for k = 0, 1 do
          local want = expect(c, xval(i, j, k), xval(i + 1, j, k))
          if math.abs(y:get(c, i, j, k) - want) > 1e-5 then bad = bad + 1 end
        end
      end
    end
  end
  t:eq(bad, 0)
  local y2 <close> = m:infer(x)
  t:eq(y2:get(1, 2, 2, 1), y:get(1, 2, 2, 1))
  local y3 <close> = Infer(x, {model = m}) -- the option form
  t:eq(y3:get(0, 1, 1, 1), y:get(0, 1, 1, 1))
end)

tap.test("Infer keeps the affine, layout and trace; ZYX models see the axes reversed",
         function(t)
  local m <close> = lumen.load_graph(GRAPH, nil, {axes = "ZYX"})
  t:eq(m.axes, "ZYX")
  local img <close> = Phantom{shape = {6, 5, 4}}
  local x <close> = ConvertToChannelsFirst(img)
  local y <close> = Infer(m, x)
  t:same(y:shape(), {2, 6, 5, 3}) -- Z shrank
  t:same(y:affine(), x:affine())
  t:eq(y:layout(), x:layout())
  t:eq(#y:trace(), #x:trace())
end)

tap.test("Model errors: positional misuse, options, shapes", function(t)
  local m <close> = lumen.load_graph(GRAPH)
  local x <close> = make_x(3, 2, 2)
  t:raises("missing required option 'model'", function() return Infer(x) end)
  t:raises("option 'model' must be a Model, got string",
           function() return Infer(x, {model = "tiny"}) end)
  t:raises("given twice", function() return Infer(m, x, {model = m}) end)
  local ok, err = pcall(Infer, m, lumen.zeros({2, 2}))
  t:ok(not ok and lumen.is_error(err))
  t:eq(err.code, "LM_ESHAPE")
  t:ok(tostring(err):find("x has 2 dims", 1, true), tostring(err))
  t:raises("unknown option 'foo'", function() return lumen.load_graph(GRAPH, nil, {foo = 1}) end)
  local lerr = t:raises("lumen graph", function() return lumen.load_graph("{}") end)
  t:ok(lumen.is_error(lerr))
end)

tap.test("LoadModel: package fields, labels, errors naming the field", function(t)
  local d = t:tmpdir()
  package(t, d .. "/tiny", [[{"name": "Tiny", "type": "segmentation", "description": "two",
    "labels": {"1": "White Matter", "2": "Grey Matter"}, "weights": "net.json",
    "axes": "ZYX", "spacing": [1, 1, 1], "extra": [1, 2]}]])
  local m <close> = LoadModel(d .. "/tiny")
  t:eq(m.name, "Tiny")
  t:eq(m.axes, "ZYX")
  t:eq(m.labels[1], "White Matter")
  t:eq(m.labels[2], "Grey Matter")
  t:same(m.metadata.extra, {1, 2})
  t:eq(m.metadata.type, "segmentation")
  local m2 <close> = LoadModel{path = d .. "/tiny", axes = "XYZ"}
  t:eq(m2.axes, "XYZ")
  package(t, d .. "/listed", [[{"weights": "net.json", "labels": ["background", "brain"]}]])
  local m3 <close> = LoadModel(d .. "/listed")
  t:eq(m3.labels[0], "background")
  t:eq(m3.labels[1], "brain")
  t:eq(m3.name, "listed")
  package(t, d .. "/bad", [[{"weights": "net.json", "axes": "XZY"}]])
  local ok, err = pcall(LoadModel, d .. "/bad")
  t:ok(not ok and lumen.is_error(err))
  t:eq(err.code, "LM_EINVAL")
  t:ok(tostring(err):find(d .. "/bad/metadata.json: field 'axes'", 1, true), tostring(err))
  t:raises("no such file", function() return LoadModel(d .. "/nothing.onnx") end)
  t:raises("option 'precision' is \"half\"",
           function() return LoadModel{path = d .. "/tiny", precision = "half"} end)
end)

tap.test("Models are collected and freed by <close> inside coroutines", function(t)
  local d = t:tmpdir()
  package(t, d .. "/p", [[{"weights": "net.json"}]])
  local before = lumen.debug.live().models
  local h = spawn(function()
    local m <close> = LoadModel(d .. "/p")
    local x <close> = make_x(3, 2, 2)
    local y <close> = Infer(m, x)
    return y:shape()[2], lumen.debug.live().models
  end)
  local n, during = h:await()
  t:eq(n, 2)
  t:eq(during, before + 1)
  for _ = 1, 3 do
    local m = LoadModel(d .. "/p") -- dropped: the collector frees it
    t:ok(m.name == "p")
  end
  collectgarbage()
  collectgarbage()
  t:eq(lumen.debug.live().models, before)
end)

local PIPELINE = [[
local dir, model = ...
return {
  infer = function(img, opts)
    assert(opts.model and opts.package == dir and opts.metadata.name == "pkg")
    local x <close> = ConvertToChannelsFirst(img)
    local logits <close> = Infer(opts.model, x)
    return Argmax(logits)
  end,
}
]]

tap.test("Packages: model_list, load_package, run_package", function(t)
  local d = t:tmpdir()
  package(t, d .. "/pkg", [[{"name": "pkg", "type": "segmentation", "description": "a test net",
    "labels": {"1": "fg"}, "weights": "net.json"}]], PIPELINE)
  package(t, d .. "/broken", "{not json")
  local list = lumen.model_list(d)
  t:eq(#list, 2)
  t:ok(list[1].error and list[1].error:find("metadata.json", 1, true), tostring(list[1].error))
  t:eq(list[2].name, "pkg")
  t:eq(list[2].labels, 1)
  t:eq(list[2].type, "segmentation")
  t:ok(lumen.model_table(d):find("pkg%s+segmentation%s+1%s+a test net"))

  local pkg <close> = lumen.load_package(d .. "/pkg")
  local img <close> = Phantom{shape = {5, 4, 3}}
  local labels <close> = pkg.infer(img)
  t:same(labels:shape(), {1, 4, 4, 3})
  -- The same through the files, against Infer by hand.
  SaveNifti(img, {path = d .. "/in.nii.gz"})
  lumen.run_package(d .. "/pkg", d .. "/in.nii.gz", d .. "/out.nii.gz")
  local back <close> = LoadNifti{path = d .. "/out.nii.gz", dtype = "native"}
  local s1, s2 = labels:stats(), back:stats()
  t:eq(s1.mean, s2.mean)
  t:raises("must return a table", function()
    package(t, d .. "/nopipe", [[{"weights": "net.json"}]], "return 1")
    return lumen.load_package(d .. "/nopipe")
  end)
end)

tap.test("lumen models DIR and lumen run PACKAGE IN OUT", function(t)
  if not LUMEN or LUMEN == "" then t:skip("no lumen executable given") end
  local d = t:tmpdir()
  package(t, d .. "/pkg", [[{"name": "pkg", "type": "segmentation", "description": "a test net",
    "labels": {"1": "fg"}, "weights": "net.json"}]], PIPELINE)
  local function sh(cmd)
    local p = io.popen(cmd .. " 2>&1")
    local out = p:read("a")
    local ok = p:close()
    return ok, out
  end
  local ok, out = sh(("%q models %q"):format(LUMEN, d))
  t:ok(ok, out)
  t:ok(out:find("pkg%s+segmentation%s+1%s+a test net"), out)
  local img <close> = Phantom{shape = {5, 4, 3}}
  SaveNifti(img, {path = d .. "/in.nii.gz"})
  ok, out = sh(("%q run %q %q %q"):format(LUMEN, d .. "/pkg", d .. "/in.nii.gz", d .. "/a.nii.gz"))
  t:ok(ok, out)
  ok, out = sh(("%q run --models %q pkg %q %q"):format(LUMEN, d, d .. "/in.nii.gz",
                                                        d .. "/b.nii.gz"))
  t:ok(ok, out)
  local a <close> = LoadNifti{path = d .. "/a.nii.gz", dtype = "native"}
  local b <close> = LoadNifti{path = d .. "/b.nii.gz", dtype = "native"}
  t:eq(a:numel(), 4 * 4 * 3)
  t:eq(a:stats().mean, b:stats().mean)
  ok, out = sh(("%q run --models %q nosuch %q %q"):format(LUMEN, d, d .. "/in.nii.gz",
                                                          d .. "/c.nii.gz"))
  t:ok(not ok)
  t:ok(out:find("model 'nosuch' is not in the model repository", 1, true), out)
  ok, out = sh(("%q run %q %q"):format(LUMEN, d .. "/pkg", d .. "/in.nii.gz"))
  t:ok(not ok and out:find("PACKAGE IN OUT", 1, true), out)
end)

-- A safetensors file of float32 tensors {name = {shape, values}}.
local function write_safetensors(path, tensors)
  local names = {}
  for name in pairs(tensors) do names[#names + 1] = name end
  table.sort(names)
  local header, data, off = {}, {}, 0
  for _, name in ipairs(names) do
    local shape, values = tensors[name][1], tensors[name][2]
    local bytes = string.pack("<" .. ("f"):rep(#values), table.unpack(values))
    header[#header + 1] = ('"%s":{"dtype":"F32","shape":[%s],"data_offsets":[%d,%d]}')
        :format(name, table.concat(shape, ","), off, off + #bytes)
    data[#data + 1] = bytes
    off = off + #bytes
  end
  local h = "{" .. table.concat(header, ",") .. "}"
  h = h .. (" "):rep((8 - #h % 8) % 8)
  write(path, string.pack("<I8", #h) .. h .. table.concat(data))
end

local NETWORK = [[
local dir, meta = ...
local g = lumen.nn.graph{inputs = {x = {1, 1, -1, -1, -1}}}
local h = g:conv(g.x, {weight = "conv.weight", bias = "conv.bias", kernel = {2, 1, 1}})
g:output(g:relu(h))
return g
]]

tap.test("Packages with a lumen.nn network and safetensors weights", function(t)
  local d = t:tmpdir()
  local dir = d .. "/nnpkg"
  assert(lumen.fs.mkdir(dir))
  t.dirs[#t.dirs + 1] = dir
  write_safetensors(dir .. "/net.safetensors", {
    ["conv.weight"] = {{2, 1, 2, 1, 1}, {1, 10, -1, -10}},
    ["conv.bias"] = {{2}, {0.5, 0.25}}})
  write(dir .. "/net.lua", NETWORK)
  write(dir .. "/metadata.json", [[{"name": "nn tiny", "network": "net.lua",
    "weights": "net.safetensors", "axes": "ZYX", "labels": {"1": "fg"}}]])
  local m <close> = lumen.load_model(dir)
  t:eq(m.name, "nn tiny")
  t:eq(m.axes, "ZYX")
  t:eq(m.labels[1], "fg")
  t:eq(m.metadata.network, "net.lua")
  local x <close> = make_x(3, 2, 4)
  local y <close> = m:infer(x)
  t:same(y:shape(), {2, 3, 2, 3}) -- ZYX: the last axis shrank
  t:near(y:get(0, 1, 1, 2), expect(0, xval(1, 1, 2), xval(1, 1, 3)), 1e-5)
  t:near(y:get(1, 2, 0, 0), expect(1, xval(2, 0, 0), xval(2, 0, 1)), 1e-5)
  -- The C op cannot run Lua: it says where to go.
  t:raises("lumen.load_package or lumen.load_model", function() return LoadModel(dir) end)
  -- Bad metadata inside the graph JSON names the field.
  t:raises("field 'metadata': field 'axes'", function()
    return lumen.load_graph('{"metadata": {"axes": "Z"}, ' .. GRAPH:sub(2))
  end)
end)

-- The loop keeps turning while a network runs: a ticker task wakes every
-- 5 ms during the forward pass of a real MeshNet (about a second on 64^3).
tap.test("Infer runs off the loop: other tasks progress meanwhile", function(t)
  if lumen.engine_info().synchronous then t:skip("synchronous mode runs every op inline") end
  local onnx = t:data("models/model5_gw_ae/model5_gw_ae.onnx")
  local m <close> = LoadModel(onnx, {axes = "ZYX"})
  local x <close> = lumen.zeros({1, 64, 64, 64})
  local done, ticks_during = false, 0
  local ticker = spawn(function()
    while not done do
      lumen.sleep(0.005)
      if not done then ticks_during = ticks_during + 1 end
    end
  end)
  local runner = spawn(function()
    local y <close> = Infer(m, x)
    done = true
    return y:shape()[1]
  end)
  t:eq(runner:await(), 3)
  ticker:await()
  t:ok(ticks_during >= 3, ("the loop ticked %d times during Infer"):format(ticks_during))
end)

tap.test("help and op_info show the model option", function(t)
  local info = lumen.op_info("Infer")
  t:eq(info.args[1].type, "model")
  t:ok(lumen.describe("Infer"):find("call:    Infer(model, x, {options})", 1, true))
  t:ok(lumen.describe("LoadModel"):find("path", 1, true))
end)

tap.run()
