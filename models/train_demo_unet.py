#!/usr/bin/python3
"""Train the demo CT U-Net on lumen's own synthetic phantoms and write the
model package models/demo_ct_unet/ (model.onnx + metadata.json).

usage: /usr/bin/python3 models/train_demo_unet.py [--lumen PATH] [--out DIR]
                                                  [--minutes M] [--threads N]

Data: lumen itself makes the phantoms (`Phantom{shape, spacing, seed, noise}`)
and preprocesses them with the very ops that models/demo_ct_unet/pipeline.lua
runs at inference (ConvertToChannelsFirst, Orientation RAS, ScaleByResolution
to 3 mm, ScaleIntensityRange -57..164 HU -> 0..1 clipped; labels resampled
nearest), so training and inference see the same numbers.  Every phantom is
the same body (organs do not move with the seed, only the noise does), so the
variety comes from several fields of view, spacings and noise levels, and
from random affine patches (rotation, scale, translation), small intensity
jitter and extra noise drawn here.  No left-right flips: left and right
organs (liver/spleen) are told apart by their side.

Validation: a phantom with an unseen seed, shape and spacing, segmented with
a sliding window of the training patch size; Dice per class is printed and
stored in metadata.json.
"""
import argparse
import glob
import json
import math
import os
import subprocess
import sys
import tempfile
import time

# Waiting OpenMP threads sleep instead of spinning: on a busy machine spinning
# burns the CPU time that the training budget counts, for no work.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402

SPACING = 3.0          # mm, isotropic training grid
ROI = 48               # training patch and inference window (voxels)
# Abdominal soft-tissue window (MONAI's spleen bundle): the phantom's organs
# differ from soft tissue (40 HU) by 5 to 25 HU only, which a -1000..1000
# window squeezes into 0.0025..0.0125 and the network then barely learns.
WINDOW = dict(a_min=-57, a_max=164, b_min=0, b_max=1)
HU = 1.0 / (WINDOW["a_max"] - WINDOW["a_min"])      # one HU after the window
# class index -> (name, TotalSegmentator ids of the phantom that map to it)
CLASSES = [
    ("background", []),
    ("liver", [5]),
    ("spleen", [1]),
    ("kidney", [2, 3]),
    ("stomach", [6]),
    ("urinary_bladder", [21]),
]
CHANNELS = (6, 12, 24, 48)

# Training phantoms: (shape, spacing, noise); each used with several seeds.
TRAIN_CASES = [
    ((192, 192, 128), (2.0, 2.0, 2.0), 12),
    ((160, 160, 110), (2.5, 2.5, 2.5), 8),
    ((240, 240, 150), (1.6, 1.6, 1.8), 16),
    ((128, 128, 96), (3.0, 3.0, 3.0), 12),
    ((300, 300, 90), (1.2, 1.2, 3.0), 20),
    ((140, 140, 120), (2.4, 2.4, 2.4), 4),
]
SEEDS_PER_CASE = 2
VAL_CASE = ((176, 176, 120), (2.2, 2.2, 2.2), 12)
VAL_SEED = 9001


# ---------------------------------------------------------------- the net

class ConvBlock(nn.Sequential):
    """Two conv3 + InstanceNorm + LeakyReLU; the first may stride 2."""

    def __init__(self, cin, cout, stride=1):
        super().__init__(
            nn.Conv3d(cin, cout, 3, stride=stride, padding=1),
            nn.InstanceNorm3d(cout, affine=True, eps=1e-5),
            nn.LeakyReLU(0.01, inplace=True),
            nn.Conv3d(cout, cout, 3, padding=1),
            nn.InstanceNorm3d(cout, affine=True, eps=1e-5),
            nn.LeakyReLU(0.01, inplace=True),
        )


class DemoUNet(nn.Module):
    """4 levels, strided-conv downsampling, ConvTranspose k2s2 upsampling,
    skip connections by concatenation, a 1x1x1 head."""

    def __init__(self, in_ch=1, n_classes=len(CLASSES), ch=CHANNELS):
        super().__init__()
        self.enc = nn.ModuleList()
        prev = in_ch
        for i, c in enumerate(ch):
            self.enc.append(ConvBlock(prev, c, stride=1 if i == 0 else 2))
            prev = c
        self.up = nn.ModuleList()
        self.dec = nn.ModuleList()
        for c in reversed(ch[:-1]):
            self.up.append(nn.ConvTranspose3d(prev, c, 2, stride=2))
            self.dec.append(ConvBlock(2 * c, c))
            prev = c
        self.head = nn.Conv3d(prev, n_classes, 1)

    def forward(self, x):
        skips = []
        for blk in self.enc:
            x = blk(x)
            skips.append(x)
        skips.pop()
        for up, dec in zip(self.up, self.dec):
            x = up(x)
            x = dec(torch.cat([x, skips.pop()], 1))
        return self.head(x)


