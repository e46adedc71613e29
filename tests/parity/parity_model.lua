-- Driver of test_model_parity.py: for each exported network, load the ONNX,
-- run it on the saved input and save lumen's output.
--   lumen run parity_model.lua DIR NAME...
-- For each NAME: DIR/NAME.onnx, DIR/NAME.in.npy -> DIR/NAME.lumen.npy.
-- Prints one line per network, "ok NAME LOAD_S RUN_S" or "error NAME: message";
-- a failing network does not stop the others.
local dir = arg[1]
local clock = lumen.clock

local function run(name)
  local t0 = clock()
  local model <close> = LoadModel(dir .. "/" .. name .. ".onnx")
  local t1 = clock()
  local x <close> = LoadNpy{path = dir .. "/" .. name .. ".in.npy"}
  -- (N, C, spatial...) of the network's rank: Infer runs it as is.
  local y <close> = Infer(model, x)
  local t2 = clock()
  SaveNpy(y, {path = dir .. "/" .. name .. ".lumen.npy"})
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
