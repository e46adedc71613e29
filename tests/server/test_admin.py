#!/usr/bin/python3
"""The admin API of a real `lumen serve` (lua/lib/serve_admin.lua) over HTTP.

- a token (LUMEN_ADMIN_TOKEN): 401 without it or with another one;
- PUT a zip of models/demo_ct_unet (in one top-level folder) as a new model:
  listed by /v1/models, and its /v1/segmentation of a phantom CT equals
  `lumen run models/demo_ct_unet` voxel for voxel; PATCH its metadata.json,
  GET it back; DELETE it (then 404, and /v1/segmentation answers 404);
- PUT config_aiaa.json + an ONNX file, and segment with it (the mask equals
  lumen.load_aiaa_package's of the same folder, run by `lumen run`);
- hostile archives written with tarfile/zipfile ('..', absolute paths,
  symbolic and hard links, a gzip bomb over LUMEN_ADMIN_MAX_BYTES): 4xx, and
  the repository holds exactly what it held (no staging folder left, nothing
  written outside);
- a JSON body {"path": ...} (download from NGC): 501;
- no token on a non-loopback address: every admin request 403 and a warning
  at start.

Usage: test_admin.py LUMEN_BINARY (exit 77 without the HTTP transport,
nibabel or the demo package).
"""

import io
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
import zipfile

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import test_aiaa_support as S  # noqa: E402

TOKEN = "admin-test-token-5f2c"
AUTH = {"Authorization": "Bearer " + TOKEN}
MAX_BYTES = 4 << 20  # the demo package is about 0.8 MB

# The demo network behind a v2 config (tests/lua/test_aiaa_config.lua checks
# that this config gives the hand-written pipeline's labels).
DEMO_CONFIG = """{ "version": "2", "type": "segmentation",
  "labels": ["liver", "spleen", "kidney", "stomach", "urinary_bladder"],
  "description": "demo CT U-Net behind a Clara config",
  "pre_transforms": [
    {"name": "LoadNifti", "args": {"fields": "image"}},
    {"name": "ConvertToChannelsFirst", "args": {"fields": "image"}},
    {"name": "ScaleByResolution", "args": {"fields": "image", "target_resolution": [3.0, 3.0, 3.0]}},
    {"name": "ScaleIntensityRange", "args": {"fields": "image", "a_min": -57, "a_max": 164, "b_min": 0.0, "b_max": 1.0, "clip": true}}
  ],
  "inference": {"image": "image", "scanning_window": true, "batch_size": 2, "roi": [48, 48, 48]},
  "post_transforms": [
    {"name": "ArgmaxAcrossChannels", "args": {"fields": "model"}},
    {"name": "CopyProperties", "args": {"fields": ["model"], "from_field": "image", "properties": ["affine"]}},
    {"name": "RestoreOriginalShape", "args": {"field": "model", "src_field": "image", "is_label": true}}
  ],
  "writer": {"name": "WriteNifti", "args": {"field": "model", "dtype": "uint8"}}
}"""


class AnyServer:
    """`lumen serve` on any host (S.Server reads only 127.0.0.1's ready line)."""

    def __init__(self, lumen, models, host, env):
        cmd = [lumen, "serve", "--models", models, "--host", host, "--port", "0"]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     env=env, text=True)
        self.lines = []
        self.port = None
        deadline = time.time() + 120
        while time.time() < deadline:
            line = self.proc.stderr.readline()
            if not line:
                break
            self.lines.append(line)
            m = re.match(r"lumen serve: listening on http://\S+:(\d+) ", line)
            if m:
                self.port = int(m.group(1))
                break
        if self.port is None:
            self.proc.kill()
            raise RuntimeError("lumen serve did not start:\n" + "".join(self.lines))
        threading.Thread(target=lambda: [self.lines.append(x) for x in self.proc.stderr],
                         daemon=True).start()

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def demo_files():
    demo = os.path.join(S.source_root(), "models", "demo_ct_unet")
    out = {}
    for name in ("metadata.json", "model.onnx", "pipeline.lua"):
        with open(os.path.join(demo, name), "rb") as f:
            out[name] = f.read()
    return out


def zip_bytes(entries):
    """entries: (name, bytes) pairs, or ZipInfo objects with their bytes."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in entries:
            z.writestr(name, data)
    return buf.getvalue()


def tar_bytes(entries, mode="w:gz"):
    """entries: (TarInfo fields dict, bytes or None)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode=mode) as t:
        for fields, data in entries:
            ti = tarfile.TarInfo(fields["name"])
            ti.type = fields.get("type", tarfile.REGTYPE)
            ti.linkname = fields.get("linkname", "")
            if data is not None:
                ti.size = len(data)
                t.addfile(ti, io.BytesIO(data))
            else:
                t.addfile(ti)
    return buf.getvalue()


