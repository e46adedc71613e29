#!/usr/bin/env python3
"""Export one network of every family of ../shared/docs/inference.md §1.2 to
ONNX with random (seeded) weights, together with an input and PyTorch's
output, for lumen's parity test (tests/parity/test_model_parity.py) and the
benchmarks.

usage: venv/bin/python models/export/export_networks.py OUTDIR [--small]
                                                 [--only NAME[,NAME...]] [--list]

Run it with venv/bin/python (scripts/peers makes it): Debian's torch 1.13 plus
MONAI 1.4.0 and dynamic-network-architectures 0.4.4 installed over it.  The
model sources run unmodified; nothing of them is copied here.  The 2D U-Net in
the style of segmentation_models.pytorch (EfficientNet encoder) is written
below from torch primitives, because smp itself needs timm.

For each network and input size: NAME.onnx, NAME.in.npy (float32, the ONNX
input, C order), NAME.out.npy (PyTorch's float32 output for it); index.json
lists them with the family, opset, shapes and the ONNX op counts.

Weights: torch's default init under a fixed seed, then every norm's affine
parameters, BatchNorm running statistics and PReLU slopes are set to random
non-trivial values, so that folding BN into convolutions and the norm
kernels are really exercised.  Exports: eval mode,
torch.onnx.export(do_constant_folding=True), static shapes, opset 17; the
MONAI UNet also at opsets 11 and 14.

--small: reduced channel counts and sizes (the parity test; the whole export
takes well under a minute on 2 cores).  Without it: the configurations of
§1.2 (MONAI UNet 16..256 at 96^3, nnU-Net PlainConvUNet 32..320 at 128^3, ...)
for the benchmarks.
"""
import argparse
import collections
import json
import math
import os
import sys
import time
import warnings

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

SEED = 1234


# --------------------------------------------------------------- random, non-trivial state

def randomize_state(model, gen):
    """Norm affines, BN running stats and PReLU slopes away from 1/0/0.25."""
    for m in model.modules():
        if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.InstanceNorm1d,
                          nn.InstanceNorm2d, nn.InstanceNorm3d, nn.GroupNorm, nn.LayerNorm)):
            if getattr(m, "weight", None) is not None:
                with torch.no_grad():
                    m.weight.copy_(torch.rand(m.weight.shape, generator=gen) + 0.5)
                    m.bias.copy_(torch.randn(m.bias.shape, generator=gen) * 0.2)
            if getattr(m, "running_mean", None) is not None:
                m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=gen) * 0.2)
                m.running_var.copy_(torch.rand(m.running_var.shape, generator=gen) * 1.5 + 0.5)
        elif isinstance(m, nn.PReLU):
            with torch.no_grad():
                m.weight.copy_(torch.rand(m.weight.shape, generator=gen) * 0.35 + 0.05)
    return model


# --------------------------------------------------------------- smp-style 2D U-Net

