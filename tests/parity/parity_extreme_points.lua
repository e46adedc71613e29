-- Driver of test_parity_extreme_points.py: for each case of DIR/cases.json,
-- ExtremePoints of NAME_label.npy, then AddExtremePointsChannel of
-- NAME_img.npy with those points (as a nested table, the way a server hands
-- them over) and again with the points as an (N, nsp) tensor; writes
-- NAME_points.npy, NAME_out.npy and NAME_out_tensor.npy.
local dir = arg[1]
local f = assert(io.open(dir .. "/cases.json"))
local cases = lumen.json_decode(f:read("a"))
f:close()
for _, c in ipairs(cases) do
  local base = dir .. "/" .. c.name
  local lab = LoadNpy({path = base .. "_label.npy"})
  local pts, res = ExtremePoints(lab, c.label and {label = c.label} or {})
  SaveNpy(pts, {path = base .. "_points.npy"})
  local img = LoadNpy({path = base .. "_img.npy"})
  local opts = {points = res.points, sigma = c.sigma, rescale_min = c.rmin,
                rescale_max = c.rmax}
  SaveNpy(AddExtremePointsChannel(img, opts), {path = base .. "_out.npy"})
  opts.points = nil
  SaveNpy(AddExtremePointsChannel(img, pts, opts), {path = base .. "_out_tensor.npy"})
end
print("ok " .. #cases)
