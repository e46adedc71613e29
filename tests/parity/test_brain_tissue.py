#!/usr/bin/python3
"""Acceptance: pipelines/brain_tissue.lua (brainchop's MeshNet tissue model on the real
conformed T1) against the PyTorch reference of brain_tissue_reference.py, for each of the
three copies of the model (ONNX, safetensors declared with lumen.nn, TensorFlow.js).

- each copy's labels agree with the reference on at least 99.9% of the voxels;
- the three copies give identical labels;
- the output has the input's shape and affine, uint8, labels within {0, 1, 2}.

usage: test_brain_tissue.py LUMEN PIPELINE   (exit 77 without LUMEN_TEST_DATA)
"""
import os
import subprocess
import sys
import tempfile

import nibabel as nib
import numpy as np

here = os.path.dirname(os.path.abspath(__file__))


def main():
    lumen, pipeline = sys.argv[1], sys.argv[2]
    data = os.environ.get("LUMEN_TEST_DATA", "")
    t1 = os.path.join(data, "mri", "brainchop_t1_crop.nii.gz")
    mdir = os.path.join(data, "models", "model5_gw_ae")
    if not os.path.exists(t1) or not os.path.isdir(mdir):
        print("skip: LUMEN_TEST_DATA (brainchop T1 and model5_gw_ae) not available")
        return 77
    copies = {
        "onnx": os.path.join(mdir, "model5_gw_ae.onnx"),
        "safetensors": os.path.join(mdir, "model5_gw_ae.safetensors"),
        "tfjs": os.path.join(mdir, "model.json"),
    }
    failures = []
    with tempfile.TemporaryDirectory() as tmp:
        ref_path = os.path.join(tmp, "ref.nii.gz")
        r = subprocess.run([sys.executable, os.path.join(here, "brain_tissue_reference.py"), t1,
                            copies["safetensors"], os.path.join(mdir, "model5_gw_ae_safetensors_config.json"),
                            ref_path], capture_output=True, text=True)
        if r.returncode != 0:
            print(r.stderr, file=sys.stderr)
            return 1
        print("# reference:", r.stdout.strip())
        ref_img = nib.load(ref_path)
        ref = np.asanyarray(ref_img.dataobj)
        src = nib.load(t1)
        labels = {}
        for name, path in copies.items():
            out = os.path.join(tmp, name + ".nii.gz")
            r = subprocess.run([lumen, "run", pipeline, t1, out, path], capture_output=True, text=True)
            if r.returncode != 0:
                failures.append(f"{name}: lumen failed: {r.stderr.strip()[-1500:]}")
                continue
            print("#", r.stdout.strip())
            img = nib.load(out)
            lab = np.asanyarray(img.dataobj)
            if lab.shape != src.shape or lab.dtype != np.uint8:
                failures.append(f"{name}: shape/dtype {lab.shape} {lab.dtype}, want {src.shape} uint8")
                continue
            if np.abs(img.affine - src.affine).max() > 1e-5:
                failures.append(f"{name}: affine differs from the input's")
            if lab.max() > 2:
                failures.append(f"{name}: label {lab.max()} outside 0..2")
            agree = float((lab == ref).mean())
            counts = np.bincount(lab.ravel(), minlength=3).tolist()
            print(f"# {name}: agreement with PyTorch {100 * agree:.4f}%, counts {counts}")
            if agree < 0.999:
                failures.append(f"{name}: agreement {100 * agree:.4f}% < 99.9%")
            labels[name] = lab
        names = list(labels)
        for a in names[1:]:
            diff = int((labels[a] != labels[names[0]]).sum())
            print(f"# {a} vs {names[0]}: {diff} voxels differ")
            if diff:
                failures.append(f"{a} and {names[0]} labels differ on {diff} voxels")
    for f in failures:
        print("FAIL:", f)
    print("ok" if not failures else "FAILED")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