# ---------------------------------------------------------------- data

GEN_LUA = r"""
-- lumen run gen.lua OUT_PREFIX SX SY SZ PX PY PZ SEED NOISE SPACING
local out = arg[1]
local shape = {tonumber(arg[2]), tonumber(arg[3]), tonumber(arg[4])}
local spacing = {tonumber(arg[5]), tonumber(arg[6]), tonumber(arg[7])}
local img, lab = Phantom{shape = shape, spacing = spacing,
                         seed = math.tointeger(tonumber(arg[8])), noise = tonumber(arg[9])}
local s = tonumber(arg[10])
local x = ConvertToChannelsFirst(img)
x = Orientation(x, {axcodes = 'RAS'})
x = ScaleByResolution(x, {pixdim = {s, s, s}})
x = ScaleIntensityRange(x, {a_min = %g, a_max = %g, b_min = %g, b_max = %g, clip = true})
local y = ConvertToChannelsFirst(lab)
y = Orientation(y, {axcodes = 'RAS'})
y = ScaleByResolution(y, {pixdim = {s, s, s}, is_label = true})
SaveNpy(x, {path = out .. '.img.npy'})
SaveNpy(y, {path = out .. '.lab.npy'})
""" % (WINDOW["a_min"], WINDOW["a_max"], WINDOW["b_min"], WINDOW["b_max"])


def find_lumen(root):
    for cand in sorted(glob.glob(os.path.join(root, "build*", "lua", "lumen"))):
        if os.access(cand, os.X_OK):
            return cand
    sys.exit("no lumen binary found under build*/lua/lumen: build lumen first or pass --lumen")


def map_labels(lab):
    out = np.zeros(lab.shape, np.int64)
    for k, (_, ids) in enumerate(CLASSES):
        for i in ids:
            out[lab == i] = k
    return out


def make_case(lumen, tmp, tag, shape, spacing, seed, noise):
    script = os.path.join(tmp, "gen.lua")
    if not os.path.exists(script):
        with open(script, "w") as f:
            f.write(GEN_LUA)
    prefix = os.path.join(tmp, tag)
    cmd = [lumen, "run", script, prefix, *map(str, shape), *map(str, spacing), str(seed),
           str(noise), str(SPACING)]
    subprocess.run(cmd, check=True)
    img = np.load(prefix + ".img.npy").astype(np.float32)      # (1, X, Y, Z)
    lab = map_labels(np.load(prefix + ".lab.npy")[0])           # (X, Y, Z)
    return img, lab


def random_patch(img, lab, rng, fg_frac=0.7):
    """A ROI^3 patch through a random rotation/scale about a random centre
    (fg_frac of them on an organ, the organ drawn uniformly so that the small
    ones are seen as often as the liver).  Image bilinear with zero (= air
    and fat) outside, labels nearest."""
    X, Y, Z = lab.shape
    if rng.random() < fg_frac:
        present = [k for k in range(1, len(CLASSES)) if (lab == k).any()]
        fg = np.argwhere(lab == present[rng.integers(len(present))])
        c = fg[rng.integers(len(fg))].astype(np.float64)
    else:
        c = np.array([rng.uniform(0, n - 1) for n in (X, Y, Z)])
    c += rng.normal(0, 4, 3)
    ang = np.deg2rad([rng.uniform(-8, 8), rng.uniform(-4, 4), rng.uniform(-4, 4)])
    scale = rng.uniform(0.9, 1.1, 3)

    def rot(axis, a):
        m = np.eye(3)
        i, j = [k for k in range(3) if k != axis]
        m[i, i] = m[j, j] = math.cos(a)
        m[i, j], m[j, i] = -math.sin(a), math.sin(a)
        return m

    m = rot(2, ang[0]) @ rot(1, ang[1]) @ rot(0, ang[2]) @ np.diag(scale)
    # voxel offsets of the patch around its centre, mapped into the volume
    r = (np.arange(ROI) - (ROI - 1) / 2.0)
    g = np.stack(np.meshgrid(r, r, r, indexing="ij"), -1).reshape(-1, 3) @ m.T + c
    # grid_sample wants (x=last dim, y, z=first dim) normalised to [-1, 1]
    size = np.array([X, Y, Z], np.float64)
    norm = 2.0 * g / (size - 1) - 1.0
    grid = torch.from_numpy(norm[:, ::-1].copy()).float().view(1, ROI, ROI, ROI, 3)
    ti = torch.from_numpy(img)[None]
    tl = torch.from_numpy(lab)[None, None].float()
    pi = F.grid_sample(ti, grid, mode="bilinear", padding_mode="zeros", align_corners=True)[0]
    pl = F.grid_sample(tl, grid, mode="nearest", padding_mode="zeros", align_corners=True)[0, 0]
    # intensity jitter: organs differ from soft tissue by 5 to 25 HU, keep it below that
    pi = pi * float(rng.uniform(0.97, 1.03)) + float(rng.uniform(-4, 4)) * HU
    pi = pi + torch.randn_like(pi) * float(rng.uniform(0, 10)) * HU
    return pi, pl.long()


