#!/usr/bin/python3
"""Parity: pipelines/nnunet_preprocess.lua against nnU-Net v2's
DefaultPreprocessor.run_case_npy transcribed onto numpy/scipy/skimage
(crop_to_nonzero, CTNormalization from the plans, resample_data_or_seg from
test_nnunet_resample_parity.py), on a real CT and its real
TotalSegmentator labels:

1. the CT at its true 3 mm to the example plans' 3d_lowres spacing
   (no separate z: 3-D order 3, labels 3-D one-hot);
2. the same voxels with an anisotropic header (0.75 x 0.75 x 3 mm) to
   3d_fullres (separate z: order 3 per slice, order 0 across slices).

Checks: image within 1e-4 of its range, seg exactly (with nnU-Net's -1
outside the nonzero mask), shapes, and the class locations (every sampled
voxel has its class, counts, sample sizes min(10000, n) / ceil(1 % n),
no duplicates).

usage: test_nnunet_preprocess_pipeline.py LUMEN PIPELINE PLANS
(exitcode protocol: 77 = skip without the data)
"""
import json
import math
import os
import subprocess
import sys
import tempfile

import nibabel as nib
import numpy as np
from scipy.ndimage import binary_fill_holes

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_nnunet_resample_parity import resample_to_spacing  # noqa: E402


def crop_to_nonzero(data, seg):
    """nnU-Net v2 cropping.py on (c, x, y, z) arrays (the rule is axis-symmetric)."""
    mask = binary_fill_holes(np.any(data != 0, axis=0))
    idx = np.nonzero(mask)
    if len(idx[0]) == 0:
        box = [(0, n) for n in mask.shape]
    else:
        box = [(int(i.min()), int(i.max()) + 1) for i in idx]
    sl = tuple(slice(a, b) for a, b in box)
    data = data[(slice(None),) + sl]
    m = mask[sl]
    seg = seg[(slice(None),) + sl].copy()
    seg[(seg == 0) & ~m[None]] = -1
    return data, seg, box


def reference(ct_xyz, seg_xyz, spacing_xyz, plans, config):
    c = plans["configurations"][config]
    tf = plans["transpose_forward"]
    target_xyz = [0.0] * 3
    for d in range(3):
        target_xyz[2 - tf[d]] = c["spacing"][d]
    data, seg, box = crop_to_nonzero(ct_xyz[None].astype(np.float32), seg_xyz[None].astype(np.int16))
    ip = plans["foreground_intensity_properties_per_channel"]["0"]
    img = data[0].astype(np.float32, copy=True)
    np.clip(img, ip["percentile_00_5"], ip["percentile_99_5"], out=img)
    img -= ip["mean"]
    img /= max(ip["std"], 1e-8)
    # nnU-Net's (z, y, x) order for the resampling
    zyx = lambda a: np.ascontiguousarray(a.transpose(2, 1, 0))[None]  # noqa: E731
    sp = np.array(spacing_xyz[::-1])
    tg = np.array(target_xyz[::-1])
    kd, ks = c["resampling_fn_data_kwargs"], c["resampling_fn_seg_kwargs"]
    r_img, sep = resample_to_spacing(zyx(img), sp, tg, False, kd["order"], kd["order_z"])
    r_seg, _ = resample_to_spacing(zyx(seg[0]), sp, tg, True, ks["order"], ks["order_z"])
    return r_img[0].transpose(2, 1, 0), r_seg[0].transpose(2, 1, 0), box, sep


