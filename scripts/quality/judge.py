#!/usr/bin/python3
"""judge.py: the independent judge of mlpviz's class images, a small CNN in PyTorch.

usage: /usr/bin/python3 scripts/quality/judge.py train [--data DIR] [--out FILE] [--epochs N]
       /usr/bin/python3 scripts/quality/judge.py test  [--data DIR] [--weights FILE]

The judge is of another family than the multilayer perceptrons it judges: two convolution
blocks (each two 3x3 convolutions with batch normalization and relu, then 2x2 max pooling;
16 then 32 channels) and a dense head 1568-64-10 with dropout. It is trained on the 60,000
real Fashion-MNIST training images, read here with numpy straight from the IDX files of
Debian's dataset-fashion-mnist package (nothing of mlpviz's C code is involved), pixels in
[0, 1], 28x28 gray, labels in the Fashion-MNIST order (0 T-shirt/top ... 9 Ankle boot).

`train` retrains it from a fixed seed (Adam, one-cycle schedule, random horizontal flips, a
fixed number of epochs, no early stopping: the test set is looked at once, at the end) and
writes the weights (judge.npz beside this file, float32, no pickle) and a record of the run
(judge.json: architecture, command, epochs, seconds, test accuracy). `test` re-measures the
saved weights on the 10,000 test images.

The module also serves quality.py: load_judge(), probabilities(), read_idx_split(),
FASHION_NAMES.

Exit status: 0 on success, 1 when the work failed (a missing file, a bad IDX file), 2 for a
bad command line.
"""
import argparse
import gzip
import json
import os
import platform
import struct
import sys
import time

# Threads that wait for work sleep instead of spinning: on a machine shared with another
# job (a training run), spinning OpenMP threads made an epoch five times slower.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_DATA = "/usr/share/datasets/fashion-mnist"
DEFAULT_WEIGHTS = os.path.join(HERE, "judge.npz")
SEED = 20240611
EPOCHS = 6
BATCH = 128
MAX_LR = 3e-3
THREADS = 2

# Fashion-MNIST labels 0..9, as scripts/get-fashion-mnist.sh names mlpviz's class folders.
FASHION_NAMES = ["tshirt_top", "trouser", "pullover", "dress", "coat", "sandal", "shirt",
                 "sneaker", "bag", "ankle_boot"]
# The names of the Fashion-MNIST documentation, for the reader.
FASHION_TITLES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
                  "Sneaker", "Bag", "Ankle boot"]


class QualityError(Exception):
    """A failure to report as one line (a missing file, a malformed input)."""


# ---- data

def _read_gz(path):
    if not os.path.isfile(path):
        raise QualityError(f"{path}: no such file (install Debian's dataset-fashion-mnist: "
                           "scripts/install-deps.sh dataset-fashion-mnist)")
    try:
        with gzip.open(path, "rb") as f:
            return f.read()
    except (OSError, EOFError) as e:
        raise QualityError(f"{path}: cannot read: {e}") from None


def read_idx_images(path):
    """uint8 array (n, 28, 28) of an IDX3 file (gzip'd)."""
    import numpy as np
    raw = _read_gz(path)
    if len(raw) < 16:
        raise QualityError(f"{path}: too short for an IDX3 header")
    magic, n, rows, cols = struct.unpack(">IIII", raw[:16])
    if magic != 0x00000803:
        raise QualityError(f"{path}: not an IDX3 ubyte file (magic 0x{magic:08x})")
    if (rows, cols) != (28, 28):
        raise QualityError(f"{path}: images are {rows}x{cols}, expected 28x28")
    if len(raw) != 16 + n * rows * cols:
        raise QualityError(f"{path}: {len(raw)} bytes, expected {16 + n * rows * cols}")
    return np.frombuffer(raw, dtype=np.uint8, offset=16).reshape(n, rows, cols)


def read_idx_labels(path):
    """uint8 array (n,) of an IDX1 file (gzip'd)."""
    import numpy as np
    raw = _read_gz(path)
    if len(raw) < 8:
        raise QualityError(f"{path}: too short for an IDX1 header")
    magic, n = struct.unpack(">II", raw[:8])
    if magic != 0x00000801:
        raise QualityError(f"{path}: not an IDX1 ubyte file (magic 0x{magic:08x})")
    if len(raw) != 8 + n:
        raise QualityError(f"{path}: {len(raw)} bytes, expected {8 + n}")
    labels = np.frombuffer(raw, dtype=np.uint8, offset=8)
    if labels.size and labels.max() > 9:
        raise QualityError(f"{path}: label {labels.max()} out of 0..9")
    return labels


