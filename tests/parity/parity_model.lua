-- Driver of test_model_parity.py: for each exported network, load the ONNX,
-- run it on the saved input and save lumen's output.
--   lumen run parity_model.lua DIR NAME...
-- For each NAME: DIR/NAME.onnx, DIR/NAME.in.npy -> DIR/NAME.lumen.npy.
-- Prints one line per network, "ok NAME LOAD_S RUN_S" or "error NAME: message";
-- a failing network does not stop the others.
-- LUMEN_PARITY_DEVICE=cuda runs each network on that device (input moved
-- there, output back) with LUMEN_PARITY_PRECISION (default float32); without
-- a CUDA device the driver prints "nodevice REASON" and exits 77.
local dir = arg[1]
local clock = lumen.clock
local device = os.getenv("LUMEN_PARITY_DEVICE")
local precision = os.getenv("LUMEN_PARITY_PRECISION") or "float32"
if device and device ~= "cpu" and lumen.engine_info().cuda_devices == 0 then
  print("nodevice " .. lumen.engine_info().cuda_status)
  os.exit(77)
end

local function run(name)
  local t0 = clock()
  local model <close> = LoadModel(dir .. "/" .. name .. ".onnx")
  local t1 = clock()
  local x <close> = LoadNpy{path = dir .. "/" .. name .. ".in.npy"}
  -- (N, C, spatial...) of the network's rank: Infer runs it as is.
  local y
  if device and device ~= "cpu" then
    local xd <close> = x:to(device)
    local yd <close> = Infer(model, xd, {precision = precision})
    y = yd:to("cpu")   -- waits for the device: the time includes the run
  else
    y = Infer(model, x)
  end
  local t2 = clock()
  SaveNpy(y, {path = dir .. "/" .. name .. ".lumen.npy"})
  y:free()
  return t1 - t0, t2 - t1
end

for i = 2, #arg do
  local ok, load_s, run_s = pcall(run, arg[i])
  if ok then
    print(string.format("ok %s %.3f %.3f", arg[i], load_s, run_s))
  else
    print(string.format("error %s: %s", arg[i], tostring(load_s):gsub("\n", " ")))
  end
  io.stdout:flush()
end