def check_case(lumen, pipeline, plans_path, plans, tmp, name, ct, seg, config, spacing, ct_arr,
               seg_arr):
    out = os.path.join(tmp, name)
    r = subprocess.run([lumen, "run", pipeline, ct, plans_path, out, seg, config],
                       capture_output=True, text=True)
    if r.returncode != 0:
        return False, "pipeline failed: " + (r.stderr or r.stdout).strip()
    base = os.path.basename(ct).replace(".nii.gz", "")
    got = np.asanyarray(nib.load(os.path.join(out, base + ".nii.gz")).dataobj)
    got_seg = np.asanyarray(nib.load(os.path.join(out, base + "_seg.nii.gz")).dataobj)
    props = json.load(open(os.path.join(out, base + ".json")))
    want, want_seg, box, sep = reference(ct_arr, seg_arr, spacing, plans, config)
    got = got.reshape(want.shape) if got.size == want.size else got
    got_seg = got_seg.reshape(want_seg.shape) if got_seg.size == want_seg.size else got_seg
    if got.shape != want.shape or got_seg.shape != want_seg.shape:
        return False, "shapes %s / %s != oracle %s" % (got.shape, got_seg.shape, want.shape)
    problems = []
    rng = float(want.max() - want.min())
    err = float(np.max(np.abs(got.astype(np.float64) - want)))
    if err > 1e-4 * rng:
        problems.append("image max abs err %.3g > 1e-4 of range %.3g" % (err, rng))
    bad = int(np.count_nonzero(got_seg != want_seg))
    if bad:
        problems.append("%d seg voxels differ" % bad)
    if props["bbox_used_for_cropping"] != [[a for a, _ in box], [b for _, b in box]]:
        problems.append("bbox %s != %s" % (props["bbox_used_for_cropping"], box))
    # class locations
    locs, counts = props["class_locations"], props["class_voxel_counts"]
    labels = [int(v) for v in np.unique(want_seg) if v > 0]
    if sorted(int(k) for k in locs) != labels:
        problems.append("class_locations keys %s != labels %s" % (sorted(locs), labels))
    for k, pts in locs.items():
        n = int(np.count_nonzero(want_seg == int(k)))
        if counts.get(k) != n:
            problems.append("class %s: count %s != %d" % (k, counts.get(k), n))
        expect = max(min(10000, n), int(math.ceil(n * 0.01)))
        if len(pts) != expect:
            problems.append("class %s: %d samples, expected %d" % (k, len(pts), expect))
        p = np.array(pts, dtype=np.int64).reshape(-1, 3)
        if len({tuple(x) for x in p.tolist()}) != len(p):
            problems.append("class %s: duplicate samples" % k)
        if len(p) and not np.all(want_seg[p[:, 0], p[:, 1], p[:, 2]] == int(k)):
            problems.append("class %s: sampled voxels of another class" % k)
    detail = "%s separate_z=%s shape %s, image err %.3g of range, seg mismatches %d, %d classes" % (
        config, sep, want.shape, err / rng, bad, len(locs))
    return not problems, detail + ("; " + "; ".join(problems[:5]) if problems else "")


def main():
    lumen, pipeline, plans_path = sys.argv[1:4]
    data = os.environ.get("LUMEN_TEST_DATA", "")
    ct = os.path.join(data, "ct", "totalseg_example_ct_sm.nii.gz")
    seg = os.path.join(data, "labels", "totalseg_example_seg.nii.gz")
    if not (os.path.exists(ct) and os.path.exists(seg)):
        print("1..0 # SKIP test data not available (LUMEN_TEST_DATA)")
        return 77
    plans = json.load(open(plans_path))
    ct_img = nib.load(ct)
    ct_arr = ct_img.get_fdata(dtype=np.float32)
    seg_arr = np.asanyarray(nib.load(seg).dataobj).astype(np.int16)
    failed = 0
    print("1..3")
    with tempfile.TemporaryDirectory() as tmp:
        ok, detail = check_case(lumen, pipeline, plans_path, plans, tmp, "iso", ct, seg,
                                "3d_lowres", (3.0, 3.0, 3.0), ct_arr, seg_arr)
        print("%s 1 - real CT 3 mm to 3d_lowres: %s" % ("ok" if ok else "not ok", detail))
        failed += not ok
        aff = np.diag([0.75, 0.75, 3.0, 1.0])
        aff[:3, 3] = ct_img.affine[:3, 3]
        a_ct = os.path.join(tmp, "aniso_ct.nii.gz")
        a_seg = os.path.join(tmp, "aniso_seg.nii.gz")
        nib.save(nib.Nifti1Image(ct_arr, aff), a_ct)
        nib.save(nib.Nifti1Image(seg_arr, aff), a_seg)
        ok, detail = check_case(lumen, pipeline, plans_path, plans, tmp, "aniso", a_ct, a_seg,
                                "3d_fullres", (0.75, 0.75, 3.0), ct_arr, seg_arr)
        print("%s 2 - CT voxels at 0.75x0.75x3 mm to 3d_fullres: %s" % ("ok" if ok else "not ok",
                                                                       detail))
        failed += not ok
        # a configuration the plans do not have: a clear error, nothing written
        out = os.path.join(tmp, "missing")
        r = subprocess.run([lumen, "run", pipeline, ct, plans_path, out, seg, "2d_missing"],
                           capture_output=True, text=True)
        ok = r.returncode != 0 and "no configuration '2d_missing'" in r.stderr \
            and not os.path.exists(out)
        print("%s 3 - unknown configuration: %s" % ("ok" if ok else "not ok",
                                                    r.stderr.strip().splitlines()[0:1]))
        failed += not ok
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
