#!/usr/bin/env python3
"""PyTorch peer for `go run ./cmd/bench speed`.

Runs the very ONNX graph that prodsearch runs in ONNX Runtime, but as PyTorch
ops, on the very float32 tensors prodsearch fed ONNX Runtime, so the Go side
can check both the numbers (descriptor cosine) and the speed (inference time
for the same batch shapes) against a mainstream framework. No torchvision
weights are involved: the weights are the ONNX initializers.

Only the ops of the float "coral" models are supported (Conv, Clip, Add,
Identity, Transpose, GlobalAveragePool, Flatten); anything else (QLinearConv
in the int8 model) is refused with exit status 3, because emulating integer
kernels in float would not be "the same model".

Protocol (all paths come from the job JSON given as the only argument):
  job = {"model": path, "output": "featmap", "layout": "NHWC"|"NCHW",
         "input": raw float32 little-endian file, the calls' tensors back to back,
         "calls": [{"n":…, "h":…, "w":…}, …], "p": 3, "threads": 2,
         "descriptors": path to write, "result": path to write}
  descriptors: one GeM(p)+L2 vector per view (float32, views × C), call order.
  result: JSON with per-call inference and pooling seconds.
"""

import json
import sys
import time

import numpy as np
import onnx
import torch
import torch.nn.functional as F
from onnx import numpy_helper

GEM_EPS = 1e-6  # same clamp as describe.Pool, so p=3 of tiny negatives agrees


class Unsupported(Exception):
    pass


def same_pads(size, k, s, d, upper):
    """TF 'SAME' padding: output = ceil(size/stride); the odd pixel goes at the
    end for SAME_UPPER (TensorFlow's convention), at the start for LOWER."""
    out = -(-size // s)
    total = max((out - 1) * s + (k - 1) * d + 1 - size, 0)
    small, big = total // 2, total - total // 2
    return (small, big) if upper else (big, small)


def attrs(node):
    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


class Graph:
    """A tiny interpreter: ONNX nodes compiled to torch closures, run in the
    graph's (topological) order, pruned to what `output` needs."""

    def __init__(self, path, output):
        model = onnx.load(path)
        g = model.graph
        self.opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 13)
        self.consts = {
            i.name: torch.from_numpy(numpy_helper.to_array(i).copy())
            for i in g.initializer
        }
        self.inputs = [i.name for i in g.input if i.name not in self.consts]
        if len(self.inputs) != 1:
            raise Unsupported(f"want one graph input, got {self.inputs}")
        self.output = output
        producer = {o: n for n in g.node for o in n.output}
        need, todo = set(), [output]
        while todo:
            name = todo.pop()
            n = producer.get(name)
            if n is None or id(n) in need:
                continue
            need.add(id(n))
            todo.extend(x for x in n.input if x)
        nodes = [n for n in g.node if id(n) in need]
        if not nodes:
            raise Unsupported(f"no node produces {output!r}")
        self.steps = [self.compile(n) for n in nodes]

    def const(self, name):
        if name not in self.consts:
            raise Unsupported(f"{name} must be an initializer")
        return self.consts[name]

    def compile(self, n):
        a = attrs(n)
        op = n.op_type
        if op == "Conv":
            w = self.const(n.input[1]).float().contiguous()
            b = self.const(n.input[2]).float() if len(n.input) > 2 and n.input[2] else None
            kh, kw = a.get("kernel_shape", list(w.shape[2:]))
            sh, sw = a.get("strides", [1, 1])
            dh, dw = a.get("dilations", [1, 1])
            group = a.get("group", 1)
            auto = a.get("auto_pad", b"NOTSET")
            auto = auto.decode() if isinstance(auto, bytes) else auto
            pads = a.get("pads", [0, 0, 0, 0])  # top, left, bottom, right
            if auto in ("SAME_UPPER", "SAME_LOWER"):
                upper = auto == "SAME_UPPER"

                def f(x):
                    t, bt = same_pads(x.shape[2], kh, sh, dh, upper)
                    l, r = same_pads(x.shape[3], kw, sw, dw, upper)
                    if t == bt and l == r:
                        return F.conv2d(x, w, b, (sh, sw), (t, l), (dh, dw), group)
                    return F.conv2d(F.pad(x, (l, r, t, bt)), w, b, (sh, sw), 0, (dh, dw), group)
            elif auto in ("NOTSET", "VALID"):
                if auto == "VALID":
                    pads = [0, 0, 0, 0]
                t, l, bt, r = pads
                if t == bt and l == r:
                    def f(x):
                        return F.conv2d(x, w, b, (sh, sw), (t, l), (dh, dw), group)
                else:
                    def f(x):
                        return F.conv2d(F.pad(x, (l, r, t, bt)), w, b, (sh, sw), 0, (dh, dw), group)
            else:
                raise Unsupported(f"Conv auto_pad {auto}")
            return f, n.input[:1], n.output[0]
        if op == "Clip":
            if self.opset >= 11:
                lo = float(self.const(n.input[1])) if len(n.input) > 1 and n.input[1] else None
                hi = float(self.const(n.input[2])) if len(n.input) > 2 and n.input[2] else None
            else:
                lo, hi = a.get("min"), a.get("max")
            return (lambda x: torch.clamp(x, lo, hi)), n.input[:1], n.output[0]
        if op == "Add":
            return (lambda x, y: x + y), n.input[:2], n.output[0]
        if op == "Identity":
            return (lambda x: x), n.input[:1], n.output[0]
        if op == "Transpose":
            perm = a["perm"]
            # contiguous(): the NHWC->NCHW input transpose is a real copy in
            # ONNX Runtime too, and conv kernels want dense NCHW.
            return (lambda x: x.permute(*perm).contiguous()), n.input[:1], n.output[0]
        if op == "GlobalAveragePool":
            return (lambda x: x.mean(dim=(2, 3), keepdim=True)), n.input[:1], n.output[0]
        if op == "Flatten":
            axis = a.get("axis", 1)
            return (lambda x: torch.flatten(x, axis)), n.input[:1], n.output[0]
        raise Unsupported(f"op {op} ({n.name or n.output[0]}) has no same-model torch equivalent here")

    def __call__(self, x):
        env = {self.inputs[0]: x}
        for f, ins, out in self.steps:
            env[out] = f(*[env[i] if i in env else self.consts[i] for i in ins])
        return env[self.output]


