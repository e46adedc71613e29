#!/usr/bin/env python3
"""Issue 5's speed figure: sliding-window inference of a MONAI-style 3D U-Net on the GPU, lumen
against PyTorch eager on the same ONNX weights, the same input and the same GPU.

usage: python3 bench/gpu/bench_gpu_infer.py BUILD_DIR [--runs N] [--model ONNX] [--shape X,Y,Z]
                                                      [--out FILE.json]

Network: out/gpu/monai_unet.onnx (bench/gpu/export_models.py: MONAI UNet, channels 16..256,
2 residual units, InstanceNorm + PReLU, 14 classes, random seeded weights).  PyTorch runs the same
file through bench/gpu/onnx_torch.py (checked against lumen's CPU Infer: max rel err ~2e-6).
Input: lumen's Phantom at 512x512x200 (0.8x0.8x2.5 mm), windowed -1000..1000 HU to 0..1, float32,
(1, X, Y, Z), already on the GPU on both sides (the copy to the device is not timed).
Work timed (both sides, the same): sliding window 96^3, overlap 0.25, sw_batch_size 4, Gaussian
blend, float32 logits on the GPU, argmax over the classes on the GPU, the uint8 labels copied to
the host (that copy waits for the GPU, so the time covers all the work).
  lumen   SlidingWindowInfer(precision = float16 with channels_last | float32) + Argmax + ToHost; its
          plan (cuDNN engines, CUDA graph) is built by the warm-up run, whose time is printed
          separately.
  PyTorch MONAI's sliding_window_inference if monai imports, else the same algorithm in torch
          (torch_sliding_window below); float16 autocast, channels_last_3d, cudnn.benchmark = True.
Figures: medians of N runs after one warm-up, the ratio PyTorch / lumen (> 1: lumen faster; the
issue asks >= 1.2 for lumen float16), and the label agreement lumen vs PyTorch.
"""
import json
import os
import statistics
import sys
import tempfile
import time

import numpy as np
import torch

here = os.path.dirname(os.path.abspath(__file__))
root = os.path.dirname(os.path.dirname(here))
sys.path.insert(0, here)
import bench_common  # noqa: E402
from bench_common import lumen_run  # noqa: E402,F401 (bench_gpu_pipeline imports it from here)
from onnx_torch import OnnxModule  # noqa: E402

ROI, OVERLAP, BATCH = (96, 96, 96), 0.25, 4


def parse_args(argv):
    return bench_common.parse_args(argv, {"runs": 5, "model": os.path.join(root, "out", "gpu", "monai_unet.onnx"),
                                          "shape": (512, 512, 200), "out": None})


LUA_PHANTOM = r"""
local shape = {tonumber(arg[2]), tonumber(arg[3]), tonumber(arg[4])}
local img, lab = Phantom{shape = shape, spacing = {0.8, 0.8, 2.5}, seed = 1}
local x = ScaleIntensityRange(ConvertToChannelsFirst(img), {a_min = -1000, a_max = 1000, b_min = 0,
                                                          b_max = 1, clip = true, dtype = 'float32'})
SaveNpy(x, {path = arg[1]})
print('{}')
"""

LUA_SW = r"""
local onnx, inp, outp, runs, precision = arg[1], arg[2], arg[3], tonumber(arg[4]), arg[5]
local model = LoadModel(onnx)
local xd = ToDevice(LoadNpy{path = inp}, {device = 'cuda'})
-- float16: cuDNN's tensor-core layout (channels-last); float32 stays NC+spatial, the checking mode
local opts = {roi = {96, 96, 96}, overlap = 0.25, sw_batch_size = 4, mode = 'gaussian',
              precision = precision, channels_last = precision ~= 'float32'}
local function once()
  local logits = SlidingWindowInfer(model, xd, opts)
  local lab = Argmax(logits)
  logits:free()
  local h = ToHost(lab)          -- waits for the GPU
  lab:free()
  return h
end
local t0 = lumen.clock()
local lab = once()               -- warm-up: plan, cuDNN engines, CUDA graph capture
local first = lumen.clock() - t0
local ts = {}
for i = 1, runs do
  lab:free()
  local t = lumen.clock()
  lab = once()
  ts[i] = lumen.clock() - t
end
table.sort(ts)
SaveNpy(lab, {path = outp})
print(string.format('{"median": %.6f, "min": %.6f, "first": %.6f, "runs": %d}', ts[(#ts + 1) // 2], ts[1],
                    first, #ts))
"""


def gaussian_map(roi, device, sigma_scale=0.125):
    """MONAI compute_importance_map(mode='gaussian'): float32, clamped at max(min, 1e-3)."""
    w = None
    for r in roi:
        x = torch.arange(r, dtype=torch.float32, device=device) - (r - 1) / 2.0
        g = torch.exp(x * x / (-2.0 * (sigma_scale * r) ** 2))
        w = g if w is None else w[..., None] * g
    return torch.clamp(w, min=max(float(w.min()), 1e-3))


def starts(n, roi, overlap):
    """MONAI's window starts along one axis (the image already padded to >= roi)."""
    interval = roi if roi == n else max(int(roi * (1 - overlap)), 1)
    out = []
    i = 0
    while True:
        s = i * interval
        if s + roi >= n:
            out.append(n - roi)
            break
        out.append(s)
        i += 1
    return out


