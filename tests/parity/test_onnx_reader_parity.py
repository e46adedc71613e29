#!/usr/bin/python3
"""The ONNX reader (models/src/onnx_reader.c) against the onnx Python package.

onnx_dump (tests/parity/onnx_dump.c) prints what the reader built; this
script reads the same file with onnx.load / numpy_helper and compares:
opset, producer, graph inputs (initializers excluded) and outputs with dtype
and shape, every node (op, domain, name, inputs, outputs, every attribute;
tensor attributes by dtype, shape and a hash of their bytes) and every
initializer (dtype, shape, FNV-1a hash of the little-endian bytes).

Models: synthetic ones built here with onnx.helper (every dtype, typed
fields and raw_data, scalars and empty tensors, Constant nodes, attributes
of every kind, dim_param), the same saved with external data (one file, one
file per tensor), a model-local function (inlined by lumen; compared with the
expected expansion), refusals (external data leaving the folder, subgraphs),
then every model of the ONNX test data (libonnx-testdata) and model5 of
$LUMEN_TEST_DATA when present.  Models whose content lumen cannot hold (If /
Loop subgraphs, string or complex tensors) must be refused with a message.

TAP output; exit 77 without the onnx package.

usage: test_onnx_reader_parity.py ONNX_DUMP
"""
import json
import os
import subprocess
import sys
import tempfile

import numpy as np

try:
    import onnx
    from onnx import TensorProto, helper, numpy_helper
except ImportError:
    print("1..0 # SKIP the onnx package is not installed (python3-onnx)")
    sys.exit(77)

tool = sys.argv[1]
n_test = 0
failed = 0


def report(ok, name, why=""):
    global n_test, failed
    n_test += 1
    if not ok:
        failed += 1
        for line in str(why).splitlines()[:20]:
            print("#   " + line)
    print("%s %d - %s" % ("ok" if ok else "not ok", n_test, name))
    sys.stdout.flush()


# ONNX element types lumen holds, by its dtype names (bool is uint8).
LUMEN_DTYPE = {
    TensorProto.FLOAT: "float32", TensorProto.UINT8: "uint8", TensorProto.INT8: "int8",
    TensorProto.UINT16: "uint16", TensorProto.INT16: "int16", TensorProto.INT32: "int32",
    TensorProto.INT64: "int64", TensorProto.BOOL: "uint8", TensorProto.FLOAT16: "float16",
    TensorProto.DOUBLE: "float64", TensorProto.UINT32: "uint32", TensorProto.BFLOAT16: "bfloat16",
}


def fnv(data):
    h = 1469598103934665603
    for b in data:
        h = ((h ^ b) * 1099511628211) & 0xFFFFFFFFFFFFFFFF
    return "%016x" % h


def tensor_summary(t, base_dir):
    if 0 in t.dims:
        # (onnx 1.12 reads an empty external tensor to the end of the file.)
        return {"dtype": LUMEN_DTYPE[t.data_type], "shape": list(t.dims), "nbytes": 0, "fnv": fnv(b"")}
    arr = numpy_helper.to_array(t, base_dir)
    if t.data_type == TensorProto.BFLOAT16:
        # onnx 1.12 gives bfloat16 as float32 values: their top 16 bits.
        raw = (np.ascontiguousarray(arr, dtype=np.float32).view(np.uint32) >> 16).astype("<u2").tobytes()
    else:
        raw = np.ascontiguousarray(arr).astype(arr.dtype.newbyteorder("<")).tobytes()
    return {"dtype": LUMEN_DTYPE[t.data_type], "shape": list(t.dims), "nbytes": len(raw), "fnv": fnv(raw)}


def value_info(vi):
    tt = vi.type.tensor_type if vi.type.HasField("tensor_type") else None
    dtype = LUMEN_DTYPE.get(tt.elem_type, "unknown") if tt is not None else "unknown"
    shape = None
    if tt is not None and tt.HasField("shape"):
        shape = [d.dim_value if d.HasField("dim_value") else -1 for d in tt.shape.dim]
    return {"name": vi.name, "dtype": dtype, "shape": shape}


