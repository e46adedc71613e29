#!/usr/bin/python3
"""The C API example (examples/ct_window.c) against nibabel + numpy.

A random int16 volume with an oblique affine is written by nibabel; ct_window must
produce clip((x - a_min) / (a_max - a_min), 0, 1) in float32 (MONAI's order of
operations) with the same affine, written as (X, Y, Z)."""
import os
import subprocess
import sys
import tempfile

import nibabel as nib
import numpy as np

exe = sys.argv[1]
rng = np.random.default_rng(7)
data = rng.integers(-1500, 2500, size=(23, 17, 11), dtype=np.int16)
aff = np.array([[0.8, 0.1, 0.0, -90.0],
                [-0.1, 0.8, 0.05, 12.5],
                [0.0, -0.04, 2.5, 40.0],
                [0, 0, 0, 1]])
fails = 0
with tempfile.TemporaryDirectory() as d:
    src, dst = os.path.join(d, "in.nii.gz"), os.path.join(d, "out.nii.gz")
    nib.Nifti1Image(data, aff).to_filename(src)
    for a_min, a_max in ((-1000.0, 1000.0), (-57.0, 164.0)):
        r = subprocess.run([exe, src, dst, str(a_min), str(a_max)], capture_output=True, text=True)
        if r.returncode != 0:
            print(f"not ok - ct_window failed: {r.stderr}")
            sys.exit(1)
        out = nib.load(dst)
        got = np.asanyarray(out.dataobj)
        x = data.astype(np.float32)
        want = np.clip((x - np.float32(a_min)) / np.float32(a_max - a_min), 0, 1).astype(np.float32)
        ok = got.shape == data.shape and got.dtype == np.float32 and np.max(np.abs(got - want)) <= 1e-6
        ok = ok and np.allclose(out.affine, aff, atol=1e-6, rtol=0)
        print(f"{'ok' if ok else 'not ok'} - window {a_min}..{a_max}: shape {got.shape} "
              f"max err {np.max(np.abs(got - want)) if got.shape == want.shape else 'n/a'}")
        fails += not ok
    # A missing input is a clear error naming the file, and no output appears.
    missing = os.path.join(d, "missing.nii.gz")
    out2 = os.path.join(d, "never.nii.gz")
    r = subprocess.run([exe, missing, out2], capture_output=True, text=True)
    ok = r.returncode != 0 and "missing.nii.gz" in r.stderr and not os.path.exists(out2)
    print(f"{'ok' if ok else 'not ok'} - missing input reported: {r.stderr.strip()}")
    fails += not ok
print("1..3")
sys.exit(1 if fails else 0)
