#!/usr/bin/python3
"""bench_torch.py: the PyTorch side of `make bench`, the same workloads as build/opt/bench.

usage: /usr/bin/python3 scripts/bench/bench_torch.py --model-dir DIR [--runs R]
           [--torch-threads N] [--seed S] [--save-viz FILE.npy] WORKLOAD...

DIR is what `bin/mlpviz export MODEL --npy DIR` writes. Workloads: train-small, train-big,
grad-1, grad-10, grad-256, viz-10, viz-640 (or `all`). Each workload is set up and warmed up
once, then timed --runs times; every timed repetition prints one line

    RESULT <workload> <seconds> <items> <flops>

(flops: 2 per multiply-add of the dense layers that the timed part needs). Other lines are
free text: `INFO ...` says which torch, how many threads and which BLAS library this process
uses (PyTorch's dense layers on the CPU are BLAS sgemm calls, so the BLAS decides most of the
speed; the netlib reference BLAS is 30-40 times slower than OpenBLAS).

Everything is float32 and seeded, so two runs compute the same numbers.
"""
import argparse
import json
import math
import os
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

WORKLOADS = ("train-small", "train-big", "grad-1", "grad-10", "grad-256", "viz-10", "viz-640")


# ------------------------------------------------------------------ the exported model

ACTIVATIONS = {
    "identity": lambda z, p: z,
    "relu": lambda z, p: torch.relu(z),
    "leaky_relu": lambda z, p: F.leaky_relu(z, p),
    "scaled_relu": lambda z, p: torch.relu(z) * p,
    "sigmoid": lambda z, p: torch.sigmoid(z),
    "tanh": lambda z, p: torch.tanh(z),
    "softplus": lambda z, p: F.softplus(z),
    "gelu": lambda z, p: F.gelu(z),
}


class Exported:
    """The network of model.json as plain float32 tensors that never require gradients, so
    autograd only builds the input-gradient path. forward() returns the logits z of the last
    layer (the objective of grad-* and viz-*: the pre-softmax score)."""

    def __init__(self, model_dir):
        with open(os.path.join(model_dir, "model.json")) as f:
            meta = json.load(f)
        self.widths = [int(w) for w in meta["widths"]]
        self.weights, self.biases = [], []
        for layer in meta["weights"]:
            W = np.load(os.path.join(model_dir, layer["W"])).astype(np.float32)
            b = np.load(os.path.join(model_dir, layer["b"])).astype(np.float32)
            self.weights.append(torch.from_numpy(np.ascontiguousarray(W)))
            self.biases.append(torch.from_numpy(np.ascontiguousarray(b)))
        acts = meta.get("hidden_activations", [])
        self.acts = []
        for a in acts:
            name, param = a["name"], float(a.get("param", 0))
            if name not in ACTIVATIONS:
                raise SystemExit(f"bench_torch: activation '{name}' is not supported")
            self.acts.append((ACTIVATIONS[name], param))
        if len(self.acts) != len(self.weights) - 1:
            raise SystemExit("bench_torch: model.json has the wrong number of activations")
        for l, W in enumerate(self.weights):
            if tuple(W.shape) != (self.widths[l + 1], self.widths[l]):
                raise SystemExit(f"bench_torch: W{l} has shape {tuple(W.shape)}")
        inp = meta["input"]
        self.channels, self.height, self.width = (int(v) for v in inp["shape"])
        if self.channels * self.height * self.width != self.widths[0]:
            raise SystemExit("bench_torch: the input shape does not match widths[0]")
        self.mean = [float(v) for v in inp["mean"]]
        self.std = [float(v) for v in inp["std"]]
        self.n_classes = self.widths[-1]

    def forward(self, x):
        h = x
        for l in range(len(self.weights) - 1):
            act, param = self.acts[l]
            h = act(F.linear(h, self.weights[l], self.biases[l]), param)
        return F.linear(h, self.weights[-1], self.biases[-1])

    def macs(self):
        """Multiply-adds of one forward pass of one row."""
        return sum(a * b for a, b in zip(self.widths[:-1], self.widths[1:]))


def channel_tensor(values, channels):
    """Per-channel constants broadcastable over a flattened HWC row (channel fastest)."""
    if channels == 1:
        return torch.tensor(values[0], dtype=torch.float32)
    return torch.tensor(values, dtype=torch.float32)


def onehot_seed(n, classes, n_classes):
    """The backward seed dz: row r has a 1 at classes[r], so z.backward(seed) is the backward
    of sum_r z[r, classes[r]], whose gradient in row r is that row's own logit's gradient."""
    seed = torch.zeros(n, n_classes)
    seed[torch.arange(n), torch.as_tensor(classes)] = 1
    return seed


# ------------------------------------------------------------------ training

