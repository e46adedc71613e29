"""Shared by the test_aiaa_*.py tests (not a test itself): a real `lumen serve`
on 127.0.0.1 with a --models folder holding the demo package, the two request
styles of the AIAA clients (../shared/docs/aiaa-api.md 1.2), the parsing of
their multipart replies (1.3), a small phantom CT and its `lumen run` mask.

Standard library only for HTTP (http.client, socket); nibabel and numpy for
the voxel comparisons (the tests exit 77 without them)."""

import atexit
import email.parser
import email.policy
import http.client
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

SKIP = 77

PY_BOUNDARY = "----------lImIt_of_THE_fIle_eW_$"  # client_api.py: '$' is outside RFC 2046 bchars
CPP_BOUNDARY = "MIME_boundary_0123456789ABCDEF"  # Poco HTMLForm, sent quoted


class Tap:
    """Minimal TAP: ok/not ok lines, a plan at the end, exit status 1 on failure."""

    def __init__(self):
        self.n = 0
        self.failed = 0

    def ok(self, cond, what, detail=""):
        self.n += 1
        if cond:
            print("ok %d - %s" % (self.n, what))
        else:
            self.failed += 1
            print("not ok %d - %s" % (self.n, what))
            if detail:
                for line in str(detail).splitlines()[:20]:
                    print("#   " + line)
        sys.stdout.flush()
        return cond

    def eq(self, got, want, what):
        return self.ok(got == want, what, "got %r, want %r" % (got, want))

    def done(self):
        print("1..%d" % self.n)
        sys.exit(1 if self.failed else 0)


def skip(why):
    print("1..0 # SKIP " + why)
    sys.exit(SKIP)


def need_nibabel():
    try:
        import nibabel  # noqa: F401
        import numpy  # noqa: F401
    except ImportError:
        skip("nibabel/numpy not available")


def source_root():
    return os.environ.get("LUMEN_SOURCE_ROOT") or os.path.abspath(
        os.path.join(os.path.dirname(__file__), "..", ".."))


def run(cmd, **kw):
    return subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kw)


class Fixture:
    """A temp dir with models/ (demo_ct_unet linked), a phantom CT and its mask."""

    def __init__(self, lumen, shape=(96, 96, 48), spacing=(4, 4, 6), seed=3):
        self.lumen = lumen
        self.dir = tempfile.mkdtemp(prefix="lumen-aiaa-")
        self.models = os.path.join(self.dir, "models")
        os.mkdir(self.models)
        demo = os.path.join(source_root(), "models", "demo_ct_unet")
        if not os.path.isfile(os.path.join(demo, "model.onnx")):
            skip("models/demo_ct_unet is missing")
        os.symlink(demo, os.path.join(self.models, "demo_ct_unet"))
        self.ct = os.path.join(self.dir, "ct.nii.gz")
        script = os.path.join(self.dir, "phantom.lua")
        with open(script, "w") as f:
            f.write("local img = Phantom{shape = {%d, %d, %d}, spacing = {%g, %g, %g}, seed = %d}\n"
                    "SaveNifti(img, {path = arg[1]})\n" % (tuple(shape) + tuple(spacing) + (seed,)))
        r = run([lumen, "run", script, self.ct])
        if r.returncode != 0:
            raise RuntimeError("phantom: " + r.stdout)
        self.ref = os.path.join(self.dir, "ref.nii.gz")
        r = run([lumen, "run", os.path.join(self.models, "demo_ct_unet"), self.ct, self.ref])
        if r.returncode != 0:
            raise RuntimeError("lumen run demo_ct_unet: " + r.stdout)
        with open(self.ct, "rb") as f:
            self.ct_bytes = f.read()

    def ref_mask(self):
        import nibabel as nib
        import numpy as np
        return np.asarray(nib.load(self.ref).dataobj)

    def cleanup(self):
        shutil.rmtree(self.dir, ignore_errors=True)


class Server:
    """`lumen serve` on 127.0.0.1, an ephemeral port read from its ready line."""

    def __init__(self, lumen, models, *args, env=None):
        cmd = [lumen, "serve", "--models", models, "--host", "127.0.0.1", "--port", "0"] + list(args)
        # its own TMPDIR: uploads and result files go there, and must not stay
        self.tmpdir = tempfile.mkdtemp(prefix="lumen-serve-tmp-")
        atexit.register(shutil.rmtree, self.tmpdir, True)
        env = dict(env if env is not None else os.environ, TMPDIR=self.tmpdir)
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
            m = re.match(r"lumen serve: listening on http://127\.0\.0\.1:(\d+) \((\d+) models?\)", line)
            if m:
                self.port = int(m.group(1))
                self.nmodels = int(m.group(2))
                break
        if self.port is None:
            self.proc.kill()
            out = "".join(self.lines)
            if "no HTTP transport" in out:
                skip("this build has no lumen.http_serve")
            raise RuntimeError("lumen serve did not start:\n" + out)
        # keep draining stderr so the server never blocks on a full pipe
        self._drain = threading.Thread(target=self._read_rest, daemon=True)
        self._drain.start()

    def _read_rest(self):
        for line in self.proc.stderr:
            self.lines.append(line)

    def leftovers(self, wait=2.0):
        """Files left in the server's TMPDIR once its replies are done
        (removal follows the reply by a moment)."""
        deadline = time.time() + wait
        while True:
            left = sorted(os.listdir(self.tmpdir))
            if not left or time.time() > deadline:
                return left
            time.sleep(0.05)

    def rss(self):
        with open("/proc/%d/status" % self.proc.pid) as f:
            m = re.search(r"VmRSS:\s*(\d+)\s*kB", f.read())
        return int(m.group(1)) * 1024

    def stop(self, timeout=60):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            return None


