#!/usr/bin/python3
"""Benchmark lumen's oneDNN convolutions (models/src/cpu_conv*.c) against torch.

usage: bench/bench_conv.py [BUILD_DIR] [--runs N] [--threads T] [CASE...]
       (BUILD_DIR default: build, T default 2)

Layer shapes that dominate 3-D U-Nets, each with bias and LeakyReLU(0.01):
Conv 32->32 k3 at 96^3 and 128^3, Conv 1->32 k3 at 128^3, ConvTranspose
64->32 k2s2 64^3 -> 128^3 (nnU-Net) and 256->128 k3s2p1 output_padding 1
12^3 -> 24^3 (MONAI UNet), in float32 and bfloat16 (where the CPU has it).
lumen is timed by bench/bench_conv (lm_conv_run, medians of N runs after one
warm-up; plain NCDHW float32 in and out, layout reorders included); torch
1.13 by torch.nn.functional.conv3d / conv_transpose3d + leaky_relu_ with
torch.set_num_threads(T), medians of N runs after one warm-up (a single
timed run where the warm-up took over 2 s: torch's ConvTranspose3d is its
slow_conv_transpose3d).  ConvTranspose is also timed through every other
path lumen has (bench_conv --path subpixel|phases|deconv; deconv is oneDNN's
own deconvolution).  torch 1.13's bf16 conv_transpose3d on the CPU fails
(it checks the weight as a Conv weight), so those rows have no torch time.
The machine is shared: the load average is printed with the table.  GFLOP/s count the layer's
multiply-adds (2 per tap).  No assertions; ratio = torch time / lumen time,
for the medians, for the minima (the least disturbed runs on a loaded
machine) and for the process CPU time (all threads; OMP_WAIT_POLICY=passive
so that waiting threads sleep instead of spinning): on a machine shared with
other jobs the CPU time is the fairest measure of the work each side does.
"""
import os
import statistics
import subprocess
import sys
import time

here = os.path.dirname(os.path.abspath(__file__))
root = os.path.dirname(here)
args = list(sys.argv[1:])
runs, threads = 5, 2
for flag in ("--runs", "--threads"):
    if flag in args:
        i = args.index(flag)
        if flag == "--runs":
            runs = int(args[i + 1])
        else:
            threads = int(args[i + 1])
        del args[i:i + 2]
build = args.pop(0) if args and os.path.isdir(args[0]) else "build"
only = args
if not os.path.isabs(build):
    build = os.path.join(os.getcwd(), build) if os.path.isdir(build) else os.path.join(root, build)
tool = os.path.join(build, "bench", "bench_conv")
if not os.path.exists(tool):
    sys.exit("bench_conv.py: %s not found; build first (ninja -C %s)" % (tool, build))

os.environ["OMP_NUM_THREADS"] = str(threads)
os.environ["OMP_WAIT_POLICY"] = "passive"   # CPU time counts work, not spinning
import torch  # noqa: E402  (after OMP_NUM_THREADS, which torch reads at import)
import torch.nn.functional as F  # noqa: E402

torch.set_num_threads(threads)

# name: (cin, cout, in, k, stride, pad, output_padding, transposed), as bench_conv.c
CASES = {
    "conv32_k3_96": (32, 32, 96, 3, 1, 1, 0, False),
    "conv32_k3_128": (32, 32, 128, 3, 1, 1, 0, False),
    "conv1to32_k3_128": (1, 32, 128, 3, 1, 1, 0, False),
    "deconv64to32_k2s2_64": (64, 32, 64, 2, 2, 0, 0, True),
    "deconv256to128_k3s2_12": (256, 128, 12, 3, 2, 1, 1, True),
}
names = [n for n in CASES if not only or n in only]


def lumen(flags, which=None):
    which = names if which is None else which
    if not which:
        return {}
    out = subprocess.run([tool, "--runs", str(runs)] + flags + which, capture_output=True,
                         text=True)
    if out.returncode not in (0, 2):
        sys.stderr.write(out.stderr)
    res = {}
    for line in out.stdout.splitlines():
        name, dtype, impl, med, mn, _gf, cpu = line.split()
        res[name] = (float(med), impl, float(mn), float(cpu))
    return res


