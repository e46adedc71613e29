-- Tensor userdata: methods, printing, release, GC accounting.
local dir = arg[0]:match("^(.*/)") or "./"
local tap = dofile(dir .. "tap.lua")
local test = tap.test

test("metadata methods", function(t)
  local x <close> = Phantom{shape = {10, 8, 6}, spacing = {1, 2, 3}}
  t:same(x:shape(), {10, 8, 6})
  t:eq(x:ndim(), 3)
  t:eq(x:numel(), 480)
  t:eq(x:nbytes(), 960)
  t:eq(x:dtype(), "int16")
  t:same(x:spacing(), {1, 2, 3})
  t:eq(x:orientation(), "RAS")
  t:eq(x:layout(), "XYZ")
  t:eq(x:device(), "cpu")
  t:same(x:strides(), {1, 10, 80}, "file order, i fastest")
  t:eq(x:is_contiguous(), false)
  local a = x:affine()
  t:same({a[1][1], a[2][2], a[3][3], a[4][4]}, {1, 2, 3, 1}, "diagonal")
  t:same(x:trace(), {}, "no spatial ops applied")
end)

test("get/set are 0-based and bounds-checked; values in C order", function(t)
  local x <close> = lumen.zeros({2, 3}, "int16")
  x:set(0, 0, 7)
  x:set({1, 2}, -5)
  t:eq(x:get(0, 0), 7)
  t:eq(x:get{1, 2}, -5)
  t:same(x:values(), {7, 0, 0, 0, 0, -5})
  t:raises("out of range for dim 2 of size 3 %(indices are 0%-based%)", x.get, x, 0, 3)
  t:raises("integer index expected", x.get, x, 0)
  local y <close> = lumen.tensor({1, 2, 3, 4, 5, 6}, {2, 3}, "float64")
  t:eq(y:get(1, 0), 4.0)
  t:eq(y:dtype(), "float64")
  t:raises("6 values given for a shape of 4 elements", lumen.tensor, {1, 2, 3, 4, 5, 6}, {2, 2})
end)

test("clone is independent; contiguous copies a strided view", function(t)
  local x <close> = lumen.tensor({1, 2, 3}, {3})
  local c <close> = x:clone()
  c:set(0, 100)
  t:eq(x:get(0), 1, "original unchanged")
  t:eq(c:get(0), 100)
  local p <close> = Phantom{shape = {4, 3, 2}, seed = 2}
  t:eq(p:is_contiguous(), false)
  local q <close> = p:contiguous()
  t:eq(q:is_contiguous(), true)
  t:same(q:values(), p:values(), "same logical values")
end)

test("stats", function(t)
  local x <close> = lumen.tensor({1, 2, 3, 4, 0 / 0}, {5}, "float32")
  local s = x:stats()
  t:eq(s.min, 1)
  t:eq(s.max, 4)
  t:near(s.mean, 2.5, 1e-12)
  t:near(s.std, math.sqrt(1.25), 1e-12)
  t:eq(s.count, 4)
  t:eq(s.nan_count, 1)
end)

test("__tostring shows dtype, shape, spacing, orientation, device, range", function(t)
  local x <close> = lumen.tensor({0, 5, 2, 1, 3, 4}, {2, 3})
  t:ok(tostring(x):match("^tensor<float32 2x3 spacing 1x1x%d+ %u%u%u cpu range %[0, 5%]>$"), tostring(x))
  local p <close> = Phantom{shape = {8, 8, 4}, spacing = {2, 2, 2}, noise = 0}
  t:ok(tostring(p):match("^tensor<int16 8x8x4 spacing 2x2x2 RAS XYZ cpu range %[%-?%d+, %-?%d+%]>$"), tostring(p))
end)

test("<close>, free and share", function(t)
  local keep
  do
    local x <close> = lumen.zeros({3})
    keep = x
  end
  t:ok(keep:is_released(), "closed at scope end")
  t:raises("attempt to use a released tensor", keep.numel, keep)
  local a = lumen.zeros({3})
  local b = a:share()
  a:free()
  t:same(b:values(), {0, 0, 0}, "the other box still works")
  b:free()
  local c <close> = lumen.zeros({2})
  local d <close> = c:to("cpu")
  t:eq(d:device(), "cpu")
  t:ok(d == c, "same tensor")
  t:raises("device name expected", c.to, c, 3)
end)

test("the collector runs when tensors hold much memory", function(t)
  -- 150 x 8 MiB = 1.2 GiB allocated and dropped without free(): Lua sees
  -- only small boxes, so without byte accounting nothing would be freed.
  local peak = 0
  for _ = 1, 150 do
    local x = lumen.zeros({2 * 1024 * 1024}, "float32")
    local live = lumen.debug.live().host_bytes
    if live > peak then peak = live end
  end
  t:ok(peak < 700 * 1024 * 1024, ("host bytes peaked at %d MiB"):format(peak // (1024 * 1024)))
end)

tap.run()
