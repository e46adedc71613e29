#!/usr/bin/env python3
"""Export the networks of the GPU benchmark to ONNX (run here, with the peers' venv: MONAI 1.4).

usage: venv/bin/python bench/gpu/export_models.py [OUT_DIR]      (default out/gpu)

  monai_unet.onnx   MONAI UNet as bench/bench_infer.py builds it (3-D, channels 16..256, strides 2,
                    2 residual units, InstanceNorm + PReLU), 14 classes (13 organs + background, a
                    BTCV-sized head), random seeded weights, InstanceNorm affine randomised; input
                    [n, 1, 96, 96, 96] with a dynamic batch axis, opset 17.
The GPU machine has no MONAI: scripts/gpu-check carries this file there (out/ is ignored by git).
"""
import os
import sys

import torch

here = os.path.dirname(os.path.abspath(__file__))
root = os.path.dirname(os.path.dirname(here))
out_dir = sys.argv[1] if len(sys.argv) > 1 else os.path.join(root, "out", "gpu")
os.makedirs(out_dir, exist_ok=True)

from monai.networks.nets import UNet  # noqa: E402

net = UNet(spatial_dims=3, in_channels=1, out_channels=14, channels=(16, 32, 64, 128, 256),
           strides=(2, 2, 2, 2), num_res_units=2)
g = torch.Generator().manual_seed(0)
with torch.no_grad():
    for m in net.modules():
        if isinstance(m, torch.nn.InstanceNorm3d) and m.weight is not None:
            m.weight.copy_(1 + 0.1 * torch.randn(m.weight.shape, generator=g))
            m.bias.copy_(0.1 * torch.randn(m.bias.shape, generator=g))
net.eval()
path = os.path.join(out_dir, "monai_unet.onnx")
torch.onnx.export(net, torch.zeros(1, 1, 96, 96, 96), path, opset_version=17, do_constant_folding=True,
                  input_names=["x"], output_names=["y"], dynamic_axes={"x": {0: "n"}, "y": {0: "n"}})
print("wrote %s (%.1f MB)" % (path, os.path.getsize(path) / 1e6))
