-- Scale-out: one slice of a file list per process, for Slurm job arrays and
-- Kubernetes indexed jobs (`lumen run --shard K/N PACKAGE IN... OUT_DIR`;
-- README, "Scale-out").
local lumen = ...

-- lumen.shard_items(list, k, n) -> the items i (0-based) with i % n == k,
-- in order.
function lumen.shard_items(list, k, n)
  k, n = math.tointeger(k or 0), math.tointeger(n or 1)
  if not n or n < 1 or not k or k < 0 or k >= n then
    error(("bad shard %s/%s: expected K/N with 0 <= K < N"):format(tostring(k), tostring(n)), 2)
  end
  local out = {}
  for i, v in ipairs(list) do
    if (i - 1) % n == k then out[#out + 1] = v end
  end
  return out
end

local function basename(path) return path:match("([^/]+)/*$") or path end

-- lumen.run_package_batch(package, inputs, out_dir [, k, n]) -> number of
-- failed inputs.  Loads the package once and runs it on the inputs of shard
-- k of n (all of them by default), writing out_dir/<input's file name>; a
-- failing input is reported on stderr and the others go on.
function lumen.run_package_batch(path, inputs, out_dir, k, n)
  local mine = lumen.shard_items(inputs, k, n)
  out_dir = (out_dir:gsub("/+$", ""))
  local ok, err = lumen.fs.mkdir(out_dir)
  if not ok then error(("output folder %s: %s"):format(out_dir, tostring(err)), 0) end
  local pkg <close> = lumen.load_package(path)
  local failed = 0
  for _, input in ipairs(mine) do
    local output = out_dir .. "/" .. basename(input)
    local t0 = lumen.clock()
    local ran, msg = pcall(function()
      if output == input then error("the output would overwrite the input", 0) end
      local img <close> = lumen.LoadImage{path = input}
      local labels <close> = pkg.infer(img)
      if not lumen.istensor(labels) then
        error(("%s/pipeline.lua: infer returned %s, not a label tensor"):format(pkg.dir,
              type(labels)), 0)
      end
      lumen.SaveImage(labels, {path = output})
    end)
    if ran then
      print(("%s -> %s (%.2f s)"):format(input, output, lumen.clock() - t0))
    else
      failed = failed + 1
      io.stderr:write(("lumen: %s: %s\n"):format(input, tostring(msg)))
    end
  end
  io.stdout:flush()
  return failed
end
