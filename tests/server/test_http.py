#!/usr/bin/python3
"""The HTTP transport (lua/src/http.c, lumen.http_serve) against a real server.

Usage: test_http.py LUMEN_EXE
Starts `lumen run tests/server/http_app.lua UPLOAD_DIR` (two servers: one on
127.0.0.1 with max_body 4 MiB, one on ::1 with a 0.3 s request timeout) and
talks to it with the standard library only, in the request styles of the AIAA
clients (../shared/docs/aiaa-api.md 1.2): Python's http.client with its
unquoted '$' boundary, the C++ client's HTTP/1.0 raw request with a quoted
boundary.  TAP output.
"""
import email.parser
import hashlib
import http.client
import json
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
PY_BOUNDARY = "----------lImIt_of_THE_fIle_eW_$"
CPP_BOUNDARY = "MIME_boundary_0123456789ABCDEF"
# Seconds a reply may take (raised for runs under valgrind).
IO_TIMEOUT = float(os.environ.get("LUMEN_HTTP_TEST_TIMEOUT", "10"))

count = 0
failed = 0


def ok(cond, name, detail=""):
    global count, failed
    count += 1
    if not cond:
        failed += 1
        print(f"not ok {count} - {name}")
        if detail:
            for line in str(detail).splitlines():
                print(f"#   {line}")
    else:
        print(f"ok {count} - {name}")
    sys.stdout.flush()
    return cond


def multipart(boundary, fields, files):
    """The body the AIAA Python client's encode_multipart_formdata builds."""
    out = []
    for name, value in fields.items():
        out += [f"--{boundary}".encode(), f'Content-Disposition: form-data; name="{name}"'.encode(),
                b"", value.encode()]
    for name, (filename, data) in files.items():
        out += [f"--{boundary}".encode(),
                f'Content-Disposition: form-data; name="{name}"; filename="{filename}"'.encode(),
                b"Content-Type: application/octet-stream", b"", data]
    # Every line, the last empty one too, ends with CRLF: the body ends
    # "--B--\r\n\r\n", one CRLF of epilogue after the close delimiter.
    out += [f"--{boundary}--".encode(), b""]
    return b"".join(line + b"\r\n" for line in out)


def raw_request(port, data, host="127.0.0.1", read_all=True, timeout=IO_TIMEOUT):
    s = socket.create_connection((host, port), timeout=timeout)
    s.sendall(data)
    chunks = []
    while read_all:
        b = s.recv(65536)
        if not b:
            break
        chunks.append(b)
    s.close()
    return b"".join(chunks)


def split_response(raw):
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        headers[k.strip().lower()] = v.strip()
    return status, headers, body


def request(port, method, path, body=None, headers=None, host="127.0.0.1"):
    c = http.client.HTTPConnection(host, port, timeout=IO_TIMEOUT)
    c.request(method, path, body=body, headers=headers or {})
    r = c.getresponse()
    data = r.read()
    hdrs = {k.lower(): v for k, v in r.getheaders()}
    c.close()
    return r.status, hdrs, data


