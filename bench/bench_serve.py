#!/usr/bin/env python3
"""lumen serve: throughput of /v1/models under wrk, and what /v1/segmentation adds over the same
pipeline run without the server.

usage: bench_serve.py [BUILD_DIR] [--runs N] [--seconds S]

1. `wrk -t2 -c32 -d10s --latency` on GET /v1/models of a `lumen serve` holding the demo package:
   requests/s and the latency percentiles wrk prints (p50, p99).
2. The demo CT segmentation (models/demo_ct_unet, a 256x256x120 phantom at 1.5x1.5x2.5 mm):
   - POST /v1/segmentation in the Python AIAA client's wire format (multipart, HTTP/1.1, a new
     connection per call), wall time from the first byte sent to the last byte received;
   - the same package pipeline in one `lumen run` process that loaded the package once: LoadImage,
     infer, SaveImage of the uncompressed upload and a .nii.gz result, timed inside the process;
   - `lumen run models/demo_ct_unet IN OUT` as a whole process (start and model load included).
   Medians of N runs after one warm-up each; the overhead ratio is request / in-process pipeline.
"""
import http.client
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

here = os.path.dirname(os.path.abspath(__file__))
root = os.path.dirname(here)
args = list(sys.argv[1:])


def take(flag, default):
    if flag in args:
        i = args.index(flag)
        v = args[i + 1]
        del args[i:i + 2]
        return type(default)(v)
    return default


runs = take("--runs", 5)
seconds = take("--seconds", 10)
build = args[0] if args else "build"
if not os.path.isabs(build):
    build = os.path.join(root, build)
LUMEN = os.path.join(build, "lua", "lumen")

PIPELINE_LUA = r"""
-- The demo package's pipeline, package loaded once, timed inside the process.
local pkg_dir, input, output, runs = arg[1], arg[2], arg[3], tonumber(arg[4])
local pkg <close> = lumen.load_package(pkg_dir)
local times = {}
for i = 0, runs do
  local t0 = lumen.clock()
  local img <close> = LoadImage{path = input}
  local labels <close> = pkg.infer(img)
  SaveImage(labels, {path = output})
  if i > 0 then times[#times + 1] = lumen.clock() - t0 end
end
table.sort(times)
print(string.format("%.6f", times[(#times + 1) // 2]))
"""


def start_server(models):
    p = subprocess.Popen([LUMEN, "serve", "--models", models, "--port", "0", "--queue", "64"],
                         stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 60
    while time.time() < deadline:
        line = p.stderr.readline()
        if not line:
            break
        m = re.search(r"listening on http://([^:/]+|\[[^\]]+\]):(\d+)", line)
        if m:
            return p, int(m.group(2))
    p.kill()
    raise RuntimeError("lumen serve did not start")


def multipart(path):
    boundary = "----------lImIt_of_THE_fIle_eW_$"
    with open(path, "rb") as f:
        data = f.read()
    head = ("--%s\r\nContent-Disposition: form-data; name=\"params\"\r\n\r\n{}\r\n"
            "--%s\r\nContent-Disposition: form-data; name=\"datapoint\"; filename=\"%s\"\r\n"
            "Content-Type: application/octet-stream\r\n\r\n" % (boundary, boundary,
                                                              os.path.basename(path))).encode()
    body = head + data + ("\r\n--%s--\r\n" % boundary).encode()
    return "multipart/form-data; boundary=%s" % boundary, body


def segment(port, ctype, body):
    t0 = time.perf_counter()
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    c.request("POST", "/v1/segmentation?model=demo_ct_unet", body=body,
              headers={"Content-Type": ctype, "Content-Length": str(len(body))})
    r = c.getresponse()
    data = r.read()
    dt = time.perf_counter() - t0
    c.close()
    if r.status != 200:
        raise RuntimeError("segmentation: HTTP %d %s" % (r.status, data[:300]))
    return dt, len(data)


def main():
    if not shutil.which("wrk"):
        print("skipped: wrk is not installed (scripts/bootstrap)")
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        models = os.path.join(tmp, "models")
        os.mkdir(models)
        os.symlink(os.path.join(root, "models", "demo_ct_unet"), os.path.join(models, "demo_ct_unet"))
        ct = os.path.join(tmp, "ct.nii")
        mk = os.path.join(tmp, "make_ct.lua")
        with open(mk, "w") as f:
            f.write('local img, lab = Phantom{shape = {256, 256, 120}, spacing = {1.5, 1.5, 2.5}, seed = 3}\n'
                    'SaveNifti(img, {path = arg[1]})\n')
        subprocess.run([LUMEN, "run", mk, ct], check=True)
        srv, port = start_server(models)
        try:
            out = subprocess.run(["wrk", "-t2", "-c32", "-d%ds" % seconds, "--latency",
                                  "http://127.0.0.1:%d/v1/models" % port],
                                 capture_output=True, text=True, check=True).stdout
            rps = re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)
            lat = dict(re.findall(r"^\s+(50|99)%\s+(\S+)", out, re.M))
            errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
            print("GET /v1/models, wrk -t2 -c32 %d s: %s requests/s, p50 %s, p99 %s%s" %
                  (seconds, rps, lat.get("50"), lat.get("99"),
                   ", %s non-2xx" % errors.group(1) if errors else ""))
            ctype, body = multipart(ct)
            segment(port, ctype, body)  # warm-up: the package's plans
            req = [segment(port, ctype, body)[0] for _ in range(runs)]
        finally:
            srv.send_signal(signal.SIGTERM)
            srv.wait(timeout=60)
        drv = os.path.join(tmp, "pipeline.lua")
        with open(drv, "w") as f:
            f.write(PIPELINE_LUA)
        out_l = os.path.join(tmp, "labels.nii.gz")
        inproc = float(subprocess.run([LUMEN, "run", drv, os.path.join(root, "models", "demo_ct_unet"),
                                       ct, out_l, str(runs)], capture_output=True, text=True,
                                      check=True).stdout.split()[-1])
        whole = []
        for _ in range(runs):
            t0 = time.perf_counter()
            subprocess.run([LUMEN, "run", os.path.join(root, "models", "demo_ct_unet"), ct, out_l],
                           check=True, capture_output=True)
            whole.append(time.perf_counter() - t0)
        r = statistics.median(req)
        print("POST /v1/segmentation (%.0f MB upload): %.3f s median of %d" %
              (len(body) / 1e6, r, runs))
        print("same pipeline in one process (package loaded once): %.3f s; overhead of the server %+.1f%%" %
              (inproc, 100 * (r / inproc - 1)))
        print("`lumen run models/demo_ct_unet IN OUT` (process start and model load included): %.3f s" %
              statistics.median(whole))
    return 0


if __name__ == "__main__":
    sys.exit(main())
