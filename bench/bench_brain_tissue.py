#!/usr/bin/python3
"""brain_tissue pipeline (brainchop MeshNet tissue model on the real 256^3 T1): time and peak RSS of
lumen against the PyTorch reference of tests/parity/brain_tissue_reference.py, same input, same
weights, one run each (fresh processes; peak RSS from the kernel via wait4).

usage: bench/bench_brain_tissue.py [BUILD_DIR] [--data DIR]   (DIR default: ../shared/data)

The acceptance bound on memory is 3x the float32 input volume plus the model:
3 * 256^3 * 4 bytes + the model file (about 192 MB + 22 KB).  Prints each copy of the model
(ONNX, safetensors + lumen.nn, tfjs), the reference, and the label agreement.
"""
import os
import subprocess
import sys
import tempfile
import time

import nibabel as nib
import numpy as np

here = os.path.dirname(os.path.abspath(__file__))
root = os.path.dirname(here)
args = list(sys.argv[1:])
data = os.path.join(os.path.dirname(root), "shared", "data")
if "--runs" in args:   # bench/all passes it; one run of each is the figure here
    i = args.index("--runs")
    del args[i:i + 2]
if "--data" in args:
    i = args.index("--data")
    data = args[i + 1]
    del args[i:i + 2]
build = args[0] if args else "build"
if not os.path.isabs(build):
    build = os.path.join(root, build)
LUMEN = os.path.join(build, "lua", "lumen")


def measured(cmd):
    """Run cmd; its wall time (s) and peak RSS (MB)."""
    t0 = time.perf_counter()
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, ru = os.wait4(p.pid, 0)
    wall = time.perf_counter() - t0
    err = p.stderr.read().decode()
    p.stderr.close()
    if status != 0:
        sys.exit("%s failed: %s" % (cmd[0], err[-2000:]))
    return wall, ru.ru_maxrss / 1024


def main():
    t1 = os.path.join(data, "mri", "brainchop_t1_crop.nii.gz")
    mdir = os.path.join(data, "models", "model5_gw_ae")
    if not os.path.exists(t1):
        sys.exit("bench_brain_tissue.py: %s not found (--data DIR)" % t1)
    copies = [("onnx", "model5_gw_ae.onnx"), ("safetensors", "model5_gw_ae.safetensors"),
              ("tfjs", "model.json")]
    shape = nib.load(t1).shape
    f32_mb = np.prod(shape) * 4 / 2**20
    model_mb = os.path.getsize(os.path.join(mdir, "model5_gw_ae.onnx")) / 2**20
    bound = 3 * f32_mb + model_mb
    print("input %s, float32 %.0f MB; bound 3x + model = %.1f MB" % ("x".join(map(str, shape)), f32_mb, bound))
    with tempfile.TemporaryDirectory() as tmp:
        ref = os.path.join(tmp, "ref.nii.gz")
        wall, rss = measured([sys.executable, os.path.join(root, "tests", "parity", "brain_tissue_reference.py"),
                              t1, os.path.join(mdir, "model5_gw_ae.safetensors"),
                              os.path.join(mdir, "model5_gw_ae_safetensors_config.json"), ref])
        print("%-26s %7.2f s   peak RSS %6.0f MB" % ("PyTorch reference", wall, rss))
        want = np.asanyarray(nib.load(ref).dataobj)
        for name, f in copies:
            out = os.path.join(tmp, name + ".nii.gz")
            wall_l, rss_l = measured([LUMEN, "run", os.path.join(root, "pipelines", "brain_tissue.lua"), t1, out,
                                      os.path.join(mdir, f)])
            got = np.asanyarray(nib.load(out).dataobj)
            print("%-26s %7.2f s   peak RSS %6.0f MB (%s the bound)   %.2fx faster, labels equal %.4f%%" %
                  ("lumen, " + name, wall_l, rss_l, "within" if rss_l <= bound else "ABOVE", wall / wall_l,
                   100 * float((got == want).mean())))


if __name__ == "__main__":
    main()
