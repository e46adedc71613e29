-- Driver of test_tfjs_parity.py: load a TensorFlow.js layers model, run it
-- on a saved (1, 1, X, Y, Z) input and save the logits.
--   lumen run parity_tfjs.lua MODEL_JSON IN.npy OUT.npy
local model <close> = LoadModel(arg[1])
local x <close> = LoadNpy{path = arg[2]}
local y <close> = Infer(model, x)   -- (N, C, X, Y, Z): run as is
SaveNpy(y, {path = arg[3]})
