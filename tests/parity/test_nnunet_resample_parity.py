#!/usr/bin/python3
"""Parity: lumen's nnU-Net resampling (transforms/resample_nnunet.c) against
nnU-Net v2's resample_data_or_seg, transcribed below from semantics.md §4.4
onto skimage.transform.resize and scipy map_coordinates, on real data:

* an anisotropic CT: totalseg_example_ct_sm's voxels with the header spacing
  set to 0.75 x 0.75 x 3 mm (ratio 4 > 3: separate z), to 0.9 x 0.9 x 1.2 mm
  (order 3 per 2-D slice, order 0 across slices), and the same volume at
  its true 3 mm isotropic spacing to 2.2 mm (no separate z: 3-D order 3);
* torsoLabel (0.782 x 0.782 x 5 mm) as labels to 1.0 x 1.0 x 2.0 mm
  (one-hot order 1 per slice, order 0 across slices) and, with order_z 1,
  nnU-Net's per-label rint(...) > 0.5 across slices;
* TotalSegmentator's labels of the CT to 2.5 mm (3-D one-hot order 1).

Data: within 1e-4 of the value range (scipy is float64 throughout, lumen
stores float32 as nnU-Net v2 does); labels exactly; shapes exactly; affine as
documented in resample_nnunet.h (voxel edges aligned).

nnU-Net works on (z, y, x) arrays (SimpleITK order, lowest resolution axis
first); the oracle does the same, so scipy's corner order and weight
products are nnU-Net's.

usage: test_nnunet_resample_parity.py TOOL    (exitcode protocol: 77 = skip)
"""
import os
import subprocess
import sys
import tempfile

import nibabel as nib
import numpy as np
from scipy.ndimage import map_coordinates
from skimage.transform import resize

ANISO_THRESHOLD = 3


# ---- nnU-Net v2 default_resampling.py, transcribed from semantics.md §4.4 ----
def compute_new_shape(old_shape, old_spacing, new_spacing):
    return np.array([int(round(i / j * k)) for i, j, k in zip(old_spacing, new_spacing, old_shape)])


def get_do_separate_z(spacing, threshold=ANISO_THRESHOLD):
    return (np.max(spacing) / np.min(spacing)) > threshold


def get_lowres_axis(spacing):
    return np.where(max(spacing) / np.array(spacing) == 1)[0]


def resize_segmentation(segmentation, new_shape, order=3):
    tpe = segmentation.dtype
    unique_labels = np.unique(segmentation)
    if order == 0:
        return resize(segmentation.astype(float), new_shape, order, mode="edge", clip=True,
                      anti_aliasing=False).astype(tpe)
    reshaped = np.zeros(new_shape, dtype=segmentation.dtype)
    for c in unique_labels:
        mask = segmentation == c
        m = resize(mask.astype(float), new_shape, order, mode="edge", clip=True, anti_aliasing=False)
        reshaped[m >= 0.5] = c
    return reshaped


def resample_data_or_seg(data, new_shape, is_seg, axis, order, do_separate_z, order_z):
    resize_fn = resize_segmentation if is_seg else resize
    kwargs = {} if is_seg else {"mode": "edge", "anti_aliasing": False}
    dtype_out = data.dtype
    shape = np.array(data[0].shape)
    new_shape = np.array(new_shape)
    if not np.any(shape != new_shape):
        return data
    data = data.astype(float, copy=False)
    if do_separate_z:
        assert len(axis) == 1
        axis = axis[0]
        if axis == 0:
            new_shape_2d = new_shape[1:]
        elif axis == 1:
            new_shape_2d = new_shape[[0, 2]]
        else:
            new_shape_2d = new_shape[:-1]
        out = np.zeros((data.shape[0], *new_shape), dtype=dtype_out)
        for c in range(data.shape[0]):
            slices = []
            for s in range(data.shape[axis + 1]):
                sl = np.take(data[c], s, axis=axis)
                slices.append(resize_fn(sl, new_shape_2d, order, **kwargs))
            tmp = np.stack(slices, axis)
            if shape[axis] != new_shape[axis]:
                rows, cols, dim = new_shape
                orig_rows, orig_cols, orig_dim = tmp.shape
                map_rows, map_cols, map_dims = np.mgrid[:rows, :cols, :dim]
                map_rows = float(orig_rows) / rows * (map_rows + 0.5) - 0.5
                map_cols = float(orig_cols) / cols * (map_cols + 0.5) - 0.5
                map_dims = float(orig_dim) / dim * (map_dims + 0.5) - 0.5
                coord_map = np.array([map_rows, map_cols, map_dims])
                if not is_seg or order_z == 0:
                    out[c] = map_coordinates(tmp, coord_map, order=order_z, mode="nearest")
                else:
                    for cl in np.sort(np.unique(tmp.ravel())):
                        m = map_coordinates((tmp == cl).astype(float), coord_map, order=order_z,
                                            mode="nearest")
                        out[c][np.round(m) > 0.5] = cl
            else:
                out[c] = tmp
        return out
    out = np.zeros((data.shape[0], *new_shape), dtype=dtype_out)
    for c in range(data.shape[0]):
        out[c] = resize_fn(data[c], new_shape, order, **kwargs)
    return out


