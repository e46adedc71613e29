#!/usr/bin/env python3
"""A small ONNX -> torch.nn.Module interpreter, so PyTorch runs the SAME ONNX weights as lumen.

    net = OnnxModule("model.onnx")            # initializers become buffers: .cuda(), .half() work
    y = net(x)                                # first graph output (all of them: net.run(x))

Covers the ops torch.onnx.export emits for the segmentation networks of this repository (MONAI
UNet/SegResNet-style, nnU-Net PlainConvUNet, the demo U-Net, MeshNets): Conv, ConvTranspose,
InstanceNormalization, BatchNormalization, Relu, LeakyRelu, PRelu, Elu, Sigmoid, Tanh, Softmax,
Clip, Add/Sub/Mul/Div/Pow/Sqrt/Erf, Concat, Resize, MaxPool/AveragePool/GlobalAveragePool, Pad,
Identity/Dropout, Transpose, and the shape subgraphs (Shape, Gather, Unsqueeze, Squeeze, Slice,
Concat, Reshape, Constant, ConstantOfShape, Cast, Expand, Range, ReduceMean, Flatten, Split):
shape arithmetic is evaluated on small CPU int64 tensors at run time, so it folds by itself for
each input shape and never touches the GPU.  Unknown ops raise an error naming node and op.

Run as a script it checks itself against lumen's CPU Infer (the oracle, see __main__).
"""
import math

import numpy as np
import torch
import torch.nn.functional as F

try:
    import onnx
    from onnx import numpy_helper
except ImportError:  # pragma: no cover - reported by the caller
    onnx = None


def _attrs(node):
    out = {}
    for a in node.attribute:
        v = onnx.helper.get_attribute_value(a)
        if isinstance(v, bytes):
            v = v.decode()
        elif isinstance(v, onnx.TensorProto):
            v = numpy_helper.to_array(v)
        out[a.name] = v
    return out


def _ints(t):
    """A shape-like value (tensor, list, ndarray) as a list of Python ints."""
    if isinstance(t, torch.Tensor):
        return [int(v) for v in t.reshape(-1).tolist()]
    return [int(v) for v in np.asarray(t).reshape(-1).tolist()]


def _is_shape(t):
    return isinstance(t, torch.Tensor) and t.dtype in (torch.int64, torch.int32) and t.device.type == "cpu"


_DTYPES = {1: torch.float32, 2: torch.uint8, 3: torch.int8, 5: torch.int16, 6: torch.int32, 7: torch.int64,
           9: torch.bool, 10: torch.float16, 11: torch.float64, 16: torch.bfloat16}


def _pads_onnx_to_torch(pads, nsp):
    """ONNX [b1..bn, e1..en] -> torch F.pad's (last axis first) [bn, en, ..., b1, e1]."""
    out = []
    for d in reversed(range(nsp)):
        out += [pads[d], pads[d + nsp]]
    return out


