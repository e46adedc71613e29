-- lumen.nn (lua/lib/nn.lua): the graph builder's JSON (decoded back and
-- checked field by field), its argument errors, nn.meshnet from the real
-- model5_gw_ae safetensors config, and, where lumen.load_graph exists, the
-- built networks run: a hand-checked tiny net, and the MeshNet (safetensors)
-- against the tfjs copy of the same model on a small volume.
local TESTDIR = arg[0]:match("^(.*/)") or "./"
local tap = dofile(TESTDIR .. "tap.lua")
local lumen = lumen or require "lumen"
local nn = lumen.nn

tap.test("graph JSON round trip", function(t)
  local g = nn.graph{inputs = {x = {1, 2, -1, -1, -1}}}
  t:eq(g.x, "x")
  local h = g:conv(g.x, {weight = "w0", bias = "b0", dilation = 2, pad = 2, name = "c0"})
  h = g:elu(g:instance_norm(h, {channels = 3}))
  local u = g:upsample(g:max_pool(h, {kernel = 2}), 2)
  local y = g:output(g:concat({u, h}, 1))
  local doc = lumen.json_decode(g:json({"a.safetensors", "b.safetensors"}))
  t:same(doc.inputs, {{name = "x", shape = {1, 2, -1, -1, -1}, dtype = "float32"}})
  t:same(doc.outputs, {y})
  t:eq(doc.producer, "lumen.nn")
  local ops = {}
  for i, n in ipairs(doc.nodes) do ops[i] = n.op end
  t:same(ops, {"Conv", "InstanceNormalization", "Elu", "MaxPool", "Resize", "Concat"})
  local conv = doc.nodes[1]
  t:eq(conv.name, "c0")
  t:same(conv.inputs, {"x", "w0", "b0"})
  t:same(conv.attrs, {dilations = {2, 2, 2}, pads = {2, 2, 2, 2, 2, 2}})
  t:same(doc.nodes[3].attrs, {alpha = 1})
  t:same(doc.nodes[4].attrs, {kernel_shape = {2, 2, 2}, strides = {2, 2, 2}})
  local rs = doc.nodes[5]
  t:eq(rs.inputs[2], "")   -- roi left out
  t:eq(rs.attrs.mode, "nearest")
  t:eq(doc.nodes[6].attrs.axis, 1)
  -- files first, then the inline constants (norm scale, bias, resize scales)
  t:eq(doc.weights[1], "a.safetensors")
  t:eq(doc.weights[2], "b.safetensors")
  t:eq(#doc.weights, 5)
  t:same(doc.weights[3].data, {1, 1, 1})
  t:same(doc.weights[5].data, {1, 1, 2, 2, 2})
  t:eq(doc.weights[5].name, rs.inputs[3])
  -- every value is produced once; names are unique
  local seen = {x = true}
  for _, n in ipairs(doc.nodes) do
    for _, o in ipairs(n.outputs) do
      t:ok(not seen[o], "value " .. o .. " produced twice")
      seen[o] = true
    end
  end
  -- the text is deterministic
  t:eq(g:json({"a.safetensors", "b.safetensors"}), g:json({"a.safetensors", "b.safetensors"}))
end)

tap.test("g:node for any op, several outputs, named outputs, constants", function(t)
  local g = nn.graph{inputs = {{name = "a", shape = {2, 3}}, {name = "b", shape = {2, 3}}}}
  local s = g:node("Add", {g.a, g.b})
  local p, q = g:node("Split", {s}, {axis = 1, split = {1, 2}}, {outputs = 2})
  local k = g:constant("k", {data = {0.5}, shape = {1}})
  local m = g:node("Mul", {p, k}, nil, {outputs = {"prod"}, name = "scale"})
  g:output(m, q)
  local doc = lumen.json_decode(g:json())
  t:same(doc.outputs, {"prod", q})
  t:eq(#doc.inputs, 2)
  t:eq(doc.nodes[2].op, "Split")
  t:eq(#doc.nodes[2].outputs, 2)
  t:same(doc.nodes[2].attrs, {axis = 1, split = {1, 2}})
  t:eq(doc.nodes[3].name, "scale")
  t:same(doc.weights, {{name = "k", data = {0.5}, shape = {1}, dtype = "float32"}})
  t:ok(s ~= p and p ~= q)
end)

tap.test("argument errors", function(t)
  t:raises("field 'inputs'", nn.graph, {})
  local g = nn.graph{inputs = {x = {1, 1, 4}}}
  t:raises("weight = name", g.conv, g, g.x, {bias = "b"})
  t:raises("op name expected", g.node, g, nil, {g.x})
  t:raises("value name", g.relu, g, 42)
  t:raises("no outputs", g.json, g)
  t:raises("is taken", g.constant, g, "x", {data = {1}})
  t:raises("pad: 1 or 2 values", g.conv, g, g.x, {weight = "w", pad = {1, 2, 3}})
  t:raises("non%-empty 'layers'", nn.meshnet, {layers = {}})
  t:raises("field 'dilation'", nn.meshnet, {layers = {{in_channels = 1, kernel_size = 3,
                                                          padding = 1, stride = 1}}})
end)

local function read_json(path)
  local f = assert(io.open(path, "rb"))
  local text = f:read("a")
  f:close()
  return lumen.json_decode(text)
end

tap.test("nn.meshnet from the model5 safetensors config", function(t)
  local dir = t:data("models/model5_gw_ae")
  local cfg = read_json(dir .. "/model5_gw_ae_safetensors_config.json")
  local g = nn.meshnet(cfg)
  local doc = lumen.json_decode(g:json("model5_gw_ae.safetensors"))
  local convs, relus = {}, 0
  for _, n in ipairs(doc.nodes) do
    if n.op == "Conv" then convs[#convs + 1] = n end
    if n.op == "Relu" then relus = relus + 1 end
  end
  t:eq(#convs, #cfg.layers)
  t:eq(relus, #cfg.layers - 1)
  for i, c in ipairs(convs) do
    local l = cfg.layers[i]
    t:eq(c.inputs[2], ("model.%d.weight"):format(2 * (i - 1)))
    t:eq(c.inputs[3], ("model.%d.bias"):format(2 * (i - 1)))
    t:same(c.attrs.dilations, {l.dilation, l.dilation, l.dilation})
    t:same(c.attrs.pads, {l.padding, l.padding, l.padding, l.padding, l.padding, l.padding})
    t:same(c.attrs.kernel_shape, {l.kernel_size, l.kernel_size, l.kernel_size})
  end
  t:same(doc.outputs, {"output"})
  t:same(doc.inputs[1].shape, {1, 1, -1, -1, -1})
  t:same(doc.weights, {"model5_gw_ae.safetensors"})
end)

-- A little volume, (1, X, Y, Z), values in [0, 1).
local function volume(nx, ny, nz)
  local x = lumen.zeros({1, nx, ny, nz}, "float32")
  local r = 7
  for i = 0, nx - 1 do
    for j = 0, ny - 1 do
      for k = 0, nz - 1 do
        r = (r * 1103515245 + 12345) % 2147483648
        x:set(0, i, j, k, r / 2147483648)
      end
    end
  end
  return x
end

tap.test("build: a tiny net with inline weights runs", function(t)
  if not lumen.load_graph then t:skip("lumen.load_graph not in this build") end
  local g = nn.graph{inputs = {x = {1, 1, -1, -1, -1}}}
  local w = g:constant("w", {data = {2, -1}, shape = {2, 1, 1, 1, 1}})
  local b = g:constant("b", {data = {0.5, 0}, shape = {2}})
  g:output(g:relu(g:conv(g.x, {weight = w, bias = b})))
  local m <close> = g:build()
  local x <close> = volume(3, 2, 2)
  local y <close> = Infer(m, x)
  t:same(y:shape(), {2, 3, 2, 2})
  local bad = 0
  for i = 0, 2 do
    for j = 0, 1 do
      for k = 0, 1 do
        local v = x:get(0, i, j, k)
        if math.abs(y:get(0, i, j, k) - math.max(0, 2 * v + 0.5)) > 1e-6 then bad = bad + 1 end
        if y:get(1, i, j, k) ~= 0 then bad = bad + 1 end
      end
    end
  end
  t:eq(bad, 0)
end)

tap.test("build: MeshNet (safetensors) = tfjs model5 on a small volume", function(t)
  if not lumen.load_graph then t:skip("lumen.load_graph not in this build") end
  local dir = t:data("models/model5_gw_ae")
  local cfg = read_json(dir .. "/model5_gw_ae_safetensors_config.json")
  local m <close> = nn.meshnet(cfg):build{weights = "model5_gw_ae.safetensors", base = dir}
  local ref <close> = LoadModel(dir .. "/model.json")
  local x <close> = volume(10, 9, 8)
  local a <close> = Infer(m, x)
  local b <close> = Infer(ref, x)
  t:same(a:shape(), {3, 10, 9, 8})
  t:same(b:shape(), {3, 10, 9, 8})
  local maxdiff, maxabs = 0, 0
  for c = 0, 2 do
    for i = 0, 9 do
      for j = 0, 8 do
        for k = 0, 7 do
          local u, v = a:get(c, i, j, k), b:get(c, i, j, k)
          maxdiff = math.max(maxdiff, math.abs(u - v))
          maxabs = math.max(maxabs, math.abs(v))
        end
      end
    end
  end
  t:ok(maxabs > 0.1, "the output is not trivially zero")
  t:ok(maxdiff <= 1e-5 * maxabs, ("max difference %g (max |out| %g)"):format(maxdiff, maxabs))
  -- the same network as a package would name it: a Lua network file
  local tmp = t:tmpdir()
  local f = assert(io.open(tmp .. "/network.lua", "w"))
  f:write("local dir = ...\n",
          "return lumen.nn.meshnet(dir .. '/model5_gw_ae_safetensors_config.json')\n")
  f:close()
  local m2 <close> = nn.load_network(tmp .. "/network.lua",
                                     {weights = "model5_gw_ae.safetensors", base = dir})
  local c <close> = Infer(m2, x)
  t:eq(c:get(2, 5, 4, 3), a:get(2, 5, 4, 3))
  t:eq(c:get(0, 9, 8, 7), a:get(0, 9, 8, 7))
  -- and in one call, as pipelines/brain_tissue.lua does
  local m3 <close> = nn.meshnet(cfg, {weights = dir .. "/model5_gw_ae.safetensors"})
  t:ok(lumen.ismodel(m3))
  local e <close> = Infer(m3, x)
  t:eq(e:get(1, 3, 2, 1), a:get(1, 3, 2, 1))
  t:cleanup()
end)

tap.test("load_network and read_json errors name the file", function(t)
  t:raises("nothere%.json", nn.read_json, "/nonexistent/nothere.json")
  local tmp = t:tmpdir()
  local f = assert(io.open(tmp .. "/bad.lua", "w"))
  f:write("return 42\n")
  f:close()
  t:raises("bad%.lua must return a lumen%.nn graph", nn.load_network, tmp .. "/bad.lua")
  f = assert(io.open(tmp .. "/bad.json", "w"))
  f:write("{\"layers\": [}")
  f:close()
  t:raises("bad%.json", nn.meshnet, tmp .. "/bad.json")
  t:cleanup()
end)

tap.run()
