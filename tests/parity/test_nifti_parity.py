#!/usr/bin/python3
"""LoadNifti / SaveNifti against nibabel on every NIfTI file in $LUMEN_TEST_DATA.

For each file: nibabel's np.asanyarray(img.dataobj) == lumen dtype='native'
(same dtype, exact values), MONAI's float32 cast of it == lumen's default
float32 (exact), affines within 1e-6; files nibabel reads into complex or
structured (RGB) arrays must fail in lumen with a clear "not supported"
message.  Then SaveNifti(LoadNifti(file, native)) read back by nibabel gives
the same array and affine.  TAP output; exit 77 without the data.

usage: test_nifti_parity.py NIFTI_DUMP
"""
import os
import subprocess
import sys
import tempfile

import numpy as np

try:
    import nibabel as nib
except ImportError:
    print("1..0 # SKIP nibabel not installed (python3-nibabel)")
    sys.exit(77)

tool = sys.argv[1]
data = os.environ.get("LUMEN_TEST_DATA", "")
if not data or not os.path.isdir(data):
    print("1..0 # SKIP LUMEN_TEST_DATA (%r) is not a folder: no real data to compare" % data)
    sys.exit(77)

files = []
for root, _, names in os.walk(data):
    for n in sorted(names):
        if n.endswith((".nii", ".nii.gz", ".hdr", ".hdr.gz")):
            files.append(os.path.join(root, n))
files.sort()

n_test = 0
failed = 0


def report(ok, name, why=""):
    global n_test, failed
    n_test += 1
    if not ok:
        failed += 1
        for line in why.splitlines():
            print("#   " + line)
    print("%s %d - %s" % ("ok" if ok else "not ok", n_test, name))
    sys.stdout.flush()


def lumen_load(path, dtype, out):
    r = subprocess.run([tool, "load", path, dtype, out], capture_output=True, text=True)
    if r.returncode != 0:
        return None, None, r.stderr.strip()
    return np.load(out + ".npy"), np.load(out + ".affine.npy"), ""


def same(a, b):
    # Byte order is storage, not value: compare in native order.
    b = b.astype(b.dtype.newbyteorder("="), copy=False)
    if a.shape != b.shape or a.dtype != b.dtype:
        return False, "shape/dtype %s %s vs %s %s" % (a.shape, a.dtype, b.shape, b.dtype)
    if a.dtype.kind == "f":
        eq = (a == b) | (np.isnan(a) & np.isnan(b))
    else:
        eq = a == b
    if not eq.all():
        bad = np.argwhere(~eq)[0]
        return False, "%d values differ, first at %s: %r vs %r" % (
            (~eq).sum(), tuple(bad), a[tuple(bad)], b[tuple(bad)])
    return True, ""


with tempfile.TemporaryDirectory() as tmp:
    for path in files:
        rel = os.path.relpath(path, data)
        out = os.path.join(tmp, "x")
        try:
            img = nib.load(path)
            ref = np.asanyarray(img.dataobj)
            ref_err = None
        except Exception as exc:  # nibabel refuses the file: lumen must too
            ref_err = str(exc)
        if ref_err is None and (ref.dtype.kind == "c" or ref.dtype.fields is not None):
            ref_err = "nibabel reads %s" % ref.dtype
        if ref_err is not None:
            arr, aff, msg = lumen_load(path, "float32", out)
            ok = arr is None and ("not supported" in msg) and (os.path.basename(path) in msg)
            report(ok, "%s: unsupported (%s) -> %s" % (rel, ref_err, msg.splitlines()[0] if msg else "loaded!"),
                   "lumen loaded it" if arr is not None else msg)
            continue
        # native
        arr, aff, msg = lumen_load(path, "native", out)
        if arr is None:
            report(False, "%s: native" % rel, msg)
            continue
        ok, why = same(arr, ref)
        aff_ok = np.allclose(aff, img.affine, rtol=0, atol=1e-6)
        if not aff_ok:
            why += "\naffine\n%s\nvs nibabel\n%s" % (aff, img.affine)
        report(ok and aff_ok, "%s: native %s %s == nibabel dataobj, affine" % (rel, arr.dtype, arr.shape), why)
        # float32 (MONAI LoadImage: float32 cast of the float64-scaled array)
        arr, aff, msg = lumen_load(path, "float32", out)
        if arr is None:
            report(False, "%s: float32" % rel, msg)
            continue
        ok, why = same(arr, ref.astype(np.float32))
        report(ok, "%s: float32 == MONAI's cast" % rel, why)
        # SaveNifti -> nibabel
        saved = os.path.join(tmp, "resaved.nii.gz")
        r = subprocess.run([tool, "resave", path, saved], capture_output=True, text=True)
        if r.returncode != 0:
            report(False, "%s: resave" % rel, r.stderr)
            continue
        back = nib.load(saved)
        barr = np.asanyarray(back.dataobj)
        ok, why = same(barr, ref)
        # NIfTI-1 stores the affine in float32: compare at that precision.
        aff_ok = np.allclose(back.affine, img.affine, rtol=1e-6, atol=1e-6)
        # The qform is what nibabel's own set_qform makes of the affine (the
        # nearest rotation), or at least as close to the affine: for rotations
        # near 180 degrees the quaternion's w is ~0 and its sign is rounding
        # noise, and the float32 fields then leave errors ~1e-4 either way.
        qref = nib.Nifti1Header()
        qref.set_qform(img.affine, code=1)
        q_err = np.abs(back.get_qform() - img.affine).max()
        qref_err = np.abs(qref.get_qform() - img.affine).max()
        q_ok = (np.allclose(back.get_qform(), qref.get_qform(), rtol=0, atol=1e-6) or
                q_err <= qref_err + 1e-6) and int(back.header["qform_code"]) == 1
        zooms_ok = np.allclose(back.header.get_zooms()[:3],
                               np.linalg.norm(img.affine[:3, :3], axis=0), rtol=1e-6)
        if not aff_ok:
            why += "\naffine\n%s\nvs\n%s" % (back.affine, img.affine)
        if not q_ok:
            why += "\nqform\n%s\nvs nibabel's set_qform\n%s" % (back.get_qform(), qref.get_qform())
        if not zooms_ok:
            why += "\nzooms %s" % (back.header.get_zooms(),)
        report(ok and aff_ok and q_ok and zooms_ok and int(back.header["sform_code"]) == 1,
               "%s: SaveNifti -> nibabel: same array, affine, qform, zooms" % rel, why)

print("1..%d" % n_test)
sys.exit(1 if failed else 0)