class OnnxModule(torch.nn.Module):
    def __init__(self, model):
        super().__init__()
        if onnx is None:
            raise RuntimeError("onnx_torch: the onnx package is not installed")
        if isinstance(model, str):
            model = onnx.load(model)
        g = model.graph
        self.nodes = list(g.node)
        self.inputs = [i.name for i in g.input]
        self.outputs = [o.name for o in g.output]
        self._names = {}
        for i, init in enumerate(g.initializer):
            arr = numpy_helper.to_array(init).copy()
            key = "w%d" % i
            self._names[init.name] = key
            t = torch.from_numpy(arr)
            # floating weights as parameters (so .half(), channels_last and autocast treat them as
            # torch's own modules' weights); integers (shapes, axes) as CPU buffers
            if t.is_floating_point():
                self.register_parameter(key, torch.nn.Parameter(t, requires_grad=False))
            else:
                self.register_buffer(key, t, persistent=False)
        self.inputs = [n for n in self.inputs if n not in self._names]
        self._attrs = [_attrs(n) for n in self.nodes]

    def _const(self, name):
        t = getattr(self, self._names[name])
        return t.cpu() if not t.is_floating_point() else t

    def forward(self, *xs):
        return self.run(*xs)[0]

    def run(self, *xs):
        env = {}
        for name, key in self._names.items():
            env[name] = self._const(name)
        for name, x in zip(self.inputs, xs):
            env[name] = x
        for node, at in zip(self.nodes, self._attrs):
            ins = [env[n] if n else None for n in node.input]
            try:
                outs = self._op(node.op_type, ins, at, len(node.output))
            except Exception as e:
                raise RuntimeError("onnx_torch: node '%s' (%s): %s" % (node.name, node.op_type, e)) from e
            if not isinstance(outs, (list, tuple)):
                outs = [outs]
            for n, v in zip(node.output, outs):
                env[n] = v
        return [env[n] for n in self.outputs]

    # ---- the ops ----------------------------------------------------------------------------

    def _op(self, op, x, a, nout):
        f = getattr(self, "_" + op, None)
        if f is None:
            raise NotImplementedError("no torch translation for op " + op)
        return f(x, a)

    def _conv_args(self, w, a, nsp):
        k = a.get("kernel_shape", list(w.shape[2:]))
        strides = a.get("strides", [1] * nsp)
        dil = a.get("dilations", [1] * nsp)
        pads = a.get("pads", [0] * (2 * nsp))
        auto = a.get("auto_pad", "NOTSET")
        if auto in ("SAME_UPPER", "SAME_LOWER"):
            raise NotImplementedError("auto_pad " + auto)
        return k, strides, dil, pads

    def _Conv(self, x, a):
        inp, w = x[0], x[1]
        b = x[2] if len(x) > 2 else None
        nsp = w.dim() - 2
        _, strides, dil, pads = self._conv_args(w, a, nsp)
        sym = all(pads[d] == pads[d + nsp] for d in range(nsp))
        if not sym:
            inp = F.pad(inp, _pads_onnx_to_torch(pads, nsp))
            pads = [0] * (2 * nsp)
        conv = (F.conv1d, F.conv2d, F.conv3d)[nsp - 1]
        return conv(inp, w, b, strides, pads[:nsp], dil, a.get("group", 1))

    def _ConvTranspose(self, x, a):
        inp, w = x[0], x[1]
        b = x[2] if len(x) > 2 else None
        nsp = w.dim() - 2
        _, strides, dil, pads = self._conv_args(w, a, nsp)
        outpad = a.get("output_padding", [0] * nsp)
        if "output_shape" in a:
            raise NotImplementedError("ConvTranspose output_shape")
        if any(pads[d] != pads[d + nsp] for d in range(nsp)):
            raise NotImplementedError("asymmetric ConvTranspose pads")
        conv = (F.conv_transpose1d, F.conv_transpose2d, F.conv_transpose3d)[nsp - 1]
        return conv(inp, w, b, strides, pads[:nsp], outpad, a.get("group", 1), dil)

    def _InstanceNormalization(self, x, a):
        return F.instance_norm(x[0], weight=x[1], bias=x[2], eps=a.get("epsilon", 1e-5))

    def _BatchNormalization(self, x, a):
        return F.batch_norm(x[0], x[3], x[4], x[1], x[2], False, 0.0, a.get("epsilon", 1e-5))

    def _Relu(self, x, a):
        return F.relu(x[0])

    def _LeakyRelu(self, x, a):
        return F.leaky_relu(x[0], a.get("alpha", 0.01))

    def _PRelu(self, x, a):
        inp, slope = x[0], x[1]
        # ONNX broadcasts the slope numpy-style ([C, 1, 1, 1] for a per-channel PReLU)
        return torch.where(inp >= 0, inp, inp * slope.to(inp.dtype))

    def _Elu(self, x, a):
        return F.elu(x[0], a.get("alpha", 1.0))

    def _Sigmoid(self, x, a):
        return torch.sigmoid(x[0])

    def _Tanh(self, x, a):
        return torch.tanh(x[0])

    def _Erf(self, x, a):
        return torch.erf(x[0])

    def _Sqrt(self, x, a):
        return torch.sqrt(x[0])

    def _Softmax(self, x, a):
        return torch.softmax(x[0], a.get("axis", -1))

    def _Clip(self, x, a):
        lo = x[1] if len(x) > 1 and x[1] is not None else a.get("min")
        hi = x[2] if len(x) > 2 and x[2] is not None else a.get("max")
        lo = float(lo) if lo is not None else None
        hi = float(hi) if hi is not None else None
        return torch.clamp(x[0], lo, hi)

    def _bin(self, x, fn):
        a, b = x[0], x[1]
        # constants and shape values live on the CPU: bring them to the other operand's device
        if isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor) and a.device != b.device:
            if a.device.type == "cpu":
                a = a.to(b.device)
            else:
                b = b.to(a.device)
        return fn(a, b)

    def _Add(self, x, a):
        return self._bin(x, torch.add)

    def _Sub(self, x, a):
        return self._bin(x, torch.sub)

    def _Mul(self, x, a):
        return self._bin(x, torch.mul)

    def _Div(self, x, a):
        if _is_shape(x[0]) and _is_shape(x[1]):
            return torch.div(x[0], x[1], rounding_mode="trunc")
        return self._bin(x, torch.div)

    def _Pow(self, x, a):
        return self._bin(x, torch.pow)

    def _Equal(self, x, a):
        return self._bin(x, torch.eq)

    def _Where(self, x, a):
        return torch.where(x[0], x[1], x[2])

    def _Concat(self, x, a):
        # ONNX allows empty 1-D operands (shape subgraphs); torch.cat wants them dropped
        ts = [t for t in x if t is not None and (t.numel() > 0 or t.dim() > 1)]
        return torch.cat(ts, a["axis"])

    def _Identity(self, x, a):
        return x[0]

    _Dropout = _Identity

    def _Transpose(self, x, a):
        return x[0].permute(*a["perm"]) if "perm" in a else x[0].permute(*reversed(range(x[0].dim())))

    def _Resize(self, x, a):
        inp = x[0]
        nsp = inp.dim() - 2
        scales = x[2] if len(x) > 2 and x[2] is not None and x[2].numel() else None
        sizes = x[3] if len(x) > 3 and x[3] is not None and x[3].numel() else None
        mode = a.get("mode", "nearest")
        ctm = a.get("coordinate_transformation_mode", "half_pixel")
        if sizes is not None:
            size = _ints(sizes)[2:]
        else:
            sc = [float(v) for v in scales.reshape(-1).tolist()][2:]
            size = [int(math.floor(inp.shape[2 + d] * sc[d])) for d in range(nsp)]
        if mode == "nearest":
            nm = a.get("nearest_mode", "round_prefer_floor")
            if ctm == "asymmetric" and nm == "floor":
                return F.interpolate(inp, size=size, mode="nearest")
            raise NotImplementedError("Resize nearest with %s / %s" % (ctm, nm))
        if mode == "linear":
            m = ("linear", "bilinear", "trilinear")[nsp - 1]
            if ctm == "align_corners":
                return F.interpolate(inp, size=size, mode=m, align_corners=True)
            if ctm in ("half_pixel", "pytorch_half_pixel"):
                return F.interpolate(inp, size=size, mode=m, align_corners=False)
        raise NotImplementedError("Resize mode %s / %s" % (mode, ctm))

    def _Upsample(self, x, a):
        return self._Resize([x[0], None, x[1]], dict(a, coordinate_transformation_mode="asymmetric",
                                                     nearest_mode="floor"))

    def _pool_args(self, a, nsp):
        k = a["kernel_shape"]
        s = a.get("strides", [1] * nsp)
        p = a.get("pads", [0] * (2 * nsp))
        return k, s, p

    def _MaxPool(self, x, a):
        inp = x[0]
        nsp = inp.dim() - 2
        k, s, p = self._pool_args(a, nsp)
        if any(p[d] != p[d + nsp] for d in range(nsp)):
            inp = F.pad(inp, _pads_onnx_to_torch(p, nsp), value=float("-inf"))
            p = [0] * (2 * nsp)
        pool = (F.max_pool1d, F.max_pool2d, F.max_pool3d)[nsp - 1]
        return pool(inp, k, s, p[:nsp], a.get("dilations", [1] * nsp), bool(a.get("ceil_mode", 0)))

    def _AveragePool(self, x, a):
        inp = x[0]
        nsp = inp.dim() - 2
        k, s, p = self._pool_args(a, nsp)
        pool = (F.avg_pool1d, F.avg_pool2d, F.avg_pool3d)[nsp - 1]
        return pool(inp, k, s, p[:nsp], bool(a.get("ceil_mode", 0)), bool(a.get("count_include_pad", 0)))

    def _GlobalAveragePool(self, x, a):
        return x[0].mean(dim=tuple(range(2, x[0].dim())), keepdim=True)

    def _Pad(self, x, a):
        inp = x[0]
        pads = _ints(x[1]) if len(x) > 1 and x[1] is not None else a["pads"]
        value = float(x[2]) if len(x) > 2 and x[2] is not None and x[2].numel() else a.get("value", 0.0)
        mode = a.get("mode", "constant")
        nd = inp.dim()
        tp = []
        for d in reversed(range(nd)):
            tp += [pads[d], pads[d + nd]]
        # torch wants the pads of the leading zero-padded dims dropped for non-constant modes
        while len(tp) > 2 and tp[-1] == 0 and tp[-2] == 0:
            tp = tp[:-2]
        if mode == "constant":
            return F.pad(inp, tp, value=value)
        return F.pad(inp, tp, mode={"reflect": "reflect", "edge": "replicate"}[mode])

    # shape subgraphs: CPU int64 tensors

    def _Shape(self, x, a):
        s = list(x[0].shape)
        s = s[a.get("start", 0):a["end"]] if "end" in a else s[a.get("start", 0):]
        return torch.tensor(s, dtype=torch.int64)

    def _Size(self, x, a):
        return torch.tensor(x[0].numel(), dtype=torch.int64)

    def _Constant(self, x, a):
        v = a.get("value")
        if v is None:
            for k in ("value_float", "value_int", "value_floats", "value_ints"):
                if k in a:
                    v = np.array(a[k])
        t = torch.from_numpy(np.array(v).copy())
        return t

    def _ConstantOfShape(self, x, a):
        v = a.get("value", np.zeros(1, np.float32))
        return torch.full(_ints(x[0]), float(np.asarray(v).reshape(-1)[0]),
                          dtype=torch.from_numpy(np.asarray(v)).dtype)

    def _Cast(self, x, a):
        return x[0].to(_DTYPES[a["to"]])

    def _Gather(self, x, a):
        axis = a.get("axis", 0)
        idx = x[1]
        if idx.dim() == 0:
            return x[0].select(axis, int(idx) % x[0].shape[axis])
        return torch.index_select(x[0], axis, idx.reshape(-1).to(x[0].device)).reshape(
            list(x[0].shape[:axis]) + list(idx.shape) + list(x[0].shape[axis + 1:]))

    def _Unsqueeze(self, x, a):
        axes = _ints(x[1]) if len(x) > 1 else a["axes"]
        t = x[0]
        nd = t.dim() + len(axes)
        for ax in sorted(v % nd for v in axes):
            t = t.unsqueeze(ax)
        return t

    def _Squeeze(self, x, a):
        axes = _ints(x[1]) if len(x) > 1 and x[1] is not None else a.get("axes")
        if axes is None:
            return x[0].squeeze()
        t = x[0]
        for ax in sorted((v % t.dim() for v in axes), reverse=True):
            t = t.squeeze(ax)
        return t

    def _Reshape(self, x, a):
        shape = _ints(x[1])
        shape = [x[0].shape[i] if v == 0 and not a.get("allowzero", 0) else v for i, v in enumerate(shape)]
        return x[0].reshape(shape)

    def _Flatten(self, x, a):
        ax = a.get("axis", 1)
        return x[0].reshape(int(np.prod(x[0].shape[:ax])), -1)

    def _Expand(self, x, a):
        shape = _ints(x[1])
        t = x[0]
        nd = max(t.dim(), len(shape))
        full = [1] * (nd - len(shape)) + shape
        cur = [1] * (nd - t.dim()) + list(t.shape)
        return t.reshape(cur).expand([max(c, s) for c, s in zip(cur, full)])

    def _Range(self, x, a):
        return torch.arange(x[0].item(), x[1].item(), x[2].item())

    def _Slice(self, x, a):
        t = x[0]
        starts, ends = _ints(x[1]), _ints(x[2])
        axes = _ints(x[3]) if len(x) > 3 and x[3] is not None else list(range(len(starts)))
        steps = _ints(x[4]) if len(x) > 4 and x[4] is not None else [1] * len(starts)
        idx = [slice(None)] * t.dim()
        for s, e, ax, st in zip(starts, ends, axes, steps):
            if st != 1:
                raise NotImplementedError("Slice step %d" % st)
            n = t.shape[ax]
            s = max(0, min(n, s + n if s < 0 else s))
            e = max(0, min(n, e + n if e < 0 else e))
            idx[ax % t.dim()] = slice(s, e)
        return t[tuple(idx)]

    def _Split(self, x, a):
        axis = a.get("axis", 0)
        split = _ints(x[1]) if len(x) > 1 and x[1] is not None else a.get("split")
        if split is None:
            raise NotImplementedError("Split without sizes")
        return list(torch.split(x[0], split, axis))

    def _ReduceMean(self, x, a):
        axes = _ints(x[1]) if len(x) > 1 and x[1] is not None else a.get("axes")
        keep = bool(a.get("keepdims", 1))
        if axes is None:
            return x[0].mean() if not keep else x[0].mean(dim=tuple(range(x[0].dim())), keepdim=True)
        return x[0].mean(dim=tuple(axes), keepdim=keep)


