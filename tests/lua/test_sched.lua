-- spawn / await / all, cancellation, sleeping, and 16 concurrent loads.
local dir = arg[0]:match("^(.*/)") or "./"
local tap = dofile(dir .. "tap.lua")
local test = tap.test

test("spawn runs at once until the first wait; await returns every result", function(t)
  local log = {}
  local h = spawn(function(a, b)
    log[#log + 1] = "started"
    lumen.sleep(0)
    log[#log + 1] = "resumed"
    return a + b, "two", nil, 4
  end, 1, 2)
  log[#log + 1] = "spawn returned"
  t:same(log, {"started", "spawn returned"})
  t:eq(h:done(), false)
  local a, b, c, d = h:await()
  t:same({a, b, c, d}, {3, "two", nil, 4})
  t:eq(h:status(), "ok")
  t:same({h:await()}, {3, "two", nil, 4}, "await again")
  t:ok(lumen.istask(h))
end)

test("await re-raises the task's error, structured errors intact", function(t)
  local h = spawn(function() error("boom", 0) end)
  t:eq(h:status(), "error")
  t:raises("^boom$", h.await, h)
  local h2 = spawn(function() return LoadNifti{path = "/nonexistent.nii.gz"} end)
  local err = t:raises("LoadNifti", h2.await, h2)
  t:eq(err.code, "LM_ENOENT")
  t:ok(h2:traceback():find("stack traceback"), "traceback kept")
end)

test("all: results in order, first error after every task finished", function(t)
  local r = all{
    function() lumen.sleep(0.02); return "a" end,
    function() return "b" end,
    spawn(function() lumen.sleep(0.01); return "c" end),
  }
  t:same(r, {"a", "b", "c"})
  local finished = {}
  local err = t:raises("second", all, {
    function() lumen.sleep(0.02); finished[1] = true end,
    function() error("second", 0) end,
    function() lumen.sleep(0.01); error("third", 0) end,
  })
  t:eq(err, "second")
  t:ok(finished[1], "the slow task finished before all raised")
  t:raises("entry 1 is a number", all, {1})
end)

test("sleeping tasks interleave by their times", function(t)
  local order = {}
  local a = spawn(function() lumen.sleep(0.03); order[#order + 1] = "a" end)
  local b = spawn(function() lumen.sleep(0.01); order[#order + 1] = "b" end)
  local c = spawn(function() coroutine.yield(); order[#order + 1] = "c" end)
  a:await(); b:await(); c:await()
  t:same(order, {"c", "b", "a"})
end)

test("cancel makes a waiting task raise 'cancelled'", function(t)
  local reached = false
  local h = spawn(function() lumen.sleep(10); reached = true end)
  local t0 = lumen.clock()
  h:cancel()
  t:raises("cancelled", h.await, h)
  t:eq(reached, false)
  t:ok(lumen.clock() - t0 < 5, "did not wait for the sleep")
  local inner = spawn(function() lumen.sleep(10) end)
  local waiter = spawn(function() return inner:await() end)
  waiter:cancel()
  t:raises("cancelled", waiter.await, waiter)
  t:eq(inner:done(), false, "cancelling the waiter leaves the awaited task")
  inner:cancel()
  t:raises("cancelled", inner.await, inner)
  t:raises("cannot await itself", function()
    local self_h
    self_h = spawn(function() lumen.sleep(0); return self_h:await() end)
    return self_h:await()
  end)
end)

test("ops overlap: 16 concurrent loads of one file give identical results", function(t)
  local d = t:tmpdir()
  local path = d .. "/ct.nii.gz"
  do
    local img <close> = Phantom{shape = {96, 96, 48}, seed = 5}
    local s <close> = SaveNifti(img, {path = path})
  end
  local ref <close> = LoadNifti{path = path}
  local want = ref:stats()
  local fns = {}
  for i = 1, 16 do
    fns[i] = function()
      local img <close> = LoadNifti{path = path}
      local s = img:stats()
      return {s.min, s.max, s.mean, s.std, img:get(10, 20, 30), img:get(95, 95, 47)}
    end
  end
  local results = all(fns)
  t:eq(#results, 16)
  for i = 1, 16 do
    t:same(results[i], {want.min, want.max, want.mean, want.std, ref:get(10, 20, 30), ref:get(95, 95, 47)},
           "load " .. i)
  end
end)

test("a user's own coroutine runs ops synchronously inside a task", function(t)
  local gen = coroutine.wrap(function()
    for i = 1, 3 do
      local x <close> = lumen.tensor({i}, {1})
      local y <close> = ScaleIntensityRange(x, {a_min = 0, a_max = 10})
      coroutine.yield(y:get(0))
    end
  end)
  t:near(gen(), 0.1, 1e-7)
  t:near(gen(), 0.2, 1e-7)
  t:near(gen(), 0.3, 1e-7)
end)

test("outputs and results: Phantom gives two tensors, LoadNifti a results table", function(t)
  local h = spawn(function() return Phantom{shape = {4, 4, 4}} end)
  local img <close>, lab = h:await()
  local l <close> = lab
  t:eq(img:dtype(), "int16")
  t:eq(l:dtype(), "uint8")
end)

tap.run()
