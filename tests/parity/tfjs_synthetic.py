"""A synthetic Keras functional model (strided and dilated 'same' convs with
even kernels, BatchNormalization, MaxPooling3D and AveragePooling3D 'same',
UpSampling3D, three Conv3DTranspose cases, Concatenate, Add) written as a
tfjs layers model.json + shard, and its reference evaluation in PyTorch
(float64) with TensorFlow's definitions spelt out:

- 'same': out = ceil(n / s), total pad = max((out - 1) * s + keff - n, 0),
  floor(total / 2) before, the rest after (pools pad with -inf; the average
  divides by the window's valid count);
- Conv3DTranspose is the gradient of the 'same'/'valid' Conv3D (whose
  input has Keras' output length: n * s for 'same', n * s + max(keff - s, 0)
  for 'valid') with respect to its input: computed with autograd.
"""
import json

import numpy as np

INPUT = (7, 6, 5, 2)   # Keras (D, H, W, C)


def layers():
    def L(cls, name, inbound, **cfg):
        cfg["name"] = name
        return {"class_name": cls, "name": name, "config": cfg,
                "inbound_nodes": [[[i, 0, 0, {}] for i in inbound]] if inbound else []}
    return [
        L("InputLayer", "in", [], batch_input_shape=[None, *INPUT], dtype="float32"),
        L("Conv3D", "c1", ["in"], filters=3, kernel_size=[3, 3, 3], strides=[2, 2, 2],
          padding="same", dilation_rate=[1, 1, 1], activation="relu", use_bias=True),
        L("Conv3D", "c2", ["c1"], filters=3, kernel_size=[2, 3, 2], strides=[1, 1, 1],
          padding="same", dilation_rate=[1, 2, 1], activation="elu", use_bias=True),
        L("BatchNormalization", "bn", ["c2"], axis=-1, epsilon=0.001, center=True, scale=True),
        L("MaxPooling3D", "mp", ["bn"], pool_size=[2, 2, 2], strides=[2, 2, 2], padding="same"),
        L("UpSampling3D", "up", ["mp"], size=[2, 2, 2]),
        L("Conv3DTranspose", "t1", ["up"], filters=2, kernel_size=[3, 3, 3], strides=[2, 2, 2],
          padding="same", activation="linear", use_bias=True),
        L("Conv3DTranspose", "t2", ["up"], filters=2, kernel_size=[2, 2, 2], strides=[2, 2, 2],
          padding="valid", activation="sigmoid", use_bias=False),
        L("Conv3DTranspose", "t3", ["up"], filters=1, kernel_size=[1, 1, 1], strides=[2, 2, 2],
          padding="same", activation="linear", use_bias=True),
        L("Concatenate", "cat", ["t1", "t2", "t3"], axis=-1),
        L("AveragePooling3D", "ap", ["cat"], pool_size=[3, 3, 3], strides=[1, 1, 1],
          padding="same"),
        L("Add", "add", ["ap", "cat"]),
    ]


def weight_specs(ls):
    chans = {"in": INPUT[-1]}
    specs = []
    for l in ls:
        c, name = l["config"], l["name"]
        src = [n[0] for n in l["inbound_nodes"][0]] if l["inbound_nodes"] else []
        cin = chans[src[0]] if src else None
        if l["class_name"] == "Conv3D":
            specs.append((name + "/kernel", [*c["kernel_size"], cin, c["filters"]]))
            specs.append((name + "/bias", [c["filters"]]))
            chans[name] = c["filters"]
        elif l["class_name"] == "Conv3DTranspose":
            specs.append((name + "/kernel", [*c["kernel_size"], c["filters"], cin]))
            if c["use_bias"]:
                specs.append((name + "/bias", [c["filters"]]))
            chans[name] = c["filters"]
        elif l["class_name"] == "BatchNormalization":
            for p in ("gamma", "beta", "moving_mean", "moving_variance"):
                specs.append((name + "/" + p, [cin]))
            chans[name] = cin
        elif l["class_name"] == "Concatenate":
            chans[name] = sum(chans[s] for s in src)
        elif cin is not None:
            chans[name] = cin
    return specs


