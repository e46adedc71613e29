#!/usr/bin/python3
"""Parity: ScaleIntensityRange(Percentiles), Sigmoid, Threshold, Cast, Argmax
and Softmax in lumen against numpy written in MONAI / torch's order, on a real
CT and a real 4-D file (float32 to 1 ulp-ish, labels exactly).

usage: test_parity_intensity.py LUMEN SCRIPT
(TAP; without the data it prints "1..0 # SKIP" and exits 0, which meson's
TAP parser reads as a skip, where it reads exit 77 as an error)
"""
import os
import subprocess
import sys
import tempfile

import nibabel as nib
import numpy as np

F = np.float32


def sir(x, a_min, a_max, b_min=None, b_max=None, clip=False):
    # MONAI ScaleIntensityRange on a float32 tensor, scalars rounded to float32
    y = (x - F(a_min)) / F(a_max - a_min)
    if b_min is not None and b_max is not None:
        y = y * F(b_max - b_min) + F(b_min)
    if clip:
        y = np.clip(y, F(b_min), F(b_max))
    return y.astype(F)


def main():
    lumen, script = sys.argv[1], sys.argv[2]
    data = os.environ.get("LUMEN_TEST_DATA", "")
    ct = os.path.join(data, "ct", "totalseg_example_ct_sm.nii.gz")
    four_d = os.path.join(data, "4d", "example4d.nii.gz")
    if not (os.path.exists(ct) and os.path.exists(four_d)):
        print("1..0 # SKIP test data not available (LUMEN_TEST_DATA)")
        return 0
    x = nib.load(ct).get_fdata(dtype=F)
    flat = x.astype(np.float64).ravel()
    lo, hi = np.percentile(flat, [0.5, 99.5])
    lo5, hi95 = np.percentile(flat, [5, 95])
    logits = sir(x, -500, 500, -6, 6)
    sig = (F(1) / (F(1) + np.exp(-logits))).astype(F)
    v = np.moveaxis(nib.load(four_d).get_fdata(dtype=F), -1, 0)
    want = {
        "sir_spleen.nii": (sir(x, -57, 164, 0, 1, True), 1e-7),
        "sir_nob.nii": (sir(x, -1000, 1000), 1e-7),
        "sirp.nii": (sir(x, lo, hi, 0, 1, True), 2e-6),
        "sirp_relative.nii": (sir(x, lo5, hi95, -1 + 2 * 0.05, -1 + 2 * 0.95), 2e-6),
        "sigmoid.nii": (sig, 2e-7),
        "threshold.nii": ((sig >= F(0.5)).astype(np.uint8), 0),
        "cast.nii": (np.trunc(sir(x, -57, 164, 0, 1, True)).astype(np.int16), 0),
        "argmax.nii": (np.argmax(v, axis=0).astype(np.uint8), 0),
        "argmax_softmax.nii": (np.argmax(v, axis=0).astype(np.uint8), 0),
    }
    with tempfile.TemporaryDirectory() as tmp:
        r = subprocess.run([lumen, "run", script, ct, four_d, tmp],
                           capture_output=True, text=True)
        if r.returncode != 0:
            print("1..0 # lumen failed")
            print(r.stdout + r.stderr, file=sys.stderr)
            return 1
        print(f"1..{len(want)}")
        failed = 0
        for i, (name, (exp, tol)) in enumerate(want.items(), 1):
            got = np.asanyarray(nib.load(os.path.join(tmp, name)).dataobj)
            exp = exp.reshape(got.shape) if exp.size == got.size else exp
            if got.shape != exp.shape:
                ok, msg = False, f"shape {got.shape} != {exp.shape}"
            else:
                err = float(np.max(np.abs(got.astype(np.float64) - exp.astype(np.float64))))
                if got.dtype.kind == "f":
                    err /= max(1.0, float(np.max(np.abs(exp))))
                ok, msg = err <= tol, f"max difference {err:.3g} (tol {tol:g})"
            failed += not ok
            print(f"{'ok' if ok else 'not ok'} {i} - {name}: {msg}")
        return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
