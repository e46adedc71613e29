-- Round trip (issue 3 acceptance): Orientation + ScaleByResolution +
-- CropForeground + SpatialPad, then RestoreOriginalShape, gives back the
-- original shape and affine exactly, and the original labels exactly when
-- the spacing is unchanged.
local dir = arg[0]:match("^(.*/)") or "./"
local tap = dofile(dir .. "tap.lua")
local test = tap.test

local function need(t, ...)
  for _, op in ipairs{...} do
    if not _ENV[op] then t:skip(op .. " is not registered yet") end
  end
end

local function same_affine(t, a, b, what)
  for r = 1, 4 do
    for c = 1, 4 do t:near(a[r][c], b[r][c], 1e-9, what .. " affine[" .. r .. "][" .. c .. "]") end
  end
end

-- The labels of lab (X,Y,Z) against back (1,X,Y,Z): number of differences.
local function count_diff(lab, back)
  local sh, n = lab:shape(), 0
  for i = 0, sh[1] - 1 do
    for j = 0, sh[2] - 1 do
      for k = 0, sh[3] - 1 do
        if lab:get(i, j, k) ~= back:get(0, i, j, k) then n = n + 1 end
      end
    end
  end
  return n
end

local function pipeline(lab, pixdim, axcodes)
  local c <close> = ConvertToChannelsFirst(lab)
  local o <close> = Orientation(c, {axcodes = axcodes})
  local s <close> = ScaleByResolution(o, {pixdim = pixdim, is_label = true})
  local f <close> = CropForeground(s)
  local sh = f:shape()
  local p = SpatialPad(f, {spatial_size = {sh[2] + 7, sh[3] + 4, sh[4] + 3}})
  return p
end

test("round trip, spacing unchanged: shape, affine and labels exact", function(t)
  need(t, "Orientation", "ScaleByResolution", "CropForeground", "SpatialPad", "RestoreOriginalShape")
  local img <close>, label = Phantom{shape = {40, 36, 30}, spacing = {2, 2, 3}, noise = 0}
  local lab <close> = label
  local p <close> = pipeline(lab, {2, 2, 3}, "LPI")
  t:eq(#p:trace(), 4, "four spatial ops recorded")
  local back <close> = RestoreOriginalShape(p, p)
  t:same(back:shape(), {1, 40, 36, 30}, "original shape")
  t:eq(back:dtype(), lab:dtype(), "dtype")
  same_affine(t, back:affine(), lab:affine(), "original")
  t:eq(count_diff(lab, back), 0, "labels exact")
  t:eq(#back:trace(), 0, "trace emptied")
end)

test("round trip with resampling: original shape and affine exact", function(t)
  need(t, "Orientation", "ScaleByResolution", "CropForeground", "SpatialPad", "RestoreOriginalShape")
  local img <close>, label = Phantom{shape = {40, 36, 30}, spacing = {2, 2, 3}, noise = 0}
  local lab <close> = label
  local p <close> = pipeline(lab, {1.5, 2.5, 2}, "PSR")
  local back <close> = RestoreOriginalShape(p, p)
  t:same(back:shape(), {1, 40, 36, 30}, "original shape")
  same_affine(t, back:affine(), lab:affine(), "original")
  -- nearest there and back: most labels survive (not all: 2.5 mm loses detail)
  local n = count_diff(lab, back)
  t:ok(n < 40 * 36 * 30 * 0.05, "labels mostly kept (" .. n .. " differ)")
end)

tap.run()
