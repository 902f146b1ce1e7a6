#!/usr/bin/python3
"""Make the small ONNX fixtures in tests/fixtures/onnx/ with this machine's
PyTorch (Debian python3-torch 1.13) and onnx (python3-onnx 1.12).

Usage (from the repository root; a few seconds):
  /usr/bin/python3 scripts/onnx/make_fixtures.py [--out tests/fixtures/onnx]

Deterministic: each fixture's weights come from torch.manual_seed(its index),
its inputs from a seeded generator. For each fixture NAME it writes NAME.onnx
(plus NAME.onnx.json for "sidecar", NAME.data for external data) and the
reference arrays described in fixture_io.py (NAME.x.f32, .out.f32, .out.f64,
.grad.f64; N=4 inputs, gradient target class n % K), then MANIFEST:
  NAME opset form act final C H W K metadata
It checks every file with onnx.checker and prints each graph's op types.
"""
import argparse
import os
import sys

import numpy as np
import onnx
import torch
from onnx import numpy_helper
from torch import nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from export_for_mlpviz import export_for_mlpviz, sidecar_json  # noqa: E402
from fixture_io import write_fixture_arrays  # noqa: E402

N = 4

ACTS = {
    "relu": nn.ReLU,
    "leakyrelu": lambda: nn.LeakyReLU(0.1),
    "sigmoid": nn.Sigmoid,
    "tanh": nn.Tanh,
    "softplus": nn.Softplus,
    "gelu": nn.GELU,
}


class Affine(nn.Module):
    """x @ W + b with W stored [in, out]: exports as MatMul + Add."""

    def __init__(self, n_in, n_out):
        super().__init__()
        lin = nn.Linear(n_in, n_out)  # same initialisation as nn.Linear
        self.weight = nn.Parameter(lin.weight.detach().t().contiguous())
        self.bias = nn.Parameter(lin.bias.detach().clone())

    def forward(self, x):
        return x @ self.weight + self.bias


class MLP(nn.Module):
    """flatten -> [linear -> act]* -> linear (= z, the scores) -> final.

    form "gemm":     flattened [N, D] input, nn.Linear (Gemm)
    form "matmul":   flattened [N, D] input, Affine (x @ W + b: MatMul, Add)
    form "matmul3d": input viewed as [N, 1, D], nn.Linear on the 3-D tensor
                     (MatMul with W^T, Add), nn.Flatten at the end
    flatten "flatten" (nn.Flatten), "view" (x.view(-1, D): Reshape by a
    constant) or "reshape" (x.reshape(x.shape[0], -1): Shape, Gather, ...)."""

    def __init__(self, chw, hidden, k, act, final, form, flatten):
        super().__init__()
        c, h, w = chw
        self.d = c * h * w
        self.form, self.flatten_how = form, flatten
        sizes = [self.d] + list(hidden) + [k]
        layers = []
        for i in range(len(sizes) - 1):
            if form == "matmul":
                layers.append(Affine(sizes[i], sizes[i + 1]))
            else:
                layers.append(nn.Linear(sizes[i], sizes[i + 1]))
            if i < len(sizes) - 2:
                layers.append(ACTS[act]())
        self.layers = nn.Sequential(*layers)
        self.flat = nn.Flatten()
        self.final = final

    def scores(self, x):
        if self.form == "matmul3d":
            x = x.view(-1, 1, self.d)
        elif self.flatten_how == "flatten":
            x = self.flat(x)
        elif self.flatten_how == "view":
            x = x.view(-1, self.d)
        else:
            x = x.reshape(x.shape[0], -1)
        z = self.layers(x)
        if self.form == "matmul3d":
            z = self.flat(z)
        return z

    def forward(self, x):
        z = self.scores(x)
        if self.final == "softmax":
            return torch.softmax(z, dim=1)
        if self.final == "logsoftmax":
            return torch.log_softmax(z, dim=1)
        return z


# name, opset, form, act, final, (C,H,W), hidden, K, metadata, flatten, extra
FIXTURES = [
    ("gemm-relu-softmax", 17, "gemm", "relu", "softmax", (1, 4, 4), [8], 3, "props", "flatten", {}),
    ("gemm-leakyrelu-logsoftmax", 13, "gemm", "leakyrelu", "logsoftmax", (3, 2, 3), [10], 4, "sidecar", "flatten", {}),
    ("gemm-sigmoid-logits-view", 9, "gemm", "sigmoid", "none", (1, 4, 4), [12], 5, "none", "view", {}),
    ("matmul-tanh-softmax", 13, "matmul", "tanh", "softmax", (3, 2, 3), [8], 3, "props", "flatten", {}),
    ("matmul3d-softplus-logsoftmax", 9, "matmul3d", "softplus", "logsoftmax", (1, 4, 4), [10], 4, "sidecar", "flatten", {}),
    ("matmul3d-gelu-logits-nofold", 17, "matmul3d", "gelu", "none", (3, 2, 3), [8], 3, "props", "flatten",
     {"do_constant_folding": False}),
    ("gemm-gelu-softmax-floatdata", 13, "gemm", "gelu", "softmax", (3, 2, 3), [12, 8], 5, "props", "flatten",
     {"float_data": True}),
    ("gemm-relu-logits-external", 17, "gemm", "relu", "none", (3, 2, 3), [8], 4, "props", "flatten",
     {"external": True}),
    ("gemm-tanh-softmax-reshape", 9, "gemm", "tanh", "softmax", (3, 2, 3), [10], 3, "none", "reshape", {}),
    ("matmul-leakyrelu-logits", 17, "matmul", "leakyrelu", "none", (1, 4, 4), [9], 5, "sidecar", "view", {}),
]

