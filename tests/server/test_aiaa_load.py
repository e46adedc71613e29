"""Load, bounded: 64 concurrent /v1/segmentation requests against `lumen serve
--queue 8`.  Every answer is either the correct mask (voxel by voxel equal to
`lumen run`) or 503 with Retry-After and a JSON error; at least the 8 admitted
ones succeed; the server then still answers /healthz, and a second storm does
not grow its resident memory beyond the first one's (no leak per request).
Then a client that disconnects mid-inference and a request over --timeout:
both give their queue slot back.

Usage: test_aiaa_load.py LUMEN_BINARY   (TAP; exit 77 without nibabel)"""

import re
import socket
import threading
import time

import test_aiaa_support as S

CONCURRENT = 64
QUEUE = 8


def storm(port, ct_bytes, ref, np):
    results = [None] * CONCURRENT
    start = threading.Barrier(CONCURRENT)

    def one(i):
        try:
            start.wait(30)
            if i % 2:
                r = S.request_py(port, "POST", "/v1/segmentation?model=demo_ct_unet",
                                 fields={"params": "{}"}, files={"datapoint": ("ct.nii.gz", ct_bytes)})
            else:
                r = S.request_cpp(port, "POST", "/v1/segmentation?model=demo_ct_unet", "{}", ct_bytes)
            if r.status == 200:
                data = list(r.files.values())[0] if r.files else b""
                arr, _ = S.nifti_from_bytes(data)
                results[i] = ("ok", bool(arr.shape == ref.shape and np.array_equal(arr, ref)))
            elif r.status == 503:
                body = r.json()
                results[i] = ("busy", r.headers.get("retry-after") == "1" and isinstance(body.get("error"), str))
            else:
                results[i] = ("other", (r.status, r.body[:200]))
        except Exception as e:  # a dropped connection is a failure too
            results[i] = ("exception", repr(e))

    threads = [threading.Thread(target=one, args=(i,)) for i in range(CONCURRENT)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(600)
    return results


def main():
    S.need_nibabel()
    import numpy as np

    lumen = S.lumen_binary()
    t = S.Tap()
    fx = S.Fixture(lumen)
    ref = fx.ref_mask()
    srv = S.Server(lumen, fx.models, "--queue", str(QUEUE))
    port = srv.port

    # warm up: the plans of the model are built on first use
    r = S.request_py(port, "POST", "/v1/segmentation?model=demo_ct_unet",
                     fields={"params": "{}"}, files={"datapoint": ("ct.nii.gz", fx.ct_bytes)})
    t.eq(r.status, 200, "warm-up request")

    rss_after = []
    for round_ in (1, 2):
        results = storm(port, fx.ct_bytes, ref, np)
        kinds = [r[0] if r else "none" for r in results]
        ok = [r for r in results if r and r[0] == "ok"]
        busy = [r for r in results if r and r[0] == "busy"]
        t.eq(len(ok) + len(busy), CONCURRENT,
             "storm %d: every answer is a mask or 503 (%d masks, %d busy)" % (round_, len(ok), len(busy)))
        if len(ok) + len(busy) != CONCURRENT:
            print("#   " + repr([r for r in results if not r or r[0] not in ("ok", "busy")][:5]))
        t.ok(all(r[1] for r in ok), "storm %d: every mask equals lumen run's" % round_)
        t.ok(all(r[1] for r in busy), "storm %d: every 503 has Retry-After: 1 and a JSON error" % round_)
        t.ok(len(ok) >= QUEUE, "storm %d: at least --queue (%d) requests served" % (round_, QUEUE), kinds)
        t.ok(len(busy) > 0, "storm %d: the queue bound turned some away" % round_, kinds)
        r = S.request_py(port, "GET", "/healthz")
        t.ok(r.status == 200 and r.json().get("inflight") == 0, "storm %d: /healthz answers, nothing in flight"
             % round_, r.body)
        rss_after.append(srv.rss())

    growth = rss_after[1] - rss_after[0]
    print("# RSS after storm 1: %.0f MB, after storm 2: %.0f MB" % (rss_after[0] / 2**20, rss_after[1] / 2**20))
    t.ok(growth < 64 * 2**20, "RSS has not run away (grew %.1f MB in the second storm)" % (growth / 2**20))
    r = S.request_py(port, "GET", "/metrics")
    t.ok('lumen_http_requests_total{route="/v1/segmentation",status="503"}' in r.body.decode(),
         "/metrics counts the 503s")
    t.eq(srv.stop(), 0, "clean shutdown")

    # A client that goes away mid-inference, and a request over --timeout:
    # both give their queue slot back (--queue 1: the next request is served).
    def seg(port):
        return S.request_py(port, "POST", "/v1/segmentation?model=demo_ct_unet",
                            fields={"params": "{}"}, files={"datapoint": ("ct.nii.gz", fx.ct_bytes)})

    def in_flight(port):
        m = S.request_py(port, "GET", "/metrics").body.decode()
        return int(re.search(r"^lumen_inference_in_flight (\d+)$", m, re.M).group(1))

    srv = S.Server(lumen, fx.models, "--queue", "1", "--timeout", "60")
    ct, body = S.multipart_py({"params": "{}"}, {"datapoint": ("ct.nii.gz", fx.ct_bytes)})
    sock = socket.create_connection(("127.0.0.1", srv.port))
    sock.sendall(("POST /v1/segmentation?model=demo_ct_unet HTTP/1.1\r\nHost: x\r\nContent-Type: %s\r\n"
                  "Content-Length: %d\r\n\r\n" % (ct, len(body))).encode() + body)
    deadline = time.time() + 20
    while time.time() < deadline and in_flight(srv.port) != 1:
        time.sleep(0.01)
    t.eq(in_flight(srv.port), 1, "disconnect: the request was admitted")
    sock.close()
    deadline = time.time() + 20
    while time.time() < deadline and in_flight(srv.port) != 0:
        time.sleep(0.02)
    t.eq(in_flight(srv.port), 0, "disconnect: its slot is given back")
    t.eq(seg(srv.port).status, 200, "disconnect: the next request is served")
    logs = S.request_py(srv.port, "GET", "/logs?lines=50").body.decode()
    t.ok('"status":499' in logs, "disconnect: logged as 499", logs)
    t.eq(srv.stop(), 0, "clean shutdown")

    srv = S.Server(lumen, fx.models, "--queue", "1", "--timeout", "0.3")
    r = seg(srv.port)
    t.ok(r.status == 504 and "error" in r.json(), "an inference over --timeout 0.3: 504 with a JSON error",
         (r.status, r.body[:200]))
    deadline = time.time() + 20
    while time.time() < deadline and in_flight(srv.port) != 0:
        time.sleep(0.02)
    t.eq(in_flight(srv.port), 0, "timeout: its slot is given back")
    t.eq(S.request_py(srv.port, "GET", "/healthz").status, 200, "timeout: the server keeps serving")
    t.eq(srv.stop(), 0, "clean shutdown")
    fx.cleanup()
    t.done()


if __name__ == "__main__":
    main()