def aiaa_reference(lumen, work, onnx, ct):
    """The mask of `lumen run` of a script that loads the same config and
    model with lumen.load_aiaa_package (the config's pipeline differs from
    the demo package's: constant, not Gaussian, window blending)."""
    import nibabel as nib
    import numpy as np
    d = os.path.join(work, "aiaa_ref")
    os.mkdir(d)
    with open(os.path.join(d, "config_aiaa.json"), "w") as f:
        f.write(DEMO_CONFIG)
    with open(os.path.join(d, "model.onnx"), "wb") as f:
        f.write(onnx)
    script = os.path.join(work, "aiaa_ref.lua")
    with open(script, "w") as f:
        f.write("local pkg <close> = lumen.load_aiaa_package(arg[1])\n"
                "local img <close> = LoadImage{path = arg[2]}\n"
                "local labels <close> = pkg.infer(img, {params = {}})\n"
                "SaveImage(labels, {path = arg[3]})\n")
    out = os.path.join(work, "aiaa_ref.nii.gz")
    r = S.run([lumen, "run", script, d, ct, out])
    if r.returncode != 0:
        raise RuntimeError("aiaa reference: " + r.stdout)
    return np.asarray(nib.load(out).dataobj)


def listing(models):
    return sorted(os.listdir(models))


def main():
    lumen = S.lumen_binary()
    S.need_nibabel()
    fx = S.Fixture(lumen)          # the phantom CT and the `lumen run` mask
    work = tempfile.mkdtemp(prefix="lumen-admin-")
    try:
        run_tests(lumen, fx, work)  # exits through tap.done() or a skip
    finally:
        fx.cleanup()
        shutil.rmtree(work, ignore_errors=True)