def torch_sliding_window(x, roi, batch, predictor, overlap):
    """MONAI sliding_window_inference (constant padding, Gaussian blend) in plain torch, for when
    monai does not import: windows batched, predictions accumulated in float32 on the GPU."""
    n = x.shape[2:]
    pad = []
    for d in reversed(range(3)):
        extra = max(roi[d] - n[d], 0)
        pad += [extra // 2, extra - extra // 2]
    xp = torch.nn.functional.pad(x, pad) if any(pad) else x
    pn = xp.shape[2:]
    grid = [(a, b, c) for a in starts(pn[0], roi[0], overlap) for b in starts(pn[1], roi[1], overlap)
            for c in starts(pn[2], roi[2], overlap)]
    w = gaussian_map(roi, x.device)
    out = None
    count = torch.zeros(pn, dtype=torch.float32, device=x.device)
    for i in range(0, len(grid), batch):
        sl = grid[i:i + batch]
        win = torch.cat([xp[:, :, a:a + roi[0], b:b + roi[1], c:c + roi[2]] for a, b, c in sl])
        pred = predictor(win).float()
        if out is None:
            out = torch.zeros((1, pred.shape[1]) + tuple(pn), dtype=torch.float32, device=x.device)
        for k, (a, b, c) in enumerate(sl):
            out[0, :, a:a + roi[0], b:b + roi[1], c:c + roi[2]] += pred[k] * w
            count[a:a + roi[0], b:b + roi[1], c:c + roi[2]] += w
    out /= count
    crop = [slice(pad[2 * (2 - d)], pad[2 * (2 - d)] + n[d]) for d in range(3)]
    return out[:, :, crop[0], crop[1], crop[2]]


def torch_bench(onnx_path, x_np, runs):
    dev = torch.device("cuda")
    torch.backends.cudnn.benchmark = True
    net = OnnxModule(onnx_path).eval().to(dev).to(memory_format=torch.channels_last_3d)
    x = torch.from_numpy(np.ascontiguousarray(x_np))[None].to(dev)
    try:
        from monai.inferers import sliding_window_inference
        impl = "MONAI sliding_window_inference"
    except Exception:  # noqa: BLE001 - any import failure means: use our copy
        sliding_window_inference = None
        impl = "torch_sliding_window (MONAI's algorithm)"

    def predictor(w):
        return net(w.contiguous(memory_format=torch.channels_last_3d))

    def once():
        with torch.no_grad(), torch.autocast("cuda", dtype=torch.float16):
            if sliding_window_inference is not None:
                logits = sliding_window_inference(x, ROI, BATCH, predictor, overlap=OVERLAP, mode="gaussian")
            else:
                logits = torch_sliding_window(x, ROI, BATCH, predictor, OVERLAP)
            return logits.argmax(1).to(torch.uint8).cpu().numpy()

    t0 = time.perf_counter()
    lab = once()
    first = time.perf_counter() - t0
    ts = []
    for _ in range(runs):
        t = time.perf_counter()
        lab = once()
        ts.append(time.perf_counter() - t)
    return {"median": statistics.median(ts), "min": min(ts), "first": first, "impl": impl}, lab


def main():
    o = parse_args(sys.argv[1:])
    lumen = os.path.join(o["build"], "lua", "lumen")
    if not os.path.exists(lumen):
        sys.exit("bench_gpu_infer.py: %s not found" % lumen)
    if not os.path.exists(o["model"]):
        sys.exit("bench_gpu_infer.py: %s not found (venv/bin/python bench/gpu/export_models.py)" % o["model"])
    if not torch.cuda.is_available():
        sys.exit("bench_gpu_infer.py: torch sees no CUDA device")
    res = {"gpu": torch.cuda.get_device_name(0), "torch": torch.__version__, "shape": o["shape"],
           "roi": ROI, "overlap": OVERLAP, "sw_batch_size": BATCH, "runs": o["runs"]}
    print("GPU %s, torch %s, volume %s, windows 96^3 overlap 0.25 batch 4, %d runs (medians)" %
          (res["gpu"], res["torch"], "x".join(map(str, o["shape"])), o["runs"]))
    with tempfile.TemporaryDirectory() as tmp:
        xin = os.path.join(tmp, "x.npy")
        lumen_run(lumen, LUA_PHANTOM, xin, *o["shape"])
        x_np = np.load(xin)
        tr, lab_t = torch_bench(o["model"], x_np, o["runs"])
        torch.cuda.empty_cache()  # leave the GPU's memory to lumen
        res["pytorch"] = tr
        print("  PyTorch f16 autocast   %8.1f ms  (first run %.1f ms; %s)" %
              (tr["median"] * 1e3, tr["first"] * 1e3, tr["impl"]))
        for prec in ("float16", "float32"):
            out = os.path.join(tmp, "lab_%s.npy" % prec)
            try:
                r = lumen_run(lumen, LUA_SW, o["model"], xin, out, o["runs"], prec)
            except RuntimeError as e:
                print("  lumen %-8s failed: %s" % (prec, e))
                res["lumen_" + prec] = {"error": str(e)}
                continue
            lab_l = np.load(out).reshape(lab_t.shape)
            r["ratio"] = tr["median"] / r["median"]
            r["label_agreement"] = float((lab_l == lab_t).mean())
            res["lumen_" + prec] = r
            print("  lumen %-8s         %8.1f ms  (first run %.1f ms)   ratio PyTorch/lumen %.2fx   "
                  "labels equal to PyTorch's at %.4f%%" % (prec, r["median"] * 1e3, r["first"] * 1e3,
                                                          r["ratio"], 100 * r["label_agreement"]))
    f16 = res.get("lumen_float16", {})
    if "ratio" in f16:
        print("  acceptance (issue 5): lumen float16 >= 1.2x PyTorch: %s (%.2fx)" %
              ("PASS" if f16["ratio"] >= 1.2 else "FAIL", f16["ratio"]))
    if o["out"]:
        with open(o["out"], "w") as f:
            json.dump(res, f, indent=1)


if __name__ == "__main__":
    main()
