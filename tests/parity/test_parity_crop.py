#!/usr/bin/python3
"""Parity: CropForeground (MONAI and nnU-Net rules), SpatialCrop, CenterCrop,
SpatialPad, DivisiblePad, FillHoles and NormalizeIntensity in lumen against
numpy/scipy implementations of MONAI's (croppad/array.py, utils.fill_holes,
NormalizeIntensity) and nnU-Net v2's (crop_to_nonzero, ZScore/CT
normalisation) rules, on a real CT and its TotalSegmentator label map:
values (labels exactly, floats to rtol 1e-6 of the range), boxes and affines.

usage: test_parity_crop.py LUMEN SCRIPT
(TAP; without the data it prints "1..0 # SKIP" and exits 0)
"""
import os
import subprocess
import sys
import tempfile

import nibabel as nib
import numpy as np
from scipy import ndimage

F = np.float32


def box_crop(x, start, end):
    """x[..., start:end] per spatial axis, zero outside (MONAI crop_pad)."""
    sp = x.shape[-3:]
    lo = [max(s, 0) for s in start]
    hi = [min(e, n) for e, n in zip(end, sp)]
    core = x[(...,) + tuple(slice(a, b) for a, b in zip(lo, hi))]
    pad = [(0, 0)] * (x.ndim - 3) + [(a - s, e - b) for s, e, a, b in zip(start, end, lo, hi)]
    return np.pad(core, pad)


def monai_crop_foreground(x, thr=0, margin=0, k=1, allow_smaller=False):
    fg = (x > thr).any(0)
    margin = np.broadcast_to(margin, 3)
    k = np.broadcast_to(k, 3)
    start, end = [], []
    for d in range(3):
        ax = tuple(a for a in range(3) if a != d)
        idx = np.where(fg.any(ax))[0]
        lo, hi = idx[0] - margin[d], idx[-1] + margin[d] + 1
        if allow_smaller:
            lo, hi = max(lo, 0), min(hi, fg.shape[d])
        s = hi - lo
        s2 = int(np.ceil(s / k[d]) * k[d]) if k[d] > 0 else s
        lo -= (s2 - s) // 2
        start.append(int(lo)); end.append(int(lo + s2))
    return start, end


def nnunet_crop(data, seg=None):
    mask = ndimage.binary_fill_holes((data != 0).any(0))
    idx = np.nonzero(mask)
    start = [int(i.min()) for i in idx]
    end = [int(i.max()) + 1 for i in idx]
    sl = tuple(slice(a, b) for a, b in zip(start, end))
    m = mask[sl]
    if seg is None:
        s = np.where(m, 0, -1)[None]
    else:
        s = seg[(slice(None),) + sl].astype(np.int16)
        s[(s == 0) & ~m[None]] = -1
    return start, end, data[(slice(None),) + sl], s


def monai_fill_holes(lab, labels=None, connectivity=None):
    out = lab.copy()
    st = ndimage.generate_binary_structure(3, connectivity or 3)
    labels = sorted(set(np.unique(out)) - {0}) if labels is None else sorted(labels)
    for l in labels:
        tmp = np.zeros(out.shape[1:], bool)
        ndimage.binary_dilation(tmp, structure=st, iterations=-1, mask=out[0] != l,
                                origin=0, border_value=1, output=tmp)
        out[0][~tmp] = l
    return out


def zscore(x, nonzero=False):
    x = x.astype(F)
    m = x != 0 if nonzero else np.ones(x.shape, bool)
    v = x[m].astype(np.float64)
    mean, sd = F(v.mean()), F(v.std())
    y = x.copy()
    y[m] = (x[m] - mean) / (sd if sd != 0 else F(1))
    return y, mean, sd


