-- Tensor methods written over the op registry.
local lumen = ...
local methods = lumen.tensor_methods

-- t:to(device) -> a tensor on that device ("cpu", "cuda", "cuda:1").
-- Moves go through the ToDevice / ToHost ops (there are no implicit
-- transfers); asking for the device the tensor is on returns t:share(),
-- a new box on the same tensor (so closing one leaves the other usable).
function methods.to(t, device)
  if type(device) ~= "string" then
    error("bad argument #1 to 'to' (device name expected, such as 'cpu' or 'cuda')", 2)
  end
  local here = t:device()
  local want = device == "cuda" and "cuda:0" or device
  if want == here then return t:share() end
  if want == "cpu" and lumen.op("ToHost") then
    return (lumen.op("ToHost")(t))
  end
  local op = lumen.op("ToDevice")
  if not op then error("to: this build has no ToDevice op", 2) end
  return (op(t, {device = device}))
end