def gem_l2(fmap, p):
    x = fmap.clamp(min=GEM_EPS)
    if p == 3:
        s = (x * x * x).mean(dim=(2, 3))
    else:
        s = x.pow(p).mean(dim=(2, 3))
    return F.normalize(s.pow(1.0 / p), dim=1)


def main():
    if len(sys.argv) != 2:
        print("usage: torch_peer.py JOB.json", file=sys.stderr)
        return 2
    with open(sys.argv[1]) as fh:
        job = json.load(fh)
    torch.set_num_threads(int(job["threads"]))
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:
        pass
    try:
        net = Graph(job["model"], job.get("output", "featmap"))
    except Unsupported as e:
        print(f"torch_peer: {e}", file=sys.stderr)
        return 3
    p = float(job.get("p", 3))
    nhwc = job["layout"].upper() == "NHWC"
    calls = job["calls"]
    infer, pool, outs = [], [], []
    with open(job["input"], "rb") as src, torch.inference_mode():
        for i, c in enumerate(calls):
            n, h, w = c["n"], c["h"], c["w"]
            shape = (n, h, w, 3) if nhwc else (n, 3, h, w)
            a = np.fromfile(src, dtype="<f4", count=n * h * w * 3)
            if a.size != n * h * w * 3:
                print(f"torch_peer: input file ends in call {i}", file=sys.stderr)
                return 1
            x = torch.from_numpy(a.reshape(shape))
            if i == 0:
                t0 = time.perf_counter()
                net(x)  # warm-up: oneDNN primitive creation, allocator
                warm = time.perf_counter() - t0
            t0 = time.perf_counter()
            fm = net(x)
            t1 = time.perf_counter()
            d = gem_l2(fm, p)
            t2 = time.perf_counter()
            infer.append(t1 - t0)
            pool.append(t2 - t1)
            outs.append(d.numpy().astype("<f4", copy=False))
        if src.read(1):
            print("torch_peer: input file is longer than the calls", file=sys.stderr)
            return 1
    np.concatenate(outs).tofile(job["descriptors"])
    with open(job["result"], "w") as fh:
        json.dump({
            "torch": torch.__version__,
            "threads": torch.get_num_threads(),
            "mkldnn": torch.backends.mkldnn.is_available(),
            "warmup_s": warm,
            "infer_s": infer,
            "pool_s": pool,
            "views": int(sum(c["n"] for c in calls)),
            "channels": int(outs[0].shape[1]),
        }, fh)
    return 0


if __name__ == "__main__":
    sys.exit(main())
