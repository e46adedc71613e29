-- lumen.nn: build a network in Lua as lumen graph JSON (the format of
-- models/src/graph_json.c: ONNX op names and attributes, weights from
-- safetensors files bound by name) and load it as a Model.
--
--   local nn = lumen.nn
--   local g = nn.graph{inputs = {x = {1, 1, -1, -1, -1}}}
--   local h = g:conv(g.x, {weight = "model.0.weight", bias = "model.0.bias",
--                         dilation = 2, pad = 2})
--   h = g:relu(h)
--   g:output(g:conv(h, {weight = "model.2.weight", bias = "model.2.bias"}))
--   local model = g:build{weights = "net.safetensors", base = dir}
--
-- Values are their names (strings): g.x is the input "x", every op returns
-- the name of its output, and a weight is referred to by its name in the
-- safetensors file.  g:node(op, inputs, attrs) adds any ONNX op.
local lumen = ...

local nn = {}
lumen.nn = nn

-- ---- JSON text -------------------------------------------------------------

local encode

local function encode_string(s)
  return '"' .. s:gsub('[%c"\\]', function(c)
    local esc = {['"'] = '\\"', ['\\'] = '\\\\', ['\n'] = '\\n', ['\t'] = '\\t', ['\r'] = '\\r'}
    return esc[c] or string.format("\\u%04x", c:byte())
  end) .. '"'
end

local function encode_number(x)
  if math.type(x) == "integer" then return tostring(x) end
  if x ~= x or x == math.huge or x == -math.huge then
    error("lumen.nn: " .. tostring(x) .. " cannot be written as JSON", 3)
  end
  if x == math.floor(x) and math.abs(x) < 2^53 then return string.format("%d", x) end
  return string.format("%.17g", x)
end

