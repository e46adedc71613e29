#!/usr/bin/python3
"""Parity: LabelComponents against scipy.ndimage.label (6, 18 and 26
connectivity: identical numbering), and KeepLargestConnectedComponent against
MONAI's rule written with skimage.measure.label (independent per label, and
the union with num_components=2), on the real label maps of
LUMEN_TEST_DATA/labels.  Labels whose cut falls on a tie of sizes are
reported and left out of the KeepLargest comparison (semantics.md §9.1).

usage: test_parity_components.py LUMEN SCRIPT
(exitcode protocol: 77 = skipped without the data)
"""
import glob
import os
import subprocess
import sys
import tempfile

import nibabel as nib
import numpy as np
from scipy import ndimage
from skimage import measure

STRUCT = {6: 1, 18: 2, 26: 3}


def keep_largest(fg, conn, n):
    """MONAI get_largest_connected_component_mask; returns (mask, tie)."""
    lab, num = measure.label(fg, connectivity=STRUCT[conn], return_num=True)
    if num <= n:
        return fg.copy(), False
    counts = np.bincount(lab[lab > 0])
    order = np.argsort(counts, kind="stable")[::-1]  # equal sizes: higher label first
    keep = order[:n]
    tie = counts[order[n - 1]] == counts[order[n]]
    return np.isin(lab, keep), tie


def monai_keep(data, conn, independent=True, n=1):
    out, ties = data.copy(), []
    labels = [int(v) for v in np.unique(data) if v != 0]
    if independent:
        for l in labels:
            fg = data == l
            m, tie = keep_largest(fg, conn, n)
            if tie:
                ties.append(l)
            out[fg & ~m] = 0
    else:
        fg = data != 0
        m, tie = keep_largest(fg, conn, n)
        if tie:
            ties.append("union")
        out[fg & ~m] = 0
    return out, ties


def main():
    lumen, script = sys.argv[1], sys.argv[2]
    data_dir = os.environ.get("LUMEN_TEST_DATA", "")
    files = sorted(glob.glob(os.path.join(data_dir, "labels", "*.nii.gz")))
    if not files:
        print("1..0 # SKIP test data not available (LUMEN_TEST_DATA)")
        return 77
    names = ["cc6", "cc18", "cc26", "keep6", "keep18", "keep26", "keep_union2"]
    print("1..%d" % (len(files) * len(names) + 6))
    i = failed = 0
    with tempfile.TemporaryDirectory() as tmp:
        # Masks with many components: the CSF of the brain map (label 1),
        # and seeded smoothed noise (thousands of blobs touching at edges
        # and corners, where 6/18/26 differ).
        brain = nib.load(os.path.join(data_dir, "labels", "mni152_pveseg.nii.gz"))
        csf = (np.asanyarray(brain.dataobj) == 1).astype(np.uint8)
        rng = np.random.default_rng(3)
        noise = ndimage.gaussian_filter(rng.normal(size=(150, 130, 90)), 1.2)
        blobs = (noise > 0.12).astype(np.uint8)
        for mname, mask, aff in (("csf", csf, brain.affine), ("noise", blobs, np.eye(4))):
            mpath = os.path.join(tmp, mname + ".nii")
            nib.Nifti1Image(mask, aff).to_filename(mpath)
            r = subprocess.run([lumen, "run", script, "cc", mpath, tmp],
                               capture_output=True, text=True)
            for conn in (6, 18, 26):
                i += 1
                if r.returncode != 0:
                    failed += 1
                    print("not ok %d - %s cc%d: lumen failed: %s" % (i, mname, conn, r.stderr))
                    continue
                got = np.asanyarray(nib.load(os.path.join(tmp, "cc%d.nii" % conn)).dataobj)
                want, n = ndimage.label(mask, ndimage.generate_binary_structure(3, STRUCT[conn]))
                ok = np.array_equal(got.astype(np.int64), want)
                failed += not ok
                print("%s %d - %s mask cc%d: %d components, %s" % (
                    "ok" if ok else "not ok", i, mname, conn, n,
                    "identical" if ok else "%d voxels differ" % np.sum(got != want)))
        for f in files:
            r = subprocess.run([lumen, "run", script, "components", f, tmp],
                               capture_output=True, text=True)
            data = np.asanyarray(nib.load(f).dataobj).astype(np.int64)
            for name in names:
                i += 1
                if r.returncode != 0:
                    failed += 1
                    print("not ok %d - %s %s: lumen failed: %s" % (
                        i, os.path.basename(f), name, r.stderr.strip()))
                    continue
                got = np.asanyarray(nib.load(os.path.join(tmp, name + ".nii")).dataobj)
                if name.startswith("cc"):
                    conn = int(name[2:])
                    want, n = ndimage.label(data != 0, ndimage.generate_binary_structure(
                        3, STRUCT[conn]))
                    ok = np.array_equal(got.astype(np.int64), want)
                    msg = "%d components, %s" % (n, "identical" if ok else
                                                  "%d voxels differ" % np.sum(got != want))
                else:
                    if name == "keep_union2":
                        want, ties = monai_keep(data, 26, independent=False, n=2)
                    else:
                        want, ties = monai_keep(data, int(name[4:]))
                    diff = got.astype(np.int64) != want
                    for l in ties:  # documented tie cases: left out
                        if l != "union":
                            diff &= data != l
                    ok = not diff.any() and "union" not in ties
                    msg = ("identical" if ok else "%d voxels differ" % diff.sum()) + \
                        (" (ties left out: %s)" % ties if ties else "")
                failed += not ok
                print("%s %d - %s %s: %s" % ("ok" if ok else "not ok", i,
                                             os.path.basename(f), name, msg))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
