#!/usr/bin/python3
"""Benchmark lumen's nnU-Net resampling against nnU-Net's own skimage path.

usage: bench/bench_nnunet.py [BUILD_DIR] [--runs N]   (BUILD_DIR default: build)

The case: a CT-like float32 volume of 512 x 512 x 100 voxels at
0.7 x 0.7 x 5 mm (thick-slice abdominal CT) resampled to 0.8 x 0.8 x 1.5 mm
(a typical nnU-Net 3d_fullres target spacing for such data), which nnU-Net
does with separate z: skimage resize order 3 on each of the 100 axial
slices to 448 x 448, then order 0 across slices to 333 slices.  The peer is
nnU-Net v2's resample_data_or_seg as transcribed in
tests/parity/test_nnunet_resample_parity.py (skimage + scipy, on the
(z, y, x) array nnU-Net holds), timed in this process; lumen is
bench/bench_nnunet (xf_resample_nnunet on the compute pool, all cores),
timed inside the C program (load and save excluded on both sides).  The two
outputs are compared once (max abs difference printed).  Medians; no
assertions.
"""
import os
import statistics
import subprocess
import sys
import tempfile
import time

import nibabel as nib
import numpy as np

here = os.path.dirname(os.path.abspath(__file__))
root = os.path.dirname(here)
sys.path.insert(0, os.path.join(root, "tests", "parity"))
from test_nnunet_resample_parity import resample_to_spacing  # noqa: E402

args = sys.argv[1:]
runs = 3
if "--runs" in args:
    i = args.index("--runs")
    runs = int(args[i + 1])
    del args[i:i + 2]
build = args[0] if args else "build"
if not os.path.isabs(build):
    build = os.path.join(os.getcwd(), build) if os.path.isdir(build) else os.path.join(root, build)
tool = os.path.join(build, "bench", "bench_nnunet")
if not os.path.exists(tool):
    sys.exit("bench_nnunet.py: %s not found; build first (ninja -C %s)" % (tool, build))

SHAPE = (512, 512, 100)
SPACING = (0.7, 0.7, 5.0)
TARGET = (0.8, 0.8, 1.5)


def phantom(seed=0):
    """Body ellipse, lungs, liver, spine, vessels and noise, in HU, float32."""
    rng = np.random.default_rng(seed)
    x, y = np.meshgrid(np.linspace(-1, 1, SHAPE[0], dtype=np.float32),
                       np.linspace(-1, 1, SHAPE[1], dtype=np.float32), indexing="ij")
    vol = np.empty(SHAPE, dtype=np.float32)
    for k in range(SHAPE[2]):
        z = k / (SHAPE[2] - 1)
        s = np.full(x.shape, -1000.0, dtype=np.float32)
        s[(x / 0.86) ** 2 + (y / 0.61) ** 2 < 1] = -100
        s[(x / (0.80 + 0.05 * np.sin(3 * z))) ** 2 + (y / 0.55) ** 2 < 1] = 40
        if z > 0.5:
            s[(((x - 0.35) / 0.25) ** 2 + ((y + 0.05) / 0.3) ** 2 < 1) |
              (((x + 0.35) / 0.25) ** 2 + ((y + 0.05) / 0.3) ** 2 < 1)] = -850
        else:
            s[((x - 0.3) / 0.3) ** 2 + ((y + 0.1) / 0.25) ** 2 < 1] = 60
        s[(x / 0.08) ** 2 + ((y - 0.35) / 0.08) ** 2 < 1] = 700
        s += rng.normal(0, 12, size=s.shape).astype(np.float32)
        vol[:, :, k] = s
    return vol


with tempfile.TemporaryDirectory(prefix="lumen-bench-nnunet-") as tmp:
    vol = phantom()
    src = os.path.join(tmp, "ct.nii")
    nib.Nifti1Image(vol, np.diag([*SPACING, 1.0])).to_filename(src)
    out = os.path.join(tmp, "lumen.nii")
    r = subprocess.run([tool, src, *map(str, TARGET), str(max(runs, 5)), out],
                       capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit("bench_nnunet failed: " + r.stderr)
    t_lm = float(r.stdout.split()[0])

    zyx = np.ascontiguousarray(vol.transpose(2, 1, 0))[None]
    ts = []
    want = None
    for _ in range(runs):
        t0 = time.perf_counter()
        want, sep = resample_to_spacing(zyx, SPACING[::-1], TARGET[::-1], False, 3, 0)
        ts.append(time.perf_counter() - t0)
    t_peer = statistics.median(ts)
    got = np.asanyarray(nib.load(out).dataobj)
    diff = float(np.max(np.abs(got - want[0].transpose(2, 1, 0))))

print("%s at %s mm -> %s mm: output %s, separate z %s, max abs diff %.3g (range %.0f)"
      % ("x".join(map(str, SHAPE)), SPACING, TARGET, got.shape, sep, diff,
         float(vol.max() - vol.min())))
print("%-44s %10s %10s %7s" % ("benchmark (median)", "lumen", "peer", "ratio"))
print("%-44s %9.1fms %9.1fms %6.2fx  %s" % ("nnU-Net separate-z order 3 + order 0 z", t_lm * 1e3,
                                           t_peer * 1e3, t_peer / t_lm,
                                           "nnU-Net resample_data_or_seg (skimage)"))
print("ratio = peer time / lumen time; cores: %d" % os.cpu_count())
