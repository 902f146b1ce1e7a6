"""Writing the reference arrays that sit beside each ONNX fixture (shared by
make_fixtures.py and train_pytorch_mlp.py).

For a fixture NAME, with graph inputs x of shape [N][C][H][W] (the values the
graph sees, already normalised):
  NAME.x.f32     x, raw little-endian float32, C order
  NAME.out.f32   the graph's final output [N][K] computed by PyTorch in float32
  NAME.out.f64   the same computed in float64 (model.double(), same weights)
  NAME.grad.f64  float64 autograd d z[n][n % K] / d x[n], [N][C][H][W], where z
                 is the pre-softmax score (the last Linear's output)

out.f64 and grad.f64 are PyTorch's own float64 results: they use the exact
constants (LeakyReLU's 0.1, GELU's sqrt(2) and 0.5), whereas the ONNX graph
stores them as float32. Evaluating the graph in float64 therefore matches
out.f64 to ~1e-9 for LeakyReLU and GELU fixtures and to ~1e-15 otherwise.
"""
import copy

import numpy as np
import torch


def write_le(path, array, dtype):
    np.ascontiguousarray(array, dtype=np.dtype(dtype).newbyteorder("<")).tofile(path)


def reference_arrays(model, scores, x32):
    """model: the exported module (output = final output); scores: a function
    taking (module, x) and returning the pre-softmax scores z of that module.
    x32: float32 tensor [N,C,H,W]. Returns (out32, out64, grad64) as numpy."""
    model = model.eval()
    with torch.no_grad():
        out32 = model(x32).numpy()
    m64 = copy.deepcopy(model).double().eval()
    x64 = x32.double().clone().requires_grad_(True)
    with torch.no_grad():
        out64 = m64(x32.double()).numpy()
    z = scores(m64, x64)
    n, k = z.shape
    target = torch.arange(n) % k
    z.gather(1, target.view(-1, 1)).sum().backward()
    grad64 = x64.grad.numpy()
    return out32, out64, grad64


def write_fixture_arrays(prefix, model, scores, x32):
    out32, out64, grad64 = reference_arrays(model, scores, x32)
    write_le(prefix + ".x.f32", x32.numpy(), np.float32)
    write_le(prefix + ".out.f32", out32, np.float32)
    write_le(prefix + ".out.f64", out64, np.float64)
    write_le(prefix + ".grad.f64", grad64, np.float64)
    return out32, out64, grad64