def write(dirname, rng):
    ls = layers()
    specs = weight_specs(ls)
    weights = {}
    for name, shape in specs:
        w = rng.standard_normal(shape).astype(np.float32) * 0.5
        if name.endswith("moving_variance"):
            w = np.abs(w) + 0.5
        weights[name] = w
    with open(dirname + "/w.bin", "wb") as f:
        for name, _ in specs:
            f.write(weights[name].astype("<f4").tobytes())
    model = {"format": "layers-model", "modelTopology": {"model_config": {
        "class_name": "Functional", "config": {
            "name": "synthetic", "layers": ls, "input_layers": [["in", 0, 0]],
            "output_layers": [["add", 0, 0]]}}},
        "weightsManifest": [{"paths": ["w.bin"], "weights": [
            {"name": n, "shape": s, "dtype": "float32"} for n, s in specs]}]}
    with open(dirname + "/model.json", "w") as f:
        json.dump(model, f)
    return ls, weights


def same_pads(n, k, s, d=1):
    keff = (k - 1) * d + 1
    out = -(-n // s)
    total = max((out - 1) * s + keff - n, 0)
    return total // 2, total - total // 2


def pad_same(x, ks, ss, ds, value=0.0):
    import torch.nn.functional as F
    pads = []
    for n, k, s, d in reversed(list(zip(x.shape[2:], ks, ss, ds))):
        pads += list(same_pads(n, k, s, d))
    return F.pad(x, pads, value=value)


def reference(ls, weights, x):
    """x: channels first (1, C, D, H, W) float64 numpy -> output, same layout."""
    import torch
    import torch.nn.functional as F
    T = lambda a: torch.from_numpy(np.asarray(a, dtype=np.float64))
    acts = {"relu": F.relu, "elu": F.elu, "sigmoid": torch.sigmoid, "linear": lambda t: t}
    v = {}
    for l in ls:
        c, name, cls = l["config"], l["name"], l["class_name"]
        src = [v[n[0]] for n in l["inbound_nodes"][0]] if l["inbound_nodes"] else []
        if cls == "InputLayer":
            v[name] = T(x)
            continue
        a = src[0]
        if cls == "Conv3D":
            w = T(weights[name + "/kernel"]).permute(4, 3, 0, 1, 2)
            y = F.conv3d(pad_same(a, c["kernel_size"], c["strides"], c["dilation_rate"]), w,
                         T(weights[name + "/bias"]), stride=c["strides"],
                         dilation=c["dilation_rate"])
            y = acts[c["activation"]](y)
        elif cls == "Conv3DTranspose":
            k, s = c["kernel_size"], c["strides"]
            w_fwd = T(weights[name + "/kernel"]).permute(4, 3, 0, 1, 2)   # (in, filters, k..)
            n = a.shape[2:]
            if c["padding"] == "same":
                out = [ni * si for ni, si in zip(n, s)]
            else:
                out = [ni * si + max(ki - si, 0) for ni, si, ki in zip(n, s, k)]
            u = torch.zeros((1, c["filters"], *out), dtype=torch.float64, requires_grad=True)
            uu = pad_same(u, k, s, [1, 1, 1]) if c["padding"] == "same" else u
            fwd = F.conv3d(uu, w_fwd, stride=s)
            assert tuple(fwd.shape[2:]) == tuple(n), (fwd.shape, n)
            (y,) = torch.autograd.grad(fwd, u, grad_outputs=a)
            if c["use_bias"]:
                y = y + T(weights[name + "/bias"]).view(1, -1, 1, 1, 1)
            y = acts[c["activation"]](y)
        elif cls == "BatchNormalization":
            p = lambda q: T(weights[name + "/" + q]).view(1, -1, 1, 1, 1)
            y = (a - p("moving_mean")) / torch.sqrt(p("moving_variance") + c["epsilon"])
            y = y * p("gamma") + p("beta")
        elif cls == "MaxPooling3D":
            k, s = c["pool_size"], c["strides"]
            y = F.max_pool3d(pad_same(a, k, s, [1, 1, 1], value=-np.inf), k, s)
        elif cls == "AveragePooling3D":
            k, s = c["pool_size"], c["strides"]
            total = F.avg_pool3d(pad_same(a, k, s, [1, 1, 1]), k, s, divisor_override=1)
            ones = torch.ones((1, 1, *a.shape[2:]), dtype=torch.float64)
            count = F.avg_pool3d(pad_same(ones, k, s, [1, 1, 1]), k, s, divisor_override=1)
            y = total / count
        elif cls == "UpSampling3D":
            y = a
            for ax, r in enumerate(c["size"]):
                y = y.repeat_interleave(r, dim=2 + ax)
        elif cls == "Concatenate":
            y = torch.cat(src, dim=1)
        elif cls == "Add":
            y = src[0] + src[1]
        else:
            raise ValueError(cls)
        v[name] = y
    return v["add"].detach().numpy()