def run_tests(lumen, fx, work):
    import numpy as np

    tap = S.Tap()
    ref = fx.ref_mask()
    models = os.path.join(work, "models")
    os.mkdir(models)
    env = dict(os.environ, LUMEN_ADMIN_TOKEN=TOKEN, LUMEN_ADMIN_MAX_BYTES=str(MAX_BYTES))
    srv = S.Server(lumen, models, env=env)
    port = srv.port

    def req(method, path, auth=True, **kw):
        headers = dict(kw.pop("headers", {}))
        if auth:
            headers.update(AUTH)
        return S.request_py(port, method, path, headers=headers, **kw)

    def model_names():
        r = S.request_py(port, "GET", "/v1/models")
        return sorted(m["name"] for m in r.json())

    def segment(model):
        return S.request_py(port, "POST", "/v1/segmentation?model=" + model,
                            fields={"params": "{}"}, files={"datapoint": ("ct.nii.gz", fx.ct_bytes)})

    try:
        # --- the token ------------------------------------------------------
        r = req("GET", "/admin/model/liver2", auth=False)
        tap.eq(r.status, 401, "no token: 401")
        tap.ok("Bearer" in r.headers.get("www-authenticate", ""), "401 carries WWW-Authenticate: Bearer")
        r = req("GET", "/admin/model/liver2", auth=False, headers={"Authorization": "Bearer nope"})
        tap.eq(r.status, 401, "wrong token: 401")
        tap.ok("wrong token" in r.json().get("error", ""), "says the token is wrong", r.body)
        r = req("PUT", "/admin/model/liver2", auth=False,
                files={"data": ("demo.zip", b"PK\x05\x06" + b"\0" * 18)})
        tap.eq(r.status, 401, "PUT without a token: 401")
        r = req("GET", "/admin/model/liver2")
        tap.eq(r.status, 404, "with the token: 404 for an unknown model")
        r = req("GET", "/admin/model/.hidden")
        tap.eq(r.status, 400, "a name with a leading dot: 400")

        # --- PUT a zipped lumen package, segment with it ---------------------
        demo = demo_files()
        pkg_zip = zip_bytes([("demo_ct_unet/" + n, d) for n, d in demo.items()])
        r = req("PUT", "/admin/model/liver2", files={"data": ("demo_ct_unet.zip", pkg_zip)})
        tap.ok(r.status == 200, "PUT a zipped package: 200", r.body[:400])
        body = r.json() if r.status == 200 else {}
        tap.ok((body.get("kind"), body.get("replaced")) == ("lumen", False), "a new lumen package", r.body)
        tap.eq(listing(models), ["liver2"], "the folder in place, no staging folder left")
        tap.eq(model_names(), ["liver2"], "/v1/models lists it")
        r = segment("liver2")
        tap.eq(r.status, 200, "segmentation with the uploaded model: 200")
        if r.status == 200 and r.files:
            mask, _ = S.nifti_from_bytes(next(iter(r.files.values())))
            tap.ok(mask.shape == ref.shape and np.array_equal(mask, ref),
                   "its mask equals `lumen run` voxel for voxel",
                   "shapes %s %s, %d voxels differ" % (mask.shape, ref.shape,
                                                       int((mask != ref).sum()) if mask.shape == ref.shape else -1))
        else:
            tap.ok(False, "its mask equals `lumen run` voxel for voxel", r.body[:400])

        # --- GET, PATCH ---------------------------------------------------------
        r = req("GET", "/admin/model/liver2")
        tap.eq(r.status, 200, "GET: 200")
        tap.eq(r.body, demo["metadata.json"], "GET gives metadata.json as it is")
        meta = json.loads(demo["metadata.json"])
        meta["description"] = "patched over HTTP"
        r = req("PATCH", "/admin/model/liver2", body=json.dumps(meta).encode(),
                headers={"Content-Type": "application/json"})
        tap.eq(r.status, 200, "PATCH: 200")
        r = req("GET", "/admin/model/liver2")
        tap.eq(r.json().get("description"), "patched over HTTP", "GET shows the patched config")
        r = S.request_py(port, "GET", "/v1/models?model=liver2")
        tap.eq(r.json().get("description"), "patched over HTTP", "/v1/models shows the reloaded model")
        r = req("PATCH", "/admin/model/liver2", body=b'{"weights": "nope.onnx"}',
                headers={"Content-Type": "application/json"})
        tap.eq(r.status, 400, "PATCH naming missing weights: 400")
        r = req("GET", "/admin/model/liver2")
        tap.eq(r.json().get("description"), "patched over HTTP", "the previous config is kept")
        tap.eq(segment("liver2").status, 200, "and the model still segments")

        # --- hostile archives -------------------------------------------------
        before = listing(models)
        outside = os.path.join(work, "escaped")
        bomb = tar_bytes([({"name": "pkg/metadata.json"}, demo["metadata.json"]),
                          ({"name": "pkg/zeros.bin"}, b"\0" * (MAX_BYTES + 1))])
        hostile = [
            ("'..' in a tar.gz", tar_bytes([({"name": "pkg/metadata.json"}, b"{}"),
                                           ({"name": "pkg/../../escaped"}, b"x")]), 400, "'..' component"),
            ("an absolute path", tar_bytes([({"name": outside}, b"x")]), 400, "absolute path"),
            ("a symbolic link", tar_bytes([({"name": "pkg/metadata.json"}, b"{}"),
                                          ({"name": "pkg/model.onnx", "type": tarfile.SYMTYPE,
                                            "linkname": "/etc/passwd"}, None)]), 400, "symbolic link"),
            ("a hard link", tar_bytes([({"name": "a"}, b"x"),
                                      ({"name": "b", "type": tarfile.LNKTYPE, "linkname": "a"}, None)],
                                     mode="w"), 400, "hard link"),
            ("'..' in a zip", zip_bytes([("../escaped", b"x")]), 400, "'..' component"),
            ("a gzip bomb (%d KB packed, over %d MB unpacked)" % (len(bomb) // 1024, MAX_BYTES >> 20),
             bomb, 400, "over the limit"),
            ("an upload over the limit", b"\0" * (MAX_BYTES + 10), 413, "over the limit"),
        ]
        tap.ok(len(bomb) < MAX_BYTES // 100, "the bomb is small on the wire (%d bytes)" % len(bomb))
        for what, data, status, pattern in hostile:
            for name in ("fresh", "liver2"):
                r = req("PUT", "/admin/model/" + name, files={"data": ("up.tar.gz", data)})
                err = r.json().get("error", "") if r.body.startswith(b"{") else r.body.decode("latin-1")
                tap.ok(r.status == status and pattern in err,
                       "%s into %s: %d naming the problem" % (what, name, status), "%d %s" % (r.status, err))
            tap.eq(listing(models), before, "%s: the repository unchanged" % what)
        tap.ok(not os.path.exists(outside), "nothing written outside the repository")
        tap.eq(model_names(), ["liver2"], "/v1/models unchanged")
        tap.eq(req("GET", "/admin/model/liver2").json().get("description"), "patched over HTTP",
               "liver2's folder unchanged")

        # --- config_aiaa.json + ONNX ------------------------------------------
        r = req("PUT", "/admin/model/clara_demo",
                files={"config": ("config_aiaa.json", DEMO_CONFIG.encode()),
                       "data": ("model.onnx", demo["model.onnx"])})
        tap.ok(r.status == 200, "PUT config_aiaa.json + model.onnx: 200", r.body[:400])
        tap.eq(sorted(os.listdir(os.path.join(models, "clara_demo"))), ["config_aiaa.json", "model.onnx"],
               "the folder holds the config and the model")
        r = req("GET", "/admin/model/clara_demo")
        tap.eq(r.body.decode(), DEMO_CONFIG, "GET gives config_aiaa.json")
        r = segment("clara_demo")
        tap.ok(r.status == 200, "segmentation with the AIAA model: 200", r.body[:400])
        if r.status == 200 and r.files:
            mask, _ = S.nifti_from_bytes(next(iter(r.files.values())))
            aref = aiaa_reference(lumen, work, demo["model.onnx"], fx.ct)
            tap.ok(mask.shape == aref.shape and np.array_equal(mask, aref),
                   "its mask equals lumen.load_aiaa_package's of the same folder, voxel for voxel",
                   "shapes %s %s, %d voxels differ" % (mask.shape, aref.shape,
                                                       int((mask != aref).sum()) if mask.shape == aref.shape else -1))
            tap.ok(mask.max() >= 1, "it found organs")

        # --- the documented curl command (Clara's server_apis page) ---------------
        curl = shutil.which("curl")
        if curl:
            zpath = os.path.join(work, "pkg.zip")
            with open(zpath, "wb") as f:
                f.write(pkg_zip)
            r = S.run([curl, "-s", "-o", "/dev/null", "-w", "%{http_code}", "-X", "PUT",
                       "-H", "Authorization: Bearer " + TOKEN, "-F", "data=@" + zpath,
                       "http://127.0.0.1:%d/admin/model/curl_up" % port])
            tap.eq(r.stdout.strip(), "200", "curl -X PUT -F data=@pkg.zip: 200")
            tap.eq(req("DELETE", "/admin/model/curl_up").status, 200, "and DELETE it")
        else:
            tap.ok(True, "# SKIP curl not installed")

        # --- NGC download, DELETE -------------------------------------------------
        r = req("PUT", "/admin/model/ngc", body=b'{"path": "nvidia/med/clara_pt_spleen_ct_segmentation", "version": "1"}',
                headers={"Content-Type": "application/json"})
        tap.eq(r.status, 501, "PUT {\"path\": ...} (NGC): 501")
        r = req("DELETE", "/admin/model/liver2")
        tap.eq(r.status, 200, "DELETE: 200")
        tap.eq(listing(models), ["clara_demo"], "the folder is gone")
        tap.eq(model_names(), ["clara_demo"], "/v1/models no longer lists it")
        tap.eq(segment("liver2").status, 404, "segmentation with it: 404")
        tap.eq(req("DELETE", "/admin/model/liver2").status, 404, "DELETE again: 404")
        tap.eq(req("DELETE", "/admin/model/clara_demo").status, 200, "DELETE the AIAA model")
        tap.eq(listing(models), [], "the repository is empty")
        tap.ok(S.request_py(port, "GET", "/healthz").status == 200, "the server still serves")
    finally:
        code = srv.stop()
        tap.eq(code, 0, "SIGTERM: exit 0")

    # --- no token, not on loopback: disabled ---------------------------------
    env2 = {k: v for k, v in os.environ.items() if k != "LUMEN_ADMIN_TOKEN"}
    srv2 = AnyServer(lumen, models, "0.0.0.0", env2)
    try:
        tap.ok(any("admin API disabled" in line for line in srv2.lines),
               "a warning at start", "".join(srv2.lines))
        for method in ("GET", "PUT", "PATCH", "DELETE"):
            r = S.request_py(srv2.port, method, "/admin/model/x", headers=AUTH, body=b"{}")
            tap.ok(r.status == 403 and "admin API disabled: set --admin-token" in r.json().get("error", ""),
                   "%s: 403 admin API disabled" % method, r.body)
    finally:
        srv2.stop()
    tap.done()


if __name__ == "__main__":
    main()
