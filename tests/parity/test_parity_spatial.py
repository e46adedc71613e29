#!/usr/bin/python3
"""Parity: Orientation, ScaleByResolution (Spacing, MONAI rule), Resize and
RestoreOriginalShape in lumen against nibabel / scipy / numpy on real files.

* Orientation: nibabel io_orientation + ornt_transform + apply_orientation
  and inv_ornt_aff, exact values.
* Spacing: MONAI's index map i_in = i_out * out/in and shape
  rint((n-1)*in/out + 1); nearest = x[rint(clamp(c))] (torch grid_sample,
  half to even; scipy's order 0 rounds half up, so it is not the oracle),
  linear = torch grid_sample (border, zeros with partial weights,
  reflection) written in numpy, and cross-checked against scipy
  map_coordinates(order=1, mode='nearest') for border; cubic = scipy
  map_coordinates(order=3, mode nearest / constant / reflect).  Max abs error
  <= 1e-4 of the value range for linear and cubic, exact for nearest and
  labels.
* RestoreOriginalShape after Spacing: nearest back for labels (exact),
  linear back for floats.
* Resize: torch F.interpolate rules (linear align_corners=False, legacy
  nearest floor), cross-checked with skimage resize order 1.

usage: test_parity_spatial.py LUMEN SCRIPT
(TAP; without the data it prints "1..0 # SKIP" and exits 0)
"""
import os
import subprocess
import sys
import tempfile

import nibabel as nib
import numpy as np
from nibabel import orientations as nio
from scipy import ndimage as ndi

results = []


def check(name, ok, msg=""):
    results.append((name, bool(ok), msg))


def load(path):
    img = nib.load(path)
    return np.asanyarray(img.dataobj), img.affine


def spacing_of(a):
    s = np.sqrt((a[:3, :3] ** 2).sum(0))
    return np.where(s == 0, 1.0, s)


def monai_spacing_geometry(shape, a, pixdim):
    in_d = spacing_of(a)
    out_d = np.where(np.abs(in_d - pixdim) <= 1e-3, in_d, pixdim)
    r = out_d / in_d
    m = [int(np.rint((n - 1) * (i / o) + 1)) for n, i, o in zip(shape, in_d, out_d)]
    b = a.copy()
    b[:3, :3] = a[:3, :3] * r
    return m, r, b


def axis_taps(c, n, interp, pad):
    """torch grid_sample rules along one axis (align_corners=False)."""
    c = np.asarray(c, dtype=np.float64)
    if pad == "reflection":
        span = float(n)
        x = np.abs(c + 0.5)
        extra = np.fmod(x, span)
        flips = np.floor(x / span)
        c = np.where(np.fmod(flips, 2) == 0, extra - 0.5, span - extra - 0.5)
        c = np.clip(c, 0, n - 1)
    elif pad == "border":
        c = np.clip(c, 0, n - 1)
    if interp == "nearest":
        i = np.rint(c)
        ok = (i >= 0) & (i <= n - 1)
        return [(np.where(ok, i, 0).astype(np.int64), ok.astype(np.float64))]
    f = np.floor(c)
    t = c - f
    taps = []
    for j, w in ((0, 1 - t), (1, t)):
        i = f + j
        ok = (i >= 0) & (i <= n - 1)
        taps.append((np.where(ok, i, 0).astype(np.int64), np.where(ok, w, 0.0)))
    return taps


def separable(x, coords, interp, pad):
    """Sum over the tensor product of per-axis taps (axis-aligned maps)."""
    taps = [axis_taps(c, n, interp, pad) for c, n in zip(coords, x.shape)]
    out = np.zeros([len(c) for c in coords])
    for i0, w0 in taps[0]:
        for i1, w1 in taps[1]:
            for i2, w2 in taps[2]:
                out += (w0[:, None, None] * w1[None, :, None] * w2[None, None, :]
                        * x[np.ix_(i0, i1, i2)])
    return out


def maxerr(a, b):
    return float(np.max(np.abs(a.astype(np.float64) - b.astype(np.float64))))


def squeeze_spatial(y):
    return y.reshape(y.shape[:3]) if y.ndim > 3 and int(np.prod(y.shape[3:])) == 1 else y