def dice_loss(logits, target, eps=1e-5):
    """Soft Dice over the batch, averaged over the organs present in it: an
    absent organ's term would only push its probability to zero everywhere,
    and with two patches per batch most organs are absent from most batches."""
    p = torch.softmax(logits, 1)
    oh = F.one_hot(target, logits.shape[1]).permute(0, 4, 1, 2, 3).float()
    inter = (p * oh).sum((0, 2, 3, 4))
    ref = oh.sum((0, 2, 3, 4))
    dice = (2 * inter + eps) / (p.sum((0, 2, 3, 4)) + ref + eps)
    present = ref[1:] > 0
    if not present.any():
        return logits.sum() * 0.0
    return 1.0 - dice[1:][present].mean()


# ---------------------------------------------------------------- validation

def sliding_window(net, img, overlap=0.25):
    """Constant-weight sliding window of ROI^3 (the volume padded to ROI)."""
    x = torch.from_numpy(img)[None]
    shape = x.shape[2:]
    pad = []
    for n in reversed(shape):
        pad += [0, max(0, ROI - n)]
    x = F.pad(x, pad)
    full = x.shape[2:]
    step = max(1, int(ROI * (1 - overlap)))
    starts = []
    for n in full:
        s = list(range(0, max(n - ROI, 0) + 1, step))
        if s[-1] != n - ROI:
            s.append(n - ROI)
        starts.append(s)
    acc = torch.zeros((1, len(CLASSES)) + tuple(full))
    cnt = torch.zeros((1, 1) + tuple(full))
    with torch.no_grad():
        for a in starts[0]:
            for b in starts[1]:
                for c in starts[2]:
                    sl = (slice(None), slice(None), slice(a, a + ROI), slice(b, b + ROI),
                          slice(c, c + ROI))
                    acc[sl] += torch.softmax(net(x[sl]), 1)
                    cnt[sl] += 1
    prob = acc / cnt
    return prob[0, :, :shape[0], :shape[1], :shape[2]].argmax(0).numpy()


def dice_per_class(pred, ref):
    out = {}
    for k, (name, _) in enumerate(CLASSES):
        if k == 0:
            continue
        a, b = pred == k, ref == k
        den = a.sum() + b.sum()
        out[name] = float(2.0 * (a & b).sum() / den) if den else float("nan")
    return out


# ---------------------------------------------------------------- main