def train_macs(widths):
    """Multiply-adds per sample of one training step: forward of every layer, weight
    gradients of every layer, input gradients of every layer but the first."""
    layers = [a * b for a, b in zip(widths[:-1], widths[1:])]
    return sum(layers) + sum(layers) + sum(layers[1:])


def setup_train(widths, steps, scale, seed):
    torch.manual_seed(seed)
    batch, n_samples, warm = 128, 12800, 5
    steps = max(1, int(round(steps * scale)))
    x = torch.rand(n_samples, widths[0])
    y = torch.randint(0, widths[-1], (n_samples,))
    layers = []
    for l in range(len(widths) - 1):
        layers.append(nn.Linear(widths[l], widths[l + 1]))
        if l + 2 < len(widths):
            layers.append(nn.ReLU())
    model = nn.Sequential(*layers)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    loss_fn = nn.CrossEntropyLoss()  # softmax cross-entropy, mean over the batch

    def step(idx):
        xb, yb = x[idx], y[idx]
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(model(xb), yb)
        loss.backward()
        opt.step()

    def epoch(n_steps):
        perm = torch.randperm(n_samples)
        for i in range(n_steps):
            step(perm[i * batch:(i + 1) * batch])

    items = steps * batch
    flops = 2.0 * train_macs(widths) * items
    return (lambda: epoch(warm)), (lambda: epoch(steps)), items, flops


# ------------------------------------------------------------------ input gradients

