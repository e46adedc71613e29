#!/usr/bin/env python3
"""Inference speed: lumen (oneDNN CPU backend) against PyTorch on the same ONNX and input.

usage: bench/bench_infer.py [BUILD_DIR] [--runs N] [--quick]
Run it with the peers' venv (scripts/peers): venv/bin/python bench/bench_infer.py build-release

Networks, random weights (seeded), eval mode, exported with torch.onnx (opset 17):
  unet96    MONAI UNet (channels 16..256, strides 2, 2 residual units, IN + PReLU), 1x1x96^3
  plain128  nnU-Net PlainConvUNet (features 32..320, 6 stages, IN, LeakyReLU), 1x1x128^3
Both sides use 2 threads (torch.set_num_threads(2); lumen on a 2-core machine).  Each figure is
the median of N runs after one warm-up, timed inside the process (no process start): lumen by a
Lua script with lumen.clock around Infer, PyTorch around net(x) under torch.no_grad().
Also: lumen bfloat16 (where the CPU has it) with its agreement against float32, and a
sliding-window run of unet96 over a 256^3 volume (overlap 0.25, constant blend) reported with its
per-window time, next to MONAI's sliding_window_inference on the same net.  No assertions.
"""
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np
import torch

here = os.path.dirname(os.path.abspath(__file__))
root = os.path.dirname(here)
args = list(sys.argv[1:])
runs = 3
quick = "--quick" in args
if quick:
    args.remove("--quick")
if "--runs" in args:
    i = args.index("--runs")
    runs = int(args[i + 1])
    del args[i:i + 2]
build = args[0] if args else "build"
if not os.path.isabs(build):
    build = os.path.join(root, build)
LUMEN = os.path.join(build, "lua", "lumen")
if not os.path.exists(LUMEN):
    sys.exit("bench_infer.py: %s not found; build first" % LUMEN)
THREADS = 2
torch.set_num_threads(THREADS)


def monai_unet():
    from monai.networks.nets import UNet
    return UNet(spatial_dims=3, in_channels=1, out_channels=3, channels=(16, 32, 64, 128, 256),
                strides=(2, 2, 2, 2), num_res_units=2)


def plain_unet():
    from dynamic_network_architectures.architectures.unet import PlainConvUNet
    return PlainConvUNet(input_channels=1, n_stages=6, features_per_stage=[32, 64, 128, 256, 320, 320],
                         conv_op=torch.nn.Conv3d, kernel_sizes=3, strides=[1, 2, 2, 2, 2, 2],
                         n_conv_per_stage=2, num_classes=3, n_conv_per_stage_decoder=2, conv_bias=True,
                         norm_op=torch.nn.InstanceNorm3d, norm_op_kwargs={"eps": 1e-5, "affine": True},
                         nonlin=torch.nn.LeakyReLU, nonlin_kwargs={"negative_slope": 0.01, "inplace": True})


def randomize(net, seed):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, (torch.nn.InstanceNorm3d, torch.nn.BatchNorm3d)) and m.weight is not None:
                m.weight.copy_(1 + 0.1 * torch.randn(m.weight.shape, generator=g))
                m.bias.copy_(0.1 * torch.randn(m.bias.shape, generator=g))
    return net.eval()


def export(net, shape, path):
    x = torch.zeros(shape)
    torch.onnx.export(net, x, path, opset_version=17, do_constant_folding=True,
                      input_names=["x"], output_names=["y"],
                      dynamic_axes={"x": {0: "n"}, "y": {0: "n"}})


def torch_time(net, x):
    with torch.no_grad():
        y = net(x)
        ts = []
        for _ in range(runs):
            t0 = time.perf_counter()
            net(x)
            ts.append(time.perf_counter() - t0)
    return statistics.median(ts), y.numpy()


LUA_INFER = r"""
local onnx, inp, outp, runs, precision = arg[1], arg[2], arg[3], tonumber(arg[4]), arg[5]
local t0 = lumen.clock()
local model = LoadModel(onnx, {precision = precision})
local load_s = lumen.clock() - t0
local x = LoadNpy{path = inp}
local y = Infer(model, x)            -- warm-up: builds the plan
local ts = {}
for i = 1, runs do
  y:free()
  local t = lumen.clock()
  y = Infer(model, x)
  ts[i] = lumen.clock() - t
end
table.sort(ts)
SaveNpy(y, {path = outp})
print(string.format('{"median": %.6f, "load": %.6f}', ts[(#ts + 1) // 2], load_s))
"""

