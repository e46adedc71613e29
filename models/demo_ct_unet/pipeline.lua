-- demo_ct_unet: pre- and post-processing of the demo CT U-Net, the same
-- steps, in the same order and with the same numbers, as the training data
-- of models/train_demo_unet.py got:
--   ConvertToChannelsFirst -> Orientation RAS -> ScaleByResolution 3 mm
--   -> ScaleIntensityRange -57..164 HU (abdominal soft tissue) to 0..1, clipped
--   -> SlidingWindowInfer (48^3 windows, overlap 0.25, Gaussian blending)
--   -> Argmax -> RestoreOriginalShape (nearest) -> uint8
-- giving a label map on the input's grid (labels: metadata.json).
--
-- lumen.load_package runs this file with (package folder, model) and calls
-- infer(img, opts): img a CT in HU as LoadNifti gives it ((X, Y, Z), or
-- already channels first (1, X, Y, Z)); opts.model (default: the package's),
-- opts.sw_batch_size (default 1), opts.precision (SlidingWindowInfer's: on a
-- CUDA input "auto" is float16; "float32" gives the CPU's numbers).
-- With img on a CUDA device (img:to("cuda")) every step runs there and the
-- labels come back on that device.
local _, package_model = ...

local SPACING = {3, 3, 3}
local ROI = {48, 48, 48}
local WINDOW = {a_min = -57, a_max = 164, b_min = 0, b_max = 1, clip = true}

local function channels_first(img)
  if img:layout():sub(1, 1) == "C" then return img end
  return ConvertToChannelsFirst(img)
end

local function infer(img, opts)
  opts = opts or {}
  local model = opts.model or package_model
  local x <close> = channels_first(img)
  local ras <close> = Orientation(x, {axcodes = "RAS"})
  local iso <close> = ScaleByResolution(ras, {pixdim = SPACING})
  local norm <close> = ScaleIntensityRange(iso, WINDOW)
  local logits <close> = SlidingWindowInfer(model, norm, {roi = ROI, overlap = 0.25,
                                                          mode = "gaussian",
                                                          sw_batch_size = opts.sw_batch_size or 1,
                                                          precision = opts.precision})
  local labels <close> = Argmax(logits)
  logits:free()
  -- back through ScaleByResolution and Orientation onto the input's grid
  local back <close> = RestoreOriginalShape(labels, norm)
  return Cast(back, {dtype = "uint8"})
end

return {infer = infer}