-- Arrays are tables with a sequence part (an empty table is an empty
-- array); other tables are objects with their keys sorted, so the text is
-- the same from run to run.
function encode(v)
  local t = type(v)
  if t == "string" then return encode_string(v) end
  if t == "number" then return encode_number(v) end
  if t == "boolean" then return tostring(v) end
  if v == nil or v == lumen.json_null then return "null" end
  if t ~= "table" then error("lumen.nn: a " .. t .. " cannot be written as JSON", 3) end
  if #v > 0 or next(v) == nil then
    local parts = {}
    for i = 1, #v do parts[i] = encode(v[i]) end
    return "[" .. table.concat(parts, ",") .. "]"
  end
  local keys = {}
  for k in pairs(v) do
    if type(k) ~= "string" then error("lumen.nn: object keys must be strings", 3) end
    keys[#keys + 1] = k
  end
  table.sort(keys)
  local parts = {}
  for i, k in ipairs(keys) do parts[i] = encode_string(k) .. ":" .. encode(v[k]) end
  return "{" .. table.concat(parts, ",") .. "}"
end

nn.encode_json = encode

-- ---- the graph -------------------------------------------------------------

local Graph = {}

local function graph_index(g, key)
  local m = Graph[key]
  if m ~= nil then return m end
  -- g.<input name> is that input's value
  if rawget(g, "_input_set")[key] then return key end
  return nil
end

-- nn.graph{inputs = {x = shape, ...} or {{name=, shape=, dtype=}, ...},
--          spatial = 3, opset = 18} -> a graph builder.
-- A shape is a list of extents; -1 is dynamic.
function nn.graph(spec)
  spec = spec or {}
  if type(spec.inputs) ~= "table" then
    error("bad argument #1 to 'nn.graph' (field 'inputs' expected: {name = shape})", 2)
  end
  local g = setmetatable({_inputs = {}, _input_set = {}, _nodes = {}, _outputs = {},
                          _consts = {}, _names = {}, _count = {}}, {__index = graph_index})
  local list = {}
  if #spec.inputs > 0 then
    for _, inp in ipairs(spec.inputs) do list[#list + 1] = inp end
  else
    local names = {}
    for name in pairs(spec.inputs) do names[#names + 1] = name end
    table.sort(names)
    for _, name in ipairs(names) do list[#list + 1] = {name = name, shape = spec.inputs[name]} end
  end
  for i, inp in ipairs(list) do
    if type(inp.name) ~= "string" or inp.name == "" then
      error("bad argument #1 to 'nn.graph' (inputs[" .. i .. "] has no name)", 2)
    end
    g._inputs[#g._inputs + 1] = {name = inp.name, shape = inp.shape, dtype = inp.dtype or "float32"}
    g._input_set[inp.name] = true
    g._names[inp.name] = true
  end
  local first = g._inputs[1]
  g._spatial = spec.spatial or (first and first.shape and #first.shape - 2) or 3
  g._opset = spec.opset
  return g
end

-- A fresh value name: base, base_1, base_2, ...
function Graph:_fresh(base)
  base = base or "v"
  local n = self._count[base] or 0
  local name
  repeat
    name = n == 0 and base or (base .. "_" .. n)
    n = n + 1
  until not self._names[name]
  self._count[base] = n
  self._names[name] = true
  return name
end

local function check_value(v, what, level)
  if v ~= "" and type(v) ~= "string" then
    error(("lumen.nn: %s: a value name (string) expected, got %s"):format(what, type(v)), level + 1)
  end
end

-- g:node(op, inputs, attrs [, opts]) -> output name(s).  inputs: a list of
-- value names ("" for an optional input left out); attrs: ONNX attributes
-- ({dilations = {2, 2, 2}, alpha = 0.1, mode = "nearest", ...}).
-- opts: {name = node name, outputs = count or list of output names}.
function Graph:node(op, inputs, attrs, opts)
  if type(op) ~= "string" or op == "" then error("bad argument #1 to 'node' (op name expected)", 2) end
  inputs = inputs or {}
  if type(inputs) == "string" then inputs = {inputs} end
  for i, v in ipairs(inputs) do check_value(v, op .. " input " .. i, 2) end
  opts = opts or {}
  local base = op:lower()
  local outs = {}
  if type(opts.outputs) == "table" then
    for i, o in ipairs(opts.outputs) do
      if self._names[o] then error("lumen.nn: " .. op .. ": output name '" .. o .. "' is taken", 2) end
      self._names[o] = true
      outs[i] = o
    end
  else
    for i = 1, opts.outputs or 1 do outs[i] = self:_fresh(base) end
  end
  local node = {op = op, name = opts.name or outs[1], inputs = {table.unpack(inputs)},
                outputs = outs}
  if attrs and next(attrs) ~= nil then node.attrs = attrs end
  self._nodes[#self._nodes + 1] = node
  return table.unpack(outs)
end

-- A number or a list -> a list of n numbers.
local function per_axis(x, n, what)
  if x == nil then return nil end
  if type(x) == "number" then
    local t = {}
    for i = 1, n do t[i] = x end
    return t
  end
  if type(x) ~= "table" then error("lumen.nn: " .. what .. ": a number or a list expected", 3) end
  return x
end

-- pad: a number (every side), a list of n (both sides of each axis), or
-- the ONNX list of 2n (all begins, then all ends).
local function pads(p, n)
  if p == nil then return nil end
  if type(p) == "number" then return per_axis(p, 2 * n, "pad") end
  if #p == n then
    local t = {}
    for i = 1, n do t[i], t[n + i] = p[i], p[i] end
    return t
  end
  if #p ~= 2 * n then error(("lumen.nn: pad: %d or %d values expected"):format(n, 2 * n), 3) end
  return p
end

local function conv_attrs(self, o, what)
  local n = o.dims or self._spatial
  local a = {dilations = per_axis(o.dilation, n, what .. " dilation"),
             strides = per_axis(o.stride, n, what .. " stride"),
             pads = pads(o.pad, n), group = o.group,
             kernel_shape = per_axis(o.kernel, n, what .. " kernel"),
             output_padding = per_axis(o.output_padding, n, what .. " output_padding"),
             auto_pad = o.auto_pad}
  return a
end

-- g:conv(x, {weight=, bias=, stride=, pad=, dilation=, group=, kernel=,
--            auto_pad=, name = node name, output = output value name}) -> ONNX Conv.
function Graph:conv(x, o)
  if type(o) ~= "table" or type(o.weight) ~= "string" then
    error("bad argument #2 to 'conv' ({weight = name, ...} expected)", 2)
  end
  return self:node("Conv", {x, o.weight, o.bias}, conv_attrs(self, o, "conv"),
                   {name = o.name, outputs = o.output and {o.output}})
end

-- g:conv_transpose(x, {weight=, bias=, stride=, pad=, output_padding=, ...}).
function Graph:conv_transpose(x, o)
  if type(o) ~= "table" or type(o.weight) ~= "string" then
    error("bad argument #2 to 'conv_transpose' ({weight = name, ...} expected)", 2)
  end
  return self:node("ConvTranspose", {x, o.weight, o.bias}, conv_attrs(self, o, "conv_transpose"),
                   {name = o.name})
end

-- Activations.
function Graph:relu(x) return self:node("Relu", {x}) end
function Graph:sigmoid(x) return self:node("Sigmoid", {x}) end
function Graph:tanh(x) return self:node("Tanh", {x}) end
function Graph:elu(x, alpha) return self:node("Elu", {x}, {alpha = (alpha or 1.0) + 0.0}) end
function Graph:leaky_relu(x, alpha)
  return self:node("LeakyRelu", {x}, {alpha = (alpha or 0.01) + 0.0})
end
function Graph:prelu(x, slope) return self:node("PRelu", {x, slope}) end
-- approximate: "none" (erf, the default) or "tanh".
function Graph:gelu(x, approximate)
  return self:node("Gelu", {x}, {approximate = approximate or "none"})
end
function Graph:silu(x) return self:mul(x, self:sigmoid(x)) end
function Graph:softmax(x, axis) return self:node("Softmax", {x}, {axis = axis or 1}) end

-- Elementwise and joins.
function Graph:add(a, b) return self:node("Add", {a, b}) end
function Graph:mul(a, b) return self:node("Mul", {a, b}) end
function Graph:concat(list, axis)
  return self:node("Concat", list, {axis = axis or 1})
end

-- Normalisations: {scale=, bias=, epsilon=} name weights; instance_norm
-- without scale/bias needs channels (filled with ones and zeros).
function Graph:instance_norm(x, o)
  o = o or {}
  local scale, bias = o.scale, o.bias
  if not scale then
    if not o.channels then error("lumen.nn: instance_norm: scale/bias or channels expected", 2) end
    local ones, zeros = {}, {}
    for i = 1, o.channels do ones[i], zeros[i] = 1.0, 0.0 end
    scale = self:constant(nil, {data = ones})
    bias = self:constant(nil, {data = zeros})
  end
  return self:node("InstanceNormalization", {x, scale, bias}, {epsilon = (o.epsilon or 1e-5) + 0.0})
end

function Graph:batch_norm(x, o)
  if type(o) ~= "table" or not (o.scale and o.bias and o.mean and o.var) then
    error("bad argument #2 to 'batch_norm' ({scale, bias, mean, var} names expected)", 2)
  end
  return self:node("BatchNormalization", {x, o.scale, o.bias, o.mean, o.var},
                   {epsilon = (o.epsilon or 1e-5) + 0.0})
end

-- Pooling: {kernel=, stride=, pad=}.
local function pool(self, op, x, o)
  o = o or {}
  local n = o.dims or self._spatial
  return self:node(op, {x}, {kernel_shape = per_axis(o.kernel or 2, n, "pool kernel"),
                             strides = per_axis(o.stride or o.kernel or 2, n, "pool stride"),
                             pads = pads(o.pad, n)})
end
function Graph:max_pool(x, o) return pool(self, "MaxPool", x, o) end
function Graph:avg_pool(x, o) return pool(self, "AveragePool", x, o) end

-- g:upsample(x, scale [, mode = "nearest"]): Resize by a factor per axis.
function Graph:upsample(x, scale, mode)
  local n = self._spatial
  local s = per_axis(scale, n, "upsample")
  local data = {1.0, 1.0}
  for i = 1, n do data[2 + i] = s[i] + 0.0 end
  local scales = self:constant(nil, {data = data})
  local attrs = {mode = mode or "nearest"}
  if attrs.mode == "nearest" then
    attrs.coordinate_transformation_mode, attrs.nearest_mode = "asymmetric", "floor"
  else
    attrs.coordinate_transformation_mode = "half_pixel"
  end
  return self:node("Resize", {x, "", scales}, attrs)
end

-- g:constant(name, {data = {...}, shape = {...}, dtype = "float32"}) -> the
-- name of a small constant written inline (name nil: a fresh one).
function Graph:constant(name, c)
  if type(c) ~= "table" or type(c.data) ~= "table" then
    error("bad argument #2 to 'constant' ({data = numbers} expected)", 2)
  end
  if name then
    if self._names[name] then error("lumen.nn: constant name '" .. name .. "' is taken", 2) end
    self._names[name] = true
  else
    name = self:_fresh("const")
  end
  self._consts[#self._consts + 1] = {name = name, data = c.data, shape = c.shape,
                                     dtype = c.dtype or "float32"}
  return name
end

-- g:output(v, ...) marks graph outputs, in order.
function Graph:output(...)
  for i = 1, select("#", ...) do
    local v = select(i, ...)
    check_value(v, "output", 2)
    self._outputs[#self._outputs + 1] = v
  end
  return ...
end

-- g:table([weights]) -> the graph as a Lua table (the JSON structure).
function Graph:table(weights)
  if #self._outputs == 0 then error("lumen.nn: the graph has no outputs (call g:output)", 2) end
  local w = {}
  if type(weights) == "string" then w[1] = weights
  elseif type(weights) == "table" then for i, f in ipairs(weights) do w[i] = f end end
  for _, c in ipairs(self._consts) do w[#w + 1] = c end
  local inputs = {}
  for i, inp in ipairs(self._inputs) do
    inputs[i] = {name = inp.name, shape = inp.shape or lumen.json_null, dtype = inp.dtype}
  end
  return {inputs = inputs, outputs = self._outputs, nodes = self._nodes,
          weights = #w > 0 and w or nil, opset = self._opset, producer = "lumen.nn"}
end

-- g:json([weights]) -> the lumen graph JSON text; weights: a safetensors
-- file name or a list of them (relative to the base folder given to build).
function Graph:json(weights)
  return encode(self:table(weights))
end

-- g:build{weights = file(s), base = folder, precision =, axes =} -> Model.
function Graph:build(o)
  o = o or {}
  if not lumen.load_graph then
    error("lumen.nn: this build has no lumen.load_graph (models are not available)", 2)
  end
  local opts = {precision = o.precision, axes = o.axes}
  return lumen.load_graph(self:json(o.weights), o.base or ".", opts)
end

-- ---- MeshNet -----------------------------------------------------------------

-- nn.meshnet(config [, opts]) -> graph builder for brainchop's MeshNet from
-- its config (a table, or the path of the *_safetensors_config.json: layers
-- with in_channels,
-- out_channels, kernel_size, padding, stride, dilation; bnorm, dropout_p,
-- bias, gelu).  Weights are the PyTorch nn.Sequential's state dict keys:
-- each block is Conv3d [+ norm] + activation [+ Dropout3d], so conv i is
-- "<prefix><i * block>.weight".  opts: {prefix = "model.", activation =
-- "relu" | "elu" | "gelu" (default: gelu when config.gelu, else relu),
-- norm = "batch" | "instance" (when config.bnorm; default batch), input =
-- "input", output = "output"}.  With opts.weights (a safetensors file, or
-- several) it returns the built Model instead: g:build{weights =, base =
-- opts.base, precision =, axes =}.
function nn.meshnet(config, opts)
  if type(config) == "string" then config = nn.read_json(config) end
  if type(config) ~= "table" or type(config.layers) ~= "table" or #config.layers < 1 then
    error("bad argument #1 to 'meshnet' (a config with a non-empty 'layers' list expected)", 2)
  end
  opts = opts or {}
  local prefix = opts.prefix or "model."
  local act = opts.activation or (config.gelu and "gelu" or "relu")
  local bnorm = config.bnorm and true or false
  local norm = opts.norm or "batch"
  local dropout = (config.dropout_p or 0) > 0
  local block = 2 + (bnorm and 1 or 0) + (dropout and 1 or 0)
  local layers = config.layers
  local function field(l, i, key)
    local v = l[key]
    if type(v) ~= "number" then
      error(("lumen.nn.meshnet: layers[%d]: field '%s' missing or not a number"):format(i, key), 3)
    end
    return v
  end
  local input = opts.input or "input"
  local g = nn.graph{inputs = {{name = input, shape = {1, field(layers[1], 1, "in_channels"), -1, -1, -1}}}}
  local x = input
  for i, l in ipairs(layers) do
    local k = (i - 1) * block
    local last = i == #layers
    local bias = (last or config.bias ~= false) and (prefix .. k .. ".bias") or nil
    x = g:conv(x, {weight = prefix .. k .. ".weight", bias = bias,
                   kernel = field(l, i, "kernel_size"), pad = field(l, i, "padding"),
                   stride = field(l, i, "stride"), dilation = field(l, i, "dilation"),
                   output = last and (opts.output or "output") or nil})
    if not last then
      if bnorm and norm == "batch" then
        local p = prefix .. (k + 1) .. "."
        x = g:batch_norm(x, {scale = p .. "weight", bias = p .. "bias", mean = p .. "running_mean",
                             var = p .. "running_var"})
      elseif bnorm then
        x = g:instance_norm(x, {channels = field(l, i, "out_channels")})
      end
      if act == "relu" then x = g:relu(x)
      elseif act == "elu" then x = g:elu(x)
      elseif act == "gelu" then x = g:gelu(x)
      else error("lumen.nn.meshnet: activation '" .. tostring(act) .. "' (relu, elu, gelu)", 2) end
    end
  end
  g:output(x)
  if opts.weights then
    return g:build{weights = opts.weights, base = opts.base, precision = opts.precision,
                   axes = opts.axes}
  end
  return g
end

-- ---- files -----------------------------------------------------------------

-- nn.read_json(path) -> the decoded JSON file; errors name the file.
function nn.read_json(path)
  local f, err = io.open(path, "rb")
  if not f then error("lumen.nn: " .. tostring(err), 2) end
  local text = f:read("a")
  f:close()
  local ok, v = pcall(lumen.json_decode, text)
  if not ok then error("lumen.nn: " .. path .. ": " .. tostring(v), 2) end
  return v
end

-- nn.load_network(file, {weights =, base =, metadata =, precision =, axes =})
-- -> Model.  file is a Lua network description, as a model package's
-- "network" field names (lua/lib/models.lua runs those the same way): it
-- runs with ... = (base folder, metadata table) and returns a graph builder
-- (nn.graph, nn.meshnet) or graph JSON text; the weights file(s) are read
-- from base (default: the file's folder).  For example:
--   local dir = ...
--   return lumen.nn.meshnet(dir .. "/model5_gw_ae_safetensors_config.json")
function nn.load_network(file, o)
  o = o or {}
  local base = o.base or file:match("^(.*)/[^/]*$") or "."
  local chunk, err = loadfile(file, "t")
  if not chunk then error("lumen.nn: " .. tostring(err), 2) end
  local net = chunk(base, o.metadata or {})
  if type(net) == "string" then
    if not lumen.load_graph then
      error("lumen.nn: this build has no lumen.load_graph (models are not available)", 2)
    end
    return lumen.load_graph(net, base, {precision = o.precision, axes = o.axes})
  end
  if getmetatable(net) == nil or net.build ~= Graph.build then
    error("lumen.nn: " .. file .. " must return a lumen.nn graph or graph JSON text", 2)
  end
  return net:build{weights = o.weights, base = base, precision = o.precision, axes = o.axes}
end