# JSON escapes and UTF-8 on purpose: a slash, a space, a non-ASCII letter, a quote.
CLASS_NAMES = ["T-shirt/top", "Ankle boot", "caf\u00e9", "quote \"q\"", "e"]


def to_float_data(proto):
    """Move every float initializer from raw_data to float_data."""
    for t in proto.graph.initializer:
        if t.data_type == onnx.TensorProto.FLOAT and t.HasField("raw_data"):
            values = numpy_helper.to_array(t).astype(np.float32).ravel()
            t.ClearField("raw_data")
            t.float_data.extend(values.tolist())
    return proto


def export(model, path, name, opset, chw, k, metadata, extra):
    c = chw[0]
    # The normalisation each fixture declares; the .x.f32 inputs are graph
    # inputs either way. The sidecars use pixel_scale 255 units.
    scale = 255 if metadata == "sidecar" else 1
    mean = [round(0.5 * scale - 0.05 * i * scale, 4) for i in range(c)]
    std = [round(0.25 * scale + 0.02 * i * scale, 4) for i in range(c)]
    classes = CLASS_NAMES[:k]
    fold = extra.get("do_constant_folding", True)
    if metadata == "props":
        export_for_mlpviz(model, path, chw, mean, std, classes, pixel_scale=scale,
                          opset=opset, do_constant_folding=fold)
    else:
        torch.onnx.export(model, torch.zeros(1, *chw), path, opset_version=opset,
                          input_names=["input"], output_names=["output"],
                          dynamic_axes={"input": {0: "batch"}, "output": {0: "batch"}},
                          do_constant_folding=fold)
        if metadata == "sidecar":
            with open(path + ".json", "w", encoding="utf-8") as f:
                f.write(sidecar_json(chw, mean, std, classes, pixel_scale=scale))
    proto = onnx.load(path)
    if extra.get("float_data"):
        to_float_data(proto)
        onnx.save(proto, path)
    if extra.get("external"):
        data_name = name + ".data"
        if os.path.exists(os.path.join(os.path.dirname(path), data_name)):
            os.remove(os.path.join(os.path.dirname(path), data_name))
        onnx.save(proto, path, save_as_external_data=True, all_tensors_to_one_file=True,
                  location=data_name, size_threshold=0)
    onnx.checker.check_model(path)  # by path, so external data is checked too
    return onnx.load(path)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                                  "..", "..", "tests", "fixtures", "onnx"))
    args = ap.parse_args()
    torch.set_num_threads(1)
    os.makedirs(args.out, exist_ok=True)
    manifest = ["# NAME opset form act final C H W K metadata  (made by scripts/onnx/make_fixtures.py;"
                " inputs NAME.x.f32 [4][C][H][W], outputs NAME.out.f32/.out.f64 [4][K],"
                " NAME.grad.f64 = d z[n][n%K]/d x[n], z = pre-softmax scores)",
                "# pytorch-fashion.{x.f32,out.f32,out.f64,grad.f64} (not listed: 8 inputs 1x28x28, K=10) belong to"
                " models/pytorch-fashion-mlp.onnx, made by scripts/onnx/train_pytorch_mlp.py"]
    for index, (name, opset, form, act, final, chw, hidden, k, metadata, flatten, extra) in enumerate(FIXTURES):
        torch.manual_seed(index)
        model = MLP(chw, hidden, k, act, final, form, flatten).eval()
        gen = torch.Generator().manual_seed(1000 + index)
        x = torch.randn(N, *chw, generator=gen)
        path = os.path.join(args.out, name + ".onnx")
        proto = export(model, path, name, opset, chw, k, metadata, extra)
        write_fixture_arrays(os.path.join(args.out, name), model, lambda m, v: m.scores(v), x)
        mform = "gemm" if form == "gemm" else "matmul"
        manifest.append(f"{name} {opset} {mform} {act} {final} {chw[0]} {chw[1]} {chw[2]} {k} {metadata}")
        ops = [n.op_type for n in proto.graph.node]
        print(f"{name}: opset {proto.opset_import[0].version}, {mform}, {act}, {final}, "
              f"{'x'.join(map(str, chw))} -> {k}, {metadata}: {' '.join(ops)}")
    with open(os.path.join(args.out, "MANIFEST"), "w") as f:
        f.write("\n".join(manifest) + "\n")


if __name__ == "__main__":
    main()