# ---- self-check against lumen's CPU Infer ------------------------------------------------------

if __name__ == "__main__":
    import json
    import os
    import subprocess
    import sys
    import tempfile

    usage = "usage: onnx_torch.py BUILD_DIR MODEL.onnx [MODEL.onnx ...]  (lumen CPU Infer is the oracle)"
    if len(sys.argv) < 3:
        sys.exit(usage)
    build = sys.argv[1]
    lumen = os.path.join(build, "lua", "lumen")
    lua = r"""
local m = LoadModel(arg[1], {precision = 'float32'})
local x = LoadNpy{path = arg[2]}
SaveNpy(Infer(m, x), {path = arg[3]})
"""
    worst = 0.0
    with tempfile.TemporaryDirectory() as tmp:
        script = os.path.join(tmp, "infer.lua")
        with open(script, "w") as f:
            f.write(lua)
        for path in sys.argv[2:]:
            net = OnnxModule(path).eval()
            m = onnx.load(path)
            dims = [d.dim_value for d in m.graph.input[0].type.tensor_type.shape.dim]
            # the declared sizes; 32 where an axis is dynamic
            shape = [1] + [d if d > 0 else (1 if i == 0 else 32) for i, d in enumerate(dims[1:])]
            x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
            # lumen's Infer takes (C, spatial...) and adds the batch axis itself
            np.save(os.path.join(tmp, "x.npy"), x[0])
            r = subprocess.run([lumen, "run", script, path, os.path.join(tmp, "x.npy"),
                                os.path.join(tmp, "y.npy")], capture_output=True, text=True)
            if r.returncode != 0:
                sys.exit("lumen failed on %s: %s" % (path, r.stderr.strip()))
            ref = np.load(os.path.join(tmp, "y.npy"))
            with torch.no_grad():
                y = net(torch.from_numpy(x))[0].numpy()
            err = float(np.abs(y - ref).max() / max(1e-12, float(np.abs(ref).max())))
            agree = float((y.argmax(0) == ref.argmax(0)).mean())
            worst = max(worst, err)
            print(json.dumps({"model": os.path.basename(path), "shape": shape, "max_rel_err": err,
                              "argmax_agreement": agree}))
    sys.exit(0 if worst < 1e-4 else 1)