LUA_SW = r"""
local onnx, inp, outp, runs = arg[1], arg[2], arg[3], tonumber(arg[4])
local model = LoadModel(onnx)
local x = LoadNpy{path = inp}
local opts = {roi = {96, 96, 96}, overlap = 0.25, sw_batch_size = 1, mode = 'constant'}
local y = SlidingWindowInfer(model, x, opts)
local ts = {}
for i = 1, runs do
  y:free()
  local t = lumen.clock()
  y = SlidingWindowInfer(model, x, opts)
  ts[i] = lumen.clock() - t
end
table.sort(ts)
SaveNpy(y, {path = outp})
print(string.format('{"median": %.6f}', ts[(#ts + 1) // 2]))
"""


def lumen_run(script, *a):
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write(script)
    try:
        r = subprocess.run([LUMEN, "run", f.name] + [str(v) for v in a], capture_output=True, text=True,
                           env=dict(os.environ, OMP_NUM_THREADS=str(THREADS)))
    finally:
        os.unlink(f.name)
    if r.returncode != 0:
        raise RuntimeError("lumen failed: " + r.stderr.strip())
    return json.loads(r.stdout.strip().splitlines()[-1])


def rel_err(a, b):
    return float(np.abs(a - b).max() / max(1e-12, float(np.abs(b).max())))


def row(name, t_lumen, t_peer, peer):
    print("%-34s lumen %8.1f ms   %-18s %8.1f ms   ratio %.2fx" % (name, t_lumen * 1e3, peer, t_peer * 1e3,
                                                                    t_peer / t_lumen))


def bench_net(tag, net, shape, tmp):
    onnx = os.path.join(tmp, tag + ".onnx")
    export(net, shape, onnx)
    x = torch.from_numpy(np.random.default_rng(1).standard_normal(shape).astype(np.float32))
    xin = os.path.join(tmp, tag + ".in.npy")
    np.save(xin, x.numpy())
    t_torch, y_ref = torch_time(net, x)
    out32 = os.path.join(tmp, tag + ".f32.npy")
    r32 = lumen_run(LUA_INFER, onnx, xin, out32, runs, "float32")
    y32 = np.load(out32)
    row("%s %s float32" % (tag, "x".join(map(str, shape[2:]))), r32["median"], t_torch, "PyTorch f32")
    print("    agreement with PyTorch: max rel err %.2e, argmax equal %.5f%%; model load %.0f ms" %
          (rel_err(y32, y_ref), 100 * float((y32.argmax(1) == y_ref.argmax(1)).mean()), r32["load"] * 1e3))
    out16 = os.path.join(tmp, tag + ".bf16.npy")
    try:
        r16 = lumen_run(LUA_INFER, onnx, xin, out16, runs, "bfloat16")
        y16 = np.load(out16)
        row("%s bfloat16" % tag, r16["median"], t_torch, "PyTorch f32")
        print("    bf16 vs lumen f32: max rel err %.2e, argmax equal %.4f%%; bf16 speed-up over f32 %.2fx" %
              (rel_err(y16, y32), 100 * float((y16.argmax(1) == y32.argmax(1)).mean()),
               r32["median"] / r16["median"]))
    except RuntimeError as e:
        print("    bfloat16: %s" % e)
    return onnx


def main():
    print("threads: %d (torch %s); runs: %d" % (THREADS, torch.__version__, runs))
    with tempfile.TemporaryDirectory() as tmp:
        unet = randomize(monai_unet(), 0)
        onnx = bench_net("unet96", unet, (1, 1, 96, 96, 96), tmp)
        if not quick:
            bench_net("plain128", randomize(plain_unet(), 1), (1, 1, 128, 128, 128), tmp)
        # sliding window over a 256^3 volume
        n = 160 if quick else 256
        vol = np.random.default_rng(2).standard_normal((1, n, n, n)).astype(np.float32)
        vin = os.path.join(tmp, "vol.npy")
        np.save(vin, vol)
        vout = os.path.join(tmp, "vol.out.npy")
        r = lumen_run(LUA_SW, onnx, vin, vout, 1)
        starts = [0] + [s for s in range(72, n, 72) if s + 96 < n] + [n - 96]
        nwin = len(sorted(set(starts))) ** 3
        from monai.inferers import sliding_window_inference
        with torch.no_grad():
            t0 = time.perf_counter()
            ref = sliding_window_inference(torch.from_numpy(vol)[None], (96, 96, 96), 1, unet, overlap=0.25,
                                           mode="constant")
            t_monai = time.perf_counter() - t0
        y = np.load(vout)
        row("sliding window %d^3 (%d windows)" % (n, nwin), r["median"], t_monai, "MONAI sw_infer")
        print("    per window: lumen %.1f ms, MONAI %.1f ms; max rel err %.2e" %
              (r["median"] / nwin * 1e3, t_monai / nwin * 1e3, rel_err(y, ref[0].numpy())))


if __name__ == "__main__":
    main()
