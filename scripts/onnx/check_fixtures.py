#!/usr/bin/python3
"""Check tests/fixtures/onnx/ independently of PyTorch: run each .onnx graph
with a small NumPy interpreter (float64, only the ops the fixtures use) on
NAME.x.f32 and compare with NAME.out.f32 / NAME.out.f64, and compare
NAME.grad.f64 with central differences of the graph's pre-softmax score.
Also checks every file with onnx.checker, the MANIFEST and the metadata.

Usage: /usr/bin/python3 scripts/onnx/check_fixtures.py [DIR]
"""
import json
import math
import os
import sys

import numpy as np
import onnx
from onnx import numpy_helper

ERF = np.vectorize(math.erf)


def attrs(node):
    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


def softmax(x, axis):
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def run(model, x):
    """Every value of the graph, float64, for input x."""
    env = {t.name: numpy_helper.to_array(t).astype(np.float64) if t.data_type == 1
           else numpy_helper.to_array(t) for t in model.graph.initializer}
    inputs = [i.name for i in model.graph.input if i.name not in env]
    assert len(inputs) == 1, inputs
    env[inputs[0]] = x
    for node in model.graph.node:
        a = attrs(node)
        i = [env[n] if n else None for n in node.input]
        op = node.op_type
        if op == "Constant":
            t = numpy_helper.to_array(a["value"])
            y = t.astype(np.float64) if t.dtype == np.float32 else t
        elif op == "Flatten":
            ax = a.get("axis", 1)
            y = i[0].reshape(int(np.prod(i[0].shape[:ax])), -1)
        elif op == "Reshape":
            shape = [i[0].shape[k] if v == 0 else v for k, v in enumerate(i[1].tolist())]
            y = i[0].reshape(shape)
        elif op == "Shape":
            y = np.array(i[0].shape, dtype=np.int64)
        elif op == "Gather":
            y = np.take(i[0], i[1], axis=a.get("axis", 0))
        elif op == "Unsqueeze":
            axes = a["axes"] if "axes" in a else i[1].tolist()
            y = i[0]
            for ax in sorted(axes):
                y = np.expand_dims(y, ax)
        elif op == "Concat":
            y = np.concatenate(i, axis=a["axis"])
        elif op == "Transpose":
            y = np.transpose(i[0], a.get("perm"))
        elif op == "Gemm":
            A = i[0].T if a.get("transA", 0) else i[0]
            B = i[1].T if a.get("transB", 0) else i[1]
            y = a.get("alpha", 1.0) * (A @ B)
            if len(i) > 2 and i[2] is not None:
                y = y + a.get("beta", 1.0) * i[2]
        elif op == "MatMul":
            y = i[0] @ i[1]
        elif op == "Add":
            y = i[0] + i[1]
        elif op == "Mul":
            y = i[0] * i[1]
        elif op == "Div":
            y = i[0] / i[1]
        elif op == "Erf":
            y = ERF(i[0])
        elif op == "Relu":
            y = np.maximum(i[0], 0)
        elif op == "LeakyRelu":
            y = np.where(i[0] >= 0, i[0], a.get("alpha", 0.01) * i[0])
        elif op == "Sigmoid":
            y = 1 / (1 + np.exp(-i[0]))
        elif op == "Tanh":
            y = np.tanh(i[0])
        elif op == "Softplus":
            y = np.log1p(np.exp(i[0]))
        elif op in ("Softmax", "LogSoftmax"):
            ax = a.get("axis", 1 if model.opset_import[0].version < 13 else -1)
            if model.opset_import[0].version < 13:  # coerced to 2-D at axis
                s = i[0].shape
                y = softmax(i[0].reshape(int(np.prod(s[:ax])), -1), 1).reshape(s)
            else:
                y = softmax(i[0], ax)
            if op == "LogSoftmax":
                y = np.log(y)
        else:
            raise NotImplementedError(op)
        env[node.output[0]] = y
    return env


def scores_and_output(model, x):
    env = run(model, x)
    out_name = model.graph.output[0].name
    last = model.graph.node[-1]
    z_name = last.input[0] if last.op_type in ("Softmax", "LogSoftmax") else out_name
    return env[z_name], env[out_name]


def read(path, dtype, shape):
    return np.fromfile(path, dtype=np.dtype(dtype).newbyteorder("<")).reshape(shape)