def attr_summary(a, base_dir):
    A = onnx.AttributeProto
    if a.type == A.FLOAT:
        return {"kind": "float", "v": float(np.float32(a.f))}
    if a.type == A.INT:
        return {"kind": "int", "v": a.i}
    if a.type == A.STRING:
        return {"kind": "string", "v": a.s.decode()}
    if a.type == A.FLOATS:
        return {"kind": "floats", "v": [float(np.float32(x)) for x in a.floats]}
    if a.type == A.INTS:
        return {"kind": "ints", "v": list(a.ints)}
    if a.type == A.STRINGS:
        return {"kind": "strings", "v": [s.decode() for s in a.strings]}
    if a.type == A.TENSOR:
        return {"kind": "tensor", "v": tensor_summary(a.t, base_dir)}
    raise ValueError("attribute type %d" % a.type)


def expected(model, base_dir):
    g = model.graph
    opset = 0
    for o in model.opset_import:
        if o.domain in ("", "ai.onnx"):
            opset = o.version
    producer = " ".join(x for x in (model.producer_name, model.producer_version) if x)
    inits = {t.name: tensor_summary(t, base_dir) for t in g.initializer}
    inputs = [value_info(v) for v in g.input if v.name not in inits]
    nodes = []
    for n in g.node:
        nodes.append({
            "op": n.op_type, "domain": "" if n.domain in ("", "ai.onnx") else n.domain, "name": n.name,
            "in": [x if x else None for x in n.input], "out": list(n.output),
            "attrs": {a.name: attr_summary(a, base_dir) for a in n.attribute},
        })
    outputs = [value_info(v) for v in g.output]
    return {"opset": opset, "producer": producer, "inputs": inputs, "outputs": outputs,
            "nodes": nodes, "consts": inits}


def lumen_fits(model):
    """False when the model holds what lumen refuses (subgraphs, sparse or
    string / complex / uint64 tensors)."""
    A = onnx.AttributeProto
    g = model.graph
    if g.sparse_initializer:
        return False
    for t in g.initializer:
        if t.data_type not in LUMEN_DTYPE:
            return False
    for n in g.node:
        for a in n.attribute:
            if a.type in (A.GRAPH, A.GRAPHS, A.SPARSE_TENSOR, A.SPARSE_TENSORS, A.TENSORS,
                          A.TYPE_PROTO, A.TYPE_PROTOS):
                return False
            if a.type == A.TENSOR and a.t.data_type not in LUMEN_DTYPE:
                return False
    return True


def dump(path):
    p = subprocess.run([tool, path], capture_output=True, text=True, errors="replace")
    if p.returncode != 0:
        return None, p.stderr.strip()
    return json.loads(p.stdout), ""


def same_io(got, want, check_type):
    if [g["name"] for g in got] != [w["name"] for w in want]:
        return False
    if not check_type:
        return True
    return all(g["dtype"] == w["dtype"] and g["shape"] == w["shape"] for g, w in zip(got, want))


def float32_attrs(attrs):
    """The dump prints float attributes with 9 significant digits: enough to
    get the float32 back exactly, which is what they are."""
    for a in attrs.values():
        if a["kind"] == "float":
            a["v"] = float(np.float32(a["v"]))
        elif a["kind"] == "floats":
            a["v"] = [float(np.float32(x)) for x in a["v"]]
    return attrs


def compare(got, want):
    """A list of differences (empty when equal)."""
    diffs = []
    for n in got["nodes"]:
        float32_attrs(n["attrs"])
    for k in ("opset", "producer"):
        if got[k] != want[k]:
            diffs.append("%s: lumen %r, onnx %r" % (k, got[k], want[k]))
    if not same_io(got["inputs"], want["inputs"], True):
        diffs.append("inputs: lumen %s, onnx %s" % (got["inputs"], want["inputs"]))
    # An output that is also an initializer or input keeps that value's type.
    plain = all(o["name"] not in want["consts"] and o["name"] not in [i["name"] for i in want["inputs"]]
                for o in want["outputs"])
    if not same_io(got["outputs"], want["outputs"], plain):
        diffs.append("outputs: lumen %s, onnx %s" % (got["outputs"], want["outputs"]))
    if len(got["nodes"]) != len(want["nodes"]):
        diffs.append("%d nodes, onnx %d" % (len(got["nodes"]), len(want["nodes"])))
    for i, (gn, wn) in enumerate(zip(got["nodes"], want["nodes"])):
        for k in ("op", "domain", "name", "in", "out"):
            if gn[k] != wn[k]:
                diffs.append("node %d %s: lumen %r, onnx %r" % (i, k, gn[k], wn[k]))
        if gn["attrs"] != wn["attrs"]:
            diffs.append("node %d attributes: lumen %s, onnx %s" % (i, gn["attrs"], wn["attrs"]))
    if got["consts"] != want["consts"]:
        for name in sorted(set(got["consts"]) | set(want["consts"])):
            if got["consts"].get(name) != want["consts"].get(name):
                diffs.append("constant %r: lumen %s, onnx %s" % (name, got["consts"].get(name),
                                                              want["consts"].get(name)))
    return diffs


