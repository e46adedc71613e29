#!/usr/bin/python3
"""Parity: SlidingWindowInfer against MONAI 1.4's sliding_window_inference
and against a numpy/torch re-implementation of nnU-Net v2's sliding window
(semantics.md §8.5, written out below), on the same small random conv nets
exported to ONNX.  Tolerance: max|lumen - ref| <= 1e-5 * max(1, max|ref|)
(float32; the networks themselves agree to about 1e-6).

Cases: constant and gaussian blending, several overlaps and sigma scales,
windows larger than the image (constant with cval, replicate, reflect),
sw_batch_size 1, 2 and 3 (last batch smaller), an int16 input, a network
that sees the axes reversed (axes ZYX), nnU-Net's rule with and without
mirroring, and a 2-D network stepped over the slices of a 3-D image; and
lumen against nnU-Net's float16 accumulation (1e-3 on 99% of the voxels:
float16 loses the smallest Gaussian weights at the image's corners).

usage: test_sliding_window_parity.py LUMEN DRIVER_LUA
Needs torch, onnx and MONAI (venv/ from scripts/peers, over Debian's
python3); without them it exits 77 (skip).  Exitcode protocol.
"""
import os
import subprocess
import sys
import tempfile

from peers_venv import reexec_with_venv

TOL = 1e-5


def make_net(dim, cin, cout, seed):
    import torch
    from torch import nn

    conv = nn.Conv3d if dim == 3 else nn.Conv2d

    class Net(nn.Module):
        # A receptive field of 7 voxels: windows see their borders, so the
        # blend is not the whole-image result and placement errors show.
        def __init__(self):
            super().__init__()
            self.c1 = conv(cin, 8, 3, padding=1)
            self.c2 = conv(8, 8, 3, padding=2, dilation=2)
            self.c3 = conv(8, cout, 1)

        def forward(self, x):
            h = nn.functional.leaky_relu(self.c1(x), 0.1)
            return self.c3(torch.relu(self.c2(h)))

    torch.manual_seed(seed)
    net = Net().eval()
    with torch.no_grad():
        for p in net.parameters():
            p.uniform_(-0.5, 0.5)
    return net


def export(net, dim, cin, path):
    import torch

    names = {0: "n", 2: "a", 3: "b"} if dim == 2 else {0: "n", 2: "a", 3: "b", 4: "c"}
    x = torch.zeros((1, cin) + (8,) * dim)
    torch.onnx.export(net, x, path, input_names=["x"], output_names=["y"],
                      dynamic_axes={"x": names, "y": names}, opset_version=13)


# ---- nnU-Net v2 (predict_from_raw_data.py, sliding_window_prediction.py) ----

def nnunet_steps(image_size, tile, step):
    import numpy as np

    target = [i * step for i in tile]
    num = [int(np.ceil((i - k) / j)) + 1 for i, j, k in zip(image_size, target, tile)]
    steps = []
    for d in range(len(tile)):
        mx = image_size[d] - tile[d]
        actual = mx / (num[d] - 1) if num[d] > 1 else 99999999999
        steps.append([int(np.round(actual * i)) for i in range(num[d])])
    return steps


