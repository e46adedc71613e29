#!/usr/bin/python3
"""Parity: Contours against OpenCV findContours(RETR_EXTERNAL,
CHAIN_APPROX_SIMPLE) on the real label maps of LUMEN_TEST_DATA/labels, per
slice and label, along each axis.  Contours are compared as sets of point
sequences (cyclic rotation allowed, orientation fixed), and the r/l side of
each contour is recomputed from the affine.

usage: test_parity_contours.py LUMEN SCRIPT
(exitcode protocol: 77 = skipped without the data or without python3-opencv)
"""
import glob
import json
import os
import subprocess
import sys
import tempfile

import nibabel as nib
import numpy as np

try:
    import cv2
except ImportError:
    cv2 = None


def canon(points):
    """A contour up to the choice of its start point."""
    pts = [tuple(int(v) for v in p) for p in points]
    k = min(range(len(pts)), key=lambda i: pts[i])
    return tuple(pts[k:] + pts[:k])


def side(points, axis, s, affine, midline):
    p = np.asarray(points, dtype=np.float64)
    x0, y0 = p[:, 0], p[:, 1]
    x1, y1 = np.roll(x0, -1), np.roll(y0, -1)
    cr = x0 * y1 - x1 * y0
    a2 = cr.sum()
    if a2 != 0:
        cx, cy = ((x0 + x1) * cr).sum() / (3 * a2), ((y0 + y1) * cr).sum() / (3 * a2)
    else:
        cx, cy = x0.mean(), y0.mean()
    rest = [d for d in range(3) if d != axis]
    ijk = np.zeros(4)
    ijk[axis], ijk[rest[0]], ijk[rest[1]], ijk[3] = s, cx, cy, 1
    return "r" if (affine @ ijk)[0] >= midline else "l"


def check(lumen, script, path, axis, tmp):
    out = os.path.join(tmp, "c.json")
    r = subprocess.run([lumen, "run", script, "contours", path, out, str(axis)],
                       capture_output=True, text=True)
    if r.returncode != 0:
        return False, "lumen failed: " + r.stdout + r.stderr
    got = json.load(open(out))
    img = nib.load(path)
    data = np.asanyarray(img.dataobj).astype(np.int64)
    aff = img.affine
    centre = aff @ np.array([(n - 1) / 2 for n in data.shape] + [1])
    midline = centre[0]
    want, sides = {}, {}
    for s in range(data.shape[axis]):
        sl = np.take(data, s, axis=axis)  # [x, y]: x = first remaining axis
        for lab in np.unique(sl):
            if lab == 0:
                continue
            mask = np.ascontiguousarray((sl == lab).T.astype(np.uint8))  # rows = y
            cs, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
            for c in cs:
                pts = c.reshape(-1, 2)
                key = (str(int(lab)), s)
                want.setdefault(key, []).append(canon(pts))
                sides[(key, canon(pts))] = side(pts, axis, s, aff, midline)
    have, exact = {}, 0
    for region, lr in got.items():
        for sd in ("r", "l"):
            for c in lr[sd]:
                key = (region, c["slice"])
                cc = canon(c["points"])
                have.setdefault(key, []).append(cc)
                if sides.get((key, cc)) != sd:
                    return False, "side of %s slice %d: got %s, want %s" % (
                        region, c["slice"], sd, sides.get((key, cc)))
    n = sum(len(v) for v in want.values())
    for key in set(want) | set(have):
        a, b = sorted(want.get(key, [])), sorted(have.get(key, []))
        if a != b:
            return False, "label %s slice %d: %d contours from OpenCV, %d from lumen; " \
                "first difference %s vs %s" % (key[0], key[1], len(a), len(b),
                                               a[:1], b[:1])
    return True, "%d contours equal" % n


def main():
    lumen, script = sys.argv[1], sys.argv[2]
    data = os.environ.get("LUMEN_TEST_DATA", "")
    files = sorted(glob.glob(os.path.join(data, "labels", "*.nii.gz")))
    if not files:
        print("1..0 # SKIP test data not available (LUMEN_TEST_DATA)")
        return 77
    if cv2 is None:
        print("1..0 # SKIP python3-opencv not installed")
        return 77
    # Every file along z; the two abdominal maps along x and y as well (the
    # brain map along every axis takes minutes of OpenCV calls in python).
    cases = [(f, a) for f in files for a in (0, 1, 2)
             if a == 2 or os.path.basename(f) in ("totalseg_example_seg.nii.gz",
                                                  "torsoLabel.nii.gz")]
    print("1..%d" % len(cases))
    failed = 0
    with tempfile.TemporaryDirectory() as tmp:
        for i, (f, a) in enumerate(cases, 1):
            ok, msg = check(lumen, script, f, a, tmp)
            failed += not ok
            print("%s %d - %s axis %d: %s" % ("ok" if ok else "not ok", i,
                                              os.path.basename(f), a, msg))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
