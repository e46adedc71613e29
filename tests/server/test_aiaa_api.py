"""Every AIAA and MONAI Label endpoint of `lumen serve` against a real server on
loopback, in both client request styles; the returned masks checked voxel by
voxel against `lumen run models/demo_ct_unet` of the same phantom CT; sessions
and their expiry; malformed requests answered 4xx with a JSON error while the
server keeps serving; SIGTERM lets the request in flight finish.

Usage: test_aiaa_api.py LUMEN_BINARY   (TAP; exit 77 without nibabel)"""

import json
import os
import struct
import threading
import time
import zlib

import test_aiaa_support as S

# The demo network behind a Clara v2 config (loaded by lumen.load_aiaa_package),
# with FetchExtremePoints (params.points) and additional_info (merged into the
# model object).
CLARA_CONFIG = {
    "version": "2", "type": "segmentation",
    "labels": ["liver", "spleen", "kidney", "stomach", "urinary_bladder"],
    "description": "demo CT U-Net behind a Clara config",
    "pre_transforms": [
        {"name": "LoadNifti", "args": {"fields": "image"}},
        {"name": "ConvertToChannelsFirst", "args": {"fields": "image"}},
        {"name": "ScaleByResolution", "args": {"fields": "image", "target_resolution": [3.0, 3.0, 3.0]}},
        {"name": "ScaleIntensityRange", "args": {"fields": "image", "a_min": -57, "a_max": 164,
                                                 "b_min": 0.0, "b_max": 1.0, "clip": True}}],
    "inference": {"image": "image", "scanning_window": True, "batch_size": 2, "roi": [48, 48, 48],
                  "additional_info": {"lumen_test": "merged"}},
    "post_transforms": [
        {"name": "ArgmaxAcrossChannels", "args": {"fields": "model"}},
        {"name": "RestoreOriginalShape", "args": {"field": "model", "src_field": "image", "is_label": True}},
        {"name": "FetchExtremePoints", "args": {"image_field": "image", "label_field": "model",
                                                "points": "points"}}],
    "writer": {"name": "WriteNifti", "args": {"field": "model", "dtype": "uint8"}},
}


