-- The annotation ops from Lua, as lumen serve's AIAA handlers use them:
-- points handed over as nested tables ({{x,y,z},...}: the binding flattens
-- list options), JSON results as tables that json_encode gives back in
-- AIAA's shapes, and MaskToPolygon -> FixPolygon giving random masks back
-- voxel for voxel (holes filled, as polygons of outer borders do).
local dir = arg[0]:match("^(.*/)") or "./"
local tap = dofile(dir .. "tap.lua")
local test = tap.test

test("ExtremePoints -> AddExtremePointsChannel with nested points", function(t)
  local lab <close> = lumen.zeros({1, 12, 10, 9}, "uint8")
  lab:set({0, 3, 4, 5}, 1)
  lab:set({0, 7, 2, 1}, 1)
  local pts <close>, res = ExtremePoints(lab)
  t:eq(lumen.json_encode(res.points), "[[3,4,5],[7,2,1],[7,2,1],[3,4,5],[7,2,1],[3,4,5]]")
  local img <close> = lumen.zeros({1, 12, 10, 9})
  local a <close> = AddExtremePointsChannel(img, {points = res.points})
  local b <close> = AddExtremePointsChannel(img, {points = {3, 4, 5, 7, 2, 1}})
  local c <close> = AddExtremePointsChannel(img, pts)
  t:eq(a:shape()[1], 2)
  local va, vb, vc = a:values(), b:values(), c:values()
  local same = true
  for k = 1, #va do same = same and va[k] == vb[k] and va[k] == vc[k] end
  t:ok(same, "nested, flat and tensor points give the same channel")
  local lo, hi = math.huge, -math.huge
  for k = #va // 2 + 1, #va do
    lo, hi = math.min(lo, va[k]), math.max(hi, va[k])
  end
  t:eq(lo, -1.0)
  t:eq(hi, 1.0)
  local ok, err = pcall(AddExtremePointsChannel, img, {points = {{1, 2, 3}, {4, 5}}})
  t:ok(not ok and tostring(err):find("option 'points' must be a list of numbers"),
       "ragged rows are refused: " .. tostring(err))
  ok, err = pcall(AddExtremePointsChannel, img, {points = {{{1, 2, 3}}}})
  t:ok(not ok, "three levels are refused")
end)

test("MaskToPolygon: AIAA's per-slice shape, empty slices as []", function(t)
  local m <close> = lumen.zeros({6, 5, 3}, "uint8")
  m:set({2, 1, 1}, 1)
  m:set({2, 2, 1}, 1)
  local r = MaskToPolygon(m, {more_points = 10})
  t:eq(lumen.json_encode(r.polygons), "[[],[[[1,2],[2,2]]],[]]")
end)

test("MaskToPolygon -> FixPolygon(no move) round trip on random masks", function(t)
  math.randomseed(20261122)
  local bad = 0
  for trial = 1, 150 do
    local h, w = math.random(3, 14), math.random(3, 14)
    local vals, dens = {}, math.random() * 0.8 + 0.1
    for k = 1, h * w do vals[k] = math.random() < dens and 1 or 0 end
    local raw <close> = lumen.tensor(vals, {h, w}, "uint8")
    -- The background of 8-connected regions is 4-connected.
    local filled <close> = FillHoles(raw, {connectivity = 1})
    local slices = MaskToPolygon(filled).polygons
    if #slices[1] > 0 then
      local back <close>, r = FixPolygon(filled, {poly = lumen.json_encode(slices[1]),
        polygon_index = 0, vertex_index = 0, vertex_offset = {0, 0}})
      local a, b = filled:values(), back:values()
      for k = 1, #a do
        if a[k] ~= b[k] then
          bad = bad + 1
          break
        end
      end
      t:eq(lumen.json_encode(r.poly), lumen.json_encode(slices[1]))
    end
  end
  t:eq(bad, 0, "masks that differ after the round trip")
end)

tap.run()
