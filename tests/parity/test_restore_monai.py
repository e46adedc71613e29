#!/usr/bin/python3
"""Parity: RestoreOriginalShape's nearest restoration against MONAI 1.4's
Invertd(nearest_interp=True) after LoadImage, EnsureChannelFirst,
Orientation RAS and Spacing, voxel for voxel, on geometries where many
output voxels fall exactly half-way between two input voxels (2 mm back to
2.5 mm, 1 mm back to 0.75 mm or 1.5 mm...).  The image restored is an index
encoding of the resampled grid (channel a = index along spatial axis a), so
the result says which voxel each side picked.  Those ties are broken by the
last bits of MONAI's float64 grid arithmetic on torch's CPU path, which
lumen's rounding='monai' repeats (transforms/torch_grid.c): the test wants
every voxel equal, and checks that the exact rule ('exact', ties to even)
differs on the tie-heavy cases, so the cases do exercise ties.

usage: test_restore_monai.py LUMEN DRIVER_LUA
Needs MONAI (venv/ from scripts/peers); exits 77 without it.  Uses the CT
files of ../shared/data when present.  Exitcode protocol.
"""
import os
import subprocess
import sys
import tempfile

from peers_venv import reexec_with_venv


def monai_restore(path, pixdim, code_of):
    import torch
    from monai.transforms import (Compose, EnsureChannelFirstd, Invertd, LoadImaged, Orientationd,
                                  Spacingd)
    torch.set_num_threads(1)
    pre = Compose([LoadImaged(keys="image", image_only=False), EnsureChannelFirstd(keys="image"),
                   Orientationd(keys="image", axcodes="RAS"),
                   Spacingd(keys="image", pixdim=pixdim, mode="bilinear")])
    d = pre({"image": path})
    img = d["image"]
    code = code_of(tuple(img.shape[1:]))
    pred = img.clone()[:1].repeat(3, 1, 1, 1)
    pred.copy_(torch.from_numpy(code))
    d["pred"] = pred
    d = Compose([Invertd(keys="pred", transform=pre, orig_keys="image", nearest_interp=True)])(d)
    return d["pred"].numpy(), code


def main():
    if len(sys.argv) != 3:
        print(__doc__)
        return 2
    s = reexec_with_venv(("monai",), __file__)
    if s is not None:
        return s
    import nibabel as nib
    import numpy as np

    lumen, driver = sys.argv[1], sys.argv[2]
    root = os.environ.get("LUMEN_SOURCE_ROOT") or os.path.dirname(
        os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    data = os.environ.get("LUMEN_DATA") or os.path.join(os.path.dirname(root), "shared", "data")

    def code_of(shape):
        return np.stack([np.broadcast_to(np.arange(n, dtype=np.float32).reshape(
            [-1 if a == b else 1 for b in range(3)]), shape) for a, n in enumerate(shape)])

    failed = 0
    with tempfile.TemporaryDirectory() as tmp:
        rng = np.random.default_rng(3)
        cases = []
        # The bench's CT geometry, smaller: centred origin, 2.5 mm slices to 2 mm.
        a = np.diag([0.8, 0.8, 2.5, 1.0])
        a[:3, 3] = [-0.8 * 39 / 2, -0.8 * 35 / 2, -2.5 * 47 / 2]
        cases.append(("ct-like 0.8x0.8x2.5 -> 1.5x1.5x2", (40, 36, 48), a, (1.5, 1.5, 2.0), True))
        # Flipped axes (orientation undone too), ties on every axis.
        a = np.diag([-0.75, -1.5, 1.25, 1.0])
        a[:3, 3] = [11.3, 40.1, -7.7]
        cases.append(("LPS 0.75x1.5x1.25 -> 1x1x2", (30, 32, 24), a, (1.0, 1.0, 2.0), True))
        files = [("totalseg aorta 1.5 mm LPS -> 2x2x1",
                  os.path.join(data, "ct", "totalseg_aorta_ct_cropped.nii.gz"), (2.0, 2.0, 1.0)),
                 ("totalseg small 3 mm -> 2 mm",
                  os.path.join(data, "ct", "totalseg_example_ct_sm.nii.gz"), (2.0, 2.0, 2.0))]
        runs = []
        for name, shape, aff, pixdim, ties in cases:
            path = os.path.join(tmp, "img%d.nii.gz" % len(runs))
            nib.save(nib.Nifti1Image(rng.integers(-1000, 1000, shape).astype(np.int16), aff), path)
            runs.append((name, path, pixdim, ties))
        for name, path, pixdim in files:
            if os.path.exists(path):
                runs.append((name, path, pixdim, True))
            else:
                print(f"# {name}: {path} missing, not checked")
        for i, (name, path, pixdim, ties) in enumerate(runs):
            want, code = monai_restore(path, pixdim, code_of)
            code_path = os.path.join(tmp, "code%d.npy" % i)
            np.save(code_path, code)
            got = {}
            for rule in ("monai", "exact"):
                out = os.path.join(tmp, "out%d_%s.npy" % (i, rule))
                drv = driver
                if rule == "exact":
                    drv = os.path.join(tmp, "exact.lua")
                    with open(driver) as f:
                        src = f.read()
                    with open(drv, "w") as f:
                        f.write(src.replace('{mode = "nearest"}', '{mode = "nearest", rounding = "exact"}'))
                r = subprocess.run([lumen, "run", drv, path, *map(str, pixdim), code_path, out],
                                   capture_output=True, text=True)
                if r.returncode != 0:
                    print(f"not ok - {name} ({rule}): lumen failed: {r.stderr.strip()}")
                    failed += 1
                    got = None
                    break
                got[rule] = np.load(out)
            if got is None:
                continue
            g = got["monai"]
            if g.shape != want.shape:
                print(f"not ok - {name}: shape {g.shape} vs MONAI {want.shape}")
                failed += 1
                continue
            equal = float((g == want).mean())
            differ_exact = int((got["exact"] != want).any(axis=0).sum())
            ok = equal == 1.0 and (differ_exact > 0 or not ties)
            print(f"{'ok' if ok else 'not ok'} - {name}: voxels equal to MONAI {100 * equal:.4f}%"
                  f" (the exact rule differs on {differ_exact} voxels)")
            failed += not ok
    print("# %d failed" % failed)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
