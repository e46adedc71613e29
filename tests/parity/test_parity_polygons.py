#!/usr/bin/python3
"""Parity: MaskToPolygon against OpenCV 4.6 findContours(RETR_EXTERNAL) on
each slice m[:, :, k] of the mask (x = column = j, y = row = i, the
convention of AIAA's clients), with MaskToPolygon's documented vertex rule
written on top of OpenCV's own chains: the turning points
(CHAIN_APPROX_SIMPLE), or every (more_points + 1)-th pixel of the full
border (CHAIN_APPROX_NONE) when that gives at least 3 vertices and fewer
than the turning points.  Polygons must be equal point for point, in the
same order (borders by start point in raster order, as lumen lists them).

Masks: generated blobs, rings and speckle (every shape the tracer meets:
holes, pinches, one-pixel lines, regions inside holes, slices touching the
border), and the real label maps of LUMEN_TEST_DATA/labels when present
(every nonzero label as foreground).  more_points 0, 3 and 10.

usage: test_parity_polygons.py LUMEN DRIVER_LUA
(exitcode protocol: 77 = skipped without python3-opencv)
"""
import glob
import json
import os
import subprocess
import sys
import tempfile

import numpy as np

try:
    import cv2
except ImportError:
    cv2 = None


def reference(mask, more_points):
    step = more_points + 1
    out = []
    for k in range(mask.shape[2]):
        sl = np.ascontiguousarray((mask[:, :, k] != 0).astype(np.uint8))  # rows = i
        simple, _ = cv2.findContours(sl, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        full, _ = cv2.findContours(sl, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
        polys = []
        for s, f in zip(simple, full):
            s, f = s.reshape(-1, 2), f.reshape(-1, 2)
            assert tuple(s[0]) == tuple(f[0])
            nsamp = -(-len(f) // step)
            pts = f[::step] if 3 <= nsamp < len(s) else s
            polys.append([[int(x), int(y)] for x, y in pts])
        # Start points in raster order: row (y), then column (x).
        polys.sort(key=lambda p: (p[0][1], p[0][0]))
        out.append(polys)
    return out


def synthetic(rng):
    from scipy import ndimage
    masks = {}
    noise = ndimage.gaussian_filter(rng.random((70, 64, 12)), (3, 3, 1))
    masks["blobs"] = (noise > np.quantile(noise, 0.6)).astype(np.uint8)
    masks["speckle"] = (rng.random((31, 27, 6)) > 0.55).astype(np.int16)
    ii, jj = np.mgrid[0:48, 0:40]
    ring = np.zeros((48, 40, 3), np.float32)
    r = np.hypot(ii - 23.5, jj - 19.5)
    ring[..., 0] = (r > 8) & (r < 15)           # a ring: its hole is not a polygon
    ring[..., 1] = ring[..., 0]
    ring[20:27, 17:23, 1] = 2                   # a region inside the hole: skipped
    ring[..., 2] = 1                            # the whole slice, touching the border
    masks["ring"] = ring
    return masks


def main():
    if len(sys.argv) != 3:
        print(__doc__)
        return 2
    if cv2 is None:
        print("skip: python3-opencv missing")
        return 77
    lumen, driver = sys.argv[1], sys.argv[2]
    rng = np.random.default_rng(20261122)
    failures = checked = 0
    with tempfile.TemporaryDirectory() as d:
        cases = []
        for name, m in synthetic(rng).items():
            p = os.path.join(d, name + ".npy")
            np.save(p, m)
            cases.append((name, p, m))
        data = os.environ.get("LUMEN_TEST_DATA", "")
        for p in sorted(glob.glob(os.path.join(data, "labels", "*.nii*"))) if data else []:
            import nibabel as nib
            m = np.asanyarray(nib.load(p).dataobj)
            if m.ndim == 3:
                cases.append((os.path.basename(p), p, m))
        if not data:
            print("# LUMEN_TEST_DATA not set: generated masks only")
        for name, p, m in cases:
            for more in (0, 3, 10):
                out = os.path.join(d, "out.json")
                r = subprocess.run([lumen, "run", driver, p, str(more), out],
                                   capture_output=True, text=True)
                if r.returncode != 0:
                    print(f"FAIL {name} more_points={more}: lumen exited {r.returncode}\n"
                          f"{r.stdout}{r.stderr}")
                    failures += 1
                    continue
                got = json.load(open(out))
                want = reference(m, more)
                npoly = sum(len(s) for s in want)
                bad = [k for k in range(len(want)) if k >= len(got) or got[k] != want[k]]
                if len(got) != len(want) or bad:
                    k = bad[0] if bad else None
                    print(f"FAIL {name} more_points={more}: {len(bad)} slices differ"
                          + (f"; slice {k}: lumen {got[k][:2] if k < len(got) else None}"
                             f" OpenCV {want[k][:2]}" if k is not None else ""))
                    failures += 1
                else:
                    print(f"ok {name} more_points={more}: {len(want)} slices, {npoly} polygons")
                checked += 1
    print(f"{checked} runs, {failures} failures")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