def check_model(path, name):
    model = onnx.load(path, load_external_data=False)
    base_dir = os.path.dirname(path)
    got, err = dump(path)
    if not lumen_fits(model):
        report(got is None and err.startswith(path + ": "), name + " (refused: %s)" % err[len(path) + 2:][:80],
               "lumen loaded a model it cannot hold" if got is not None else err)
        return
    if got is None:
        report(False, name, err)
        return
    diffs = compare(got, expected(model, base_dir))
    report(not diffs, name, "\n".join(diffs))


# ---- synthetic models ---------------------------------------------------------

def synthetic_model():
    rng = np.random.default_rng(7)
    inits = []
    typed = [  # (name, onnx type, values): typed repeated fields
        ("t_f32", TensorProto.FLOAT, [1.5, -2.25, 3e-8]),
        ("t_f64", TensorProto.DOUBLE, [1e300, -0.125]),
        ("t_i64", TensorProto.INT64, [-(2 ** 62), 5, 0]),
        ("t_i32", TensorProto.INT32, [-7, 2 ** 31 - 1]),
        ("t_i16", TensorProto.INT16, [-300, 12]),
        ("t_i8", TensorProto.INT8, [-128, 127, -1]),
        ("t_u16", TensorProto.UINT16, [65535, 1]),
        ("t_u8", TensorProto.UINT8, [0, 255]),
        ("t_bool", TensorProto.BOOL, [True, False, True]),
        ("t_f16", TensorProto.FLOAT16, [1.0, -2.5, 65504.0]),
        ("t_bf16", TensorProto.BFLOAT16, [1.0, -3.0, 0.15625]),
        ("t_u32", TensorProto.UINT32, [4000000000, 3]),
    ]
    for name, dt, vals in typed:
        inits.append(helper.make_tensor(name, dt, [len(vals)], vals))
    for dtype in (np.float32, np.float64, np.int64, np.int32, np.int16, np.int8, np.uint16,
                  np.uint8, np.bool_, np.float16, np.uint32):
        a = (rng.standard_normal((2, 3, 4)) * 50).astype(dtype)
        inits.append(numpy_helper.from_array(a, "raw_" + np.dtype(dtype).name))
    inits.append(numpy_helper.from_array(np.array(3.5, dtype=np.float32), "scalar"))
    inits.append(numpy_helper.from_array(np.zeros((0, 3), dtype=np.float32), "empty"))
    inits.append(numpy_helper.from_array(rng.standard_normal((4, 2)).astype(np.float32), "w"))
    t_attr = numpy_helper.from_array(np.arange(6, dtype=np.int64).reshape(2, 3), "")
    nodes = [
        helper.make_node("Constant", [], ["c0"], value=numpy_helper.from_array(
            rng.standard_normal((3, 2)).astype(np.float32), "")),
        helper.make_node("Constant", [], ["c1"], value_float=0.25),
        helper.make_node("Constant", [], ["c2"], value_ints=[3, -1, 7]),
        helper.make_node("MatMul", ["x", "w"], ["m"], name="mm"),
        helper.make_node("Custom", ["m", "", "c0"], ["y", ""], name="every kind", domain="ai.onnx",
                         f=1.5, i=-3, s="same_upper", floats=[0.5, -1.0, 3.25], ints=[1, -2, 3],
                         strings=["a", "bc"], t=t_attr),
        helper.make_node("Identity", ["y"], ["z"], domain="lumen.test"),
    ]
    graph = helper.make_graph(
        nodes, "synthetic",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4]),
         helper.make_tensor_value_info("w", TensorProto.FLOAT, [4, 2])],   # also an initializer
        [helper.make_tensor_value_info("z", TensorProto.FLOAT, ["batch", None]),
         helper.make_tensor_value_info("c2", TensorProto.INT64, [3])],
        inits,
        value_info=[helper.make_tensor_value_info("m", TensorProto.FLOAT, ["batch", 2])])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)],
                             producer_name="lumen-parity", producer_version="0.1")


