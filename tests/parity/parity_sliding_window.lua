-- Driver of test_sliding_window_parity.py: SlidingWindowInfer on saved
-- inputs with the options of each case.
--   lumen run parity_sliding_window.lua DIR CASE...
-- CASE is "NAME|INPUT|MODEL|key=value|...": DIR/INPUT.npy (C, spatial...)
-- through DIR/MODEL.onnx; values with a comma, and roi / mirror_axes, are
-- lists of numbers; numbers are numbers; the key axes goes to LoadModel.
-- Writes DIR/NAME.lumen.npy and prints "ok NAME WINDOWS SECONDS" or
-- "error NAME: message"; a failing case does not stop the others.
local dir = arg[1]
local clock = lumen.clock
local models = {}

local function split(s, sep)
  local out = {}
  for piece in (s .. sep):gmatch("(.-)" .. sep:gsub("%p", "%%%0")) do
    out[#out + 1] = piece
  end
  return out
end

local function value(key, v)
  if key == "roi" or key == "mirror_axes" or v:find(",") then
    local list = {}
    for _, n in ipairs(split(v, ",")) do list[#list + 1] = tonumber(n) end
    return list
  end
  return tonumber(v) or v
end

local function model(name, axes)
  local key = name .. "/" .. (axes or "")
  if not models[key] then
    models[key] = LoadModel{path = dir .. "/" .. name .. ".onnx", axes = axes}
  end
  return models[key]
end

local function run(spec)
  local f = split(spec, "|")
  local name, input, net = f[1], f[2], f[3]
  local opts, axes = {}, nil
  for i = 4, #f do
    local k, v = f[i]:match("^([%w_]+)=(.*)$")
    if k == "axes" then axes = v else opts[k] = value(k, v) end
  end
  local x <close> = LoadNpy{path = dir .. "/" .. input .. ".npy"}
  local t0 = clock()
  local y <close>, res = SlidingWindowInfer(model(net, axes), x, opts)
  local t1 = clock()
  SaveNpy(y, {path = dir .. "/" .. name .. ".lumen.npy"})
  local windows = type(res) == "table" and res.windows or -1
  return name, windows, t1 - t0
end

for i = 2, #arg do
  local ok, name, windows, secs = pcall(run, arg[i])
  if ok then
    print(string.format("ok %s %s %.3f", name, tostring(windows), secs))
  else
    print(string.format("error %s: %s", split(arg[i], "|")[1],
                        tostring(name):gsub("\n", " ")))
  end
  io.stdout:flush()
end
for _, m in pairs(models) do m:free() end
