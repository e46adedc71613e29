-- A TAP harness for the Lua tests, in luv's style: each test is one TAP
-- point; after each, garbage is collected and the test fails if it left a
-- tensor, a Model, a job, a managed coroutine or a pending callback alive.
--
--   local tap = dofile(TESTDIR .. "tap.lua")
--   tap.test("name", function(t) t:eq(1 + 1, 2) end)
--   tap.run()   -- prints the plan; raises (exit status 1) if a test failed
local lumen = lumen or require "lumen"

local M = {}
local tests = {}

local FAIL, SKIP = {}, {}

local function repr(v)
  if type(v) == "string" then return ("%q"):format(v) end
  return tostring(v)
end

local T = {}
T.__index = T

function T:fail(msg)
  error({[FAIL] = true, msg = msg}, 2)
end

function T:skip(reason)
  error({[SKIP] = true, msg = reason}, 2)
end

function T:ok(cond, msg)
  if not cond then self:fail(msg or "condition is false") end
  return cond
end

function T:eq(got, want, msg)
  if got ~= want then
    self:fail(("%s: got %s, want %s"):format(msg or "eq", repr(got), repr(want)))
  end
end

function T:near(got, want, tol, msg)
  if type(got) ~= "number" or math.abs(got - want) > tol then
    self:fail(("%s: got %s, want %s (tolerance %g)"):format(msg or "near", repr(got), repr(want), tol))
  end
end

-- Deep equality of lists/tables of numbers and strings.
local function same(a, b, tol)
  if type(a) ~= type(b) then return false end
  if type(a) == "number" then return math.abs(a - b) <= (tol or 0) end
  if type(a) ~= "table" then return a == b end
  for k, v in pairs(a) do if not same(v, b[k], tol) then return false end end
  for k in pairs(b) do if a[k] == nil then return false end end
  return true
end

function T:same(got, want, msg, tol)
  if not same(got, want, tol) then
    self:fail(("%s: got %s, want %s"):format(msg or "same", lumen.pretty(got), lumen.pretty(want)))
  end
end

-- Call fn(...) expecting an error; check its text against a Lua pattern
-- (plain find when plain is true) and return the error value.
function T:raises(pattern, fn, ...)
  local ok, err = pcall(fn, ...)
  if ok then self:fail(("expected an error matching %s, got none"):format(repr(pattern))) end
  if pattern and not tostring(err):find(pattern) then
    self:fail(("error %s does not match %s"):format(repr(tostring(err)), repr(pattern)))
  end
  return err
end

function M.test(name, fn)
  tests[#tests + 1] = {name = name, fn = fn}
end

-- A fresh temporary folder, removed with its files by t:cleanup().
function T:tmpdir()
  local base = os.tmpname()
  os.remove(base)
  assert(lumen.fs.mkdir(base))
  self.dirs = self.dirs or {}
  self.dirs[#self.dirs + 1] = base
  return base
end

function T:cleanup()
  -- Newest first, so folders made inside a tmpdir go before it.
  local dirs = self.dirs or {}
  for i = #dirs, 1, -1 do
    local d = dirs[i]
    for _, name in ipairs(lumen.fs.list(d) or {}) do lumen.fs.remove(d .. "/" .. name) end
    lumen.fs.remove(d)
  end
end

-- The test data folder, or skip the test when it is absent.
function T:data(rel)
  local root = os.getenv("LUMEN_TEST_DATA")
  if not root or not lumen.fs.stat(root) then self:skip("LUMEN_TEST_DATA not available") end
  return root .. "/" .. rel
end

local LEAK_KEYS = {"tensors", "jobs", "tasks", "boxes", "models", "pending"}

local function settle()
  collectgarbage()
  collectgarbage()
end

function M.run()
  local failed = 0
  for i, test in ipairs(tests) do
    settle()
    local before = lumen.debug.live()
    local t = setmetatable({}, T)
    local ok, err = xpcall(test.fn, function(e)
      if type(e) == "table" and (e[FAIL] or e[SKIP]) then return e end
      return debug.traceback(tostring(e), 2)
    end, t)
    t:cleanup()
    settle()
    local after = lumen.debug.live()
    local status, diag = "ok", nil
    if not ok and type(err) == "table" and err[SKIP] then
      status = "ok"
      diag = " # SKIP " .. tostring(err.msg)
    elseif not ok then
      status = "not ok"
      diag = type(err) == "table" and err.msg or tostring(err)
    else
      local leaks = {}
      for _, k in ipairs(LEAK_KEYS) do
        if after[k] ~= before[k] then
          leaks[#leaks + 1] = ("%s %d -> %d"):format(k, before[k], after[k])
        end
      end
      if #leaks > 0 then
        status = "not ok"
        diag = "left alive: " .. table.concat(leaks, ", ")
      end
    end
    if status == "not ok" then failed = failed + 1 end
    if diag and diag:sub(1, 7) == " # SKIP" then
      print(("%s %d - %s%s"):format(status, i, test.name, diag))
    else
      print(("%s %d - %s"):format(status, i, test.name))
      if diag then print("#   " .. diag:gsub("\n", "\n#   ")) end
    end
    io.stdout:flush()
  end
  print("1.." .. #tests)
  if failed > 0 then error(("%d of %d tests failed"):format(failed, #tests), 0) end
end

return M
