#!/usr/bin/python3
"""Train a 784-256-128-10 ReLU MLP on Fashion-MNIST with PyTorch and export it
with torch.onnx.export's DEFAULT settings (no mlpviz metadata), as a model that
mlpviz must import the way it would import anyone's PyTorch model.

Usage (from the repository root; a few minutes on one thread):
  nice /usr/bin/python3 scripts/onnx/train_pytorch_mlp.py \
      [--data /usr/share/datasets/fashion-mnist] [--epochs 3] [--seed 1]

Writes
  models/pytorch-fashion-mlp.onnx     default export: opset 14, one input
                                      [1,1,28,28] (fixed batch of 1, PyTorch's
                                      own names, e.g. "onnx::Flatten_0"),
                                      Flatten inside the model, output = logits
  models/fashion-mnist.classes        the class names, one a line, label order
  tests/fixtures/onnx/pytorch-fashion.{x.f32,out.f32,out.f64,grad.f64}
                                      8 real test images (normalised) and
                                      PyTorch's outputs/gradients (see fixture_io)
The graph input is (pixel/255 - 0.2860) / 0.3530, pixel in 0..255, CHW.
"""
import argparse
import gzip
import os
import sys

import numpy as np
import torch
from torch import nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fixture_io import write_fixture_arrays  # noqa: E402

MEAN, STD = 0.2860, 0.3530
# In label order, named as `mlpviz convert` names the class folders of Fashion-MNIST, so that
# `mlpviz eval --data data/fashion-mnist/test` matches the model's classes by name.
CLASSES = ["tshirt_top", "trouser", "pullover", "dress", "coat",
           "sandal", "shirt", "sneaker", "bag", "ankle_boot"]


def read_idx(path):
    with gzip.open(path, "rb") as f:
        data = f.read()
    magic = int.from_bytes(data[0:4], "big")
    ndim = magic & 0xFF
    dims = [int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def load(data_dir, split):
    images = read_idx(os.path.join(data_dir, split + "-images-idx3-ubyte.gz"))
    labels = read_idx(os.path.join(data_dir, split + "-labels-idx1-ubyte.gz"))
    x = (images.astype(np.float32) / 255.0 - MEAN) / STD
    return torch.from_numpy(x).view(-1, 1, 28, 28), torch.from_numpy(labels.astype(np.int64))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default="/usr/share/datasets/fashion-mnist")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--root", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
    args = ap.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(args.seed)

    xtr, ytr = load(args.data, "train")
    xte, yte = load(args.data, "t10k")
    model = nn.Sequential(nn.Flatten(), nn.Linear(784, 256), nn.ReLU(),
                          nn.Linear(256, 128), nn.ReLU(), nn.Linear(128, 10))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = nn.CrossEntropyLoss()
    gen = torch.Generator().manual_seed(args.seed)
    for epoch in range(args.epochs):
        model.train()
        perm = torch.randperm(len(xtr), generator=gen)
        total = 0.0
        for i in range(0, len(xtr), 128):
            idx = perm[i:i + 128]
            opt.zero_grad()
            loss = loss_fn(model(xtr[idx]), ytr[idx])
            loss.backward()
            opt.step()
            total += loss.item() * len(idx)
        model.eval()
        with torch.no_grad():
            acc = (model(xte).argmax(1) == yte).float().mean().item()
        print(f"epoch {epoch + 1}: train loss {total / len(xtr):.4f}, test accuracy {acc:.4f}", flush=True)
    print(f"test accuracy: {acc:.4f} ({int(round(acc * len(xte)))}/{len(xte)})")

    root = args.root
    onnx_path = os.path.join(root, "models", "pytorch-fashion-mlp.onnx")
    model.eval()
    torch.onnx.export(model, torch.zeros(1, 1, 28, 28), onnx_path)  # defaults, on purpose
    print("wrote", onnx_path, os.path.getsize(onnx_path), "bytes")
    with open(os.path.join(root, "models", "fashion-mnist.classes"), "w") as f:
        f.write("\n".join(CLASSES) + "\n")

    x8 = xte[:8].clone()
    prefix = os.path.join(root, "tests", "fixtures", "onnx", "pytorch-fashion")
    out32, _, _ = write_fixture_arrays(prefix, model, lambda m, x: m(x), x8)
    print("labels of the 8 images:", yte[:8].tolist(), "predicted:", out32.argmax(1).tolist())

    import onnx
    m = onnx.load(onnx_path)
    onnx.checker.check_model(m)
    print("opset", m.opset_import[0].version, "ops", [n.op_type for n in m.graph.node])


if __name__ == "__main__":
    main()
