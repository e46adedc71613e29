#!/usr/bin/python3
"""Parity: the brainchop TensorFlow.js layers models loaded by lumen
(models/src/tfjs*.c) against a PyTorch (Debian's python3-torch) evaluation
written here from the same model.json and weight shard, float64.

The reference follows the Keras semantics directly: Conv3D channels_last
with 'same' padding (stride 1: (k-1)*d split evenly, k odd), its activation,
brainchop's instance norm after layers named *_gn (tf.moments over the
spatial axes, eps 1e-5, no affine: brainchop's LayerNormInPlace), Activation
layers (relu, elu, gelu = erf form as tfjs).  The Keras channels-last input
(1, X, Y, Z, 1) is lumen's (1, 1, X, Y, Z).

Tolerance: max|lumen - torch| <= 1e-4 * max(1, max|torch|) (float32 vs 64).
Then a synthetic model of every translated layer kind with TensorFlow's
padding and transposed-convolution rules (tfjs_synthetic.py), same tolerance.

usage: test_tfjs_parity.py LUMEN parity_tfjs.lua   (exit 77 without data or torch)
"""
import json
import os
import subprocess
import sys
import tempfile

import numpy as np

MODELS = [("model5_gw_ae", "group1-shard1of1.bin"), ("model30chan18cls", "model.bin"),
          ("mindgrab", "model.bin"), ("model21_104class", "group1-shard1of1.bin")]
SHAPE = (23, 19, 21)
RTOL = 1e-4


def read_weights(model, bin_path):
    buf = open(bin_path, "rb").read()
    weights, off = {}, 0
    for group in model["weightsManifest"]:
        for w in group["weights"]:
            n = int(np.prod(w["shape"])) if w["shape"] else 1
            weights[w["name"]] = np.frombuffer(buf, "<f4", n, off).reshape(w["shape"])
            off += 4 * n
    assert off == len(buf), (off, len(buf))
    return weights


def reference(model, weights, x):
    import torch
    import torch.nn.functional as F
    acts = {"relu": F.relu, "elu": F.elu, "gelu": F.gelu, "sigmoid": torch.sigmoid,
            "linear": lambda t: t}
    cfg = model["modelTopology"]["model_config"]["config"]
    values = {}
    for layer in cfg["layers"]:
        cls, c, name = layer["class_name"], layer["config"], layer["name"]
        if cls == "InputLayer":
            values[name] = torch.from_numpy(x.astype(np.float64))
            continue
        inp = values[layer["inbound_nodes"][0][0][0]]
        if cls == "Conv3D":
            k = torch.from_numpy(weights[name + "/kernel"].astype(np.float64))
            w = k.permute(4, 3, 0, 1, 2).contiguous()
            b = (torch.from_numpy(weights[name + "/bias"].astype(np.float64))
                 if c.get("use_bias", True) else None)
            d = c["dilation_rate"]
            assert c["padding"] == "same" and c["strides"] == [1, 1, 1]
            pad = [(kk - 1) * dd // 2 for kk, dd in zip(c["kernel_size"], d)]
            out = acts[c["activation"]](F.conv3d(inp, w, b, padding=pad, dilation=d))
        elif cls == "Activation":
            out = acts[c["activation"]](inp)
        else:
            raise ValueError("layer class " + cls)
        if name.endswith("_gn"):
            out = F.instance_norm(out, eps=1e-5)
        values[name] = out
    return values[cfg["output_layers"][0][0]].numpy()


def main():
    lumen, driver = sys.argv[1:3]
    data = os.environ.get("LUMEN_TEST_DATA", "")
    if not os.path.isdir(os.path.join(data, "models", "model5_gw_ae")):
        print("skip: LUMEN_TEST_DATA models absent")
        return 77
    try:
        import torch  # noqa: F401
    except ImportError:
        print("skip: python3-torch missing")
        return 77
    rng = np.random.default_rng(20261122)
    failed = 0
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import tfjs_synthetic
    with tempfile.TemporaryDirectory(prefix="tfjs_parity_") as tmp:
        ls, weights = tfjs_synthetic.write(tmp, rng)
        x = rng.standard_normal((1, tfjs_synthetic.INPUT[-1]) + tfjs_synthetic.INPUT[:3],
                                dtype=np.float32)
        xin, xout = os.path.join(tmp, "syn.in.npy"), os.path.join(tmp, "syn.out.npy")
        np.save(xin, x)
        r = subprocess.run([lumen, "run", driver, os.path.join(tmp, "model.json"), xin, xout],
                           capture_output=True, text=True, timeout=600)
        if r.returncode != 0:
            print(f"not ok 0 - synthetic: lumen failed: {(r.stderr or r.stdout).strip()}")
            failed += 1
        else:
            got, ref = np.load(xout), tfjs_synthetic.reference(ls, weights, x.astype(np.float64))
            diff = float(np.abs(got - ref).max()) if got.shape == ref.shape else float("inf")
            tol = RTOL * max(1.0, float(np.abs(ref).max()))
            failed += not diff <= tol
            print(f"{'ok' if diff <= tol else 'not ok'} 0 - synthetic layers: shape {got.shape} "
                  f"(want {ref.shape}), max|diff| {diff:.3g} (tol {tol:.3g})")
        for i, (name, shard) in enumerate(MODELS):
            d = os.path.join(data, "models", name)
            model = json.load(open(os.path.join(d, "model.json")))
            weights = read_weights(model, os.path.join(d, shard))
            x = rng.random((1, 1) + SHAPE, dtype=np.float32)
            xin, xout = os.path.join(tmp, name + ".in.npy"), os.path.join(tmp, name + ".out.npy")
            np.save(xin, x)
            r = subprocess.run([lumen, "run", driver, os.path.join(d, "model.json"), xin, xout],
                               capture_output=True, text=True, timeout=600)
            if r.returncode != 0:
                print(f"not ok {i + 1} - {name}: lumen failed: {(r.stderr or r.stdout).strip()}")
                failed += 1
                continue
            got = np.load(xout)
            ref = reference(model, weights, x)
            if got.shape != ref.shape:
                print(f"not ok {i + 1} - {name}: shape {got.shape} != {ref.shape}")
                failed += 1
                continue
            diff = float(np.abs(got.astype(np.float64) - ref).max())
            tol = RTOL * max(1.0, float(np.abs(ref).max()))
            labels = float((got.argmax(1) == ref.argmax(1)).mean())
            ok = diff <= tol
            failed += not ok
            print(f"{'ok' if ok else 'not ok'} {i + 1} - {name}: max|diff| {diff:.3g} "
                  f"(tol {tol:.3g}), argmax agreement {labels:.6f}")
    print(f"1..{len(MODELS)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