def read_idx_split(data_dir, split):
    """(images float32 (n, 28, 28) in [0, 1], labels int64 (n,)) of 'train' or 'test'."""
    import numpy as np
    prefix = {"train": "train", "test": "t10k"}[split]
    x = read_idx_images(os.path.join(data_dir, f"{prefix}-images-idx3-ubyte.gz"))
    y = read_idx_labels(os.path.join(data_dir, f"{prefix}-labels-idx1-ubyte.gz"))
    if len(x) != len(y):
        raise QualityError(f"{data_dir}: {split} has {len(x)} images but {len(y)} labels")
    return x.astype(np.float32) / 255.0, y.astype(np.int64)


# ---- the network

def build_net():
    import torch.nn as nn

    def block(cin, cout):
        return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(),
                nn.Conv2d(cout, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(),
                nn.MaxPool2d(2)]

    return nn.Sequential(*block(1, 16), *block(16, 32), nn.Flatten(), nn.Dropout(0.3),
                         nn.Linear(32 * 7 * 7, 64), nn.ReLU(), nn.Dropout(0.3),
                         nn.Linear(64, 10))


ARCHITECTURE = ("conv3x3(1->16)+BN+relu, conv3x3(16->16)+BN+relu, maxpool2; "
                "conv3x3(16->32)+BN+relu, conv3x3(32->32)+BN+relu, maxpool2; "
                "dropout 0.3, dense 1568->64 relu, dropout 0.3, dense 64->10")


def setup_torch():
    import torch
    torch.set_num_threads(THREADS)
    torch.use_deterministic_algorithms(True)
    return torch


def load_judge(path=DEFAULT_WEIGHTS):
    """The trained judge in eval mode (raises QualityError when the weights are missing)."""
    import numpy as np
    torch = setup_torch()
    if not os.path.isfile(path):
        raise QualityError(f"{path}: no such file (train the judge: "
                           "/usr/bin/python3 scripts/quality/judge.py train)")
    net = build_net()
    try:
        with np.load(path, allow_pickle=False) as z:
            state = {k: torch.from_numpy(z[k].copy()) for k in z.files}
        net.load_state_dict(state)
    except (OSError, ValueError, KeyError, RuntimeError) as e:
        raise QualityError(f"{path}: not the judge's weights: {e}") from None
    net.eval()
    return net


def probabilities(net, images, batch=1000):
    """Softmax outputs (n, 10) as numpy for images (n, 28, 28) in [0, 1] (numpy or torch)."""
    import numpy as np
    import torch
    x = torch.as_tensor(np.asarray(images, dtype=np.float32))
    out = []
    with torch.no_grad():
        for i in range(0, len(x), batch):
            out.append(torch.softmax(net(x[i:i + batch].unsqueeze(1)), dim=1))
    if not out:
        return np.zeros((0, 10), dtype=np.float32)
    return torch.cat(out).numpy()


def accuracy(net, images, labels):
    import numpy as np
    p = probabilities(net, images)
    return float((p.argmax(1) == labels).mean()), float(np.mean(p[np.arange(len(labels)), labels]))


# ---- commands

