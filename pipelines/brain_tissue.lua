-- Brain tissue segmentation (white / grey matter) with brainchop's MeshNet
-- "Tissue GWM (light)" (model5_gw_ae) on a conformed T1 (256^3, 1 mm, uint8):
--   LoadNifti -> ConvertToChannelsFirst
--   -> CropForeground (x > 0, 18 voxels of margin, clamped to the volume)
--   -> min-max to [0, 1] (the whole volume's min and max)
--   -> Infer (the whole crop at once, labels by argmax)
--   -> KeepLargestConnectedComponent (union of the labels, 26-connected)
--   -> RestoreOriginalShape (paste back) -> uint8 -> SaveNifti
-- as brainchop does it (its v4 web pipeline with the model's settings:
-- autoThreshold 0, cropPadding 18).
--
-- usage: lumen run pipelines/brain_tissue.lua IN OUT [MODEL]
--   MODEL: the network, any of the three copies brainchop ships:
--     model5_gw_ae.onnx          ONNX; takes the C-order NIfTI buffer, so its
--                                spatial axes are Z,Y,X: loaded with axes "ZYX"
--     model5_gw_ae.safetensors   PyTorch weights; the network is declared with
--                                lumen.nn from model5_gw_ae_safetensors_config.json
--     model.json                 TensorFlow.js layers model + weight shard
--   or a model package folder (metadata.json says the axis order).
--   Default: the tfjs copy under ../shared/data/models/model5_gw_ae.
--   With no arguments at all: the brainchop T1 of ../shared/data to out/.

local fs = lumen.fs

-- ../shared/data beside the checkout (this script is <root>/pipelines/).
local here = debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or "."
local SHARED = here .. "/../../shared/data"

local function read_file(path)
  local f = assert(io.open(path, "rb"))
  local text = f:read("a")
  f:close()
  return text
end

-- The network from one of its copies.
local function load_model(path)
  if path:match("%.onnx$") then
    return LoadModel(path, {axes = "ZYX"})
  elseif path:match("%.safetensors$") then
    local config = path:gsub("%.safetensors$", "_safetensors_config.json")
    return lumen.nn.meshnet(lumen.json_decode(read_file(config)), {weights = path})
  end
  return LoadModel(path)   -- tfjs model.json, or a package folder
end

-- Memory: the crop is taken from the uint8 image and only then made float
-- (min-max over the whole volume, as brainchop does), and the network is
-- streamed (Infer's stream option), so the peak stays near the float crop.
local function segment(model, src, dst)
  local img <close> = LoadNifti{path = src}
  local x <close> = ConvertToChannelsFirst(img)
  local range = x:stats()
  local crop8 <close> = CropForeground(x, {margin = {18}, allow_smaller = true})
  x:free()
  img:free()
  local crop <close> = ScaleIntensityRange(crop8, {a_min = range.min, a_max = range.max,
                                                   b_min = 0, b_max = 1})
  crop8:free()
  lumen.trim()   -- give back the decoder's and the crop's freed memory
  -- Labels straight from the network: a MeshNet is streamed slice by slice,
  -- so neither its 5-channel activations nor the logits exist at full size.
  local lab <close> = Infer(model, crop, {argmax = true})
  lumen.trim()
  local big <close> = KeepLargestConnectedComponent(lab, {independent = false, connectivity = 26})
  local back <close> = RestoreOriginalShape(big, crop)
  local out <close> = Cast(back, {dtype = "uint8"})
  SaveNifti(out, {path = dst})
end

local src, dst, net = arg[1], arg[2], arg[3]
if not src then
  src = SHARED .. "/mri/brainchop_t1_crop.nii.gz"
  dst = "out/brain_tissue.nii.gz"
  fs.mkdir("out")
end
if not dst then
  io.stderr:write("usage: lumen run pipelines/brain_tissue.lua IN OUT [MODEL]\n")
  os.exit(2)
end
net = net or (SHARED .. "/models/model5_gw_ae/model.json")
local t0 = lumen.clock()
local model <close> = load_model(net)
segment(model, src, dst)
print(string.format("%s -> %s (%s, %.2f s)", src, dst, net:match("[^/]+$"), lumen.clock() - t0))