def setup_grad(net, n, calls, scale, seed):
    torch.manual_seed(seed)
    calls = max(1, int(round(calls * scale)))
    classes = [3] if n == 1 else [r % net.n_classes for r in range(n)]
    x = torch.randn(n, net.widths[0]).requires_grad_()  # already in network space
    seed_dz = onehot_seed(n, classes, net.n_classes)
    sink = []

    def call():
        x.grad = None
        net.forward(x).backward(seed_dz)  # backward of z[r, classes[r]] for every row r
        return x.grad

    def loop(k):
        g = None
        for _ in range(k):
            g = call()
        sink[:] = [g]  # the last gradient is read (kept), so nothing is dead code

    items = calls * n
    flops = 2.0 * 2 * net.macs() * n * calls  # forward + input-gradient backward
    return (lambda: loop(max(2, calls // 20))), (lambda: loop(calls)), items, flops


# ------------------------------------------------------------------ class visualization

class Blur:
    """mv_gaussian_blur (src/visualize.c) of a batch of images [n][H*W*C] (HWC rows).

    gaussian_kernel: radius = min(ceil(3 sigma), min(W, H) - 1, 32), taps
    exp(-k^2 / (2 sigma^2)) normalised to sum 1 (in double, stored as float). blur_pass +
    reflect: a pass along x, then one along y, each with the half-sample symmetric extension
    ... 1 0 | 0 1 ... n-1 | n-1 n-2 ... at the borders. A pass with reflection is a linear map
    of one image row (or column), so it is built once as a [n][n] band matrix, reflected taps
    folded in, and each pass is one matrix product over the whole batch. (On this CPU that is
    much faster than gather + conv2d: oneDNN's convolution with one channel costs ~15x more at
    640 images.) The sums run in a different order than C's, so results agree to ~1e-7."""

    def __init__(self, sigma, W, H, C):
        self.W, self.H, self.C = W, H, C
        self.off = not (sigma > 0) or W < 2 or H < 2
        if self.off:
            return
        radius = min(int(math.ceil(3 * sigma)), min(W, H) - 1, 32)
        e = [math.exp(-0.5 * k * k / (sigma * sigma)) for k in range(-radius, radius + 1)]
        total = sum(e)
        taps = np.array([v / total for v in e], dtype=np.float32)
        self.radius, self.taps = radius, taps
        # out_row = in_row @ along_x_T ; out_columns = along_y @ in_columns
        self.along_x_T = torch.from_numpy(self.band(taps, radius, W).T.copy())
        self.along_y = torch.from_numpy(self.band(taps, radius, H))

    @staticmethod
    def reflect(i, n):
        period = 2 * n
        i %= period
        return i if i < n else period - 1 - i

    @staticmethod
    def band(taps, radius, n):
        m = np.zeros((n, n), dtype=np.float64)
        for i in range(n):
            for k in range(-radius, radius + 1):
                m[i, Blur.reflect(i + k, n)] += float(taps[k + radius])
        return m.astype(np.float32)

    def __call__(self, img):
        """A new blurred tensor [n][H*W*C]."""
        if self.off:
            return img
        n, H, W, C = img.shape[0], self.H, self.W, self.C
        if C == 1:
            # along x: [n*H][W] @ [W][W]; along y: [H][H] @ [H][n*W] (the batch's columns
            # side by side: one transposing copy, cheaper than a batched matmul at n = 640)
            t = torch.mm(img.view(n * H, W), self.along_x_T).view(n, H, W)
            t = torch.mm(self.along_y, t.transpose(0, 1).reshape(H, n * W))
            return t.view(H, n, W).transpose(0, 1).reshape(n, H * W)
        v = img.view(n, H, W, C).permute(0, 3, 1, 2)  # [n][C][H][W]
        t = torch.matmul(torch.matmul(self.along_y, v), self.along_x_T)
        return t.permute(0, 2, 3, 1).reshape(n, H * W * C)


# mv_viz_defaults() (src/visualize.c), with jitter 0 as the benchmark sets it; the settings
# that the defaults leave off (l2, octaves > 1, momentum/adam, progress, percentiles,
# decay_to_mean) are not implemented.
VIZ_DEFAULTS = dict(lr=0.02, decay=0.002, blur_every=4, blur_sigma=0.5, grad_blur=1.0,
                    clamp=True, start=0.5)


def visualize(net, targets, steps, cfg=VIZ_DEFAULTS):
    """Class visualization of mv_visualize (src/visualize.c) with mv_viz_defaults() and
    jitter 0, all rows in one batch; returns (images [n][D] in [0, 1], final logits [n][K],
    first step at which each target was the top class or -1). Per step, in C's order:

      init_images    every pixel 0.5 (MV_INIT_GRAY), kept as the decay reference (start)
      gradients      x = (pixel - mean) / std (mv_model_prepare_input); input gradient of
                     the logit z[r, target_r] (MV_OBJ_LOGIT through mv_input_grad) for every
                     row in one forward/backward; divided by std to get the pixel gradient
                     (l2 = 0; jitter 0, so roll is the identity and is skipped)
      note_top       bookkeeping: first step at which the target is the top logit
      update_row     mv_gaussian_blur of the gradient, sigma grad_blur = 1 (Blur above);
                     octave_project: nothing with one octave;
                     direction: plain optimizer (d = g), MV_STEP_NORMALIZED:
                     scale = lr * D / sum|d| per row (0 when the sum is 0);
                     p += scale * d - decay * (p - start);
                     every blur_every = 4 steps ((step + 1) % 4 == 0) mv_gaussian_blur of
                     the image with blur_sigma = 0.5; clamp to [0, 1]
                     (norm_pct, contrib_pct = 0: no clipping)
      final_scores   one forward pass of the final images (their logits)
    """
    n, D = len(targets), net.widths[0]
    W, H, C = net.width, net.height, net.channels
    mean = channel_tensor(net.mean, C)
    std = channel_tensor(net.std, C)
    grad_blur = Blur(cfg["grad_blur"], W, H, C)
    image_blur = Blur(cfg["blur_sigma"], W, H, C)
    lr_d, decay, blur_every = cfg["lr"] * D, cfg["decay"], cfg["blur_every"]
    target_t = torch.as_tensor(targets)
    seed_dz = onehot_seed(n, targets, net.n_classes)

    p = torch.full((n, D), cfg["start"])  # init_images
    start = p.clone()
    delta = torch.empty(n, D)
    x = torch.empty(n, D).requires_grad_()  # the network input, a leaf refilled every step
    first_top = torch.full((n,), -1, dtype=torch.long)
    for step in range(steps):
        with torch.no_grad():  # mv_model_prepare_input
            torch.sub(p, mean, out=x)
            x.div_(std)
        z = net.forward(x)
        (g,) = torch.autograd.grad(z, x, seed_dz)  # d z[r, target_r] / dx, all rows
        with torch.no_grad():
            g.div_(std)  # network space -> pixel space
            hit = z.argmax(1) == target_t  # note_top
            first_top.masked_fill_(hit & (first_top < 0), step)
            g = grad_blur(g)
            # direction, normalized: scale = lr * D / sum|d|, the sum accumulated in double as
            # in C (a zero gradient, sum < 1e-30, gets a finite scale and moves nothing)
            total = g.abs().sum(1, keepdim=True, dtype=torch.float64).clamp_min_(1e-30)
            scale = total.reciprocal_().mul_(lr_d).float()
            # p += scale * d - decay * (p - start), rounded like C: the small delta first
            torch.sub(p, start, out=delta)
            p.add_(delta.mul_(-decay).addcmul_(g, scale))
            if blur_every > 0 and (step + 1) % blur_every == 0:
                p = image_blur(p)
            if cfg["clamp"]:
                p.clamp_(0, 1)
    with torch.no_grad():  # final_scores
        torch.sub(p, mean, out=x)
        x.div_(std)
        logits = net.forward(x)
    return p, logits, first_top


def setup_viz(net, n, steps, scale, seed, saved):
    torch.manual_seed(seed)  # nothing is random here (gray start, no jitter); kept for form
    steps = max(1, int(round(steps * scale)))
    targets = [r % net.n_classes for r in range(n)]

    def run(k):
        saved[:] = list(visualize(net, targets, k))

    items = n * steps
    flops = 2.0 * 2 * net.macs() * n * steps  # forward + input-gradient backward, every step
    return (lambda: run(8)), (lambda: run(steps)), items, flops


# ------------------------------------------------------------------ driver

def blas_library():
    """The BLAS shared library mapped into this process (after a matmul has run)."""
    found = []
    try:
        with open("/proc/self/maps") as f:
            for line in f:
                path = line.split()[-1] if "/" in line else ""
                base = os.path.basename(path).lower()
                if any(k in base for k in ("blas", "mkl_rt", "mkl_core", "blis")) and path not in found:
                    found.append(path)
    except OSError:
        pass
    if not found:
        return "unknown", False
    real = [os.path.realpath(p) for p in found]
    # Debian's netlib reference BLAS lives in .../blas/libblas.so.3
    reference = any("/blas/libblas.so" in r for r in real) and not any(
        k in r for r in real for k in ("openblas", "mkl", "blis", "atlas"))
    return ",".join(real), reference


def main():
    ap = argparse.ArgumentParser(description="PyTorch side of mlpviz's benchmark")
    ap.add_argument("--model-dir", required=True, help="directory written by mlpviz export --npy")
    ap.add_argument("--runs", type=int, default=1, help="timed repetitions (default 1)")
    ap.add_argument("--torch-threads", type=int, default=1, help="torch.set_num_threads (default 1)")
    ap.add_argument("--seed", type=int, default=1, help="torch.manual_seed (default 1)")
    ap.add_argument("--save-viz", metavar="FILE.npy",
                    help="save the final viz-10 images [10][D] float32 in [0, 1]")
    ap.add_argument("--scale", type=float, default=1.0, help=argparse.SUPPRESS)  # quick tests
    ap.add_argument("workloads", nargs="+", metavar="WORKLOAD",
                    help=", ".join(WORKLOADS) + ", or all")
    args = ap.parse_args()
    names = list(WORKLOADS) if args.workloads == ["all"] else args.workloads
    for w in names:
        if w not in WORKLOADS:
            ap.error(f"unknown workload '{w}' ({', '.join(WORKLOADS)})")
    if args.runs < 1 or args.torch_threads < 1 or not args.scale > 0:
        ap.error("--runs, --torch-threads and --scale must be positive")

    torch.set_num_threads(args.torch_threads)
    net = Exported(args.model_dir)
    torch.mm(torch.ones(8, 8), torch.ones(8, 8))  # loads the BLAS
    blas, reference = blas_library()
    print(f"INFO torch={torch.__version__} threads={torch.get_num_threads()} "
          f"omp={os.environ.get('OMP_NUM_THREADS', '-')} "
          f"openblas={os.environ.get('OPENBLAS_NUM_THREADS', '-')} blas={blas}"
          f"{' (netlib reference BLAS: unoptimized)' if reference else ''}", flush=True)
    if reference:
        print("bench_torch: warning: torch runs on the netlib reference BLAS; its dense layers "
              "are far slower than with OpenBLAS (apt-get install libopenblas0-pthread)",
              file=sys.stderr)

    viz10 = []
    for w in names:
        saved = viz10 if w == "viz-10" else []
        if w == "train-small":
            warm, timed, items, flops = setup_train([784, 256, 128, 10], 100, args.scale, args.seed)
        elif w == "train-big":
            warm, timed, items, flops = setup_train([784, 1024, 1024, 10], 30, args.scale, args.seed)
        elif w.startswith("grad-"):
            n = int(w.split("-")[1])
            calls = {1: 2000, 10: 500, 256: 50}[n]
            warm, timed, items, flops = setup_grad(net, n, calls, args.scale, args.seed)
        else:
            n = int(w.split("-")[1])
            warm, timed, items, flops = setup_viz(net, n, 500, args.scale, args.seed, saved)
        warm()
        for _ in range(args.runs):
            t0 = time.perf_counter()
            timed()
            seconds = time.perf_counter() - t0
            print(f"RESULT {w} {seconds:.6f} {items} {flops:.6e}", flush=True)
        if w == "viz-10":
            images, logits, first_top = viz10
            t = [r % net.n_classes for r in range(images.shape[0])]
            print("viz-10 final logits of the targets: " +
                  " ".join(f"{logits[r, t[r]].item():.4f}" for r in range(len(t))))
            print("viz-10 first step with the target on top: " +
                  " ".join(str(int(v)) for v in first_top))

    if args.save_viz:
        if not viz10:  # viz-10 was not among the workloads: compute it once, untimed
            setup_viz(net, 10, 500, args.scale, args.seed, viz10)[1]()
        images = viz10[0].detach().numpy().astype(np.float32)
        np.save(args.save_viz, images)
        print(f"saved the viz-10 images {list(images.shape)} to {args.save_viz}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