def main():
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--lumen", default=None)
    ap.add_argument("--out", default=os.path.join(root, "models", "demo_ct_unet"))
    ap.add_argument("--minutes", type=float, default=13.0,
                    help="training budget in minutes of THREADS busy cores (process CPU time / "
                         "threads, so that a busy machine trains as much, only slower)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    lumen = args.lumen or find_lumen(root)
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)

    with tempfile.TemporaryDirectory(prefix="demo_unet_") as tmp:
        t0 = time.time()
        cases = []
        for ci, (shape, spacing, noise) in enumerate(TRAIN_CASES):
            for s in range(SEEDS_PER_CASE):
                seed = 100 * ci + s + 1
                cases.append(make_case(lumen, tmp, f"train{ci}_{s}", shape, spacing, seed, noise))
        val_img, val_lab = make_case(lumen, tmp, "val", *VAL_CASE[:2], VAL_SEED, VAL_CASE[2])
        print(f"{len(cases)} training phantoms made by lumen in {time.time() - t0:.1f} s; "
              f"shapes at {SPACING:g} mm: {sorted({c[1].shape for c in cases})}", flush=True)

    net = DemoUNet()
    nparams = sum(p.numel() for p in net.parameters())
    print(f"DemoUNet {CHANNELS}: {nparams} parameters", flush=True)
    opt = torch.optim.AdamW(net.parameters(), lr=3e-3, weight_decay=1e-5)
    budget = args.minutes * 60.0
    t0, c0 = time.time(), time.process_time()
    it, ema = 0, None
    net.train()
    while True:
        elapsed = (time.process_time() - c0) / args.threads
        if elapsed >= budget:
            break
        lr = 3e-3 * (0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * elapsed / budget)))
        for g in opt.param_groups:
            g["lr"] = lr
        xs, ys = [], []
        for _ in range(args.batch):
            img, lab = cases[rng.integers(len(cases))]
            pi, pl = random_patch(img, lab, rng)
            xs.append(pi)
            ys.append(pl)
        x, y = torch.stack(xs), torch.stack(ys)
        logits = net(x)
        loss = F.cross_entropy(logits, y) + dice_loss(logits, y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        it += 1
        ema = loss.item() if ema is None else 0.95 * ema + 0.05 * loss.item()
        if it % 25 == 0:
            print(f"it {it:5d}  {elapsed:6.0f} s cpu/thread  {time.time() - t0:6.0f} s wall  "
                  f"lr {lr:.2e}  loss {ema:.4f}", flush=True)
    print(f"{it} iterations, {elapsed / 60:.1f} min of {args.threads} threads, "
          f"{(time.time() - t0) / 60:.1f} min wall", flush=True)

    net.eval()
    pred = sliding_window(net, val_img)
    dice = dice_per_class(pred, val_lab)
    print("validation Dice (unseen seed %d, shape %s @ %s mm): %s" % (
        VAL_SEED, VAL_CASE[0], VAL_CASE[1],
        ", ".join(f"{k} {v:.3f}" for k, v in dice.items())), flush=True)

    os.makedirs(args.out, exist_ok=True)
    onnx_path = os.path.join(args.out, "model.onnx")
    dummy = torch.zeros(1, 1, ROI, ROI, ROI)
    torch.onnx.export(net, dummy, onnx_path, opset_version=17, do_constant_folding=True,
                      input_names=["image"], output_names=["logits"])
    meta = {
        "name": "demo_ct_unet",
        "type": "segmentation",
        "description": "Small 3D U-Net (4 levels, %s channels, InstanceNorm + LeakyReLU, "
                       "ConvTranspose k2s2) trained by models/train_demo_unet.py on lumen's "
                       "synthetic CT phantoms; input CT windowed %g..%g HU to 0..1 "
                       "at %g mm isotropic, RAS." % ("-".join(map(str, CHANNELS)), WINDOW["a_min"],
                                                     WINDOW["a_max"], SPACING),
        "labels": {str(k): name for k, (name, _) in enumerate(CLASSES)},
        "weights": "model.onnx",
        "axes": "XYZ",
        "spacing": [SPACING] * 3,
        "roi": [ROI] * 3,
        "intensity_window": WINDOW,
        "phantom_label_ids": {name: ids for name, ids in CLASSES if ids},
        "training": {"iterations": it, "cpu_minutes_per_thread": round(elapsed / 60, 1),
                     "wall_minutes": round((time.time() - t0) / 60, 1),
                     "threads": args.threads, "seed": args.seed},
        "validation_dice": {k: round(v, 4) for k, v in dice.items()},
        "validation_case": {"shape": list(VAL_CASE[0]), "spacing": list(VAL_CASE[1]),
                            "noise": VAL_CASE[2], "seed": VAL_SEED},
    }
    with open(os.path.join(args.out, "metadata.json"), "w") as f:
        json.dump(meta, f, indent=2)
        f.write("\n")
    print(f"wrote {onnx_path} ({os.path.getsize(onnx_path)} bytes) and metadata.json")


if __name__ == "__main__":
    main()
