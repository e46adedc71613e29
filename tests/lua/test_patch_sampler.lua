-- pipelines/patch_sampler.lua on the phantom, centres = organ centres:
-- counts, shapes, balance (every centre equally often), the organ at each
-- patch centre, negatives away from the centres, reproducibility, and the
-- command-line path (files and patches.csv).
-- usage: lumen run test_patch_sampler.lua PIPELINE
local dir = arg[0]:match("^(.*/)") or "./"
local tap = dofile(dir .. "tap.lua")
local test = tap.test
local ps = dofile(arg[1])

-- World centres (RAS mm) and labels of four phantom organs (Phantom's doc).
local ORGANS = {{65, 10, 45, 5}, {-85, -35, 50, 1}, {60, -50, -15, 2}, {-60, -50, -5, 3}}
local CENTERS = {}
for _, o in ipairs(ORGANS) do
  for d = 1, 3 do CENTERS[#CENTERS + 1] = o[d] end
end
local OPTS = {size = {16, 16, 16}, per_center = 3, negatives = 5, offset = 0,
              radius = 40, seed = 9}

test("module: counts, shapes, balance, organ at each centre", function(t)
  local img <close>, label = Phantom{shape = {96, 80, 80}, spacing = {4, 4, 4}, noise = 0}
  local lab <close> = label
  local s = ps.sample(img, lab, CENTERS, OPTS)
  t:same(s.pos:shape(), {12, 1, 16, 16, 16}, "positive batch")
  t:same(s.pos_label:shape(), {12, 1, 16, 16, 16}, "positive labels")
  t:same(s.neg:shape(), {5, 1, 16, 16, 16}, "negative batch")
  t:eq(s.pos:layout(), "NCXYZ")
  local used = {0, 0, 0, 0}
  for k = 1, 12 do
    local c = math.tointeger(s.pos_info.center_index[k]) + 1
    used[c] = used[c] + 1
    -- no offset: the organ's label sits at the patch centre (8, 8, 8)
    t:eq(s.pos_label:get(k - 1, 0, 8, 8, 8), ORGANS[c][4], "label at patch centre " .. k)
  end
  t:same(used, {3, 3, 3, 3}, "every centre used equally often")
  -- negatives: every centre more than 40 mm (10 voxels) from the patch box
  local sp = img:spacing()
  for k = 1, 5 do
    for _, o in ipairs(ORGANS) do
      local a = img:affine()
      local g2 = 0
      for d = 1, 3 do
        local v = (o[d] - a[d][4]) / a[d][d]
        local lo = s.neg_info.starts[3 * (k - 1) + d]
        local hi = lo + 15
        local g = v < lo and lo - v or (v > hi and v - hi or 0)
        g2 = g2 + (g * sp[d]) ^ 2
      end
      t:ok(math.sqrt(g2) > 40 - 4, "negative patch " .. k .. " away from the centres")
    end
  end
  for _, b in ipairs({s.pos, s.pos_label, s.neg, s.neg_label}) do b:free() end
end)

test("module: the same seed gives the same patches, another seed others", function(t)
  local img <close> = Phantom{shape = {96, 80, 80}, spacing = {4, 4, 4}, seed = 1}
  local o = {}
  for k, v in pairs(OPTS) do o[k] = v end
  o.offset = 3
  local a, b = ps.sample(img, nil, CENTERS, o), ps.sample(img, nil, CENTERS, o)
  o.seed = 10
  local c = ps.sample(img, nil, CENTERS, o)
  t:ok(a.pos_label == nil, "no label, no label patches")
  t:same(a.pos:values(), b.pos:values(), "positives reproduce")
  t:same(a.neg_info.starts, b.neg_info.starts, "negatives reproduce")
  local differ = false
  for k, v in ipairs(a.pos_info.centers) do differ = differ or v ~= c.pos_info.centers[k] end
  t:ok(differ, "another seed moves the patches")
  for _, s in ipairs({a, b, c}) do s.pos:free(); s.neg:free() end
end)

test("command line: files and patches.csv", function(t)
  local tmp = os.tmpname()
  os.remove(tmp)
  assert(lumen.fs.mkdir(tmp))
  local img <close>, label = Phantom{shape = {64, 56, 56}, spacing = {5, 5, 5}, noise = 0}
  local lab <close> = label
  local a <close> = SaveNifti(img, {path = tmp .. "/ct1.nii.gz"})
  local b <close> = SaveNifti(lab, {path = tmp .. "/ct1_mask.nii.gz"})
  local f = assert(io.open(tmp .. "/volumes.txt", "w"))
  f:write("# image label\nct1.nii.gz ct1_mask.nii.gz\n")
  f:close()
  f = assert(io.open(tmp .. "/centers.csv", "w"))
  f:write("volume,x,y,z\n1,65,10,45\nct1.nii.gz,-85,-35,50\n")
  f:close()
  ps.main({tmp .. "/volumes.txt", tmp .. "/centers.csv", tmp .. "/out", "size=12",
           "per_center=2", "negatives=3", "offset=1", "seed=4"})
  local ext = SaveNpy and "npy" or "nii.gz"
  local names = lumen.fs.list(tmp .. "/out")
  t:same(names, {"ct1_neg." .. ext, "ct1_neg_label." .. ext, "ct1_pos." .. ext,
                 "ct1_pos_label." .. ext, "patches.csv"}, "files written")
  local lines, pos, centre_rows = 0, 0, {}
  for line in io.lines(tmp .. "/out/patches.csv") do
    lines = lines + 1
    local kind, c = line:match("^[^,]+,%d+,%d+,(%a+),(%d*),")
    if kind == "pos" then
      pos = pos + 1
      centre_rows[c] = (centre_rows[c] or 0) + 1
    end
  end
  t:eq(lines, 1 + 4 + 3, "header + 4 positive + 3 negative lines")
  t:eq(pos, 4)
  t:same(centre_rows, {["1"] = 2, ["2"] = 2}, "each centre row twice")
  local load = ext == "npy" and LoadNpy or LoadNifti
  local p <close> = load{path = tmp .. "/out/ct1_pos." .. ext}
  t:eq(p:numel(), 4 * 12 * 12 * 12, "positive batch size")
  for _, n in ipairs(lumen.fs.list(tmp .. "/out")) do os.remove(tmp .. "/out/" .. n) end
  for _, n in ipairs({"ct1.nii.gz", "ct1_mask.nii.gz", "volumes.txt", "centers.csv", "out"}) do
    os.remove(tmp .. "/" .. n)
  end
  os.remove(tmp)
end)

tap.run()
