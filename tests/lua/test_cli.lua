-- The lumen command (run, ops, --version) and `require "lumen"` from a
-- stock lua5.4.  Arguments: the lumen binary, the folder of lumen.so, and
-- the lua5.4 interpreter ("" if none was found).
local dir = arg[0]:match("^(.*/)") or "./"
local tap = dofile(dir .. "tap.lua")
local test = tap.test
local LUMEN, MODDIR, LUA = arg[1], arg[2], arg[3]

local function sh_quote(s) return "'" .. s:gsub("'", "'\\''") .. "'" end

-- Run a shell command; returns its output (stdout and stderr) and status.
local function run(cmd)
  local p = assert(io.popen(cmd .. " 2>&1"))
  local out = p:read("a")
  local _, _, code = p:close()
  return out, code
end

local function write(path, text)
  local f = assert(io.open(path, "w"))
  f:write(text)
  f:close()
end

test("lumen run: arg table, varargs, exit status 0", function(t)
  local d = t:tmpdir()
  write(d .. "/s.lua", [[
    print("arg0=" .. arg[0], "n=" .. #arg, "a1=" .. arg[1], "a2=" .. arg[2], "dots=" .. select("#", ...))
    local x = lumen.zeros({2})
    print(x:numel())
  ]])
  local out, code = run(sh_quote(LUMEN) .. " run " .. sh_quote(d .. "/s.lua") .. " one 'two words'")
  t:eq(code, 0, out)
  t:ok(out:find("arg0=" .. d .. "/s.lua\tn=2\ta1=one\ta2=two words\tdots=2", 1, true), out)
  t:ok(out:find("\n2\n", 1, true), out)
end)

test("lumen run: failure gives status 1, message and traceback", function(t)
  local d = t:tmpdir()
  write(d .. "/f.lua", "local function inner() LoadNifti{path = '/nonexistent.nii.gz'} end\ninner()\n")
  local out, code = run(sh_quote(LUMEN) .. " run " .. sh_quote(d .. "/f.lua"))
  t:eq(code, 1, out)
  t:ok(out:find("LoadNifti: ", 1, true) and out:find("/nonexistent.nii.gz", 1, true), out)
  t:ok(out:find("stack traceback", 1, true) and out:find("in local 'inner'", 1, true), out)
  local out2, code2 = run(sh_quote(LUMEN) .. " run " .. sh_quote(d .. "/missing.lua"))
  t:eq(code2, 1, out2)
  t:ok(out2:find("cannot open", 1, true), out2)
end)

test("an unawaited failing spawn is reported; deadlocks are detected", function(t)
  local d = t:tmpdir()
  write(d .. "/u.lua", "spawn(function() lumen.sleep(0.01); error('lost task') end)\nprint('main done')\n")
  local out, code = run(sh_quote(LUMEN) .. " run " .. sh_quote(d .. "/u.lua"))
  t:eq(code, 1, out)
  t:ok(out:find("main done", 1, true) and out:find("nobody awaited", 1, true) and out:find("lost task", 1, true), out)
  write(d .. "/d.lua", [[
    local a, b
    a = spawn(function() lumen.sleep(0); return b:await() end)
    b = spawn(function() lumen.sleep(0); return a:await() end)
    a:await()
  ]])
  local out2, code2 = run(sh_quote(LUMEN) .. " run " .. sh_quote(d .. "/d.lua"))
  t:eq(code2, 1, out2)
  t:ok(out2:find("deadlock", 1, true), out2)
end)

test("lumen ops lists every op; lumen ops NAME describes one", function(t)
  local out, code = run(sh_quote(LUMEN) .. " ops")
  t:eq(code, 0, out)
  local names = lumen.ops()
  t:ok(#names >= 12, "the built-in ops are registered")
  for _, name in ipairs(names) do
    t:ok(out:find("\n" .. name .. " ", 1, true) or out:find("^" .. name .. " "), name .. " listed")
  end
  local d, code2 = run(sh_quote(LUMEN) .. " ops ScaleIntensityRange")
  t:eq(code2, 0, d)
  t:ok(d:find("a_min  number, required", 1, true), d)
  t:ok(d:find("clip   boolean, default false", 1, true), d)
  t:ok(d:find("MONAI", 1, true), "doc text printed")
  local _, code3 = run(sh_quote(LUMEN) .. " ops NoSuchOp")
  t:eq(code3, 1)
  local v = run(sh_quote(LUMEN) .. " --version")
  t:ok(v:find("^lumen " .. lumen.version:gsub("%.", "%%.")), v)
  local _, code4 = run(sh_quote(LUMEN) .. " --bogus")
  t:eq(code4, 2)
end)

-- Run a stock lua5.4 command line with lumen.so on the cpath.  An ASan
-- build's module needs the ASan runtime loaded first: preload it then.
local function run_lua(args)
  local env = "LUA_CPATH=" .. sh_quote(MODDIR .. "/?.so;;") .. " "
  local out, code = run(env .. sh_quote(LUA) .. " " .. args)
  if out:find("ASan runtime does not come first", 1, true) then
    local asan = run("cc -print-file-name=libasan.so"):gsub("%s+$", "")
    out, code = run(env .. "LD_PRELOAD=" .. sh_quote(asan) .. " " .. sh_quote(LUA) .. " " .. args)
  end
  return out, code
end

test("require 'lumen' from stock lua5.4", function(t)
  if not LUA or LUA == "" then t:skip("lua5.4 not found") end
  local d = t:tmpdir()
  write(d .. "/m.lua", [[
    local lm = require "lumen"
    local img, lab = lm.Phantom{shape = {8, 8, 4}, noise = 0}
    local y = lm.ScaleIntensityRange(img, {a_min = -1000, a_max = 1000, b_min = 0, b_max = 1, clip = true})
    print("sync", y:dtype(), math.abs(y:get(0, 0, 0) - (img:get(0, 0, 0) + 1000) / 2000) < 1e-6)
    local r = lm.run(function()
      return lm.all{
        function() return lm.Phantom{shape = {4, 4, 4}}:numel() end,
        function() lm.sleep(0.01); return 7 end,
      }
    end)
    print("async", r[1], r[2])
    local ok, err = pcall(lm.LoadNifti, {path = "/nonexistent.nii"})
    print("error", err.code)
  ]])
  local out, code = run_lua(sh_quote(d .. "/m.lua"))
  t:eq(code, 0, out)
  t:ok(out:find("sync\tfloat32\ttrue", 1, true), out)
  t:ok(out:find("async\t64\t7", 1, true), out)
  t:ok(out:find("error\tLM_ENOENT", 1, true), out)
  local out2, code2 = run_lua("-e 'local lm = require \"lumen\"; print(#lm.ops() > 0, lm.version)'")
  t:eq(code2, 0, out2)
  t:ok(out2:find("true\t" .. lumen.version, 1, true), out2)
end)

tap.run()