def function_model():
    """y = Blk(x, w) twice: Blk(a, b) -> o = LeakyRelu(a * b, alpha=@alpha)."""
    ref = onnx.AttributeProto()
    ref.name = "alpha"
    ref.ref_attr_name = "alpha"
    ref.type = onnx.AttributeProto.FLOAT
    body = [helper.make_node("Mul", ["a", "b"], ["t"]), helper.make_node("LeakyRelu", ["t"], ["o"])]
    body[1].attribute.append(ref)
    fn = helper.make_function("local", "Blk", ["a", "b"], ["o"], body,
                              [helper.make_opsetid("", 17)], ["alpha"])
    nodes = [helper.make_node("Blk", ["x", "w"], ["y1"], domain="local", alpha=0.5),
             helper.make_node("Blk", ["y1", "w"], ["y2"], domain="local")]
    graph = helper.make_graph(nodes, "fn", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
                              [helper.make_tensor_value_info("y2", TensorProto.FLOAT, [2])],
                              [numpy_helper.from_array(np.array([2, -1], dtype=np.float32), "w")])
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("local", 1)])
    m.functions.append(fn)
    return m


def run_synthetic(tmp):
    m = synthetic_model()
    p = os.path.join(tmp, "synthetic.onnx")
    onnx.save(m, p)
    check_model(p, "synthetic: every dtype, typed fields and raw_data, attributes of every kind")

    for one_file in (True, False):
        d = os.path.join(tmp, "ext_one" if one_file else "ext_many")
        os.mkdir(d)
        p = os.path.join(d, "model.onnx")
        onnx.save(synthetic_model(), p, save_as_external_data=True, all_tensors_to_one_file=one_file,
                  location="weights.bin", size_threshold=0, convert_attribute=True)
        check_model(p, "synthetic with external data (%s)" % ("one file" if one_file else "a file per tensor"))

    # External data that leaves the model's folder is refused.
    d = os.path.join(tmp, "escape")
    os.mkdir(d)
    p = os.path.join(d, "model.onnx")
    m = synthetic_model()
    t = numpy_helper.from_array(np.zeros(3, dtype=np.float32), "esc")
    onnx.external_data_helper.set_external_data(t, "../weights.bin", 0, 12)
    t.ClearField("raw_data")
    t.data_location = TensorProto.EXTERNAL
    m.graph.initializer.append(t)
    with open(os.path.join(tmp, "weights.bin"), "wb") as f:
        f.write(b"\0" * 12)
    onnx.save(m, p)
    got, err = dump(p)
    report(got is None and "leaves the model's folder" in err and err.startswith(p + ": initializer 'esc': "),
           "external data outside the model's folder refused", err)

    # A model-local function: inlined, each call with its own inner values.
    p = os.path.join(tmp, "function.onnx")
    onnx.save(function_model(), p)
    got, err = dump(p)
    want_nodes = [
        ("Mul", ["x", "w"], ["Blk#0/t"], {}),
        ("LeakyRelu", ["Blk#0/t"], ["y1"], {"alpha": {"kind": "float", "v": 0.5}}),
        ("Mul", ["y1", "w"], ["Blk#1/t"], {}),
        ("LeakyRelu", ["Blk#1/t"], ["y2"], {}),
    ]
    ok = got is not None and [(n["op"], n["in"], n["out"], float32_attrs(n["attrs"])) for n in got["nodes"]] == \
        [(o, i, out, a) for o, i, out, a in want_nodes]
    report(ok, "model-local function inlined", err if got is None else json.dumps(got["nodes"]))


# ---- the ONNX test data and the real model ------------------------------------------

def run_test_data():
    root = "/usr/share/libonnx-testdata/data"
    if not os.path.isdir(root):
        print("# no ONNX test data in %s: skipped" % root)
        return
    for sub in ("node", "pytorch-converted", "pytorch-operator", "simple"):
        d = os.path.join(root, sub)
        if not os.path.isdir(d):
            continue
        for name in sorted(os.listdir(d)):
            p = os.path.join(d, name, "model.onnx")
            if os.path.isfile(p):
                check_model(p, "%s/%s" % (sub, name))


def run_model5():
    data = os.environ.get("LUMEN_TEST_DATA", "")
    p = os.path.join(data, "models", "model5_gw_ae", "model5_gw_ae.onnx")
    if data and os.path.isfile(p):
        check_model(p, "model5_gw_ae.onnx (MeshNet, PyTorch 2.2.1 export)")
    else:
        print("# %s not found: skipped" % p)


with tempfile.TemporaryDirectory() as tmp:
    run_synthetic(tmp)
run_test_data()
run_model5()
print("1..%d" % n_test)
sys.exit(1 if failed else 0)
