#!/usr/bin/env python3
"""The CT pipeline written with MONAI 1.4 (the peer of bench/ct_pipeline.lua), one case.

usage: ct_pipeline_monai.py CT.nii.gz NET.pt OUT.nii.gz
Prints one JSON line: wall seconds per step, total, and peak RSS (MB) of this process.
Run by bench/bench_ct_pipeline.py with 1 torch thread and glibc told to keep freed memory.
"""
import json
import resource
import sys
import time

import torch
from monai.inferers import sliding_window_inference
import numpy as np
from monai.data import NibabelWriter
from monai.transforms import (AsDiscreted, Compose, EnsureChannelFirstd, Invertd, LoadImaged, Orientationd,
                              ScaleIntensityRanged, Spacingd)

ct, net_path, out = sys.argv[1:4]
torch.set_num_threads(1)
net = torch.jit.load(net_path).eval()
t = {}
t0 = time.perf_counter()
pre = Compose([
    LoadImaged(keys="image", image_only=False),
    EnsureChannelFirstd(keys="image"),
    Orientationd(keys="image", axcodes="RAS"),
    Spacingd(keys="image", pixdim=(1.5, 1.5, 2.0), mode="bilinear"),
    ScaleIntensityRanged(keys="image", a_min=-1000, a_max=1000, b_min=0.0, b_max=1.0, clip=True),
])
d = pre({"image": ct})
t["pre"] = time.perf_counter() - t0
t1 = time.perf_counter()
with torch.no_grad():
    d["pred"] = sliding_window_inference(d["image"][None], (96, 96, 96), 1, net, overlap=0.25)[0]
t["infer"] = time.perf_counter() - t1
t2 = time.perf_counter()
post = Compose([
    AsDiscreted(keys="pred", argmax=True),
    Invertd(keys="pred", transform=pre, orig_keys="image", nearest_interp=True),
])
d = post(d)
# What SaveImage does, with the exact output file name.
writer = NibabelWriter(output_dtype=np.uint8)
writer.set_data_array(d["pred"], channel_dim=0)
writer.set_metadata(d["pred"].meta, resample=False)
writer.write(out, verbose=False)
t["post"] = time.perf_counter() - t2
t["total"] = time.perf_counter() - t0
t["rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps(t))