class Reply:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = {k.lower(): v for k, v in headers}
        self.body = body
        self.params = None
        self.files = {}      # filename -> bytes (as client_api.py's parse_multipart)
        self.parts = []      # (name, filename, content_type, bytes)
        ct = self.headers.get("content-type", "")
        if "multipart" in ct:
            self._parse_multipart(ct)

    def _parse_multipart(self, ct):
        msg = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
            b"Content-Type: " + ct.encode() + b"\r\n\r\n" + self.body)
        for part in msg.iter_parts():
            name = part.get_param("name", header="content-disposition")
            filename = part.get_filename()
            data = part.get_payload(decode=True)
            self.parts.append((name, filename, part.get_content_type(), data))
            if filename:
                self.files[filename] = data
            elif name == "params":
                import json
                self.params = json.loads(data.decode())

    def json(self):
        import json
        return json.loads(self.body.decode())


def multipart_py(fields, files):
    """The body client_api.py's encode_multipart_formdata builds."""
    crlf = b"\r\n"
    out = []
    for k, v in fields.items():
        out += [b"--" + PY_BOUNDARY.encode(), b'Content-Disposition: form-data; name="%s"' % k.encode(),
                b"", v.encode() if isinstance(v, str) else v]
    for k, (filename, data) in files.items():
        out += [b"--" + PY_BOUNDARY.encode(),
                b'Content-Disposition: form-data; name="%s"; filename="%s"' % (k.encode(), filename.encode()),
                b"Content-Type: application/octet-stream", b"", data]
    # client_api.py ends every line with CRLF, the last empty one too: the
    # body ends "--B--\r\n\r\n" (an epilogue of one CRLF).
    out += [b"--" + PY_BOUNDARY.encode() + b"--", b""]
    return "multipart/form-data; boundary=%s" % PY_BOUNDARY, b"".join(line + crlf for line in out)


def request_py(port, method, selector, fields=None, files=None, body=None, headers=None, timeout=300):
    """As client_api.py: http.client, HTTP/1.1, a new connection per call,
    Content-Length, no Expect."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    hdrs = dict(headers or {})
    if fields is not None or files is not None:
        ct, body = multipart_py(fields or {}, files or {})
        hdrs["Content-Type"] = ct
    if body is not None:
        hdrs["Content-Length"] = str(len(body))
    conn.putrequest(method, selector)
    for k, v in hdrs.items():
        conn.putheader(k, v)
    conn.endheaders()
    if body is not None:
        conn.send(body)
    r = conn.getresponse()
    data = r.read()
    reply = Reply(r.status, r.getheaders(), data)
    conn.close()
    return reply


def request_cpp(port, method, selector, params="{}", image=None, image_name="ct.nii.gz", timeout=300):
    """As the C++ client (Poco 1.9 HTMLForm): HTTP/1.0, Connection: close, a
    quoted boundary, parts `params` and `image` (basename, octet-stream)."""
    b = CPP_BOUNDARY.encode()
    out = [b"--" + b, b'Content-Disposition: form-data; name="params"', b"", params.encode()]
    if image is not None:
        out += [b"--" + b, b'Content-Disposition: form-data; name="image"; filename="%s"' % image_name.encode(),
                b"Content-Type: application/octet-stream", b"", image]
    out += [b"--" + b + b"--", b""]
    body = b"\r\n".join(out)
    head = ("%s %s HTTP/1.0\r\nHost: 127.0.0.1:%d\r\nConnection: close\r\n"
            "Content-Type: multipart/form-data; boundary=\"%s\"\r\nContent-Length: %d\r\n\r\n"
            % (method, selector, port, CPP_BOUNDARY, len(body))).encode()
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    s.sendall(head + body)
    chunks = []
    while True:
        c = s.recv(1 << 16)
        if not c:
            break
        chunks.append(c)
    s.close()
    raw = b"".join(chunks)
    head, _, rest = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = [tuple(x.strip() for x in line.split(":", 1)) for line in lines[1:] if ":" in line]
    return Reply(status, headers, rest)


def nifti_from_bytes(data, suffix=".nii.gz"):
    """The array of a NIfTI file given as bytes."""
    import nibabel as nib
    import numpy as np
    fd, path = tempfile.mkstemp(suffix=suffix)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        img = nib.load(path)
        return np.asarray(img.dataobj), img.get_data_dtype()
    finally:
        os.remove(path)


def lumen_binary():
    if len(sys.argv) > 1:
        return sys.argv[1]
    build = os.environ.get("LUMEN_BUILD_ROOT")
    if build:
        return os.path.join(build, "lua", "lumen")
    skip("no lumen binary given")