def cmd_train(args):
    import numpy as np
    torch = setup_torch()
    torch.manual_seed(SEED)
    gen = torch.Generator().manual_seed(SEED)
    t0 = time.time()
    xtr, ytr = read_idx_split(args.data, "train")
    xte, yte = read_idx_split(args.data, "test")
    xtr_t = torch.from_numpy(xtr).unsqueeze(1)
    ytr_t = torch.from_numpy(ytr)
    net = build_net()
    n_params = sum(p.numel() for p in net.parameters())
    opt = torch.optim.Adam(net.parameters(), lr=MAX_LR / 25)
    steps_per_epoch = (len(xtr) + BATCH - 1) // BATCH
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=MAX_LR, epochs=args.epochs,
                                                steps_per_epoch=steps_per_epoch)
    print(f"judge: {n_params} parameters; {args.epochs} epochs of {len(xtr)} images, "
          f"batch {BATCH}, seed {SEED}, {torch.get_num_threads()} threads", flush=True)
    for epoch in range(args.epochs):
        net.train()
        order = torch.randperm(len(xtr), generator=gen)
        total, correct, loss_sum = 0, 0, 0.0
        for i in range(0, len(order), BATCH):
            idx = order[i:i + BATCH]
            xb, yb = xtr_t[idx], ytr_t[idx]
            flip = torch.rand(len(idx), generator=gen) < 0.5
            xb = torch.where(flip[:, None, None, None], xb.flip(3), xb)
            out = net(xb)
            loss = torch.nn.functional.cross_entropy(out, yb)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            total += len(idx)
            correct += int((out.argmax(1) == yb).sum())
            loss_sum += float(loss) * len(idx)
        print(f"judge: epoch {epoch + 1}/{args.epochs}: train loss {loss_sum / total:.4f}, "
              f"train accuracy {correct / total:.4f}, {time.time() - t0:.0f} s", flush=True)
    net.eval()
    acc, mean_p = accuracy(net, xte, yte)
    seconds = time.time() - t0
    state = {k: v.detach().cpu().numpy() for k, v in net.state_dict().items()}
    tmp = args.out + ".tmp.npz"
    np.savez(tmp, **state)
    os.replace(tmp, args.out)
    per_class = {}
    pred = probabilities(net, xte).argmax(1)
    for c, name in enumerate(FASHION_NAMES):
        per_class[name] = round(float((pred[yte == c] == c).mean()), 4)
    record = {
        "weights": os.path.basename(args.out),
        "weights_bytes": os.path.getsize(args.out),
        "architecture": ARCHITECTURE,
        "parameters": n_params,
        "command": "/usr/bin/python3 scripts/quality/judge.py train"
                   + (f" --epochs {args.epochs}" if args.epochs != EPOCHS else ""),
        "seed": SEED, "epochs": args.epochs, "batch": BATCH,
        "optimizer": f"Adam, one-cycle schedule to lr {MAX_LR}", "augmentation": "horizontal flips",
        "threads": torch.get_num_threads(),
        "train_seconds": round(seconds, 1),
        "test_accuracy": round(acc, 4),
        "test_mean_prob_true_class": round(mean_p, 4),
        "test_accuracy_per_class": per_class,
        "torch": torch.__version__, "numpy": np.__version__, "machine": platform.processor()
        or platform.machine(),
        "date": time.strftime("%Y-%m-%d"),
    }
    record_path = os.path.splitext(args.out)[0] + ".json"
    with open(record_path + ".tmp", "w") as f:
        json.dump(record, f, indent=2)
        f.write("\n")
    os.replace(record_path + ".tmp", record_path)
    print(f"judge: test accuracy {acc:.4f} on {len(yte)} real test images "
          f"(mean probability of the true class {mean_p:.4f}); {seconds:.0f} s; "
          f"wrote {args.out} ({record['weights_bytes']} bytes) and {record_path}")
    return 0


def cmd_test(args):
    net = load_judge(args.weights)
    xte, yte = read_idx_split(args.data, "test")
    acc, mean_p = accuracy(net, xte, yte)
    print(f"judge: test accuracy {acc:.4f} on {len(yte)} real test images "
          f"(mean probability of the true class {mean_p:.4f})")
    return 0


def main(argv=None):
    ap = argparse.ArgumentParser(prog="judge.py", description="The CNN judge of class images.")
    sub = ap.add_subparsers(dest="cmd", required=True)
    tr = sub.add_parser("train", help="retrain the judge and write its weights")
    tr.add_argument("--data", default=DEFAULT_DATA, help="folder of the IDX .gz files")
    tr.add_argument("--out", default=DEFAULT_WEIGHTS, help="weights file (.npz)")
    tr.add_argument("--epochs", type=int, default=EPOCHS)
    te = sub.add_parser("test", help="test accuracy of the saved judge")
    te.add_argument("--data", default=DEFAULT_DATA)
    te.add_argument("--weights", default=DEFAULT_WEIGHTS)
    args = ap.parse_args(argv)
    if getattr(args, "epochs", 1) < 1:
        ap.error("--epochs must be at least 1")
    try:
        return cmd_train(args) if args.cmd == "train" else cmd_test(args)
    except QualityError as e:
        print(f"judge: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
