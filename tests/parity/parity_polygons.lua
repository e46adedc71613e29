-- Driver of test_parity_polygons.py: MaskToPolygon of a mask file (.npy
-- or NIfTI) with the given more_points; the polygons as JSON to OUT.
-- usage: lumen run parity_polygons.lua MASK MORE_POINTS OUT
local path, more, out = arg[1], math.tointeger(tonumber(arg[2])), arg[3]
local mask = path:match("%.npy$") and LoadNpy({path = path}) or LoadNifti({path = path, dtype = "native"})
local res = MaskToPolygon(mask, {more_points = more})
local f = assert(io.open(out, "w"))
f:write(lumen.json_encode(res.polygons))
f:close()
