#!/usr/bin/python3
"""Checks an ONNX file written by `mlpviz export --onnx` against mlpviz's own outputs.

    onnx_export_check.py MODEL.onnx PIXELS.npy OUTPUTS.npy [--info JSON] [--npy DIR]
                         [--meta KEY=VALUE]... [--classes JSON] [--head ce|bce|mse]

PIXELS.npy (N, H, W, C) and OUTPUTS.npy (N, K) come from tests/tool_model_outputs: float32
images in mlpviz's HWC layout and what mlpviz computed for them. This script

- runs onnx.checker.check_model(full_check=True) (which also infers every shape),
- checks the header (IR 8, opset 17, producer mlpviz), the graph's input "input"
  [N, C, H, W] with a symbolic N and its output [N, K], and the mlpviz.* metadata
  (input_shape, channel_order chw, pixel_scale 1, mean and std per channel, classes as a
  JSON array of K names, head) against the graph and against the --meta/--classes/--head
  values the caller expects,
- with --info JSON (what `mlpviz info --json` printed for the model exported), checks the
  shape, mean, std (as float32), classes, head and every metadata entry (as
  mlpviz.meta.KEY) against it,
- with --npy DIR (the same model exported by `mlpviz export --npy`), checks that the
  initializers hold exactly the model's weights, the first layer's columns moved from
  HWC (h*W + w)*C + c to CHW c*H*W + h*W + w,
- normalises the pixels with the metadata's mean and std, transposes them to NCHW, runs the
  graph in float64 with its own small interpreter (no onnxruntime: each op written out
  below from the ONNX operator specification), and compares with OUTPUTS.npy.

Exit 0 when everything agrees; an AssertionError names the first disagreement.
"""
import argparse
import json
import math
import os
import sys

import numpy as np
import onnx
from onnx import numpy_helper

# Tolerance of the comparison: mlpviz computes in float32 (sums of up to ~800 products), the
# interpreter in float64. Outputs are probabilities or unbounded values (mse head).
ATOL, RTOL = 2e-5, 2e-4

_erf = np.vectorize(math.erf, otypes=[np.float64])


def attrs(node):
    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


def run_graph(graph, x):
    """The graph's single output for input x, every value in float64."""
    env = {t.name: numpy_helper.to_array(t).astype(np.float64) for t in graph.initializer}
    env[graph.input[0].name] = x.astype(np.float64)
    for node in graph.node:
        a = attrs(node)
        ins = [env[name] for name in node.input if name]
        op = node.op_type
        if op == "Flatten":
            axis = a.get("axis", 1)
            v = ins[0]
            y = v.reshape(int(np.prod(v.shape[:axis])), -1)
        elif op == "Gemm":
            A, B = ins[0], ins[1]
            if a.get("transA", 0):
                A = A.T
            if a.get("transB", 0):
                B = B.T
            y = a.get("alpha", 1.0) * (A @ B)
            if len(ins) > 2:
                y = y + a.get("beta", 1.0) * ins[2]
        elif op == "Relu":
            y = np.maximum(ins[0], 0.0)
        elif op == "LeakyRelu":
            alpha = a.get("alpha", 0.01)
            y = np.where(ins[0] >= 0, ins[0], alpha * ins[0])
        elif op == "Sigmoid":
            y = 1.0 / (1.0 + np.exp(-ins[0]))
        elif op == "Tanh":
            y = np.tanh(ins[0])
        elif op == "Softplus":
            y = np.logaddexp(0.0, ins[0])
        elif op == "Erf":
            y = _erf(ins[0])
        elif op == "Add":
            y = ins[0] + ins[1]
        elif op == "Mul":
            y = ins[0] * ins[1]
        elif op == "Div":
            y = ins[0] / ins[1]
        elif op == "Identity":
            y = ins[0]
        elif op == "Softmax":
            axis = a.get("axis", -1)
            e = np.exp(ins[0] - ins[0].max(axis=axis, keepdims=True))
            y = e / e.sum(axis=axis, keepdims=True)
        else:
            raise AssertionError("op %s (node %s) is not one mlpviz writes" % (op, node.name))
        assert len(node.output) == 1, node.name
        env[node.output[0]] = y
    return env[graph.output[0].name]


def dims(value_info):
    """[dim_value or dim_param string] of a tensor value."""
    shape = value_info.type.tensor_type.shape
    return [d.dim_value if d.HasField("dim_value") else d.dim_param for d in shape.dim]


def floats(text, n, what):
    values = [float(v) for v in text.split(",")]
    assert len(values) == n, "%s: %d values for %d channels: %r" % (what, len(values), n, text)
    for v in text.split(","):  # written with %.9g: each reads back as the same float32
        assert "%.9g" % np.float32(float(v)) == v, "%s: %r is not %%.9g of a float32" % (what, v)
    return np.array(values, dtype=np.float32)


def check_weights(graph, npy_dir, C, H, W):
    """Initializers W<l>, b<l> against the --npy export, bit for bit."""
    init = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    spec = json.load(open(os.path.join(npy_dir, "model.json")))
    L = len(spec["widths"]) - 1
    for l in range(L):
        Wl = np.load(os.path.join(npy_dir, "W%d.npy" % l))
        bl = np.load(os.path.join(npy_dir, "b%d.npy" % l))
        if l == 0:  # columns (h*W + w)*C + c of mlpviz are c*H*W + h*W + w in the graph
            M = Wl.shape[0]
            Wl = Wl.reshape(M, H, W, C).transpose(0, 3, 1, 2).reshape(M, -1)
        got = init["W%d" % l]
        assert got.dtype == np.float32 and got.shape == Wl.shape, ("W%d" % l, got.shape)
        assert got.tobytes() == np.ascontiguousarray(Wl).tobytes(), \
            "W%d differs from the model's weights%s" % (l, " (CHW column order)" if l == 0 else "")
        assert init["b%d" % l].tobytes() == bl.tobytes(), "b%d differs" % l