def same_pad(x, k, s, d=1):
    """TensorFlow 'SAME' padding computed from the input's shape, as timm's
    Conv2dSame / efficientnet-pytorch's Conv2dDynamicSamePadding do (so the
    export carries the shape sub-graph those produce)."""
    ih, iw = x.shape[-2:]
    ph = max((math.ceil(ih / s) - 1) * s + (k - 1) * d + 1 - ih, 0)
    pw = max((math.ceil(iw / s) - 1) * s + (k - 1) * d + 1 - iw, 0)
    if ph > 0 or pw > 0:
        x = F.pad(x, [pw // 2, pw - pw // 2, ph // 2, ph - ph // 2])
    return x


class Conv2dSame(nn.Conv2d):
    def forward(self, x):
        x = same_pad(x, self.kernel_size[0], self.stride[0], self.dilation[0])
        return F.conv2d(x, self.weight, self.bias, self.stride, 0, self.dilation, self.groups)


class Swish(nn.Module):
    def forward(self, x):
        return x * torch.sigmoid(x)


class MBConv(nn.Module):
    """EfficientNet inverted residual: expand 1x1, depthwise kxk (same pad),
    squeeze-excitation (GlobalAveragePool, reduce, Swish, expand, Sigmoid
    gate), project 1x1; BN after the convs; identity skip when shapes allow."""

    def __init__(self, cin, cout, k, s, expand, se_ratio=0.25):
        super().__init__()
        mid = cin * expand
        self.expand = None
        if expand != 1:
            self.expand = nn.Sequential(nn.Conv2d(cin, mid, 1, bias=False), nn.BatchNorm2d(mid),
                                        Swish())
        self.dw = Conv2dSame(mid, mid, k, stride=s, groups=mid, bias=False)
        self.dw_bn = nn.BatchNorm2d(mid)
        self.act = Swish()
        red = max(1, int(cin * se_ratio))
        self.se_reduce = nn.Conv2d(mid, red, 1)
        self.se_expand = nn.Conv2d(red, mid, 1)
        self.project = nn.Sequential(nn.Conv2d(mid, cout, 1, bias=False), nn.BatchNorm2d(cout))
        self.skip = s == 1 and cin == cout

    def forward(self, x):
        y = self.expand(x) if self.expand is not None else x
        y = self.act(self.dw_bn(self.dw(y)))
        g = F.adaptive_avg_pool2d(y, 1)
        g = self.se_expand(self.se_reduce(g) * torch.sigmoid(self.se_reduce(g)))
        y = y * torch.sigmoid(g)
        y = self.project(y)
        return y + x if self.skip else y


class SmpStyleUnet(nn.Module):
    """segmentation_models.pytorch Unet layout over an EfficientNet-like
    encoder: 5 stride-2 stages (features at 1/2 .. 1/32), decoder blocks of
    nearest x2 upsampling + concat skip + 2 x (conv3x3, BN, ReLU), a 3x3
    segmentation head."""

    def __init__(self, in_ch=3, classes=2, width=(8, 8, 12, 16, 24, 40),
                 decoder=(32, 24, 16, 12, 8)):
        super().__init__()
        self.stem = nn.Sequential(Conv2dSame(in_ch, width[0], 3, stride=2, bias=False),
                                  nn.BatchNorm2d(width[0]), Swish())
        # (k, stride, expand) per stage; stage outputs at 1/2, 1/4, 1/8, 1/16, 1/32
        cfg = [(3, 1, 1), (3, 2, 6), (5, 2, 6), (3, 2, 6), (5, 2, 6)]
        self.stages = nn.ModuleList()
        prev = width[0]
        for (k, s, e), c in zip(cfg, width[1:]):
            self.stages.append(nn.Sequential(MBConv(prev, c, k, s, e), MBConv(c, c, k, 1, e)))
            prev = c
        skips = [width[4], width[3], width[2], width[1], 0]
        self.blocks = nn.ModuleList()
        for skip, dec in zip(skips, decoder):
            self.blocks.append(nn.Sequential(
                nn.Conv2d(prev + skip, dec, 3, padding=1, bias=False), nn.BatchNorm2d(dec),
                nn.ReLU(inplace=True),
                nn.Conv2d(dec, dec, 3, padding=1, bias=False), nn.BatchNorm2d(dec),
                nn.ReLU(inplace=True)))
            prev = dec
        self.head = nn.Conv2d(prev, classes, 3, padding=1)

    def forward(self, x):
        x = self.stem(x)
        feats = []
        for st in self.stages:
            x = st(x)
            feats.append(x)
        x = feats.pop()
        for blk in self.blocks:
            x = F.interpolate(x, scale_factor=2.0, mode="nearest")
            if feats:
                x = torch.cat([x, feats.pop()], 1)
            x = blk(x)
        return self.head(x)


# --------------------------------------------------------------- MeshNet (brainchop)

class MeshNet(nn.Module):
    """brainchop's MeshNet: 3x3x3 convs with dilations 1,2,4,8,16,8,4,2,1,
    BatchNorm and ReLU, a 1x1x1 classifier."""

    def __init__(self, channels=5, classes=3, dilations=(1, 2, 4, 8, 16, 8, 4, 2, 1)):
        super().__init__()
        layers, prev = [], 1
        for d in dilations:
            layers += [nn.Conv3d(prev, channels, 3, padding=d, dilation=d), nn.BatchNorm3d(channels),
                       nn.ReLU(inplace=True)]
            prev = channels
        layers.append(nn.Conv3d(prev, classes, 1))
        self.net = nn.Sequential(*layers)

    def forward(self, x):
        return self.net(x)


# --------------------------------------------------------------- a narrower MONAI VNet

def small_vnet(base=4, out_channels=2):
    """MONAI's VNet with `base` channels at the first level instead of 16
    (VNet's __init__ fixes 16..256, i.e. 45.6 M parameters and a 182 MB ONNX
    file): the same MONAI transition modules and VNet.forward, unmodified,
    assembled here with channels base, 2*base, ... 16*base."""
    from monai.networks.nets import VNet
    from monai.networks.nets.vnet import (DownTransition, InputTransition, OutputTransition,
                                          UpTransition)
    b, act, sd = base, ("elu", {"inplace": True}), 3
    net = VNet.__new__(VNet)
    nn.Module.__init__(net)
    net.in_tr = InputTransition(sd, 1, b, act, bias=False)
    net.down_tr32 = DownTransition(sd, b, 1, act, bias=False)
    net.down_tr64 = DownTransition(sd, 2 * b, 2, act, bias=False)
    net.down_tr128 = DownTransition(sd, 4 * b, 3, act, dropout_prob=0.5, bias=False)
    net.down_tr256 = DownTransition(sd, 8 * b, 2, act, dropout_prob=0.5, bias=False)
    net.up_tr256 = UpTransition(sd, 16 * b, 16 * b, 2, act, dropout_prob=(0.5, 0.5))
    net.up_tr128 = UpTransition(sd, 16 * b, 8 * b, 2, act, dropout_prob=(0.5, 0.5))
    net.up_tr64 = UpTransition(sd, 8 * b, 4 * b, 1, act)
    net.up_tr32 = UpTransition(sd, 4 * b, 2 * b, 1, act)
    net.out_tr = OutputTransition(sd, 2 * b, out_channels, act, bias=False)
    return net


# --------------------------------------------------------------- the catalogue

def nnunet_kwargs(dim):
    conv = nn.Conv3d if dim == 3 else nn.Conv2d
    norm = nn.InstanceNorm3d if dim == 3 else nn.InstanceNorm2d
    return dict(conv_op=conv, conv_bias=True, norm_op=norm,
                norm_op_kwargs={"eps": 1e-5, "affine": True}, dropout_op=None,
                nonlin=nn.LeakyReLU, nonlin_kwargs={"negative_slope": 0.01, "inplace": True},
                deep_supervision=False)


def catalogue(small):
    """(name, family, builder, [input shapes], [opsets]) in export order."""
    from monai.networks.nets import UNet, SegResNet, DynUNet, VNet
    from dynamic_network_architectures.architectures.unet import PlainConvUNet, ResidualEncoderUNet

    nets = []

    def add(name, family, build, shapes, opsets=(17,)):
        nets.append((name, family, build, shapes, opsets))

    if small:
        ch, st = (4, 8, 16, 32), (2, 2, 2)
        add("monai_unet", "MONAI UNet (IN, PReLU)",
            lambda: UNet(3, 1, 3, channels=ch, strides=st, num_res_units=2),
            [(1, 1, 32, 32, 32), (1, 1, 24, 32, 40)], (17, 11, 14))
        add("monai_unet_bn", "MONAI UNet (norm=BATCH)",
            lambda: UNet(3, 1, 2, channels=ch, strides=st, num_res_units=2, norm="batch"),
            [(1, 1, 32, 32, 32), (1, 1, 16, 24, 32)])
        add("monai_segresnet", "MONAI SegResNet",
            lambda: SegResNet(3, init_filters=8, in_channels=1, out_channels=2,
                              blocks_down=(1, 2, 2, 4), blocks_up=(1, 1, 1)),
            [(1, 1, 32, 32, 32), (1, 1, 24, 32, 16)])
        add("monai_dynunet", "MONAI DynUNet",
            lambda: DynUNet(3, 1, 3, kernel_size=[3, 3, 3, 3], strides=[1, 2, 2, 2],
                            upsample_kernel_size=[2, 2, 2], filters=[8, 16, 32, 48]),
            [(1, 1, 32, 32, 32), (1, 1, 16, 32, 24)])
        add("monai_vnet", "MONAI VNet (ELU; 4..64 channels)",
            lambda: small_vnet(4, 2),
            [(1, 1, 32, 32, 32), (1, 1, 16, 32, 48)])
        add("nnunet_plain", "nnU-Net PlainConvUNet",
            lambda: PlainConvUNet(1, 4, [8, 16, 32, 48], kernel_sizes=3,
                                  strides=[1, 2, 2, 2], n_conv_per_stage=2, num_classes=3,
                                  n_conv_per_stage_decoder=1, **nnunet_kwargs(3)),
            [(1, 1, 32, 32, 32), (1, 1, 16, 32, 40)])
        add("nnunet_plain_aniso", "nnU-Net PlainConvUNet (anisotropic plan)",
            lambda: PlainConvUNet(1, 4, [8, 16, 32, 48],
                                  kernel_sizes=[[1, 3, 3], [1, 3, 3], [3, 3, 3], [3, 3, 3]],
                                  strides=[[1, 1, 1], [1, 2, 2], [2, 2, 2], [2, 2, 2]],
                                  n_conv_per_stage=2, num_classes=2, n_conv_per_stage_decoder=2,
                                  **nnunet_kwargs(3)),
            [(1, 1, 16, 32, 32)])
        add("nnunet_resenc", "nnU-Net ResEncUNet",
            lambda: ResidualEncoderUNet(1, 4, [8, 16, 32, 48], kernel_sizes=3,
                                        strides=[1, 2, 2, 2], n_blocks_per_stage=[1, 2, 2, 2],
                                        num_classes=3, n_conv_per_stage_decoder=1,
                                        **nnunet_kwargs(3)),
            [(1, 1, 32, 32, 32), (1, 1, 24, 16, 32)])
        add("nnunet_plain_2d", "nnU-Net PlainConvUNet 2D",
            lambda: PlainConvUNet(1, 4, [8, 16, 32, 48], kernel_sizes=3,
                                  strides=[1, 2, 2, 2], n_conv_per_stage=2, num_classes=3,
                                  n_conv_per_stage_decoder=2, **nnunet_kwargs(2)),
            [(1, 1, 64, 64), (2, 1, 48, 80)])
        add("smp_unet_effnet", "smp-style 2D Unet (EfficientNet-like encoder)",
            lambda: SmpStyleUnet(3, 2),
            [(1, 3, 64, 64), (1, 3, 64, 96)])
        add("meshnet", "MeshNet (dilated, brainchop)",
            lambda: MeshNet(5, 3),
            [(1, 1, 24, 24, 24), (1, 1, 16, 24, 32)])
    else:
        add("monai_unet", "MONAI UNet (IN, PReLU)",
            lambda: UNet(3, 1, 3, channels=(16, 32, 64, 128, 256), strides=(2, 2, 2, 2),
                         num_res_units=2),
            [(1, 1, 96, 96, 96), (1, 1, 64, 64, 64)], (17, 11, 14))
        add("monai_unet_bn", "MONAI UNet (norm=BATCH)",
            lambda: UNet(3, 1, 2, channels=(16, 32, 64, 128, 256), strides=(2, 2, 2, 2),
                         num_res_units=2, norm="batch"),
            [(1, 1, 96, 96, 96)])
        add("monai_segresnet", "MONAI SegResNet",
            lambda: SegResNet(3, init_filters=16, in_channels=1, out_channels=2),
            [(1, 1, 96, 96, 96)])
        add("monai_dynunet", "MONAI DynUNet",
            lambda: DynUNet(3, 1, 3, kernel_size=[3] * 6, strides=[1, 2, 2, 2, 2, 2],
                            upsample_kernel_size=[2] * 5),
            [(1, 1, 128, 128, 128)])
        add("monai_vnet", "MONAI VNet (ELU)",
            lambda: VNet(3, in_channels=1, out_channels=2),
            [(1, 1, 64, 64, 64)])
        add("nnunet_plain", "nnU-Net PlainConvUNet",
            lambda: PlainConvUNet(1, 6, [32, 64, 128, 256, 320, 320], kernel_sizes=3,
                                  strides=[1, 2, 2, 2, 2, 2], n_conv_per_stage=2, num_classes=3,
                                  n_conv_per_stage_decoder=2, **nnunet_kwargs(3)),
            [(1, 1, 128, 128, 128), (1, 1, 96, 96, 96)])
        add("nnunet_resenc", "nnU-Net ResEncUNet-M",
            lambda: ResidualEncoderUNet(1, 6, [32, 64, 128, 256, 320, 320], kernel_sizes=3,
                                        strides=[1, 2, 2, 2, 2, 2],
                                        n_blocks_per_stage=[1, 3, 4, 6, 6, 6], num_classes=3,
                                        n_conv_per_stage_decoder=1, **nnunet_kwargs(3)),
            [(1, 1, 128, 128, 128)])
        add("smp_unet_effnet", "smp-style 2D Unet (EfficientNet-like encoder)",
            lambda: SmpStyleUnet(3, 2, width=(32, 16, 24, 40, 112, 320),
                                 decoder=(256, 128, 64, 32, 16)),
            [(1, 3, 512, 512)])
        add("meshnet", "MeshNet (dilated, brainchop)",
            lambda: MeshNet(21, 3),
            [(1, 1, 128, 128, 128)])
    return nets


# --------------------------------------------------------------- export

def op_counts(path):
    import onnx
    m = onnx.load(path, load_external_data=False)
    return dict(sorted(collections.Counter(n.op_type for n in m.graph.node).items()))


def export_one(model, shape, opset, path, gen):
    x = torch.randn(shape, generator=gen)
    with torch.no_grad():
        y = model(x)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")     # TracerWarnings of the same-pad sizes, IN train=True
        torch.onnx.export(model, x, path, opset_version=opset, do_constant_folding=True,
                          input_names=["input"], output_names=["output"])
    return x.numpy().astype(np.float32), y.numpy().astype(np.float32)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("outdir")
    ap.add_argument("--small", action="store_true", help="reduced sizes for the parity test")
    ap.add_argument("--only", default="", help="comma-separated network names")
    ap.add_argument("--list", action="store_true", help="list the networks and exit")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    nets = catalogue(args.small)
    if args.list:
        for name, family, _, shapes, opsets in nets:
            print(f"{name:20s} {family}: inputs {shapes}, opsets {list(opsets)}")
        return 0
    only = {s for s in args.only.split(",") if s}
    unknown = only - {n[0] for n in nets}
    if unknown:
        print(f"unknown network(s): {', '.join(sorted(unknown))}", file=sys.stderr)
        return 2
    os.makedirs(args.outdir, exist_ok=True)

    index = {"torch": torch.__version__, "small": args.small, "seed": SEED, "networks": []}
    t_all = time.time()
    for ni, (name, family, build, shapes, opsets) in enumerate(nets):
        if only and name not in only:
            continue
        torch.manual_seed(SEED + ni)
        gen = torch.Generator().manual_seed(SEED + 1000 * ni)
        model = randomize_state(build(), gen).eval()
        nparams = sum(p.numel() for p in model.parameters())
        for si, shape in enumerate(shapes):
            for opset in (opsets if si == 0 else opsets[:1]):
                stem = f"{name}_{'x'.join(map(str, shape[2:]))}"
                if opset != 17:
                    stem += f"_op{opset}"
                t0 = time.time()
                path = os.path.join(args.outdir, stem + ".onnx")
                x, y = export_one(model, shape, opset, path, gen)
                np.save(os.path.join(args.outdir, stem + ".in.npy"), x)
                np.save(os.path.join(args.outdir, stem + ".out.npy"), y)
                entry = {"name": stem, "network": name, "family": family, "opset": opset,
                         "onnx": stem + ".onnx", "input": stem + ".in.npy",
                         "output": stem + ".out.npy", "input_shape": list(x.shape),
                         "output_shape": list(y.shape), "params": nparams,
                         "ops": op_counts(path), "seconds": round(time.time() - t0, 2)}
                index["networks"].append(entry)
                print(f"{stem:34s} {family}: {list(x.shape)} -> {list(y.shape)}, "
                      f"{nparams} params, {entry['seconds']:.1f} s", flush=True)
    with open(os.path.join(args.outdir, "index.json"), "w") as f:
        json.dump(index, f, indent=1)
        f.write("\n")
    print(f"{len(index['networks'])} exports in {time.time() - t_all:.1f} s -> "
          f"{os.path.join(args.outdir, 'index.json')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