def check(d, name, c, h, w, k, final=None, metadata=None):
    path = os.path.join(d, name + ".onnx")
    onnx.checker.check_model(path)
    model = onnx.load(path)  # loads external data too
    n = os.path.getsize(os.path.join(d, name + ".x.f32")) // (4 * c * h * w)
    x = read(os.path.join(d, name + ".x.f32"), np.float32, (n, c, h, w)).astype(np.float64)
    out32 = read(os.path.join(d, name + ".out.f32"), np.float32, (n, k))
    out64 = read(os.path.join(d, name + ".out.f64"), np.float64, (n, k))
    grad = read(os.path.join(d, name + ".grad.f64"), np.float64, (n, c, h, w))
    z, out = scores_and_output(model, x)
    if model.graph.input[0].type.tensor_type.shape.dim[0].dim_value == 1:  # fixed batch of 1
        out = np.concatenate([scores_and_output(model, x[j:j + 1])[1] for j in range(n)])
    e64 = np.abs(out - out64).max()
    e32 = np.abs(out - out32).max()
    # central differences of z[j][j % k] with respect to x[j]
    eps, fd = 1e-6, np.zeros_like(grad)
    for j in range(n):
        for idx in np.ndindex(c, h, w):
            xp, xm = x[j:j + 1].copy(), x[j:j + 1].copy()
            xp[(0,) + idx] += eps
            xm[(0,) + idx] -= eps
            fd[(j,) + idx] = (scores_and_output(model, xp)[0][0, j % k]
                              - scores_and_output(model, xm)[0][0, j % k]) / (2 * eps)
    eg = np.abs(fd - grad).max() / max(1e-12, np.abs(grad).max())
    last = model.graph.node[-1].op_type
    got_final = {"Softmax": "softmax", "LogSoftmax": "logsoftmax"}.get(last, "none")
    props = {p.key: p.value for p in model.metadata_props}
    got_meta = "props" if props else ("sidecar" if os.path.exists(path + ".json") else "none")
    if props:
        assert props["mlpviz.input_shape"] == f"{c}x{h}x{w}", props
        assert len(json.loads(props["mlpviz.classes"])) == k
    if got_meta == "sidecar":
        with open(path + ".json") as f:
            sc = json.load(f)
        assert sc["input_shape"] == f"{c}x{h}x{w}" and len(sc["classes"]) == k
    # out.f64 is PyTorch's float64 (exact 0.1 for LeakyReLU, exact sqrt(2) and 0.5
    # for GELU) while the graph holds those constants as float32 attributes and
    # Constant tensors: the graph in float64 differs from out.f64 by ~1e-9 there.
    ok = e64 < 1e-8 and e32 < 1e-5 and eg < 1e-6
    ok = ok and (final is None or final == got_final) and (metadata is None or metadata == got_meta)
    print(f"{'ok  ' if ok else 'FAIL'} {name}: |out-out.f64| {e64:.1e}, |out-out.f32| {e32:.1e}, "
          f"grad vs central differences (relative) {eg:.1e}, final {got_final}, metadata {got_meta}")
    return ok


def main():
    d = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
        os.path.dirname(os.path.abspath(__file__)), "..", "..", "tests", "fixtures", "onnx")
    ok = True
    with open(os.path.join(d, "MANIFEST")) as f:
        for line in f:
            if line.startswith("#") or not line.strip():
                continue
            name, opset, form, act, final, c, h, w, k, metadata = line.split()
            m = onnx.load(os.path.join(d, name + ".onnx"), load_external_data=False)
            ok &= m.opset_import[0].version == int(opset)
            ok &= check(d, name, int(c), int(h), int(w), int(k), final, metadata)
    real = os.path.join(d, "..", "..", "..", "models", "pytorch-fashion-mlp.onnx")
    if os.path.exists(real) and os.path.exists(os.path.join(d, "pytorch-fashion.x.f32")):
        # the real model lives in models/; check it under the fixture's name
        link = os.path.join(d, "pytorch-fashion.onnx")
        made = not os.path.exists(link)
        if made:
            os.symlink(os.path.relpath(real, d), link)
        try:
            ok &= check(d, "pytorch-fashion", 1, 28, 28, 10)
        finally:
            if made:
                os.remove(link)
    print("all ok" if ok else "FAILED")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