def png_gray8(rows):
    """A grayscale 8-bit PNG of a list of rows (standard library only)."""
    def chunk(tag, data):
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))
    h, w = len(rows), len(rows[0])
    raw = b"".join(b"\0" + bytes(r) for r in rows)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def main():
    S.need_nibabel()
    import nibabel as nib
    import numpy as np

    lumen = S.lumen_binary()
    t = S.Tap()
    fx = S.Fixture(lumen)
    # folders that are no valid packages are skipped, the server still starts
    os.mkdir(os.path.join(fx.models, "not_a_package"))
    os.mkdir(os.path.join(fx.models, "broken"))
    with open(os.path.join(fx.models, "broken", "metadata.json"), "w") as f:
        f.write("{not json")
    clara = os.path.join(fx.models, "clara_demo")
    os.mkdir(clara)
    with open(os.path.join(clara, "config_aiaa.json"), "w") as f:
        json.dump(CLARA_CONFIG, f)
    os.symlink(os.path.join(S.source_root(), "models", "demo_ct_unet", "model.onnx"),
               os.path.join(clara, "model.onnx"))
    # a lumen package that answers with params only (a classifier)
    cls = os.path.join(fx.models, "classify_demo")
    os.mkdir(cls)
    with open(os.path.join(cls, "metadata.json"), "w") as f:
        json.dump({"type": "classification", "description": "params only", "weights": "model.onnx",
                   "labels": {"0": "background"}, "version": 7}, f)
    os.symlink(os.path.join(S.source_root(), "models", "demo_ct_unet", "model.onnx"),
               os.path.join(cls, "model.onnx"))
    with open(os.path.join(cls, "pipeline.lua"), "w") as f:
        f.write("return {infer = function(img, opts)\n"
                "  return nil, {prediction = 'abdomen', voxels = img:numel(), echo = opts.params.tag}\n"
                "end}\n")
    access = os.path.join(fx.dir, "access.log")
    srv = S.Server(lumen, fx.models, "--queue", "4", "--session-expiry", "30", "--max-sessions", "3",
                   "--access-log", access)
    port = srv.port
    ref = fx.ref_mask()
    t.eq(srv.nmodels, 3, "ready line counts the three loadable packages")
    t.ok(ref.shape == (96, 96, 48) and len(np.unique(ref)) > 2, "reference mask has organs")

    def check_mask(data, what, suffix=".nii.gz"):
        arr, dtype = S.nifti_from_bytes(data, suffix)
        same = arr.shape == ref.shape and np.array_equal(arr, ref)
        t.ok(same, what + ": mask equals lumen run voxel by voxel",
             "shape %s, %d voxels differ" % (arr.shape, int((arr != ref).sum()) if arr.shape == ref.shape else -1))
        return dtype

    def is_json_error(r, status, what):
        ok = r.status == status
        try:
            body = r.json()
            ok = ok and isinstance(body.get("error"), str) and body["error"] != ""
        except Exception:
            ok = False
        t.ok(ok, "%s -> %d with a JSON error" % (what, status), "%d %r" % (r.status, r.body[:300]))

    # --- /v1/models --------------------------------------------------------
    r = S.request_py(port, "GET", "/v1/models")
    models = r.json()
    t.eq(r.status, 200, "GET /v1/models")
    t.ok(isinstance(models, list)
         and [x.get("name") for x in models] == ["clara_demo", "classify_demo", "demo_ct_unet"],
         "a list of the three models, sorted", models)
    t.ok(models[1].get("version") == "7" and models[1].get("labels") == [] and models[1].get("type") == "classification",
         "a numeric version becomes a string; background only: no labels", models[1])
    m = models[-1]
    t.eq(m.get("name"), "demo_ct_unet", "name")
    t.eq(m.get("type"), "segmentation", "type")
    t.eq(m.get("labels"), ["liver", "spleen", "kidney", "stomach", "urinary_bladder"],
         "labels in label-value order without background")
    t.ok(isinstance(m.get("version"), str), "version is a string", m)
    t.ok(isinstance(m.get("description"), str) and m["description"], "description", m)
    r = S.request_py(port, "GET", "/v1/models?model=demo_ct_unet")
    t.ok(r.status == 200 and r.json().get("name") == "demo_ct_unet", "?model= gives one object", r.body[:200])
    c = models[0]
    t.ok(c.get("version") == "2" and c.get("labels") == CLARA_CONFIG["labels"]
         and c.get("description") == CLARA_CONFIG["description"] and c.get("type") == "segmentation",
         "config_aiaa.json model: version, labels, description, type from the config", c)
    t.eq(c.get("lumen_test"), "merged", "additional_info merged into the model object")
    r = S.request_py(port, "GET", "/v1/models?label=LiVeR")
    t.ok(r.status == 200 and len(r.json()) == 2, "?label= matches case-insensitively")
    r = S.request_py(port, "GET", "/v1/models?label=brain")
    t.ok(r.status == 200 and r.json() == [], "?label= with no match: []")
    r = S.request_py(port, "GET", "/v1/models?type=annotation")
    t.ok(r.status == 200 and r.json() == [], "?type=annotation: []")
    r = S.request_py(port, "GET", "/v1/models?type=segmentation")
    t.ok(r.status == 200 and len(r.json()) == 2, "?type=segmentation")
    r = S.request_py(port, "GET", "/v1/models?type=Classification")
    t.ok(r.status == 200 and [x["name"] for x in r.json()] == ["classify_demo"], "?type=Classification")
    for path in ("/V1/Models/", "/aiaa/prefix/v1/models", "/v1/models/"):
        r = S.request_py(port, "GET", path)
        t.ok(r.status == 200 and len(r.json()) == 3, "GET %s (case, trailing slash, prefix)" % path)

    # --- /v1/segmentation, both client styles ---------------------------------
    r = S.request_py(port, "POST", "/v1/segmentation?model=demo_ct_unet",
                     fields={"params": "{}"}, files={"datapoint": ("test-data/ct.nii.gz", fx.ct_bytes)})
    t.eq(r.status, 200, "POST /v1/segmentation (Python client style)")
    t.ok("content-length" in r.headers and int(r.headers["content-length"]) == len(r.body)
         and "transfer-encoding" not in r.headers, "multipart reply with an exact Content-Length")
    t.ok(isinstance(r.params, dict), "params part is JSON", r.parts)
    t.ok(r.parts and r.parts[0][0] == "params" and r.parts[0][2] != "application/octet-stream",
         "params first, not octet-stream (the C++ client's rule)")
    t.ok(list(r.files) == ["result.nii.gz"], "one file part result.nii.gz", list(r.files))
    if r.files:
        check_mask(r.files["result.nii.gz"], "segmentation (Python style)")

    r = S.request_cpp(port, "POST", "/v1/segmentation?model=demo_ct_unet", "{}", fx.ct_bytes)
    t.eq(r.status, 200, "POST /v1/segmentation (C++ client style: HTTP/1.0, quoted boundary, part image)")
    if r.files:
        check_mask(list(r.files.values())[0], "segmentation (C++ style)")

    # the Clara config's model: params.points are the extreme points of its mask
    r = S.request_py(port, "POST", "/v1/segmentation?model=clara_demo",
                     fields={"params": "{}"}, files={"datapoint": ("ct.nii.gz", fx.ct_bytes)})
    t.eq(r.status, 200, "POST /v1/segmentation on the config_aiaa.json model")
    if r.files:
        mask, _ = S.nifti_from_bytes(r.files["result.nii.gz"])
        pts = (r.params or {}).get("points")
        fg = np.argwhere(mask > 0)
        ok = isinstance(pts, list) and len(pts) == 6 and mask.shape == ref.shape and len(fg) > 0
        if ok:
            for axis in range(3):
                lo, hi = pts[2 * axis], pts[2 * axis + 1]
                ok = ok and mask[tuple(lo)] > 0 and mask[tuple(hi)] > 0
                ok = ok and lo[axis] == fg[:, axis].min() and hi[axis] == fg[:, axis].max()
        t.ok(ok, "params.points are the mask's extreme points (FetchExtremePoints)", pts)

    # a model without an image result: /v1/inference replies multipart with params only
    r = S.request_py(port, "POST", "/v1/inference?model=classify_demo",
                     fields={"params": json.dumps({"tag": "t1"})}, files={"datapoint": ("ct.nii.gz", fx.ct_bytes)})
    t.ok(r.status == 200 and "multipart" in r.headers.get("content-type", "") and not r.files
         and r.params == {"prediction": "abdomen", "voxels": 96 * 96 * 48, "echo": "t1"},
         "/v1/inference without an image: multipart with the params part only", (r.status, r.body[:300]))
    r = S.request_py(port, "POST", "/v1/segmentation?model=classify_demo",
                     fields={"params": "{}"}, files={"datapoint": ("ct.nii.gz", fx.ct_bytes)})
    is_json_error(r, 500, "/v1/segmentation of a model that returns no mask")

    # /v1/inference: params only in, result dtype and format honoured
    r = S.request_py(port, "POST", "/v1/inference?model=demo_ct_unet",
                     fields={"params": json.dumps({"result_dtype": "uint16"})},
                     files={"image": ("ct.nii.gz", fx.ct_bytes)})
    t.eq(r.status, 200, "POST /v1/inference with result_dtype uint16")
    if r.files:
        dtype = check_mask(r.files["result.nii.gz"], "inference")
        t.eq(str(dtype), "uint16", "result_dtype honoured")
    r = S.request_py(port, "POST", "/v1/inference?model=demo_ct_unet&output=image",
                     fields={"params": "{}"}, files={"image": ("ct.nii.gz", fx.ct_bytes)})
    t.ok(r.status == 200 and r.body[:2] == b"\x1f\x8b", "?output=image: just the gzip NIfTI")
    if r.status == 200:
        check_mask(r.body, "output=image")
    r = S.request_py(port, "POST", "/v1/inference?model=demo_ct_unet",
                     fields={"params": json.dumps({"result_extension": ".nrrd"})},
                     files={"image": ("ct.nii.gz", fx.ct_bytes)})
    nrrd = r.files.get("result.nrrd", b"")
    t.ok(r.status == 200 and nrrd.startswith(b"NRRD") and b"sizes: 96 96 48" in nrrd,
         "result_extension .nrrd gives an NRRD file", r.body[:200])

    # dextr3d and deepgrow routes (the demo model ignores the points)
    pts = [[10, 20, 5], [60, 20, 5], [30, 5, 5], [30, 70, 5], [30, 30, 1], [30, 30, 40]]
    r = S.request_py(port, "POST", "/v1/dextr3d?model=demo_ct_unet",
                     fields={"params": json.dumps({"points": json.dumps(pts)})},  # old string form
                     files={"datapoint": ("ct.nii.gz", fx.ct_bytes)})
    t.eq(r.status, 200, "POST /v1/dextr3d with string-encoded points")
    r = S.request_cpp(port, "POST", "/v1/deepgrow?model=demo_ct_unet",
                      json.dumps({"foreground": [[40, 40, 20]], "background": [],
                                  "current_point": [[40, 40, 20]]}), fx.ct_bytes)
    t.eq(r.status, 200, "POST /v1/deepgrow (C++ style)")
    if r.files:
        check_mask(list(r.files.values())[0], "deepgrow")

    # --- polygons ---------------------------------------------------------------
    with open(fx.ref, "rb") as f:
        ref_bytes = f.read()
    r = S.request_py(port, "POST", "/v1/mask2polygon", fields={"params": json.dumps({"more_points": 10})},
                     files={"datapoint": ("mask.nii.gz", ref_bytes)})
    polys = r.json() if r.status == 200 else None
    t.ok(r.status == 200 and "multipart" not in r.headers.get("content-type", "") and isinstance(polys, list)
         and len(polys) == ref.shape[2], "POST /v1/mask2polygon: plain JSON, one entry per slice",
         (r.status, r.body[:200]))
    if polys:
        empty = [k for k in range(ref.shape[2]) if not ref[:, :, k].any()]
        t.ok(all(polys[k] == [] for k in empty) and any(polys[k] for k in range(ref.shape[2]) if k not in empty),
             "mask2polygon: empty slices give [], the others polygons of [x, y] vertices")
        k = next(k for k in range(ref.shape[2]) if polys[k])
        x, y = polys[k][0][0]
        t.ok(ref[y, x, k] > 0, "mask2polygon: a vertex [x, y] lies on the mask (x the column, y the row)")
    square = [[[10, 10], [20, 10], [20, 20], [10, 20]]]
    fix = {"poly": square, "vertex_offset": [3, 0], "dimension": 2, "polygon_index": 0, "vertex_index": 1,
           "propagate_neighbor": 1}
    r = S.request_py(port, "POST", "/v1/fixpolygon", fields={"params": json.dumps(fix)},
                     files={"image": ("slice.png", png_gray8([[0] * 40 for _ in range(30)]))})
    t.eq(r.status, 200, "POST /v1/fixpolygon with a 2-D PNG")
    t.eq((r.params or {}).get("poly"), [[[12, 10], [23, 10], [22, 20], [10, 20]]],
         "fixpolygon: the vertex and its neighbours moved (FixPolygon's rule)")
    png = r.files.get("result.png", b"")
    t.ok(png.startswith(b"\x89PNG\r\n\x1a\n") and struct.unpack(">II", png[16:24]) == (40, 30),
         "fixpolygon: the mask comes back as a PNG of the slice's size", list(r.files))
    flat = nib.Nifti1Image(np.zeros((30, 40), np.uint8), np.eye(4))
    pflat = os.path.join(fx.dir, "slice.nii.gz")
    nib.save(flat, pflat)
    with open(pflat, "rb") as f:
        r = S.request_cpp(port, "POST", "/v1/fixpolygon", json.dumps(fix), f.read(), "slice.nii.gz")
    if r.status == 200 and r.files:
        m2, _ = S.nifti_from_bytes(list(r.files.values())[0])
        t.ok(m2.shape == (30, 40) and m2[15, 16] == 1 and m2[25, 30] == 0 and m2[10, 12] == 1,
             "fixpolygon (NIfTI, C++ style): the moved polygon rasterised, rows y, columns x")
    else:
        t.ok(False, "fixpolygon with a 2-D NIfTI", (r.status, r.body[:200]))
    # the C++ client's spellings: camelCase indices; prev_poly + vertexOffset,
    # or (older clients) poly with the vertex already moved + prev_poly
    moved = [[[10, 10], [23, 10], [20, 20], [10, 20]]]
    for what, prm in (("prev_poly + vertexOffset", {"prev_poly": square, "vertexOffset": [3, 0]}),
                      ("poly moved + prev_poly", {"poly": moved, "prev_poly": square})):
        prm.update({"polygonIndex": 0, "vertexIndex": 1, "propagate_neighbor": 1, "dimension": 2})
        r = S.request_cpp(port, "POST", "/v1/fixpolygon", json.dumps(prm),
                          png_gray8([[0] * 40 for _ in range(30)]), "slice.png")
        t.ok(r.status == 200 and (r.params or {}).get("poly") == [[[12, 10], [23, 10], [22, 20], [10, 20]]],
             "fixpolygon, C++ client style: " + what, (r.status, r.body[:300]))
    r = S.request_py(port, "POST", "/v1/fixpolygon", fields={"params": json.dumps({"poly": square})},
                     files={"image": ("slice.png", png_gray8([[0] * 40 for _ in range(30)]))})
    is_json_error(r, 400, "fixpolygon without vertex_offset")
    r = S.request_py(port, "POST", "/v1/segmentation?model=demo_ct_unet", fields={"params": "{}"},
                     files={"datapoint": ("slice.png", png_gray8([[0] * 40 for _ in range(30)]))})
    is_json_error(r, 400, "a PNG for a 3-D segmentation")

    # --- sessions -------------------------------------------------------------
    r = S.request_py(port, "PUT", "/session/?expiry=0", files={"image": ("ct.nii.gz", fx.ct_bytes)})
    t.eq(r.status, 200, "PUT /session/")
    sid = r.json().get("session_id") if r.status == 200 else None
    t.ok(isinstance(sid, str) and sid, "session_id returned", r.body[:200])
    t.ok(json.loads(r.body.decode()).get("session_info", {}).get("expiry") == 30 and b'"expiry":30.0' not in r.body
         and b'"expiry":30' in r.body, "expiry 0 = the server's (--session-expiry 30), an integer")
    r = S.request_py(port, "GET", "/session/%s" % sid)
    t.eq(r.status, 200, "GET /session/{id}")
    r = S.request_py(port, "POST", "/v1/segmentation?model=demo_ct_unet&session_id=%s" % sid,
                     fields={"params": "{}"})
    t.eq(r.status, 200, "segmentation on the session image (no upload)")
    if r.files:
        check_mask(r.files["result.nii.gz"], "session segmentation")
    r = S.request_cpp(port, "POST", "/v1/segmentation?model=demo_ct_unet&session_id=%s" % sid, "{}")
    t.eq(r.status, 200, "a second segmentation on the same session (C++ style, no image part)")
    if r.files:
        check_mask(list(r.files.values())[0], "session image unchanged by the first run")
    r = S.request_py(port, "DELETE", "/session/%s" % sid)
    t.eq(r.status, 200, "DELETE /session/{id}")
    r = S.request_py(port, "POST", "/v1/segmentation?model=demo_ct_unet&session_id=%s" % sid,
                     fields={"params": "{}"})
    is_json_error(r, 440, "a deleted session on /v1/segmentation")
    r = S.request_py(port, "GET", "/session/%s" % sid)
    is_json_error(r, 404, "GET a deleted session")
    # expiry: min(requested, server max), refreshed on use, then 440
    r = S.request_cpp(port, "PUT", "/session/?expiry=2", "{}", fx.ct_bytes)
    sid2 = r.json().get("session_id") if r.status == 200 else ""
    t.ok(r.status == 200 and r.json()["session_info"]["expiry"] == 2, "PUT /session/?expiry=2 (C++ style)",
         r.body[:200])
    r = S.request_py(port, "PUT", "/session/?expiry=99999", files={"image": ("ct.nii.gz", fx.ct_bytes)})
    t.ok(r.status == 200 and r.json()["session_info"]["expiry"] == 30, "expiry capped by the server's")
    sid3 = r.json().get("session_id") if r.status == 200 else ""
    time.sleep(1.2)
    r = S.request_py(port, "GET", "/session/%s" % sid2)
    t.eq(r.status, 200, "session still alive after 1.2 s (refreshed)")
    time.sleep(1.2)
    r = S.request_py(port, "GET", "/session/%s" % sid2)
    t.eq(r.status, 200, "alive 1.2 s after the last use")
    time.sleep(2.5)
    r = S.request_py(port, "POST", "/v1/inference?model=demo_ct_unet&session_id=%s" % sid2,
                     fields={"params": "{}"})
    is_json_error(r, 440, "an expired session on /v1/inference")
    r = S.request_py(port, "POST", "/v1/dextr3d?model=demo_ct_unet&session_id=nosuchsession",
                     fields={"params": "{}"})
    is_json_error(r, 440, "an unknown session on /v1/dextr3d")
    # --max-sessions 3: a fourth open session evicts the least recently used
    more = []
    for _ in range(3):
        r = S.request_py(port, "PUT", "/session/", files={"image": ("ct.nii.gz", fx.ct_bytes)})
        more.append(r.json().get("session_id") if r.status == 200 else "")
    t.eq(S.request_py(port, "GET", "/session/%s" % sid3).status, 404, "--max-sessions: the oldest is evicted")
    t.ok(all(S.request_py(port, "GET", "/session/%s" % x).status == 200 for x in more),
         "--max-sessions: the three newest are kept")

    # --- MONAI Label ---------------------------------------------------------------
    r = S.request_py(port, "GET", "/auth/")
    t.ok(r.status == 200 and r.json() == {"enabled": False}, "GET /auth/", r.body)
    r = S.request_py(port, "GET", "/info/")
    info = r.json() if r.status == 200 else {}
    t.ok(r.status == 200 and "config" not in info
         and set(info.get("models", {})) == {"demo_ct_unet", "clara_demo", "classify_demo"},
         "GET /info/: models, no top-level config", r.body[:300])
    t.eq(info.get("models", {}).get("demo_ct_unet", {}).get("labels", {}).get("liver"), 1,
         "/info/ labels map name -> value")
    r = S.request_py(port, "PUT", "/datastore/?image=case_01", fields={"params": "{}"},
                     files={"file": ("case_01.nii.gz", fx.ct_bytes)})
    t.ok(r.status == 200 and r.json() == {"image": "case_01"}, "PUT /datastore/?image=", r.body[:200])
    r = S.request_py(port, "POST", "/infer/demo_ct_unet?image=case_01",
                     fields={"params": json.dumps({"result_extension": ".nii.gz", "result_dtype": "uint8",
                                                   "client_id": "test"})})
    t.eq(r.status, 200, "POST /infer/{model}?image=ID")
    if r.files:
        check_mask(list(r.files.values())[0], "/infer/ from the datastore")
    t.ok(isinstance(r.params, dict) and r.params.get("label_names", {}).get("spleen") == 2,
         "/infer/ params carry label_names", r.params)
    r = S.request_py(port, "POST", "/infer/demo_ct_unet",
                     fields={"params": json.dumps({"result_extension": ".nrrd", "result_dtype": "uint8"})},
                     files={"file": ("x.nii.gz", fx.ct_bytes)})
    t.ok(r.status == 200 and any(f.endswith(".nrrd") and d.startswith(b"NRRD") for f, d in r.files.items()),
         "POST /infer/{model} with a file part, .nrrd result")
    r = S.request_py(port, "POST", "/infer/demo_ct_unet?image=unknown", fields={"params": "{}"})
    is_json_error(r, 404, "/infer/ with an unknown datastore image")

    # --- malformed requests: 4xx + JSON, and the server keeps serving ------------
    seg = "/v1/segmentation?model=demo_ct_unet"
    r = S.request_py(port, "POST", seg, fields={"params": "{bad json"}, files={"datapoint": ("ct.nii.gz", fx.ct_bytes)})
    is_json_error(r, 400, "bad JSON params")
    r = S.request_py(port, "POST", seg, fields={"params": "[1, 2]"}, files={"datapoint": ("ct.nii.gz", fx.ct_bytes)})
    is_json_error(r, 400, "params not an object")
    r = S.request_py(port, "POST", seg, fields={"params": "{}"})
    is_json_error(r, 400, "no image")
    r = S.request_py(port, "POST", seg, fields={"params": "{}"}, files={"datapoint": ("notes.txt", b"hello " * 200)})
    is_json_error(r, 400, "a text file as image")
    r = S.request_py(port, "POST", seg, fields={"params": "{}"},
                     files={"datapoint": ("trunc.nii.gz", fx.ct_bytes[:500])})
    is_json_error(r, 400, "a truncated gzip image")
    img2d = nib.Nifti1Image(np.zeros((32, 32), np.int16), np.eye(4))
    p2d = os.path.join(fx.dir, "flat.nii.gz")
    nib.save(img2d, p2d)
    with open(p2d, "rb") as f:
        flat = f.read()
    r = S.request_py(port, "POST", seg, fields={"params": "{}"}, files={"datapoint": ("flat.nii.gz", flat)})
    is_json_error(r, 400, "a 2-D image (wrong dims)")
    r = S.request_py(port, "POST", "/v1/segmentation?model=nosuchmodel", fields={"params": "{}"},
                     files={"datapoint": ("ct.nii.gz", fx.ct_bytes)})
    is_json_error(r, 404, "unknown model")
    r = S.request_py(port, "POST", "/v1/segmentation?model=..%2Fetc", fields={"params": "{}"})
    is_json_error(r, 400, "a model name outside the safe set")
    r = S.request_py(port, "POST", "/v1/segmentation", fields={"params": "{}"})
    is_json_error(r, 400, "no model given")
    r = S.request_py(port, "GET", "/v1/models?model=nosuchmodel")
    is_json_error(r, 404, "GET /v1/models?model= unknown")
    r = S.request_py(port, "POST", "/v1/dextr3d?model=demo_ct_unet", fields={"params": "{}"},
                     files={"datapoint": ("ct.nii.gz", fx.ct_bytes)})
    is_json_error(r, 400, "dextr3d without points")
    r = S.request_py(port, "POST", "/v1/dextr3d?model=demo_ct_unet",
                     fields={"params": json.dumps({"points": [[500, 1, 1]]})},
                     files={"datapoint": ("ct.nii.gz", fx.ct_bytes)})
    is_json_error(r, 400, "a point outside the image")
    r = S.request_py(port, "POST", "/v1/dextr3d?model=demo_ct_unet",
                     fields={"params": json.dumps({"points": [[96, 10, 10], [0, 95, 47]]})},
                     files={"datapoint": ("ct.nii.gz", fx.ct_bytes)})
    t.eq(r.status, 200, "a point one past the last voxel (the clients' crop rounding) is taken as the last")
    r = S.request_py(port, "POST", "/v1/inference?model=demo_ct_unet",
                     fields={"params": json.dumps({"result_extension": ".exe"})},
                     files={"datapoint": ("ct.nii.gz", fx.ct_bytes)})
    is_json_error(r, 400, "an unknown result_extension")
    r = S.request_py(port, "PUT", "/session/", body=b'{"dicom": {}}', headers={"Content-Type": "application/json"})
    is_json_error(r, 400, "PUT /session/ with a DICOMweb JSON body")
    r = S.request_py(port, "GET", "/v1/nothing")
    is_json_error(r, 404, "an unknown endpoint")
    r = S.request_py(port, "DELETE", "/v1/models")
    is_json_error(r, 405, "a wrong method")
    r = S.request_py(port, "GET", "/logs?lines=abc")
    is_json_error(r, 400, "GET /logs?lines=abc")

    # --- operations -------------------------------------------------------------------
    r = S.request_py(port, "GET", "/healthz")
    t.ok(r.status == 200 and r.json().get("status") == "ok" and r.json().get("models") == 3,
         "GET /healthz after the bad requests")
    r = S.request_py(port, "GET", "/logs?lines=5")
    lines = r.body.decode().splitlines()
    t.ok(r.status == 200 and 0 < len(lines) <= 5 and all(json.loads(x).get("time") for x in lines),
         "GET /logs?lines=5: at most 5 JSON lines", r.body[:300])
    r = S.request_py(port, "GET", "/logs/?lines=2000")
    t.ok(r.status == 200 and b"model not loaded" in r.body and b"broken" in r.body,
         "the log says why the broken package was skipped")
    r = S.request_py(port, "GET", "/metrics")
    text = r.body.decode()
    t.ok(r.status == 200 and 'lumen_http_requests_total{route="/v1/segmentation",status="200"}' in text
         and 'lumen_http_requests_total{route="/v1/segmentation",status="400"}' in text
         and "lumen_http_request_duration_seconds_bucket" in text and "lumen_inference_in_flight 0" in text
         and "process_resident_memory_bytes" in text and "lumen_inference_queue_limit 4" in text,
         "GET /metrics: requests by route and status, latency, queue, RSS", text[:500])
    with open(access) as f:
        recs = [json.loads(line) for line in f if line.strip()]
    keys = {"time", "remote", "method", "path", "status", "bytes", "ms"}
    seg_recs = [x for x in recs if x.get("path") == "/v1/segmentation" and x.get("status") == 200]
    t.ok(recs and all(keys <= set(x) for x in recs) and seg_recs and seg_recs[0].get("model") == "demo_ct_unet",
         "access log: one JSON object per request with the model", recs[:2])

    # --- graceful shutdown: SIGTERM while a request runs --------------------------------
    result = {}

    def slow():
        result["r"] = S.request_py(port, "POST", seg, fields={"params": "{}"},
                                   files={"datapoint": ("ct.nii.gz", fx.ct_bytes)})

    th = threading.Thread(target=slow)
    th.start()
    deadline = time.time() + 10
    while time.time() < deadline:   # wait until it is admitted
        m = S.request_py(port, "GET", "/metrics").body.decode()
        if "lumen_inference_in_flight 1" in m:
            break
        time.sleep(0.02)
    code = srv.stop()
    th.join(60)
    t.eq(srv.leftovers(), [], "no upload or result file left in the server's TMPDIR")
    r = result.get("r")
    t.ok(r is not None and r.status == 200, "the request in flight at SIGTERM is answered",
         r and (r.status, r.body[:200]))
    if r is not None and r.files:
        check_mask(r.files["result.nii.gz"], "in flight at SIGTERM")
    t.eq(code, 0, "lumen serve exits 0 after SIGTERM")
    try:
        S.request_py(port, "GET", "/healthz", timeout=5)
        refused = False
    except OSError:
        refused = True
    t.ok(refused, "no connections after shutdown")
    fx.cleanup()
    t.done()


if __name__ == "__main__":
    main()
