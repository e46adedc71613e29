#!/usr/bin/python3
"""Parity: `lumen run pipelines/ct_preprocess.lua IN OUT` on the real CTs
equals nibabel + numpy in MONAI's order (float32, within 1e-6), with the same
affine, and the (1, X, Y, Z) output written as (X, Y, Z).

usage: test_ct_preprocess_pipeline.py LUMEN PIPELINE   (exit 77: no data)
"""
import os
import subprocess
import sys
import tempfile

import nibabel as nib
import numpy as np


def expected(path):
    img = nib.load(path)
    x = img.get_fdata(dtype=np.float32)  # MONAI LoadImage: float32
    y = (x.astype(np.float32) + np.float32(1000)) / np.float32(2000)
    return np.clip(y, 0, 1).astype(np.float32), img.affine


def compare(src, out, failures):
    want, affine = expected(src)
    got_img = nib.load(out)
    got = np.asanyarray(got_img.dataobj)
    name = os.path.basename(src)
    if got.shape != want.shape:
        failures.append(f"{name}: shape {got.shape} != {want.shape}")
        return
    if got.dtype != np.float32:
        failures.append(f"{name}: dtype {got.dtype} != float32")
    err = float(np.max(np.abs(got.astype(np.float64) - want.astype(np.float64))))
    if not err <= 1e-6:
        failures.append(f"{name}: max abs difference {err:g} > 1e-6")
    aerr = float(np.max(np.abs(got_img.affine - affine)))
    if not aerr <= 1e-6:
        failures.append(f"{name}: affine differs by {aerr:g}")
    print(f"# {name}: shape {got.shape}, max abs diff {err:.3g}, affine diff {aerr:.3g}")


def main():
    lumen, pipeline = sys.argv[1], sys.argv[2]
    data = os.environ.get("LUMEN_TEST_DATA", "")
    ct = os.path.join(data, "ct")
    if not data or not os.path.isdir(ct):
        print("skip: LUMEN_TEST_DATA/ct not available")
        return 77
    inputs = sorted(f for f in os.listdir(ct) if f.endswith((".nii", ".nii.gz")))
    if not inputs:
        print("skip: no CT files")
        return 77
    failures = []
    with tempfile.TemporaryDirectory() as tmp:
        outdir = os.path.join(tmp, "out")
        r = subprocess.run([lumen, "run", pipeline, ct, outdir], capture_output=True, text=True)
        print(r.stdout, end="")
        if r.returncode != 0:
            print(r.stderr, file=sys.stderr)
            return 1
        if f"{len(inputs)} case(s)" not in r.stdout:
            failures.append(f"summary line missing: {r.stdout!r}")
        for name in inputs:
            out = os.path.join(outdir, name)
            if not os.path.exists(out):
                failures.append(f"{name}: no output")
                continue
            compare(os.path.join(ct, name), out, failures)
        # a single file to a single file
        src = os.path.join(ct, inputs[0])
        single = os.path.join(tmp, "single.nii.gz")
        r = subprocess.run([lumen, "run", pipeline, src, single], capture_output=True, text=True)
        if r.returncode != 0:
            failures.append(f"single-file run failed: {r.stderr}")
        else:
            compare(src, single, failures)
        # a missing input fails with status 1 and leaves no output
        bad = os.path.join(tmp, "bad_out")
        r = subprocess.run([lumen, "run", pipeline, os.path.join(tmp, "nope.nii.gz"), bad],
                           capture_output=True, text=True)
        if r.returncode != 1 or os.path.exists(bad):
            failures.append(f"missing input: status {r.returncode}, output exists {os.path.exists(bad)}")
    for f in failures:
        print("FAIL " + f)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