def resample_to_spacing(data, current_spacing, new_spacing, is_seg, order, order_z):
    """resample_data_or_seg_to_spacing with force_separate_z=None."""
    if get_do_separate_z(current_spacing):
        do_sep, axis = True, get_lowres_axis(current_spacing)
    elif get_do_separate_z(new_spacing):
        do_sep, axis = True, get_lowres_axis(new_spacing)
    else:
        do_sep, axis = False, None
    if axis is not None and len(axis) != 1:
        do_sep = False
    new_shape = compute_new_shape(data[0].shape, current_spacing, new_spacing)
    return resample_data_or_seg(data, new_shape, is_seg, axis, order, do_sep, order_z), do_sep


# ---- the comparison ----
def run_case(tool, tmp, name, src, dtype, arr_xyz, spacing_xyz, target_xyz, is_label,
             order, order_z):
    """arr_xyz: the array as lumen loads it (X, Y, Z)."""
    out_path = os.path.join(tmp, name + ".nii")
    r = subprocess.run([tool, src, out_path, dtype, *map(str, target_xyz), str(int(is_label)),
                        str(order), str(order_z)], capture_output=True, text=True)
    if r.returncode != 0:
        return False, "tool failed: " + r.stderr.strip()
    got_img = nib.load(out_path)
    got = np.asanyarray(got_img.dataobj)
    # the oracle in nnU-Net's (z, y, x) order
    zyx = np.ascontiguousarray(arr_xyz.transpose(2, 1, 0))[None]
    want, sep = resample_to_spacing(zyx, spacing_xyz[::-1], target_xyz[::-1], is_label, order,
                                    order_z)
    want = want[0].transpose(2, 1, 0)
    if got.shape != want.shape:
        return False, "shape %s != oracle %s" % (got.shape, want.shape)
    # affine: the input's, columns scaled by n/m, origin at input index 0.5 (n/m - 1)
    a = nib.load(src).affine
    ratio = np.array(arr_xyz.shape, float) / np.array(want.shape, float)
    want_aff = a.copy()
    want_aff[:3, :3] = a[:3, :3] * ratio
    want_aff[:3, 3] = a[:3, 3] + a[:3, :3] @ (0.5 * (ratio - 1))
    if not np.allclose(got_img.affine, want_aff, atol=1e-3):
        return False, "affine\n%s\n!= expected\n%s" % (got_img.affine, want_aff)
    if is_label:
        bad = int(np.count_nonzero(got != want))
        detail = "separate_z=%s shape %s, %d labels, mismatches %d" % (
            sep, want.shape, len(np.unique(want)), bad)
        return bad == 0, detail
    rng = float(arr_xyz.max() - arr_xyz.min())
    err = float(np.max(np.abs(got.astype(np.float64) - want.astype(np.float64))))
    detail = "separate_z=%s shape %s, max abs err %.3g = %.3g of the range" % (
        sep, want.shape, err, err / rng)
    return err <= 1e-4 * rng, detail


def main():
    tool = sys.argv[1]
    data = os.environ.get("LUMEN_TEST_DATA", "")
    ct = os.path.join(data, "ct", "totalseg_example_ct_sm.nii.gz")
    seg = os.path.join(data, "labels", "totalseg_example_seg.nii.gz")
    torso = os.path.join(data, "labels", "torsoLabel.nii.gz")
    if not all(os.path.exists(p) for p in (ct, seg, torso)):
        print("1..0 # SKIP test data not available (LUMEN_TEST_DATA)")
        return 77
    ct_img = nib.load(ct)
    x = ct_img.get_fdata(dtype=np.float32)
    t_img = nib.load(torso)
    t_lab = np.asanyarray(t_img.dataobj).astype(np.uint8)
    s_img = nib.load(seg)
    s_lab = np.asanyarray(s_img.dataobj).astype(np.uint8)
    failed = 0
    with tempfile.TemporaryDirectory() as tmp:
        # the CT's voxels with an anisotropic header (real intensities)
        aniso = os.path.join(tmp, "ct_aniso.nii.gz")
        aff = np.diag([0.75, 0.75, 3.0, 1.0])
        aff[:3, 3] = ct_img.affine[:3, 3]
        nib.save(nib.Nifti1Image(x, aff), aniso)
        cases = [
            ("ct_sep_z", aniso, "float32", x, (0.75, 0.75, 3.0), (0.9, 0.9, 1.2), False, 3, 0),
            ("ct_3d", ct, "float32", x, (3.0, 3.0, 3.0), (2.2, 2.2, 2.2), False, 3, 0),
            ("ct_sep_z_linear_z", aniso, "float32", x, (0.75, 0.75, 3.0), (0.9, 0.9, 1.2),
             False, 3, 1),
            ("torso_labels", torso, "uint8", t_lab, tuple(t_img.header.get_zooms()[:3]),
             (1.0, 1.0, 2.0), True, 1, 0),
            ("torso_labels_order_z1", torso, "uint8", t_lab, tuple(t_img.header.get_zooms()[:3]),
             (1.0, 1.0, 2.0), True, 1, 1),
            ("seg_3d", seg, "uint8", s_lab, (3.0, 3.0, 3.0), (2.5, 2.5, 2.5), True, 1, 0),
        ]
        print("1..%d" % len(cases))
        for i, (name, src, dt, arr, sp, tgt, is_label, order, order_z) in enumerate(cases, 1):
            # lumen takes the spacing from the affine: make sure the oracle uses the same
            sp_aff = tuple(np.sqrt((nib.load(src).affine[:3, :3] ** 2).sum(0)))
            ok, detail = run_case(tool, tmp, name, src, dt, arr, np.array(sp_aff), np.array(tgt),
                                  is_label, order, order_z)
            print("%s %d - %s: %s" % ("ok" if ok else "not ok", i, name, detail))
            failed += not ok
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
