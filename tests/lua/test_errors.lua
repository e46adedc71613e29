-- Misuse raises at once with "bad argument"; runtime failures raise
-- structured errors {code, op, message} that pcall can inspect.
local dir = arg[0]:match("^(.*/)") or "./"
local tap = dofile(dir .. "tap.lua")
local test = tap.test

local WINDOW = {a_min = -1000, a_max = 1000, b_min = 0, b_max = 1, clip = true}

test("unknown option, wrong type, missing required option", function(t)
  local x <close> = lumen.zeros({4})
  t:raises("bad argument #2 to 'ScaleIntensityRange' %(unknown option 'bogus' %(options: a_min, a_max",
           ScaleIntensityRange, x, {a_min = 0, a_max = 1, bogus = 1})
  t:raises("bad argument #2 to 'ScaleIntensityRange' %(option 'clip' must be a boolean, got string%)",
           ScaleIntensityRange, x, {a_min = 0, a_max = 1, clip = "yes"})
  t:raises("missing required option 'a_min' %(a number%)", ScaleIntensityRange, x, {a_max = 1})
  t:raises("bad argument #2 to 'ScaleIntensityRange' %(missing required option 'a_min'",
           ScaleIntensityRange, x)
  t:raises("option 'seed' must be an integer, got number", Phantom, {seed = 1.5})
  t:raises("option 'shape' must be a list of numbers, got table", Phantom, {shape = {4, "x", 4}})
  t:raises("option names must be strings", Phantom, {[1] = 4})
end)

test("wrong tensor arguments", function(t)
  local x <close> = lumen.zeros({4})
  t:raises("bad argument #1 to 'ScaleIntensityRange' %(lumen.tensor expected, got number%)",
           ScaleIntensityRange, 42, WINDOW)
  t:raises("bad argument #2 to 'Sigmoid' %(too many tensor inputs", Sigmoid, x, x)
  t:raises("bad argument #1 to 'Sigmoid' %(tensor input expected", Sigmoid)
  t:raises("bad argument #1 to 'LoadNifti' %(options table expected, got string%)",
           LoadNifti, "ct.nii.gz")
end)

test("a released tensor errors on use", function(t)
  local x = lumen.zeros({4})
  x:free()
  x:free() -- idempotent
  t:eq(tostring(x), "tensor<released>")
  t:ok(x:is_released())
  t:raises("attempt to use a released tensor", x.shape, x)
  t:raises("bad argument #1 to 'ScaleIntensityRange' %(attempt to use a released tensor%)",
           ScaleIntensityRange, x, WINDOW)
end)

test("missing file: structured LM_ENOENT error, pcall works", function(t)
  local ok, err = pcall(LoadNifti, {path = "/nonexistent/ct.nii.gz"})
  t:eq(ok, false)
  t:ok(lumen.is_error(err), "structured error")
  t:eq(err.code, "LM_ENOENT")
  t:eq(err.op, "LoadNifti")
  t:eq(err.status, -4)
  t:ok(tostring(err):find("/nonexistent/ct.nii.gz", 1, true), "message names the file: " .. tostring(err))
  t:ok(tostring(err):find("^LoadNifti: "), "message starts with the op: " .. tostring(err))
end)

test("corrupt and unsupported files give their codes", function(t)
  local d = t:tmpdir()
  local f = assert(io.open(d .. "/bad.nii", "wb"))
  f:write(("garbage"):rep(100))
  f:close()
  local err = t:raises("bad.nii", LoadNifti, {path = d .. "/bad.nii"})
  t:eq(err.code, "LM_EFORMAT")
  local cplx = t:data("odd/complex64.nii.gz")
  local err2 = t:raises("complex", LoadNifti, {path = cplx})
  t:eq(err2.code, "LM_EDTYPE")
end)

test("SaveNifti to a missing folder fails and leaves nothing", function(t)
  local d = t:tmpdir()
  local x <close> = lumen.zeros({4, 4, 4})
  local err = t:raises("SaveNifti", SaveNifti, x, {path = d .. "/no/such/dir/x.nii.gz"})
  t:ok(lumen.is_error(err))
  t:same(lumen.fs.list(d), {}, "nothing written")
end)

test("errors from ops run synchronously (a user's own coroutine)", function(t)
  local co = coroutine.wrap(function()
    local ok, err = pcall(LoadNifti, {path = "/nonexistent.nii"})
    return ok, err
  end)
  local ok, err = co()
  t:eq(ok, false)
  t:eq(err.code, "LM_ENOENT")
  -- and values from a sync call are right
  local get = coroutine.wrap(function() return ScaleIntensityRange(lumen.tensor({0}, {1}), {a_min = -1, a_max = 1}) end)
  local y <close> = get()
  t:same(y:values(), {0.5})
end)

tap.run()