def main():
    if len(sys.argv) < 2:
        print("1..0 # SKIP usage: test_http.py LUMEN_EXE")
        return 77
    lumen = sys.argv[1]
    upload_dir = tempfile.mkdtemp(prefix="lumen-http-test-")
    proc = subprocess.Popen([lumen, "run", os.path.join(HERE, "http_app.lua"), upload_dir],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        if not line.startswith("ports "):
            print("1..1")
            ok(False, "the server starts", proc.stderr.read())
            return 1
        _, port, tport = line.split()
        run(int(port), int(tport), proc, upload_dir)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        shutil.rmtree(upload_dir, ignore_errors=True)
    print(f"1..{count}")
    return 1 if failed else 0


def run(port, tport, proc, upload_dir):
    rnd = random.Random(6)
    volume = bytes(rnd.getrandbits(8) for _ in range(300_000)) + b"--" + PY_BOUNDARY.encode()[:-1]
    digest = hashlib.sha256(volume).hexdigest()

    # GET with a query: decoded path and arguments, lower-case header names.
    st, h, body = request(port, "GET", "/echo?model=spleen&label=a%20b&flag",
                          headers={"X-Client-Thing": "yes"})
    j = json.loads(body)
    ok(st == 200 and j["query"] == {"model": "spleen", "label": "a b", "flag": ""}
       and j["path"] == "/echo" and j["method"] == "GET", "GET with a query", body)
    ok(j["headers"].get("x-client-thing") == "yes" and j["version"] == "HTTP/1.1"
       and j["remote"].startswith("127.0.0.1:"), "lower-case headers, version, remote", body)
    ok(h.get("content-length") == str(len(body)) and "transfer-encoding" not in h,
       "replies carry Content-Length, never chunked", h)

    # The Python client: HTTP/1.1, unquoted boundary with '$', a filename with
    # directories, Content-Length, no Expect.
    data = multipart(PY_BOUNDARY, {"params": '{"points": [[1, 2, 3]]}'},
                     {"datapoint": ("test-data/image.nii.gz", volume)})
    st, h, body = request(port, "POST", "/upload?model=m", body=data,
                          headers={"Content-Type": f"multipart/form-data; boundary={PY_BOUNDARY}",
                                   "Content-Length": str(len(data))})
    j = json.loads(body) if st == 200 else {}
    f = j.get("files", {}).get("datapoint", {})
    ok(st == 200 and j["form"] == {"params": '{"points": [[1, 2, 3]]}'},
       "Python-client multipart: the params part", body[:300])
    ok(f.get("filename") == "image.nii.gz" and f.get("size") == len(volume)
       and f.get("content_type") == "application/octet-stream",
       "Python-client multipart: the file part, basename of the filename", f)
    ok(f.get("sha256") == digest, "the uploaded file is byte-identical (sha256)", f)
    # Removed when MHD reports the request complete, just after the reply.
    deadline = time.time() + 2
    while os.path.exists(f.get("path", "/nonexistent")) and time.time() < deadline:
        time.sleep(0.02)
    ok(not os.path.exists(f.get("path", "/nonexistent")), "the upload's temp file is removed", f)

    # The C++ client: HTTP/1.0, Connection: close, quoted boundary, part 'image'.
    data = multipart(CPP_BOUNDARY, {"params": "{}"}, {"image": ("image.nii.gz", volume)})
    raw = (f"POST /upload?model=m HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n"
           f'Content-Type: multipart/form-data; boundary="{CPP_BOUNDARY}"\r\n'
           f"Content-Length: {len(data)}\r\n\r\n").encode() + data
    st, h, body = split_response(raw_request(port, raw))
    j = json.loads(body) if st == 200 else {}
    f = j.get("files", {}).get("image", {})
    ok(st == 200 and j.get("form") == {"params": "{}"} and f.get("sha256") == digest
       and f.get("filename") == "image.nii.gz", "C++-client multipart (HTTP/1.0, quoted boundary)",
       body[:300])
    ok(h.get("content-length") == str(len(body)), "HTTP/1.0 reply with Content-Length", h)

    # RFC 2046: an epilogue after the close delimiter is ignored.
    data = multipart(PY_BOUNDARY, {"params": "{}"}, {"datapoint": ("a.bin", b"abc")}) + b"epilogue\r\n"
    st, h, body = request(port, "POST", "/upload", body=data,
                          headers={"Content-Type": f"multipart/form-data; boundary={PY_BOUNDARY}"})
    ok(st == 200 and json.loads(body)["files"]["datapoint"]["size"] == 3,
       "an epilogue after the close delimiter is ignored", body[:300])
    # The close delimiter split over many reads: sent a few bytes at a time.
    data = multipart(CPP_BOUNDARY, {"params": "{}"}, {"image": ("d.bin", b"0123456789" * 30)})
    s = socket.create_connection(("127.0.0.1", port), timeout=IO_TIMEOUT)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    s.sendall((f"POST /upload HTTP/1.0\r\nHost: x\r\nConnection: close\r\n"
               f'Content-Type: multipart/form-data; boundary="{CPP_BOUNDARY}"\r\n'
               f"Content-Length: {len(data)}\r\n\r\n").encode())
    for i in range(0, len(data), 7):
        s.sendall(data[i:i + 7])
        time.sleep(0.002)
    rest = b""
    while True:
        b = s.recv(65536)
        if not b:
            break
        rest += b
    s.close()
    st, h, body = split_response(rest)
    ok(st == 200 and json.loads(body)["files"]["image"]["size"] == 300,
       "a body arriving 7 bytes at a time (delimiters split across reads)", rest[:300])

    # Expect: 100-continue (curl does it for bodies over 1 KiB).
    data = multipart(PY_BOUNDARY, {"params": "{}"}, {"datapoint": ("a.bin", b"x" * 5000)})
    s = socket.create_connection(("127.0.0.1", port), timeout=IO_TIMEOUT)
    s.sendall((f"POST /upload HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nConnection: close\r\n"
               f"Content-Type: multipart/form-data; boundary={PY_BOUNDARY}\r\n"
               f"Content-Length: {len(data)}\r\n\r\n").encode())
    interim = s.recv(4096)
    s.sendall(data)
    rest = b""
    while True:
        b = s.recv(65536)
        if not b:
            break
        rest += b
    s.close()
    st, h, body = split_response(rest)
    ok(interim.startswith(b"HTTP/1.1 100") and st == 200
       and json.loads(body)["files"]["datapoint"]["size"] == 5000,
       "Expect: 100-continue answered, then the upload", interim + rest[:200])

    # A multipart reply as the clients parse it: Content-Length, the boundary
    # in the Content-Type, a params part and a file part.
    data = multipart(PY_BOUNDARY, {"params": "{}"}, {"datapoint": ("x/in.nii.gz", volume)})
    st, h, body = request(port, "POST", "/echo-multipart", body=data,
                          headers={"Content-Type": f"multipart/form-data; boundary={PY_BOUNDARY}"})
    ctype = h.get("content-type", "")
    msg = email.parser.BytesParser().parsebytes(
        f"Content-Type: {ctype}\r\n\r\n".encode() + body)
    parts = {p.get_param("name", header="content-disposition"): p for p in msg.get_payload()} \
        if msg.is_multipart() else {}
    params = parts.get("params")
    image = parts.get("image")
    ok(st == 200 and ctype.startswith("multipart/form-data; boundary=")
       and h.get("content-length") == str(len(body)) and "transfer-encoding" not in h,
       "multipart reply: Content-Type with boundary, exact Content-Length", h)
    ok(params is not None and json.loads(params.get_payload(decode=True))["points"] == [[1, 2, 3]]
       and params.get_content_type() == "application/json", "multipart reply: the params part")
    ok(image is not None and image.get_filename() == "result.nii.gz"
       and hashlib.sha256(image.get_payload(decode=True)).hexdigest() == digest,
       "multipart reply: the file part, byte-identical")

    # A file reply.
    path = os.path.join(upload_dir, "served.bin")
    with open(path, "wb") as fh:
        fh.write(volume[:12345])
    st, h, body = request(port, "GET", "/file?path=" + path)
    ok(st == 200 and body == volume[:12345] and h.get("content-type") == "application/x-test"
       and h.get("content-length") == "12345" and "sent.bin" in h.get("content-disposition", ""),
       "file reply", h)
    os.unlink(path)

    st, h, body = request(port, "GET", "/empty")
    ok(st == 200 and body == b"" and h.get("content-length") == "0", "a reply without a body", h)

    # Over max_body (4 MiB): refused from Content-Length before the body.
    raw = (f"POST /upload HTTP/1.1\r\nHost: x\r\n"
           f"Content-Type: multipart/form-data; boundary={PY_BOUNDARY}\r\n"
           f"Content-Length: {5 << 20}\r\n\r\n").encode()
    st, h, body = split_response(raw_request(port, raw))
    ok(st == 413 and "exceeds" in json.loads(body)["error"], "body over max_body: 413 JSON", body)

    # Handler errors: 500 with the message JSON-escaped.
    st, h, body = request(port, "GET", "/error")
    ok(st == 500 and h.get("content-type") == "application/json"
       and json.loads(body) == {"error": 'handler failed: "quoted"\nsecond line'},
       "handler error: 500 JSON", body)
    st, h, body = request(port, "GET", "/bad-reply")
    ok(st == 500 and "resp.parts[1]" in json.loads(body)["error"]
       and "no-such-file" in json.loads(body)["error"], "bad reply table: 500 naming the field", body)

    # Malformed multipart bodies: 400 JSON naming the problem.
    good = multipart(PY_BOUNDARY, {"params": "{}"}, {"datapoint": ("a", b"abc")})
    cases = [
        ("truncated body", PY_BOUNDARY, good[:-20], "closing boundary"),
        ("no part with the boundary", PY_BOUNDARY, b"just some bytes\r\n", "boundary"),
        ("no boundary parameter", None, good, "boundary"),
        ("parameter after the boundary", PY_BOUNDARY + "; charset=utf-8", good, "after boundary"),
    ]
    for name, boundary, data, word in cases:
        ctype = "multipart/form-data" + (f"; boundary={boundary}" if boundary else "")
        st, h, body = request(port, "POST", "/upload", body=data, headers={"Content-Type": ctype})
        err = json.loads(body).get("error", "") if body.startswith(b"{") else ""
        ok(st == 400 and word in err, f"malformed multipart ({name}): 400 JSON", body)
    raw = b"GARBAGE / HTTP/9.9\r\n\r\n"
    st, _, _ = split_response(raw_request(port, raw) or b"HTTP/1.1 000 none\r\n\r\n")
    ok(400 <= st < 600, "a protocol error is answered by MHD", st)

    # A client that goes away while its handler sleeps: the handler's
    # coroutine is cancelled, the server keeps serving.
    s = socket.create_connection(("127.0.0.1", port), timeout=IO_TIMEOUT)
    s.sendall(b"GET /sleep?s=5 HTTP/1.1\r\nHost: x\r\n\r\n")
    time.sleep(0.3)
    s.close()
    stats = {}
    deadline = time.time() + 3
    while time.time() < deadline:
        stats = json.loads(request(port, "GET", "/stats")[2])
        if stats["cancelled"] >= 1:
            break
        time.sleep(0.05)
    ok(stats.get("cancelled") == 1 and "client went away" in stats.get("last_cancel", ""),
       "client gone: the handler is cancelled", stats)
    st, _, _ = request(port, "GET", "/echo")
    ok(st == 200, "the server serves on after the cancellation")

    # 64 concurrent requests, all in flight at once, all answered.
    results = [None] * 64

    def one(i):
        try:
            st, _, body = request(port, "GET", f"/sleep?s=0.3&i={i}")
            results[i] = (st, json.loads(body))
        except Exception as e:  # noqa: BLE001 - reported below
            results[i] = (0, str(e))
    threads = [threading.Thread(target=one, args=(i,)) for i in range(64)]
    t0 = time.time()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.time() - t0
    good = [r for r in results if r and r[0] == 200 and r[1].get("slept")]
    peak = max((r[1].get("inflight", 0) for r in good), default=0)
    ok(len(good) == 64, "64 concurrent requests all answered",
       [r for r in results if not (r and r[0] == 200)][:3])
    ok(peak > 1 and elapsed < 5, f"they ran concurrently (peak in flight {peak}, {elapsed:.1f} s)")

    # The per-request timeout (the ::1 server): 504 JSON, handler cancelled.
    try:
        st, h, body = request(tport, "GET", "/sleep?s=5", host="::1")
        ok(st == 504 and "timeout" in json.loads(body)["error"], "request timeout: 504 JSON (IPv6)",
           body)
    except OSError as e:
        ok(False, "request timeout: 504 JSON (IPv6)", e)

    try:
        st, h, body = request(tport, "GET", "/error", host="::1")
        ok(st == 418 and body.startswith(b'/error: handler failed: "quoted"'),
           "on_error answers a failed handler", body)
    except OSError as e:
        ok(False, "on_error answers a failed handler", e)

    # close(): an in-flight request finishes, new connections are refused.
    slow = {}

    def slow_request():
        try:
            slow["r"] = request(port, "GET", "/sleep?s=1")
        except Exception as e:  # noqa: BLE001
            slow["r"] = (0, {}, str(e).encode())
    t = threading.Thread(target=slow_request)
    t.start()
    time.sleep(0.3)
    st, _, _ = request(port, "GET", "/close")
    ok(st == 200, "close() from a handler")
    time.sleep(0.1)
    try:
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
        refused = False
    except ConnectionRefusedError:
        refused = True
    ok(refused, "after close(): new connections are refused")
    t.join()
    ok(slow.get("r", (0,))[0] == 200, "after close(): the request in flight finished", slow)
    try:
        rc = proc.wait(timeout=max(5, IO_TIMEOUT))
        out = proc.stdout.read()
    except subprocess.TimeoutExpired:
        rc, out = None, ""
    ok(rc == 0 and "closed" in out, "the servers stop and the script ends", (rc, proc.stderr.read()))
    left = [n for n in os.listdir(upload_dir)]
    ok(left == [], "no upload temp file is left", left)


if __name__ == "__main__":
    sys.exit(main())
