-- CT preprocessing, MONAI's order:
--   LoadNifti -> ConvertToChannelsFirst
--   -> ScaleIntensityRange(a_min=-1000, a_max=1000, b_min=0, b_max=1, clip=true)
--   -> SaveNifti
--
-- usage: lumen run pipelines/ct_preprocess.lua [IN OUT]
--   IN a .nii/.nii.gz file and OUT the output file, or IN a folder of them
--   and OUT a folder (created; each case keeps its file name).
--   With no arguments: a demo on a synthetic CT phantom, written to out/.
--
-- Several cases are in flight at once (at most IN_FLIGHT); on a terminal a
-- progress line is kept up to date on stderr.  Exit status 1 if a case failed.

local IN_FLIGHT = 4
local WINDOW = {a_min = -1000, a_max = 1000, b_min = 0, b_max = 1, clip = true}

local fs, clock = lumen.fs, lumen.clock

local function is_nifti(name)
  return name:match("%.nii$") or name:match("%.nii%.gz$")
end

-- One case; returns a short description of input and output.
local function preprocess(src, dst)
  local img <close> = LoadNifti{path = src}
  local chw <close> = ConvertToChannelsFirst(img)
  local out <close> = ScaleIntensityRange(chw, WINDOW)
  local saved <close> = SaveNifti(out, {path = dst})
  return {input = tostring(img), output = tostring(out)}
end

-- Run every {src, dst} job with at most IN_FLIGHT in flight.
local function run_all(jobs)
  local tty = lumen.isatty("stderr")
  local next_job, done, failures = 1, 0, {}
  local t0 = clock()
  local function progress()
    if tty then
      io.stderr:write(("\r[%d/%d] %.1f s"):format(done, #jobs, clock() - t0))
    end
  end
  local function worker()
    while next_job <= #jobs do
      local job = jobs[next_job]
      next_job = next_job + 1
      local ok, err = pcall(preprocess, job.src, job.dst)
      if not ok then failures[#failures + 1] = {job = job, err = tostring(err)} end
      done = done + 1
      progress()
    end
  end
  local workers = {}
  for i = 1, math.min(IN_FLIGHT, #jobs) do workers[i] = worker end
  progress()
  lumen.all(workers)
  if tty then io.stderr:write("\r\27[K") end
  return failures, clock() - t0
end

local function summary(jobs, failures, secs)
  print(("ct_preprocess: %d case(s) in %.2f s, %d failed"):format(#jobs, secs, #failures))
  for _, f in ipairs(failures) do
    io.stderr:write(("  failed %s: %s\n"):format(f.job.src, f.err))
  end
  if #failures > 0 then error(("%d of %d cases failed"):format(#failures, #jobs), 0) end
end

local function demo()
  assert(fs.mkdir("out"))
  local raw, pre = "out/phantom_ct.nii.gz", "out/phantom_ct_preprocessed.nii.gz"
  local t0 = clock()
  do
    local img <close>, label = Phantom{}
    local label_ <close> = label
    local saved <close> = SaveNifti(img, {path = raw})
    print(("phantom  %s\n         -> %s (%.2f s)"):format(tostring(img), raw, clock() - t0))
  end
  t0 = clock()
  local r = preprocess(raw, pre)
  print(("load     %s"):format(r.input))
  print(("output   %s\n         -> %s (%.2f s)"):format(r.output, pre, clock() - t0))
  print("steps    LoadNifti -> ConvertToChannelsFirst -> ScaleIntensityRange(-1000..1000 " ..
        "-> 0..1, clip) -> SaveNifti")
  print("your data: lumen run pipelines/ct_preprocess.lua IN.nii.gz|IN_DIR OUT")
end

local src, dst = arg and arg[1], arg and arg[2]
if not src then return demo() end
if not dst then error("usage: lumen run pipelines/ct_preprocess.lua [IN OUT]", 0) end

local kind, err = fs.stat(src)
if not kind then error(err, 0) end
local jobs = {}
if kind == "dir" then
  assert(fs.mkdir(dst))
  for _, name in ipairs(assert(fs.list(src))) do
    if is_nifti(name) then
      jobs[#jobs + 1] = {src = src .. "/" .. name, dst = dst .. "/" .. name}
    end
  end
  if #jobs == 0 then error("no .nii or .nii.gz files in " .. src, 0) end
else
  jobs[1] = {src = src, dst = dst}
end
local failures, secs = run_all(jobs)
summary(jobs, failures, secs)