def check_info(meta, info, C, H, W, mean, std, classes, head):
    """The metadata against `mlpviz info --json` of the model (which, like the writer,
    shows a byte that is not UTF-8 as U+FFFD)."""
    i = info["input"]
    assert (i["channels"], i["height"], i["width"]) == (C, H, W), (i, C, H, W)
    assert mean.tolist() == np.array(i["mean"], dtype=np.float32).tolist(), (mean, i["mean"])
    assert std.tolist() == np.array(i["std"], dtype=np.float32).tolist(), (std, i["std"])
    assert classes == info["classes"], (classes, info["classes"])
    assert head == info["head"], (head, info["head"])
    copied = {k[len("mlpviz.meta."):]: v for k, v in meta.items() if k.startswith("mlpviz.meta.")}
    assert copied == info["meta"], "mlpviz.meta.* %r, the model's metadata %r" % (copied, info["meta"])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("onnx_file")
    ap.add_argument("pixels")
    ap.add_argument("outputs")
    ap.add_argument("--npy", help="the same model exported by mlpviz export --npy")
    ap.add_argument("--info", help="a file holding mlpviz info --json of the model")
    ap.add_argument("--meta", action="append", default=[], help="KEY=VALUE expected")
    ap.add_argument("--classes", help="the class names expected, as a JSON array")
    ap.add_argument("--head", choices=("ce", "bce", "mse"))
    args = ap.parse_args()

    model = onnx.load(args.onnx_file)
    onnx.checker.check_model(model, full_check=True)
    assert model.ir_version == 8, model.ir_version
    opsets = {o.domain: o.version for o in model.opset_import}
    assert opsets == {"": 17}, opsets
    assert model.producer_name == "mlpviz" and model.producer_version, model.producer_name
    g = model.graph
    assert [i.name for i in g.input] == ["input"], [i.name for i in g.input]
    assert len(g.output) == 1, len(g.output)
    in_dims, out_dims = dims(g.input[0]), dims(g.output[0])
    assert len(in_dims) == 4 and in_dims[0] == "N", in_dims
    assert len(out_dims) == 2 and out_dims[0] == "N", out_dims
    C, H, W = in_dims[1:]
    K = out_dims[1]

    meta = {p.key: p.value for p in model.metadata_props}
    assert len(meta) == len(model.metadata_props), "repeated metadata keys"
    assert meta["mlpviz.input_shape"] == "%dx%dx%d" % (C, H, W), meta["mlpviz.input_shape"]
    assert meta["mlpviz.channel_order"] == "chw", meta["mlpviz.channel_order"]
    assert meta["mlpviz.pixel_scale"] == "1", meta["mlpviz.pixel_scale"]
    mean = floats(meta["mlpviz.mean"], C, "mlpviz.mean")
    std = floats(meta["mlpviz.std"], C, "mlpviz.std")
    classes = json.loads(meta["mlpviz.classes"])
    assert isinstance(classes, list) and len(classes) == K and \
        all(isinstance(c, str) for c in classes), classes
    head = meta["mlpviz.head"]
    last = g.node[-1].op_type
    assert (head, last == "Softmax", last == "Sigmoid") in (
        ("ce", True, False), ("bce", False, True), ("mse", False, False)), (head, last)
    for kv in args.meta:
        key, value = kv.split("=", 1)
        assert meta.get(key) == value, "%s: %r, expected %r" % (key, meta.get(key), value)
    if args.classes is not None:
        want = json.loads(args.classes)
        assert classes == want, "classes %r, expected %r" % (classes, want)
    if args.head:
        assert head == args.head, (head, args.head)
    if args.npy:
        check_weights(g, args.npy, C, H, W)
    if args.info:
        check_info(meta, json.load(open(args.info, encoding="utf-8")), C, H, W, mean, std,
                   classes, head)

    pixels = np.load(args.pixels)
    want = np.load(args.outputs)
    N = pixels.shape[0]
    assert pixels.dtype == np.float32 and pixels.shape == (N, H, W, C), pixels.shape
    assert want.dtype == np.float32 and want.shape == (N, K), want.shape
    x = ((pixels - mean) / std).transpose(0, 3, 1, 2)  # NHWC -> NCHW, as the graph wants
    got = run_graph(g, x)
    assert got.shape == (N, K), got.shape
    err = np.abs(got - want.astype(np.float64))
    bad = err > ATOL + RTOL * np.abs(want)
    assert not bad.any(), "image %d output %d: %r from the graph, %r from mlpviz" % (
        *np.argwhere(bad)[0], got[bad][0], want[bad][0])
    print("%s: %d images agree (largest difference %.3g; ops %s)" % (
        os.path.basename(args.onnx_file), N, err.max(),
        " ".join(sorted({n.op_type for n in g.node}))))


if __name__ == "__main__":
    try:
        main()
    except AssertionError as e:
        print("onnx_export_check: %s" % e, file=sys.stderr)
        sys.exit(1)
