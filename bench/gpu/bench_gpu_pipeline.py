#!/usr/bin/env python3
"""The whole CT pipeline on the GPU: lumen against the same steps in PyTorch + nibabel, one machine.

usage: python3 bench/gpu/bench_gpu_pipeline.py BUILD_DIR [--runs N] [--model ONNX] [--shape X,Y,Z]
                                                         [--out FILE.json]

Input: lumen's Phantom CT, 512x512x200 int16 at 0.8x0.8x2.5 mm, stored in LPS orientation (as CTs
from DICOM usually are, so the orientation step really flips), .nii.gz.
Network: out/gpu/monai_unet.onnx (see bench_gpu_infer.py); PyTorch runs it through onnx_torch.py.
Steps, both sides: load the .nii.gz, channels first, to the GPU, orientation RAS, spacing 1.5 mm
isotropic (trilinear), intensity -1000..1000 HU -> 0..1 clipped, sliding window 96^3 overlap 0.25
batch 4 Gaussian (lumen float16 / PyTorch float16 autocast + channels_last_3d + cudnn.benchmark),
argmax, back to the input grid (nearest) and orientation, to the host, save uint8 .nii.gz.
  lumen    bench/gpu/ct_pipeline_gpu.lua (one process; model loaded once; warm-up case first).
  PyTorch  torch_case() below: nibabel load/save (nibabel may be missing on the GPU machine:
           scripts/gpu-check carries a pure-Python copy), torch ops on the GPU.
Figures: median wall time per case (load to saved file) of N runs after one warm-up, each side's
split (load / GPU work / save), the ratio PyTorch / lumen (issue 5 asks >= 3), label agreement.
"""
import json
import os
import sys
import tempfile
import time

import numpy as np
import torch
import torch.nn.functional as F

here = os.path.dirname(os.path.abspath(__file__))
root = os.path.dirname(os.path.dirname(here))
sys.path.insert(0, here)
from bench_gpu_infer import BATCH, OVERLAP, ROI, lumen_run, torch_sliding_window  # noqa: E402
import bench_common  # noqa: E402
from onnx_torch import OnnxModule  # noqa: E402

LUA_INPUT = r"""
local img = Phantom{shape = {tonumber(arg[2]), tonumber(arg[3]), tonumber(arg[4])}, spacing = {0.8, 0.8, 2.5},
                    seed = 5}
SaveNifti(Orientation(ConvertToChannelsFirst(img), {axcodes = 'LPS'}), {path = arg[1]})
print('{}')
"""


def parse_args(argv):
    return bench_common.parse_args(argv, {"runs": 3, "model": os.path.join(root, "out", "gpu", "monai_unet.onnx"),
                                          "shape": (512, 512, 200), "out": None})


def torch_case(nib, net, path, out_path):
    t = {}
    t0 = time.perf_counter()
    img = nib.load(path)
    arr = img.get_fdata(dtype=np.float32)
    if arr.ndim == 4:  # (X, Y, Z, 1): lumen saved channels-first data with a trailing axis
        arr = arr[..., 0]
    t["load"] = time.perf_counter() - t0
    t1 = time.perf_counter()
    x = torch.from_numpy(arr).cuda()
    ornt = nib.orientations.io_orientation(img.affine)
    tr = nib.orientations.ornt_transform(ornt, nib.orientations.axcodes2ornt("RAS")).astype(int)
    flips = [d for d in range(3) if tr[d, 1] == -1]
    perm = [int(v) for v in np.argsort(tr[:, 0])]
    zooms = np.asarray(img.header.get_zooms()[:3], dtype=np.float64)
    x = x.flip(flips).permute(perm) if flips else x.permute(perm)
    ras_shape = tuple(x.shape)
    sp = zooms[perm]
    size = [max(1, int(round(n * s / 1.5))) for n, s in zip(ras_shape, sp)]
    x = F.interpolate(x[None, None], size=size, mode="trilinear", align_corners=True)
    x = ((x + 1000.0) / 2000.0).clamp_(0.0, 1.0)

    def predictor(w):
        return net(w.contiguous(memory_format=torch.channels_last_3d))

    with torch.no_grad(), torch.autocast("cuda", dtype=torch.float16):
        logits = torch_sliding_window(x, ROI, BATCH, predictor, OVERLAP)
    lab = logits.argmax(1, keepdim=True).to(torch.uint8)
    del logits
    back = F.interpolate(lab.float(), size=ras_shape, mode="nearest").to(torch.uint8)[0, 0]
    back = back.permute([int(v) for v in tr[:, 0]])
    if flips:
        back = back.flip(flips)
    res = back.cpu().numpy()
    t["gpu"] = time.perf_counter() - t1
    t2 = time.perf_counter()
    nib.save(nib.Nifti1Image(res, img.affine), out_path)
    t["save"] = time.perf_counter() - t2
    t["total"] = time.perf_counter() - t0
    return t


