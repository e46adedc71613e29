#!/usr/bin/python3
"""Benchmark ScaleByResolution (MONAI Spacing rule, linear) against scipy.

usage: bench/bench_spatial.py [BUILD_DIR] [--runs N]   (BUILD_DIR default: build)

A 512x512x200 CT-like float32 volume at 0.8x0.8x2.5 mm (bench/run's phantom)
goes to 1.5 mm isotropic, linear (-> 273x273x333).  Peers, timed in this
process as medians of N runs after one warm-up: scipy.ndimage.zoom(order=1)
to the same shape (the acceptance peer; corner-aligned grid, so values
differ slightly) and scipy.ndimage.affine_transform(order=1, mode='nearest')
with MONAI's exact index map (what MONAI's scipy path computes).  lumen is
timed by bench/bench_spatial (lm_call, no process start in the figure); its
result is checked against affine_transform.  Also times cubic (order 3)
once per side.  No assertions.
"""
import os
import statistics
import subprocess
import sys
import tempfile
import time

import nibabel as nib
import numpy as np
from scipy import ndimage as ndi

here = os.path.dirname(os.path.abspath(__file__))
root = os.path.dirname(here)
args = list(sys.argv[1:])
runs = 3
if "--runs" in args:
    i = args.index("--runs")
    runs = int(args[i + 1])
    del args[i:i + 2]
build = args[0] if args else "build"
if not os.path.isabs(build):
    build = os.path.join(os.getcwd(), build) if os.path.isdir(build) else os.path.join(root, build)
tool = os.path.join(build, "bench", "bench_spatial")
if not os.path.exists(tool):
    sys.exit("bench_spatial.py: %s not found; build first (ninja -C %s)" % (tool, build))


def phantom(shape=(512, 512, 200), seed=0):
    """CT-like: body ellipse, lungs, spine, noise (as bench/run)."""
    rng = np.random.default_rng(seed)
    x, y = np.meshgrid(np.linspace(-1, 1, shape[0], dtype=np.float32),
                       np.linspace(-1, 1, shape[1], dtype=np.float32), indexing="ij")
    vol = np.empty(shape, dtype=np.float32)
    for k in range(shape[2]):
        s = np.full(x.shape, -1000.0, dtype=np.float32)
        s[(x / 0.85) ** 2 + (y / 0.6) ** 2 < 1] = 40
        s[(((x - 0.35) / 0.25) ** 2 + ((y + 0.05) / 0.3) ** 2 < 1)] = -850
        s[(x / 0.08) ** 2 + ((y - 0.35) / 0.08) ** 2 < 1] = 700
        s += rng.normal(0, 12, size=s.shape).astype(np.float32)
        vol[:, :, k] = s
    return vol


def median_time(fn, n=runs):
    fn()
    ts = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts)


def lumen(path, pix, mode, n, out=None):
    cmd = [tool, path, str(pix), mode, str(n)] + ([out] if out else [])
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit("bench_spatial failed: %s" % r.stderr)
    return float(r.stdout.split()[0])


vol = phantom()
sp = np.array([0.8, 0.8, 2.5])
aff = np.diag([0.8, 0.8, 2.5, 1.0])
pix = 1.5
r = pix / sp
m = tuple(int(np.rint((n - 1) * (s / pix) + 1)) for n, s in zip(vol.shape, sp))
print("input %s float32 at %s mm -> %.1f mm: output %s; cores: %d"
      % (vol.shape, tuple(sp), pix, m, os.cpu_count()), flush=True)
rows = []
with tempfile.TemporaryDirectory(prefix="lumen-bench-") as tmp:
    src = os.path.join(tmp, "ct.nii")
    nib.Nifti1Image(vol, aff).to_filename(src)
    out = os.path.join(tmp, "lumen_linear.nii")
    t_lm = lumen(src, pix, "bilinear", runs, out)
    t_zoom = median_time(lambda: ndi.zoom(vol, np.array(m) / np.array(vol.shape), order=1,
                                          mode="nearest"))
    want = None

    def affine():
        global want
        want = ndi.affine_transform(vol, r, order=1, mode="nearest", output_shape=m,
                                    output=np.float32)
    t_aff = median_time(affine)
    got = np.asanyarray(nib.load(out).dataobj)
    err = float(np.max(np.abs(got.astype(np.float64) - want.astype(np.float64))))
    rng = float(vol.max() - vol.min())
    rows.append(("ScaleByResolution linear", t_lm, t_zoom, "scipy zoom order 1", ""))
    rows.append(("ScaleByResolution linear", t_lm, t_aff,
                 "scipy affine_transform order 1 (MONAI map)",
                 "max abs diff %.3g (%.1e of range)" % (err, err / rng)))
    t_lm3 = lumen(src, pix, "cubic", 1)
    t0 = time.perf_counter()
    ndi.affine_transform(vol, r, order=3, mode="nearest", output_shape=m, output=np.float32)
    t_sc3 = time.perf_counter() - t0
    rows.append(("ScaleByResolution cubic (1 run)", t_lm3, t_sc3,
                 "scipy affine_transform order 3", ""))

print()
print("%-34s %10s %10s %7s  %s" % ("benchmark (median of %d)" % runs, "lumen", "peer", "ratio",
                                    "peer / notes"))
for name, lm, peer, pname, note in rows:
    print("%-34s %9.1fms %9.1fms %6.2fx  %s%s" % (name, lm * 1e3, peer * 1e3, peer / lm, pname,
                                                  ("; " + note) if note else ""))
print("\nratio = peer time / lumen time")