def flops(name):
    cin, cout, n, k, s, p, op, tr = CASES[name]
    vox = n ** 3 if tr else ((n + 2 * p - k) // s + 1) ** 3
    return 2.0 * vox * cin * cout * k ** 3


def torch_time(name, dtype):
    cin, cout, n, k, s, p, op, tr = CASES[name]
    g = torch.Generator().manual_seed(0)
    x = torch.rand((1, cin, n, n, n), generator=g).to(dtype)
    if tr:
        w = (torch.rand((cin, cout, k, k, k), generator=g) * 0.1 - 0.05).to(dtype)
    else:
        w = (torch.rand((cout, cin, k, k, k), generator=g) * 0.1 - 0.05).to(dtype)
    b = torch.rand(cout, generator=g).to(dtype)

    def once():
        t0 = time.perf_counter()
        c0 = time.process_time()
        with torch.no_grad():
            if tr:
                y = F.conv_transpose3d(x, w, b, stride=s, padding=p, output_padding=op)
            else:
                y = F.conv3d(x, w, b, stride=s, padding=p)
            F.leaky_relu_(y, 0.01)
        return time.perf_counter() - t0, time.process_time() - c0

    try:
        first = once()[0]
    except RuntimeError:   # torch 1.13: bf16 conv_transpose3d fails on the CPU
        return None, None, None
    n_runs = 1 if first > 2.0 else runs
    t = [once() for _ in range(n_runs)]
    wall = [w for w, _ in t]
    return statistics.median(wall), min(wall), statistics.median(c for _, c in t)


def main():
    from_bf16 = subprocess.run([tool, "--bf16", "--runs", "1", "none"],
                               capture_output=True).returncode == 0
    print("threads %d, runs %d, load average %s" % (threads, runs,
                                                    " ".join(open("/proc/loadavg").read().split()[:3])))
    print("%-24s %-5s %-52s %8s %7s %8s %6s %12s %6s %12s %6s" % (
        "case", "dtype", "lumen impl", "lumen s", "GFLOP/s", "torch s", "ratio", "min l/t",
        "ratio", "cpu l/t", "ratio"))
    configs = [("f32", [], torch.float32)]
    if from_bf16:
        configs.append(("bf16", ["--bf16"], torch.bfloat16))
    for dtype, flags, tdt in configs:
        ours = lumen(flags)
        transposed = [n for n in names if CASES[n][7]]
        others = {p: lumen(flags + ["--path", p], transposed)
                  for p in ("subpixel", "phases", "deconv")}
        for name in names:
            if name not in ours:
                print("%-24s %-5s (failed)" % (name, dtype))
                continue
            t, impl, tmin, tcpu = ours[name]
            tt, ttmin, ttcpu = torch_time(name, tdt)
            print("%-24s %-5s %-52s %8.4f %7.1f %8s %6s %12s %6s %12s %6s" % (
                name, dtype, impl, t, flops(name) / t * 1e-9,
                "%.4f" % tt if tt else "n/a", "%.2fx" % (tt / t) if tt else "",
                "%.3f/%.3f" % (tmin, ttmin) if tt else "%.3f" % tmin,
                "%.2fx" % (ttmin / tmin) if tt else "",
                "%.3f/%.3f" % (tcpu, ttcpu) if tt else "%.3f" % tcpu,
                "%.2fx" % (ttcpu / tcpu) if tt else ""))
            if not CASES[name][7]:
                continue
            for p, res in others.items():
                if name in res and res[name][1] != impl:
                    tp, impl_p, tpmin, tpcpu = res[name]
                    print("%-24s %-5s %-52s %8.4f %7.1f %8s %6s %12s %6s %12s %6s" % (
                        "  (other path)", dtype, impl_p, tp, flops(name) / tp * 1e-9, "",
                        "%.2fx" % (tt / tp) if tt else "", "%.3f" % tpmin,
                        "%.2fx" % (ttmin / tpmin) if tt else "", "%.3f" % tpcpu,
                        "%.2fx" % (ttcpu / tpcpu) if tt else ""))

main()