def main():
    lumen, script = sys.argv[1], sys.argv[2]
    data = os.environ.get("LUMEN_TEST_DATA", "")
    need = ["mri/brainchop_t1_crop.nii.gz", "ct/totalseg_aorta_ct_cropped.nii.gz",
            "4d/example4d.nii.gz", "ct/totalseg_example_ct_sm.nii.gz",
            "labels/torsoLabel.nii.gz"]
    if not all(os.path.exists(os.path.join(data, p)) for p in need):
        print("1..0 # SKIP test data not available (LUMEN_TEST_DATA)")
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        r = subprocess.run([lumen, "run", script, data, tmp], capture_output=True, text=True)
        if r.returncode != 0:
            print("Bail out! lumen failed: %s %s" % (r.stdout, r.stderr))
            return 1
        out = lambda n: load(os.path.join(tmp, n))

        # ---- Orientation ----
        for src, name, codes in [("mri/brainchop_t1_crop.nii.gz", "orient_t1_ras.nii", "RAS"),
                                 ("ct/totalseg_aorta_ct_cropped.nii.gz", "orient_ct_ras.nii", "RAS"),
                                 ("ct/totalseg_aorta_ct_cropped.nii.gz", "orient_ct_psl.nii", "PSL"),
                                 ("4d/example4d.nii.gz", "orient_4d_lps.nii", "LPS")]:
            x, a = load(os.path.join(data, src))
            ornt = nio.ornt_transform(nio.io_orientation(a), nio.axcodes2ornt(codes))
            want = nio.apply_orientation(x, ornt)
            want_a = a @ nio.inv_ornt_aff(ornt, x.shape[:3])
            y, b = out(name)
            check("Orientation %s -> %s values exact" % (src, codes),
                  y.shape == want.shape and np.array_equal(y, want),
                  "shape %s vs %s" % (y.shape, want.shape))
            check("Orientation %s -> %s affine" % (src, codes),
                  np.allclose(b, want_a, atol=1e-4), "%s vs %s" % (b, want_a))
            check("Orientation %s -> %s axcodes" % (src, codes),
                  "".join(nio.aff2axcodes(b)) == codes, str(nio.aff2axcodes(b)))

        # ---- Spacing on a real CT ----
        x, a = load(os.path.join(data, "ct/totalseg_example_ct_sm.nii.gz"))
        x = x.astype(np.float64)
        rng = float(x.max() - x.min())
        m, rr, want_a = monai_spacing_geometry(x.shape, a, np.array([2.2, 1.7, 4.1]))
        coords = [np.arange(mi) * ri for mi, ri in zip(m, rr)]
        grid = np.meshgrid(*coords, indexing="ij")
        scipy_mode = {"border": "nearest", "zeros": "constant", "reflection": "reflect"}
        for mode in ["nearest", "bilinear", "cubic"]:
            for pad in ["border", "zeros", "reflection"]:
                y, b = out("spacing_%s_%s.nii" % (mode, pad))
                tag = "Spacing %s %s" % (mode, pad)
                check(tag + " shape", list(y.shape) == m, "%s vs %s" % (y.shape, m))
                check(tag + " affine", np.allclose(b, want_a, atol=1e-4), "%s vs %s" % (b, want_a))
                if list(y.shape) != m:
                    continue
                if mode == "cubic":
                    want = ndi.map_coordinates(x, grid, order=3, mode=scipy_mode[pad])
                    err = maxerr(y, want)
                    check(tag + " vs scipy order 3 (max err %.3g)" % err, err <= 1e-4 * rng)
                elif mode == "bilinear":
                    want = separable(x, coords, "linear", pad)
                    err = maxerr(y, want)
                    check(tag + " vs torch rule (max err %.3g)" % err, err <= 1e-4 * rng)
                    if pad == "border":
                        want = ndi.map_coordinates(x, grid, order=1, mode="nearest")
                        err = maxerr(y, want)
                        check(tag + " vs scipy order 1 (max err %.3g)" % err, err <= 1e-4 * rng)
                else:
                    want = separable(x, coords, "nearest", pad)
                    check(tag + " exact", np.array_equal(y, want.astype(np.float32)),
                          "max err %g" % maxerr(y, want))

        # linear inverse back to the CT grid
        y, b = out("spacing_linear_inverse.nii")
        p, _ = out("spacing_bilinear_border.nii")
        back = [np.arange(n) * (1.0 / ri) for n, ri in zip(x.shape, rr)]
        want = separable(p.astype(np.float64), back, "linear", "border")
        check("RestoreOriginalShape linear: shape", y.shape == x.shape, str(y.shape))
        check("RestoreOriginalShape linear: affine", np.allclose(b, a, atol=1e-4))
        if y.shape == x.shape:
            err = maxerr(y, want)
            check("RestoreOriginalShape linear vs torch rule (max err %.3g)" % err,
                  err <= 1e-4 * rng)

        # ---- Spacing, oblique 4-D, channel-first, linear ----
        v, av = load(os.path.join(data, "4d/example4d.nii.gz"))
        v = v.astype(np.float64)
        m4, r4, want_a4 = monai_spacing_geometry(v.shape[:3], av, np.array([3.1, 2.5, 1.7]))
        y, b = out("spacing_4d_linear.nii")
        check("Spacing oblique 4-D shape", list(y.shape) == m4 + [v.shape[3]], str(y.shape))
        check("Spacing oblique 4-D affine", np.allclose(b, want_a4, atol=1e-4), "%s vs %s" % (b, want_a4))
        if list(y.shape) == m4 + [v.shape[3]]:
            c4 = [np.arange(mi) * ri for mi, ri in zip(m4, r4)]
            err = max(maxerr(y[..., t], separable(v[..., t], c4, "linear", "border"))
                      for t in range(v.shape[3]))
            rng4 = float(v.max() - v.min())
            check("Spacing oblique 4-D linear (max err %.3g)" % err, err <= 1e-4 * rng4)

        # ---- labels: nearest there and back, exact ----
        lab, al = load(os.path.join(data, "labels/torsoLabel.nii.gz"))
        ml, rl, want_al = monai_spacing_geometry(lab.shape, al, np.array([1.5, 1.5, 1.5]))
        y, b = out("spacing_label.nii")
        y = squeeze_spatial(y)
        cl = [np.arange(mi) * ri for mi, ri in zip(ml, rl)]
        want = separable(lab.astype(np.float64), cl, "nearest", "border").astype(lab.dtype)
        check("Spacing label shape %s" % (ml,), list(y.shape) == ml, str(y.shape))
        check("Spacing label dtype kept", y.dtype == lab.dtype, str(y.dtype))
        check("Spacing label exact", y.shape == want.shape and np.array_equal(y, want))
        check("Spacing label affine", np.allclose(b, want_al, atol=1e-4))
        yb, bb = out("spacing_label_inverse.nii")
        yb = squeeze_spatial(yb)
        back = [np.arange(n) * (1.0 / ri) for n, ri in zip(lab.shape, rl)]
        want_b = separable(want.astype(np.float64), back, "nearest", "border").astype(lab.dtype)
        check("RestoreOriginalShape label: original shape", yb.shape == lab.shape, str(yb.shape))
        check("RestoreOriginalShape label: original affine", np.allclose(bb, al, atol=1e-4))
        check("RestoreOriginalShape label exact (MONAI nearest inverse)",
              yb.shape == want_b.shape and np.array_equal(yb, want_b))

        # ---- Resize ----
        size = [90, 140, 37]
        s = [n / mm for n, mm in zip(x.shape, size)]
        want_r = a.copy()
        want_r[:3, :3] = a[:3, :3] * np.array(s)
        want_r[:3, 3] = a[:3, 3] + a[:3, :3] @ ((np.array(s) - 1) / 2)
        y, b = out("resize_linear.nii")
        cr = [np.maximum((np.arange(mm) + 0.5) * si - 0.5, 0) for mm, si in zip(size, s)]
        want = separable(x, cr, "linear", "border")
        check("Resize linear shape", list(y.shape) == size, str(y.shape))
        check("Resize affine (MONAI scale_affine)", np.allclose(b, want_r, atol=1e-4), "%s vs %s" % (b, want_r))
        if list(y.shape) == size:
            err = maxerr(y, want)
            check("Resize linear vs torch rule (max err %.3g)" % err, err <= 1e-4 * rng)
            try:
                from skimage.transform import resize as skresize
                sk = skresize(x, size, order=1, mode="edge", anti_aliasing=False, clip=False,
                              preserve_range=True)
                err = maxerr(y, sk)
                check("Resize linear vs skimage order 1 (max err %.3g)" % err, err <= 1e-4 * rng)
            except ImportError:
                pass
        y, b = out("resize_nearest.nii")
        idx = [np.minimum(np.floor(np.arange(mm) * si), n - 1).astype(np.int64)
               for mm, si, n in zip(size, s, x.shape)]
        want = x[np.ix_(*idx)]
        check("Resize nearest (torch floor rule) exact", y.shape == want.shape and
              np.array_equal(y, want.astype(y.dtype)))

    for i, (name, ok, msg) in enumerate(results, 1):
        print("%s %d - %s" % ("ok" if ok else "not ok", i, name))
        if not ok and msg:
            print("#   " + msg.replace("\n", "\n#   "))
    print("1..%d" % len(results))
    return 0 if all(ok for _, ok, _ in results) else 1


if __name__ == "__main__":
    sys.exit(main())
