#!/usr/bin/env python3
"""The whole CT pipeline, lumen against MONAI 1.4, same input, same network, one run.

usage: venv/bin/python bench/bench_ct_pipeline.py [BUILD_DIR] [--runs N]

Input: a 512x512x200 int16 CT (.nii.gz, 0.8x0.8x2.5 mm) made by lumen's Phantom.
Network: a MONAI-style 3D UNet (channels 16..256, 2 residual units, 3 classes), random seeded
weights, exported once to ONNX (lumen) and TorchScript (MONAI); identical weights.
Steps (both sides): load, channels first, orientation RAS, spacing 1.5x1.5x2 mm (linear),
ScaleIntensityRange -1000..1000 -> 0..1 clipped, sliding-window inference (96^3 windows,
overlap 0.25, constant blend), argmax, restore to the original grid (nearest), save uint8 .nii.gz.
MONAI runs at its best: 1 torch thread, glibc keeping freed memory
(MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=100000000000).  lumen uses the machine's cores.
Each side is a fresh process per run (wall time measured inside it, excluding interpreter start;
peak RSS from the kernel).  Prints medians, the ratio, peak RSS and the label agreement.
"""
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile

import nibabel as nib
import numpy as np
import torch

here = os.path.dirname(os.path.abspath(__file__))
root = os.path.dirname(here)
args = list(sys.argv[1:])
runs = 1
if "--runs" in args:
    i = args.index("--runs")
    runs = int(args[i + 1])
    del args[i:i + 2]
build = args[0] if args else "build"
if not os.path.isabs(build):
    build = os.path.join(root, build)
LUMEN = os.path.join(build, "lua", "lumen")


def run_measured(cmd, env):
    """Run cmd; return its last stdout line as JSON."""
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    out, err = p.communicate()
    if p.returncode != 0:
        raise RuntimeError("%s failed: %s" % (cmd[0], err.strip()[-2000:]))
    return json.loads(out.strip().splitlines()[-1])


def peak_rss(cmd, env):
    """Run cmd in a child and read its own peak RSS through wait4."""
    pid = os.fork()
    if pid == 0:
        fd = os.open(os.devnull, os.O_WRONLY)
        os.dup2(fd, 2)
        os.execve(cmd[0], cmd, env)
    _, status, ru = os.wait4(pid, 0)
    if status != 0:
        raise RuntimeError("%s failed (status %d)" % (cmd[0], status))
    return ru.ru_maxrss / 1024


def main():
    from monai.networks.nets import UNet
    torch.manual_seed(0)
    net = UNet(spatial_dims=3, in_channels=1, out_channels=3, channels=(16, 32, 64, 128, 256),
               strides=(2, 2, 2, 2), num_res_units=2).eval()
    with tempfile.TemporaryDirectory() as tmp:
        onnx = os.path.join(tmp, "net.onnx")
        pt = os.path.join(tmp, "net.pt")
        x = torch.zeros(1, 1, 96, 96, 96)
        torch.onnx.export(net, x, onnx, opset_version=17, input_names=["x"], output_names=["y"],
                          dynamic_axes={"x": {0: "n"}, "y": {0: "n"}})
        torch.jit.save(torch.jit.trace(net, x), pt)
        ct = os.path.join(tmp, "ct.nii.gz")
        lua = os.path.join(tmp, "make_ct.lua")
        with open(lua, "w") as f:
            f.write('local img, lab = Phantom{shape = {512, 512, 200}, spacing = {0.8, 0.8, 2.5}, seed = 7}\n'
                    'SaveNifti(img, {path = arg[1]})\n')
        subprocess.run([LUMEN, "run", lua, ct], check=True)
        out_l = os.path.join(tmp, "lumen.nii.gz")
        out_m = os.path.join(tmp, "monai.nii.gz")
        env_m = dict(os.environ, MALLOC_MMAP_MAX_="0", MALLOC_TRIM_THRESHOLD_="100000000000",
                     OMP_NUM_THREADS="1")
        cmd_l = [LUMEN, "run", os.path.join(here, "ct_pipeline.lua"), ct, onnx, out_l]
        cmd_m = [sys.executable, os.path.join(here, "ct_pipeline_monai.py"), ct, pt, out_m]
        tl, tm = [], []
        for _ in range(runs):
            tl.append(run_measured(cmd_l, dict(os.environ)))
            tm.append(run_measured(cmd_m, env_m))
        rss_l = peak_rss(cmd_l, dict(os.environ))
        rss_m = tm[-1]["rss_mb"]
        med = lambda rs, k: statistics.median(r[k] for r in rs)
        for k in ("pre", "infer", "post", "total"):
            print("%-6s lumen %8.2f s   MONAI %8.2f s   ratio %.2fx" % (k, med(tl, k), med(tm, k),
                                                                      med(tm, k) / med(tl, k)))
        a = np.asanyarray(nib.load(out_l).dataobj)
        b = np.asanyarray(nib.load(out_m).dataobj)
        agree = float((a == b).mean()) if a.shape == b.shape else float("nan")
        print("peak RSS: lumen %.0f MB, MONAI %.0f MB" % (rss_l, rss_m))
        # Nearest-neighbour restoration from 2 mm back to 2.5 mm maps slice k to k * 1.25: every fourth
        # slice (k = 2 mod 4) is an exact tie between two slices.  MONAI's choice there follows the last
        # bits of its float64 grid arithmetic; lumen's RestoreOriginalShape (rounding='monai') repeats
        # that arithmetic.  Agreement on those slices and elsewhere:
        from fractions import Fraction
        ratio = Fraction(25, 20)
        tie = np.array([(k * ratio - int(k * ratio)) == Fraction(1, 2) for k in range(a.shape[2])])
        if a.shape == b.shape:
            print("labels on the %d exact-tie slices: voxels equal %.4f%%; elsewhere %.4f%%" %
                  (int(tie.sum()), 100 * float((a[:, :, tie] == b[:, :, tie]).mean()),
                   100 * float((a[:, :, ~tie] == b[:, :, ~tie]).mean())))
        print("labels: shape %s vs %s, voxels equal %.4f%%, classes lumen %s MONAI %s" %
              (a.shape, b.shape, 100 * agree, np.bincount(a.ravel(), minlength=3).tolist(),
               np.bincount(b.ravel(), minlength=3).tolist()))


if __name__ == "__main__":
    main()
