#!/usr/bin/python3
"""Parity: lumen's outputs for ONNX networks of every family of
../shared/docs/inference.md §1.2 (MONAI UNet IN/PReLU and BATCH, SegResNet,
DynUNet, VNet, nnU-Net PlainConvUNet and ResEncUNet, an smp-style 2D U-Net,
MeshNet), exported with random weights by models/export/export_networks.py
--small through venv/bin/python (Debian's torch 1.13 + MONAI 1.4 +
dynamic-network-architectures), equal PyTorch's within 1e-4 relative:
max|lumen - torch| <= 1e-4 * max(1, max|torch|), float32.

One line per network: the max abs difference, the tolerance, the
elementwise max relative error (|a-b| / |ref| over the elements where |ref|
is at least 1e-3 of max|ref|) and lumen's load and run times.

usage: test_model_parity.py LUMEN PARITY_MODEL_LUA EXPORT_SCRIPT [--device cuda [--precision P]]
With --device cuda the networks run through Infer on the GPU (tests/gpu): float32 within the same
1e-4, float16 / bfloat16 within 1e-2 / 5e-2 of max|torch| (storage rounding between layers).
Exit 77 (skip) when venv/ (scripts/peers) is missing, the export cannot run, or (--device) lumen
finds no CUDA device.
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np

RTOL = 1e-4
RTOL_PRECISION = {"float32": 1e-4, "float16": 1e-2, "bfloat16": 5e-2}


def main():
    global RTOL
    lumen, driver, export = sys.argv[1:4]
    opts = sys.argv[4:]
    env = dict(os.environ)
    if "--device" in opts:
        env["LUMEN_PARITY_DEVICE"] = opts[opts.index("--device") + 1]
        precision = opts[opts.index("--precision") + 1] if "--precision" in opts else "float32"
        env["LUMEN_PARITY_PRECISION"] = precision
        RTOL = RTOL_PRECISION[precision]
        probe = subprocess.run([lumen, "run", driver, tempfile.gettempdir()], env=env,
                               capture_output=True, text=True)
        if probe.returncode == 77:
            print("skip: " + probe.stdout.strip())
            return 77
    # Exports made beforehand (scripts/gpu-check --prepare: the GPU machine has no venv/).
    ready = os.environ.get("LUMEN_MODEL_EXPORTS")
    if ready and os.path.isfile(os.path.join(ready, "index.json")):
        print(f"# exports from LUMEN_MODEL_EXPORTS={ready}")
        return compare(lumen, driver, ready, env)
    root = os.environ.get("LUMEN_SOURCE_ROOT") or os.path.dirname(
        os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    build = os.environ.get("LUMEN_BUILD_ROOT") or tempfile.gettempdir()
    vpy = os.path.join(root, "venv", "bin", "python")
    if not os.access(vpy, os.X_OK):
        print(f"skip: {vpy} missing (scripts/peers makes venv/)")
        return 77
    probe = subprocess.run([vpy, "-c", "import torch, onnx, monai, dynamic_network_architectures"],
                           capture_output=True, text=True)
    if probe.returncode != 0:
        print("skip: venv/ lacks torch, onnx, monai or dynamic_network_architectures: "
              + probe.stderr.strip().splitlines()[-1])
        return 77

    tmp = tempfile.mkdtemp(prefix="model_parity_", dir=build)
    try:
        t0 = time.time()
        r = subprocess.run([vpy, export, tmp, "--small"], capture_output=True, text=True)
        if r.returncode != 0:
            print(r.stdout + r.stderr)
            print("skip: the export failed")
            return 77
        print(f"# exports in {time.time() - t0:.1f} s (torch, --small)")
        return compare(lumen, driver, tmp, env)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def compare(lumen, driver, tmp, env):
    """lumen on every network of tmp/index.json against the saved PyTorch outputs."""
    with open(os.path.join(tmp, "index.json")) as f:
        nets = json.load(f)["networks"]
    t0 = time.time()
    r = subprocess.run([lumen, "run", driver, tmp] + [n["name"] for n in nets],
                       capture_output=True, text=True, env=env)
    status = {}
    for line in r.stdout.splitlines():
        parts = line.split(" ", 2)
        if len(parts) >= 2 and parts[0] in ("ok", "error"):
            status[parts[1].rstrip(":")] = line
    if r.returncode != 0:
        print(f"# lumen exited with {r.returncode}: {r.stderr.strip()[-2000:]}")
    print(f"# lumen ran them in {time.time() - t0:.1f} s")

    failures = 0
    for n in nets:
        name = n["name"]
        line = status.get(name)
        if line is None or line.startswith("error"):
            failures += 1
            why = line.split(": ", 1)[1] if line and ": " in line else "no result"
            print(f"FAIL {name:34s} lumen: {why}")
            continue
        _, _, load_s, run_s = line.split()
        ref = np.load(os.path.join(tmp, n["output"])).astype(np.float64)
        got = np.load(os.path.join(tmp, name + ".lumen.npy"))
        if got.shape != ref.shape:
            failures += 1
            print(f"FAIL {name:34s} shape {got.shape} != {ref.shape}")
            continue
        if got.dtype != np.float32:
            failures += 1
            print(f"FAIL {name:34s} dtype {got.dtype} != float32")
            continue
        diff = np.abs(got.astype(np.float64) - ref)
        scale = float(np.max(np.abs(ref)))
        err = float(np.max(diff)) if diff.size else 0.0
        tol = RTOL * max(1.0, scale)
        sig = np.abs(ref) >= 1e-3 * scale
        rel = float(np.max(diff[sig] / np.abs(ref[sig]))) if sig.any() else 0.0
        ok = bool(np.isfinite(got).all()) and err <= tol
        failures += not ok
        print(f"{'ok  ' if ok else 'FAIL'} {name:34s} {n['family']}: "
              f"{'x'.join(map(str, ref.shape))}, max|d| {err:.2e} (tol {tol:.2e}, "
              f"max|ref| {scale:.3g}), max rel {rel:.2e}, lumen load {float(load_s):.2f} s "
              f"run {float(run_s):.2f} s")
    print(f"# {len(nets) - failures}/{len(nets)} networks within {RTOL:g} relative")
    for n in nets:
        try:
            os.remove(os.path.join(tmp, n["name"] + ".lumen.npy"))
        except OSError:
            pass
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