def main():
    o = parse_args(sys.argv[1:])
    lumen = os.path.join(o["build"], "lua", "lumen")
    if not os.path.exists(lumen):
        sys.exit("bench_gpu_pipeline.py: %s not found" % lumen)
    try:
        import nibabel as nib
    except ImportError:
        sys.exit("bench_gpu_pipeline.py: nibabel is not importable (scripts/gpu-check carries a copy)")
    torch.backends.cudnn.benchmark = True
    res = {"gpu": torch.cuda.get_device_name(0), "shape": o["shape"], "runs": o["runs"]}
    with tempfile.TemporaryDirectory() as tmp:
        ct = os.path.join(tmp, "ct.nii.gz")
        lumen_run(lumen, LUA_INPUT, ct, *o["shape"])
        net = OnnxModule(o["model"]).eval().cuda().to(memory_format=torch.channels_last_3d)
        out_t = os.path.join(tmp, "torch_labels.nii.gz")
        first = torch_case(nib, net, ct, out_t)
        ts = [torch_case(nib, net, ct, out_t) for _ in range(o["runs"])]
        tt = sorted(ts, key=lambda r: r["total"])[(len(ts) - 1) // 2]
        tt["first_total"] = first["total"]
        del net
        torch.cuda.empty_cache()
        res["pytorch"] = tt
        print("GPU %s; CT %s int16 LPS .nii.gz; %d runs (median case)" % (res["gpu"], "x".join(map(str, o["shape"])),
                                                                       o["runs"]))
        print("  PyTorch+nibabel  %8.2f s   (load %.2f, GPU %.2f, save %.2f; first case %.2f s)" %
              (tt["total"], tt["load"], tt["gpu"], tt["save"], tt["first_total"]))
        out_l = os.path.join(tmp, "lumen_labels.nii.gz")
        try:
            lr = lumen_run(lumen, open(os.path.join(here, "ct_pipeline_gpu.lua")).read(), ct, o["model"], out_l,
                           o["runs"], "float16")
        except RuntimeError as e:
            print("  lumen failed: %s" % e)
            res["lumen"] = {"error": str(e)}
            lr = None
        if lr:
            lr["ratio"] = tt["total"] / lr["total"]
            a = np.asanyarray(nib.load(out_l).dataobj).reshape(-1)
            b = np.asanyarray(nib.load(out_t).dataobj).reshape(-1)
            lr["label_agreement"] = float((a == b).mean()) if a.size == b.size else None
            res["lumen"] = lr
            print("  lumen            %8.2f s   (load %.2f, GPU %.2f, save %.2f; first case %.2f s)   "
                  "ratio PyTorch/lumen %.2fx" % (lr["total"], lr["load"], lr["gpu"], lr["save"], lr["first_total"],
                                                 lr["ratio"]))
            if lr["label_agreement"] is not None:
                print("  labels equal at %.3f%% of the voxels (the resampling rules differ slightly)" %
                      (100 * lr["label_agreement"]))
            print("  acceptance (issue 5): whole pipeline >= 3x faster than PyTorch/nibabel: %s (%.2fx)" %
                  ("PASS" if lr["ratio"] >= 3 else "FAIL", lr["ratio"]))
    if o["out"]:
        with open(o["out"], "w") as f:
            json.dump(res, f, indent=1)


if __name__ == "__main__":
    main()