def nnunet_gaussian(tile, sigma_scale=1. / 8, value_scaling_factor=10):
    import numpy as np
    import torch
    from scipy.ndimage import gaussian_filter

    tmp = np.zeros(tile)
    tmp[tuple(i // 2 for i in tile)] = 1
    g = gaussian_filter(tmp, [i * sigma_scale for i in tile], 0, mode="constant", cval=0)
    g = torch.from_numpy(g)
    g /= (torch.max(g) / value_scaling_factor)
    g = g.to(dtype=torch.float16)
    mask = g == 0
    g[mask] = torch.min(g[~mask])
    return g.float()


def nnunet_mirror_predict(net, x, mirror_axes):
    import itertools

    import torch

    pred = net(x)
    if mirror_axes:
        axes = [m + 2 for m in mirror_axes]
        combos = [c for i in range(len(axes)) for c in itertools.combinations(axes, i + 1)]
        for a in combos:
            pred += torch.flip(net(torch.flip(x, a)), a)
        pred /= (len(combos) + 1)
    return pred


def nnunet_sliding(net, x, tile, step, mirror_axes, gaussian=True, half=False):
    """x: (C, spatial...) float32 tensor; logits (C_out, spatial...) float32.
    Accumulates in float32 as lumen does, or with half=True in float16 as
    nnU-Net v2 does (predicted_logits, n_predictions and the division)."""
    import itertools

    import torch

    sp = list(x.shape[1:])
    new = [max(s, t) for s, t in zip(sp, tile)]
    pad = []
    for s, n in reversed(list(zip(sp, new))):
        pad += [(n - s) // 2, (n - s) - (n - s) // 2]
    xp = torch.nn.functional.pad(x, pad, value=0.0)
    steps = nnunet_steps(new, tile, step)
    w = nnunet_gaussian(tuple(tile)) if gaussian else torch.ones(tile)
    acc = torch.float16 if half else torch.float32
    logits = None
    npred = torch.zeros(new, dtype=acc)
    for st in itertools.product(*steps):
        sl = tuple(slice(s, s + t) for s, t in zip(st, tile))
        win = xp[(slice(None),) + sl][None]
        pred = nnunet_mirror_predict(net, win, mirror_axes)[0]
        if logits is None:
            logits = torch.zeros([pred.shape[0]] + new, dtype=acc)
        logits[(slice(None),) + sl] += pred * w
        npred[sl] += w
    logits /= npred
    crop = tuple(slice((n - s) // 2, (n - s) // 2 + s) for s, n in zip(sp, new))
    return logits[(slice(None),) + crop].float()


def main():
    st = reexec_with_venv(("monai", "onnx", "torch"), __file__)
    if st is not None:
        return st
    import numpy as np
    import torch
    from monai.inferers import sliding_window_inference

    lumen, driver = sys.argv[1], sys.argv[2]
    torch.set_num_threads(2)
    build = os.environ.get("LUMEN_BUILD_ROOT") or tempfile.gettempdir()
    rng = np.random.default_rng(7)
    with tempfile.TemporaryDirectory(prefix="sw_parity_", dir=build) as tmp:
        net3 = make_net(3, 2, 3, 1)
        net2 = make_net(2, 2, 3, 2)
        export(net3, 3, 2, os.path.join(tmp, "net3.onnx"))
        export(net2, 2, 2, os.path.join(tmp, "net2.onnx"))
        imgs = {
            "a": rng.standard_normal((2, 37, 29, 23)).astype(np.float32),
            "b": rng.integers(-100, 101, (2, 21, 18, 14)).astype(np.int16),
        }
        for k, v in imgs.items():
            np.save(os.path.join(tmp, k + ".npy"), v)

        def monai(net, x, roi, ov=0.25, b=1, mode="constant", sigma=0.125, pad="constant",
                  cval=0.0):
            with torch.no_grad():
                t = torch.from_numpy(x.astype(np.float32))[None]
                return sliding_window_inference(t, roi, b, net, overlap=ov, mode=mode,
                                                sigma_scale=sigma, padding_mode=pad,
                                                cval=cval)[0].numpy()

        def monai_zyx(net, x, roi, **kw):
            rev = (0,) + tuple(range(x.ndim - 1, 0, -1))
            return monai(net, x.transpose(rev), roi[::-1], **kw).transpose(rev)

        def monai_slices(net, x, roi, axis, **kw):
            # a 2-D network over slices = MONAI on the batch of slices
            xs = np.moveaxis(x, axis + 1, 0)          # (S, C, a, b)
            with torch.no_grad():
                t = torch.from_numpy(np.ascontiguousarray(xs.astype(np.float32)))
                y = sliding_window_inference(t, roi, kw.get("b", 1), net,
                                             overlap=kw.get("ov", 0.25),
                                             mode=kw.get("mode", "constant")).numpy()
            return np.moveaxis(y, 0, axis + 1)

        def nnunet(net, x, tile, step=0.5, mirror=(), gaussian=True, half=False):
            with torch.no_grad():
                return nnunet_sliding(net, torch.from_numpy(x.astype(np.float32)), tile, step,
                                      list(mirror), gaussian, half).numpy()

        def nnunet_slices(net, x, tile, axis, step=0.5, mirror=()):
            xs = np.moveaxis(x, axis + 1, 1)          # (C, S, a, b)
            # lumen's mirror axes counted over (x, y, z) without the slice axis
            rest = [d for d in range(3) if d != axis]
            m2 = [rest.index(d) for d in mirror]
            out = np.stack([nnunet(net, xs[:, s], tile, step, m2) for s in range(xs.shape[1])],
                           axis=1)
            return np.moveaxis(out, 1, axis + 1)

        a, b = imgs["a"], imgs["b"]
        cases = [
            # name, input, model, lumen options, reference
            ("const25", "a", "net3", "roi=16,12,10",
             lambda: monai(net3, a, (16, 12, 10))),
            ("const50_b3", "a", "net3", "roi=16,12,10|overlap=0.5|sw_batch_size=3",
             lambda: monai(net3, a, (16, 12, 10), ov=0.5, b=3)),
            ("gauss25", "a", "net3", "roi=16,12,10|mode=gaussian",
             lambda: monai(net3, a, (16, 12, 10), mode="gaussian")),
            ("gauss60_b3_sigma", "a", "net3",
             "roi=20,16,12|overlap=0.6|sw_batch_size=3|mode=gaussian|sigma_scale=0.2",
             lambda: monai(net3, a, (20, 16, 12), ov=0.6, b=3, mode="gaussian", sigma=0.2)),
            ("pad_const_cval", "a", "net3", "roi=48,16,30|cval=0.5",
             lambda: monai(net3, a, (48, 16, 30), cval=0.5)),
            ("pad_replicate_gauss_b3", "a", "net3",
             "roi=48,16,30|padding_mode=replicate|mode=gaussian|sw_batch_size=3",
             lambda: monai(net3, a, (48, 16, 30), pad="replicate", mode="gaussian", b=3)),
            ("pad_reflect", "a", "net3", "roi=40,32,24|padding_mode=reflect|overlap=0.5",
             lambda: monai(net3, a, (40, 32, 24), pad="reflect", ov=0.5)),
            ("int16", "b", "net3", "roi=12,12,8|overlap=0.4|sw_batch_size=2",
             lambda: monai(net3, b, (12, 12, 8), ov=0.4, b=2)),
            ("zyx_gauss_b2", "a", "net3", "roi=16,12,10|axes=ZYX|mode=gaussian|sw_batch_size=2",
             lambda: monai_zyx(net3, a, (16, 12, 10), mode="gaussian", b=2)),
            ("slices_z_b3", "a", "net2", "roi=16,12|sw_batch_size=3",
             lambda: monai_slices(net2, a, (16, 12), 2, b=3)),
            ("nnunet", "a", "net3", "roi=16,12,10|rule=nnunet",
             lambda: nnunet(net3, a, (16, 12, 10))),
            ("nnunet_mirror_b2", "a", "net3",
             "roi=24,20,16|rule=nnunet|mirror_axes=0,1,2|sw_batch_size=2",
             lambda: nnunet(net3, a, (24, 20, 16), mirror=(0, 1, 2))),
            ("nnunet_pad_mirror", "a", "net3", "roi=48,16,30|rule=nnunet|mirror_axes=1",
             lambda: nnunet(net3, a, (48, 16, 30), mirror=(1,))),
            # nnU-Net itself accumulates in float16, which loses the tiny Gaussian weights
            # (float16's smallest is 6e-8) where only window borders reach, at the image's
            # corners and edges (measured: 0.5% of this image's voxels off by more than
            # 1e-3 of the max, the worst by 0.48 of 11.8): lumen (float32) within 1e-3 of
            # it on 99% of the voxels
            ("nnunet_fp16_accumulators", "a", "net3", "roi=16,12,10|rule=nnunet|mirror_axes=0",
             lambda: nnunet(net3, a, (16, 12, 10), mirror=(0,), half=True), 1e-3, 0.99),
            ("nnunet_step75_const", "b", "net3", "roi=12,12,8|rule=nnunet|overlap=0.25|mode=constant",
             lambda: nnunet(net3, b, (12, 12, 8), step=0.75, gaussian=False)),
            ("nnunet_slices_x_mirror", "a", "net2",
             "roi=24,16|rule=nnunet|slice_axis=0|mirror_axes=1,2",
             lambda: nnunet_slices(net2, a, (24, 16), 0, mirror=(1, 2))),
        ]
        specs = ["|".join([c[0], c[1], c[2]] + ([c[3]] if c[3] else [])) for c in cases]
        r = subprocess.run([lumen, "run", driver, tmp] + specs, capture_output=True, text=True)
        lines = {ln.split()[1].rstrip(":"): ln for ln in r.stdout.splitlines()
                 if ln.startswith(("ok ", "error "))}
        if r.returncode != 0 and not lines:
            print(r.stdout + r.stderr)
            print("lumen failed")
            return 1
        print(f"1..{len(cases)}")
        failed = 0
        for k, (name, _, _, _, ref, *case_tol) in enumerate(cases, 1):
            ln = lines.get(name, f"error {name}: no output")
            if not ln.startswith("ok "):
                print(f"not ok {k} - {name}: {ln}")
                failed += 1
                continue
            got = np.load(os.path.join(tmp, name + ".lumen.npy"))
            want = ref()
            if got.shape != want.shape:
                print(f"not ok {k} - {name}: shape {got.shape} != {want.shape}")
                failed += 1
                continue
            diff = np.abs(got.astype(np.float64) - want)
            err = float(np.max(diff))
            rtol, share = (case_tol + [TOL, 1.0][len(case_tol):])[:2]
            tol = rtol * max(1.0, float(np.max(np.abs(want))))
            within = float(np.mean(diff <= tol))
            ok = within >= share
            failed += not ok
            _, _, windows, secs = ln.split()
            print(f"{'ok' if ok else 'not ok'} {k} - {name}: max diff {err:.3g} "
                  f"(tol {tol:.3g}, {within:.2%} within, {share:.0%} needed), {windows} "
                  f"windows, {float(secs) * 1e3:.1f} ms")
        return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
