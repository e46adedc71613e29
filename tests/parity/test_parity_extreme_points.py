#!/usr/bin/python3
"""Parity: ExtremePoints and AddExtremePointsChannel against MONAI 1.4
(monai.transforms.utils.get_extreme_points, extreme_points_to_image and the
AddExtremePointsChannel transform that chains them), on label maps with
many ties (blocks, so whole faces share the extreme coordinate), one-voxel
objects, points at the border, 2-D images, per-axis sigma and sigma 0.

MONAI breaks ties at random (rand_state.choice over the tied voxels); the
test hands it a rand_state whose choice takes the first tied voxel, which is
lumen's documented rule, so the points must be equal.  The points channel
must agree within 1e-5 (MONAI filters in float32).

usage: test_parity_extreme_points.py LUMEN DRIVER_LUA
Needs MONAI (venv/ from scripts/peers); exits 77 without it.  Exitcode
protocol.
"""
import json
import os
import subprocess
import sys
import tempfile

from peers_venv import reexec_with_venv


class FirstChoice:
    """A rand_state for get_extreme_points: ties go to the first voxel of
    numpy.where (C order), no perturbation."""

    def choice(self, idx):
        return idx[0]

    def rand(self):
        return 0.5


def make_cases(np):
    rng = np.random.default_rng(20261122)
    cases = []

    def add(name, label, img, sigma, rmin=-1.0, rmax=1.0, label_value=None):
        cases.append(dict(name=name, label_arr=label, img_arr=img, sigma=sigma,
                          rmin=rmin, rmax=rmax, label=label_value))

    # Blocks: every extreme is a face of tied voxels.
    lab = np.zeros((24, 19, 15), np.uint8)
    lab[5:17, 3:11, 4:12] = 1
    lab[9:20, 8:16, 2:7] = 2
    add("blocks", lab, rng.normal(size=(1, 24, 19, 15)).astype(np.float32), [3])
    add("blocks_label2", lab, rng.normal(size=(2, 24, 19, 15)).astype(np.float32),
        [1.5], 0.0, 1.0, 2)
    # A random blob touching the border, per-axis sigma.
    blob = (rng.random((21, 18, 12)) > 0.93).astype(np.int16)
    blob[0, 5, 3] = 1
    blob[20, 17, 11] = 1
    add("speckle_border", blob, rng.normal(size=(1, 21, 18, 12)).astype(np.float32),
        [1.0, 2.0, 2.5])
    # One voxel: all six points coincide.
    one = np.zeros((16, 16, 16), np.float32)
    one[7, 3, 12] = 1
    add("one_voxel", one, rng.normal(size=(1, 16, 16, 16)).astype(np.float64), [2])
    # sigma 0: a unit impulse at each point.
    add("sigma0", lab, np.zeros((1, 24, 19, 15), np.float32), [0])
    # 2-D.
    lab2 = np.zeros((30, 22), np.uint8)
    lab2[4:25, 6:9] = 1
    lab2[10:13, 2:20] = 1
    add("two_d", lab2, rng.normal(size=(1, 30, 22)).astype(np.float32), [3])
    return cases


def main():
    if len(sys.argv) != 3:
        print(__doc__)
        return 2
    rc = reexec_with_venv(("monai",), __file__)
    if rc is not None:
        return rc
    import numpy as np
    import torch
    from monai.transforms import AddExtremePointsChannel
    from monai.transforms.utils import extreme_points_to_image, get_extreme_points
    torch.set_num_threads(1)
    lumen, driver = sys.argv[1], sys.argv[2]
    cases = make_cases(np)
    failures = 0
    with tempfile.TemporaryDirectory() as d:
        meta = []
        for c in cases:
            np.save(os.path.join(d, c["name"] + "_label.npy"), c["label_arr"])
            np.save(os.path.join(d, c["name"] + "_img.npy"), c["img_arr"])
            meta.append({k: c[k] for k in ("name", "sigma", "rmin", "rmax")
                         if c[k] is not None})
            if c["label"] is not None:
                meta[-1]["label"] = c["label"]
        with open(os.path.join(d, "cases.json"), "w") as f:
            json.dump(meta, f)
        r = subprocess.run([lumen, "run", driver, d], capture_output=True, text=True)
        if r.returncode != 0:
            print(f"FAIL: lumen exited {r.returncode}\n{r.stdout}{r.stderr}")
            return 1
        for c in cases:
            name = c["name"]
            lab = c["label_arr"]
            mask = lab if c["label"] is None else (lab == c["label"]).astype(np.uint8)
            want = np.array(get_extreme_points(mask, rand_state=FirstChoice()), np.int64)
            got = np.load(os.path.join(d, name + "_points.npy"))
            if got.shape != want.shape or not np.array_equal(got, want):
                print(f"FAIL {name}: points {got.tolist()} != MONAI {want.tolist()}")
                failures += 1
                continue
            sigma = c["sigma"][0] if len(c["sigma"]) == 1 else c["sigma"]
            ch = extreme_points_to_image([tuple(p) for p in want.tolist()],
                                         torch.as_tensor(mask[None]), sigma=sigma,
                                         rescale_min=c["rmin"], rescale_max=c["rmax"])
            img = c["img_arr"]
            ref = np.concatenate([img.astype(np.float64), ch.numpy().astype(np.float64)])
            # The transform itself, with the same tie rule.
            t = AddExtremePointsChannel()
            t.R = FirstChoice()
            whole = t(torch.as_tensor(img), torch.as_tensor(mask[None]), sigma=sigma,
                      rescale_min=c["rmin"], rescale_max=c["rmax"])
            whole = np.asarray(whole, np.float64)
            for suffix in ("_out", "_out_tensor"):
                out = np.load(os.path.join(d, name + suffix + ".npy"))
                if out.shape != ref.shape:
                    print(f"FAIL {name}{suffix}: shape {out.shape} != {ref.shape}")
                    failures += 1
                    continue
                err = float(np.abs(out.astype(np.float64) - ref).max())
                err_t = float(np.abs(out.astype(np.float64) - whole).max())
                ok = err <= 1e-5 and err_t <= 1e-5
                print(f"{'ok' if ok else 'FAIL'} {name}{suffix}: max |lumen - MONAI| = "
                      f"{err:.3g} (transform {err_t:.3g}), channel range "
                      f"[{out[-1].min():.4g}, {out[-1].max():.4g}]")
                failures += not ok
    print(f"{len(cases)} cases, {failures} failures")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
