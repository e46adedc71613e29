#!/usr/bin/python3
"""PyTorch reference for pipelines/brain_tissue.lua: brainchop's MeshNet tissue model
(model5_gw_ae, safetensors copy) on a conformed T1, with brainchop's pre- and
post-processing written out in numpy/scipy:

  x = (v - min) / (max - min)                    min-max over the whole volume, float32
  box = bounding box of x > 0, +18 voxels each side, clamped to the volume
  logits = MeshNet(x[box])                       whole crop at once, float32, 2 threads
  lab = argmax over channels (first maximum wins)
  keep the largest 26-connected component of lab > 0; other voxels -> 0
  paste back into a zero volume of the input's shape; save uint8 with the input's affine

usage: brain_tissue_reference.py T1 SAFETENSORS CONFIG_JSON OUT [--threads N]
"""
import json
import struct
import sys
import time

import nibabel as nib
import numpy as np
import scipy.ndimage as ndi
import torch

CROP_PADDING = 18


def load_safetensors(path):
    with open(path, "rb") as f:
        blob = f.read()
    n = struct.unpack("<Q", blob[:8])[0]
    header = json.loads(blob[8:8 + n])
    base = 8 + n
    out = {}
    for name, meta in header.items():
        if name == "__metadata__":
            continue
        assert meta["dtype"] == "F32", (name, meta["dtype"])
        a, b = meta["data_offsets"]
        out[name] = torch.from_numpy(
            np.frombuffer(blob[base + a:base + b], dtype=np.float32).reshape(meta["shape"]).copy())
    return out


def meshnet(config, weights):
    """The network as a list of (conv, activation) following the config's layers;
    weights are model.{2i}.weight/bias (activations sit at the odd indices)."""
    layers = config["layers"]
    act = config.get("activation", "relu")
    seq = []
    for i, l in enumerate(layers):
        conv = torch.nn.Conv3d(l["in_channels"], l["out_channels"], l["kernel_size"],
                               stride=l.get("stride", 1), padding=l.get("padding", 0),
                               dilation=l.get("dilation", 1), bias=config.get("bias", True))
        conv.weight.data.copy_(weights[f"model.{2 * i}.weight"])
        if conv.bias is not None:
            conv.bias.data.copy_(weights[f"model.{2 * i}.bias"])
        seq.append(conv)
        if i + 1 < len(layers):
            seq.append(torch.nn.ReLU() if act == "relu" else torch.nn.ELU())
    return torch.nn.Sequential(*seq).eval()


def bbox(mask, pad):
    lo, hi = [], []
    for ax in range(mask.ndim):
        other = tuple(j for j in range(mask.ndim) if j != ax)
        idx = np.where(mask.any(axis=other))[0]
        lo.append(max(int(idx[0]) - pad, 0))
        hi.append(min(int(idx[-1]) + 1 + pad, mask.shape[ax]))
    return lo, hi


def main():
    args = sys.argv[1:]
    threads = 2
    if "--threads" in args:
        i = args.index("--threads")
        threads = int(args[i + 1])
        del args[i:i + 2]
    t1, st_path, cfg_path, out_path = args
    torch.set_num_threads(threads)
    img = nib.load(t1)
    v = np.asanyarray(img.dataobj).astype(np.float32)
    lo_v, hi_v = float(v.min()), float(v.max())
    x = ((v - np.float32(lo_v)) / np.float32(hi_v - lo_v)).astype(np.float32)
    lo, hi = bbox(x > 0, CROP_PADDING)
    crop = x[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]]
    net = meshnet(json.load(open(cfg_path)), load_safetensors(st_path))
    t0 = time.time()
    with torch.no_grad():
        logits = net(torch.from_numpy(np.ascontiguousarray(crop))[None, None])[0].numpy()
    secs = time.time() - t0
    lab = np.argmax(logits, axis=0).astype(np.uint8)
    comp, n = ndi.label(lab > 0, structure=np.ones((3, 3, 3), bool))
    if n > 1:
        sizes = np.bincount(comp.ravel())
        sizes[0] = 0
        lab[comp != int(np.argmax(sizes))] = 0
    full = np.zeros(v.shape, np.uint8)
    full[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]] = lab
    nib.save(nib.Nifti1Image(full, img.affine), out_path)
    print(json.dumps({"box_lo": lo, "box_hi": hi, "infer_s": round(secs, 3),
                      "counts": np.bincount(full.ravel(), minlength=3).tolist()}))


if __name__ == "__main__":
    main()