def main():
    lumen, script = sys.argv[1], sys.argv[2]
    data = os.environ.get("LUMEN_TEST_DATA", "")
    ct = os.path.join(data, "ct", "totalseg_example_ct_sm.nii.gz")
    seg = os.path.join(data, "labels", "totalseg_example_seg.nii.gz")
    if not (os.path.exists(ct) and os.path.exists(seg)):
        print("1..0 # SKIP test data not available (LUMEN_TEST_DATA)")
        return 0
    ci = nib.load(ct)
    A = ci.affine
    x = ci.get_fdata(dtype=F)[None]
    lab = np.asanyarray(nib.load(seg).dataobj)[None]

    def shifted(start):
        B = A.copy()
        B[:3, 3] += A[:3, :3] @ np.asarray(start, float)
        return B

    want, boxes = {}, {}
    s, e = monai_crop_foreground(x, margin=2, k=16)
    want["cf_monai.nii"] = (box_crop(x, s, e), shifted(s)); boxes["cf_monai.nii"] = (s, e)
    want["cf_monai_label.nii"] = (box_crop(lab, s, e), shifted(s))
    cf = box_crop(x, s, e)
    s, e = monai_crop_foreground(x, thr=200, margin=[3, 0, 5], allow_smaller=True)
    want["cf_monai_thr.nii"] = (box_crop(x, s, e), shifted(s)); boxes["cf_monai_thr.nii"] = (s, e)
    s, e, nimg, nseg = nnunet_crop(lab)
    want["cf_nnunet.nii"] = (nimg, shifted(s)); boxes["cf_nnunet.nii"] = (s, e)
    want["cf_nnunet_seg.nii"] = (nseg, shifted(s))
    want["cf_nnunet_seg_label.nii"] = (nnunet_crop(lab, lab)[3], shifted(s))
    # SpatialCrop: start = max(c - s//2, 0), end = start + s, clipped
    sc_s = [max(c - n // 2, 0) for c, n in zip([100, 10, 20], [50, 40, 30])]
    sc_e = [min(a + n, m) for a, n, m in zip(sc_s, [50, 40, 30], x.shape[1:])]
    want["spatial_crop.nii"] = (box_crop(x, sc_s, sc_e), shifted(sc_s))
    boxes["spatial_crop.nii"] = (sc_s, sc_e)
    roi = [64, 200, x.shape[3]]
    cc_s = [max(n // 2 - r // 2, 0) for n, r in zip(x.shape[1:], roi)]
    cc_e = [min(a + r, n) for a, r, n in zip(cc_s, roi, x.shape[1:])]
    want["center_crop.nii"] = (box_crop(x, cc_s, cc_e), shifted(cc_s))
    boxes["center_crop.nii"] = (cc_s, cc_e)

    def pad(x, target, method="symmetric", mode="constant"):
        w = [max(t - n, 0) if t > 0 else 0 for t, n in zip(target, x.shape[1:])]
        pw = [(0, a) if method == "end" else (a // 2, a - a // 2) for a in w]
        return np.pad(x, [(0, 0)] + pw, mode=mode), [-p[0] for p in pw]

    y, st = pad(x, [131, 101, 45]); want["spatial_pad.nii"] = (y, shifted(st))
    boxes["spatial_pad.nii"] = (st, [a + b for a, b in zip(st, y.shape[1:])])
    y, st = pad(x, [140, 120, 50], "end", "reflect"); want["spatial_pad_reflect.nii"] = (y, shifted(st))
    div = lambda n, k: int(np.ceil(n / k) * k) if k > 0 else n
    y, st = pad(x, [div(n, 16) for n in x.shape[1:]], mode="edge")
    want["divisible_pad.nii"] = (y, shifted(st))
    boxes["divisible_pad.nii"] = (st, [a + b for a, b in zip(st, y.shape[1:])])
    y, st = pad(x, [div(n, k) for n, k in zip(x.shape[1:], [32, 0, 7])], mode="symmetric")
    want["divisible_pad_sym.nii"] = (y, shifted(st))

    want["fill_holes.nii"] = (monai_fill_holes(lab), A)
    want["fill_holes_c1.nii"] = (monai_fill_holes(lab, [2, 3, 5], 1), A)

    stats = {}
    y, m, sd = zscore(x); want["z.nii"] = (y, A); stats["z.nii"] = (m, sd)
    y, m, sd = zscore(cf, True); want["z_nonzero.nii"] = (y, None); stats["z_nonzero.nii"] = (m, sd)
    # nnU-Net ZScore with use_mask: seg >= 0 (seg from crop_to_nonzero)
    xm = nimg.astype(F); mk = np.broadcast_to(nseg >= 0, xm.shape)
    v = xm[mk].astype(np.float64); mean, sd = F(v.mean()), F(v.std())
    y = xm.copy(); y[mk] = (xm[mk] - mean) / max(sd, F(1e-8))
    want["z_nnunet_mask.nii"] = (y, None); stats["z_nnunet_mask.nii"] = (mean, sd)
    y = np.clip(x, F(-958), F(327)); y = (y - F(82.3)) / F(136.6)
    want["ct_norm.nii"] = (y, A)

    with tempfile.TemporaryDirectory() as tmp:
        r = subprocess.run([lumen, "run", script, ct, seg, tmp], capture_output=True, text=True)
        if r.returncode != 0:
            print("1..0 # lumen failed")
            print(r.stdout + r.stderr, file=sys.stderr)
            return 1
        got_boxes, got_stats = {}, {}
        for line in open(os.path.join(tmp, "boxes.txt")):
            name, a, b = line.split()
            if name.startswith("z") or name.startswith("ct"):
                got_stats[name] = (float(a), float(b))
            else:
                got_boxes[name] = ([int(float(v)) for v in a.split(",")],
                                   [int(float(v)) for v in b.split(",")])
        print(f"1..{len(want) + len(boxes) + len(stats)}")
        n, failed = 0, 0

        def report(ok, msg):
            nonlocal n, failed
            n += 1
            failed += not ok
            print(f"{'ok' if ok else 'not ok'} {n} - {msg}")

        for name, (exp, aff) in want.items():
            gi = nib.load(os.path.join(tmp, name))
            got = np.asanyarray(gi.dataobj)
            exp = exp[0] if exp.shape[0] == 1 else exp
            if got.shape != exp.shape:
                report(False, f"{name}: shape {got.shape} != {exp.shape}")
                continue
            err = float(np.max(np.abs(got.astype(np.float64) - exp.astype(np.float64)))) if exp.size else 0.0
            tol = 0.0
            if exp.dtype.kind == "f":
                tol = 1e-6 * max(1.0, float(np.max(np.abs(exp))))
            ok = err <= tol
            aerr = 0.0 if aff is None else float(np.max(np.abs(gi.affine - aff)))
            ok = ok and aerr <= 1e-4
            report(ok, f"{name}: shape {got.shape}, max difference {err:.3g} (tol {tol:.3g}), affine {aerr:.2g}")
        for name, (s, e) in boxes.items():
            g = got_boxes.get(name)
            report(g == (list(s), list(e)), f"{name} box {g} == {(list(s), list(e))}")
        for name, (m, sd) in stats.items():
            g = got_stats.get(name, (np.nan, np.nan))
            ok = abs(g[0] - m) <= 1e-6 * max(1, abs(m)) and abs(g[1] - sd) <= 1e-6 * max(1, abs(sd))
            report(ok, f"{name} mean/std {g} ~= ({m}, {sd})")
        return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
