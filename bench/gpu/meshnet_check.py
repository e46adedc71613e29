#!/usr/bin/env python3
"""Issue 5's label check: brainchop's tissue MeshNet (model5_gw_ae) on the real T1, GPU against CPU.

usage: python3 bench/gpu/meshnet_check.py BUILD_DIR [T1.nii.gz] [MODEL] [--out FILE.json]
Defaults: ../shared/data/mri/brainchop_t1_crop.nii.gz and ../shared/data/models/model5_gw_ae/model.json
(scripts/gpu-check carries both to the GPU machine).

The brain_tissue pipeline's preprocessing (crop to the head with 18 voxels of margin, min-max to
0..1), then the network three times: Infer on the CPU (float32, the oracle), on CUDA in float32 and
in float16, labels by argmax.  Acceptance (issue 5): float32 labels identical to the CPU's, float16
labels equal at >= 99.9% of the voxels.  Exit status 1 when either fails.
"""
import json
import os
import subprocess
import sys
import tempfile

import numpy as np

here = os.path.dirname(os.path.abspath(__file__))
root = os.path.dirname(os.path.dirname(here))
shared = os.path.join(os.path.dirname(root), "shared", "data")

LUA = r"""
local t1, net, dir = arg[1], arg[2], arg[3]
local model = LoadModel(net)
local img = LoadNifti{path = t1}
local x = ConvertToChannelsFirst(img)
local range = x:stats()
local crop8 = CropForeground(x, {margin = {18}, allow_smaller = true})
local crop = ScaleIntensityRange(crop8, {a_min = range.min, a_max = range.max, b_min = 0, b_max = 1})
local t = lumen.clock()
SaveNpy(Infer(model, crop, {argmax = true, precision = 'float32'}), {path = dir .. '/cpu.npy'})
local times = {cpu = lumen.clock() - t}
local dev = ToDevice(crop, {device = 'cuda'})
for _, prec in ipairs{'float32', 'float16'} do
  local lab = ToHost(Argmax(Infer(model, dev, {precision = prec})))      -- warm-up: the plan
  t = lumen.clock()
  lab = ToHost(Argmax(Infer(model, dev, {precision = prec})))
  times[prec] = lumen.clock() - t
  SaveNpy(lab, {path = dir .. '/' .. prec .. '.npy'})
end
print(string.format('{"shape": [%d, %d, %d], "cpu_s": %.4f, "float32_s": %.4f, "float16_s": %.4f}',
                    crop:shape()[2], crop:shape()[3], crop:shape()[4], times.cpu, times.float32, times.float16))
"""


def main():
    args = [a for a in sys.argv[1:]]
    out = None
    if "--out" in args:
        i = args.index("--out")
        out = args[i + 1]
        del args[i:i + 2]
    build = os.path.abspath(args[0] if args else os.path.join(root, "build-release"))
    t1 = args[1] if len(args) > 1 else os.path.join(shared, "mri", "brainchop_t1_crop.nii.gz")
    net = args[2] if len(args) > 2 else os.path.join(shared, "models", "model5_gw_ae", "model.json")
    lumen = os.path.join(build, "lua", "lumen")
    for p in (lumen, t1, net):
        if not os.path.exists(p):
            sys.exit("meshnet_check.py: %s not found" % p)
    with tempfile.TemporaryDirectory() as tmp:
        script = os.path.join(tmp, "check.lua")
        with open(script, "w") as f:
            f.write(LUA)
        r = subprocess.run([lumen, "run", script, t1, net, tmp], capture_output=True, text=True)
        if r.returncode != 0:
            sys.exit("meshnet_check.py: lumen failed: " + (r.stderr.strip() or r.stdout.strip())[-3000:])
        res = json.loads(r.stdout.strip().splitlines()[-1])
        cpu = np.load(os.path.join(tmp, "cpu.npy")).reshape(-1)
        ok = True
        for prec, need in (("float32", 1.0), ("float16", 0.999)):
            lab = np.load(os.path.join(tmp, prec + ".npy")).reshape(-1)
            agree = float((lab == cpu).mean()) if lab.size == cpu.size else 0.0
            res[prec + "_agreement"] = agree
            passed = agree >= need
            ok = ok and passed
            print("MeshNet tissue labels, CUDA %s vs CPU float32: equal at %.5f%% of %d voxels (need %s): %s;"
                  " %.1f ms on the GPU, %.1f ms on the CPU" %
                  (prec, 100 * agree, cpu.size, "all" if need == 1.0 else ">= 99.9%", "PASS" if passed else "FAIL",
                   res[prec + "_s"] * 1e3, res["cpu_s"] * 1e3))
    if out:
        with open(out, "w") as f:
            json.dump(res, f, indent=1)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
