#!/usr/bin/python3
"""quality.py: independent quality scores of mlpviz's class images (docs/QUALITY.md).

usage: /usr/bin/python3 scripts/quality/quality.py --model MODEL [--starts LABEL:FLAGS ...]
           [--seeds N] [--extra FLAGS] [--mlpviz bin/mlpviz] [--json OUT] [--keep DIR]
       /usr/bin/python3 scripts/quality/quality.py --score-dir DIR [--model MODEL] [--json OUT]
       /usr/bin/python3 scripts/quality/quality.py --write-real DIR [--seeds N] [--split S]

For every start (a label and the flags it adds to `mlpviz visualize`), runs

    MLPVIZ visualize MODEL --class all --seeds N --scale 1 --quiet --out TMP EXTRA FLAGS

reads the N images of every class and scores them with measures that do not ask the model
that drew them:

- judge: the fraction of images that the CNN judge (judge.py, trained on the real
  Fashion-MNIST training images) gives their target class, the judge's mean probability of
  the target class, and how many classes have a majority of their images recognized;
- diversity: per class, the mean pairwise L2 distance between the class's images over the
  same for real training images of that class (a fixed sample), averaged over classes;
- copying: the mean L2 distance of an image to its nearest real training image (all
  60,000), beside the same for the real test images;
- CAS (Ravuri & Vinyals 2019): a fresh 784-256-10 relu MLP trained on the generated images
  with their target labels, tested on the 10,000 real test images, beside the same MLP
  trained on as many real training images per class (the baseline).

Prints a Markdown table (one row per start) and, with --json, writes every number.
--score-dir scores an existing folder of <class>-<seed>.png (or <class>.png) instead of
running mlpviz. --write-real writes N real images per class in that naming (the training
images the CAS baseline uses, or test images with --split test), to check the scores.

Exit status: 0 on success, 1 when the work failed (a missing file, mlpviz failing, an
unknown class), 2 for a bad command line.
"""
import argparse
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import judge  # noqa: E402  (sets OMP_WAIT_POLICY before torch is imported)
from judge import FASHION_NAMES, QualityError  # noqa: E402

DEFAULT_STARTS = ["gray:--init gray", "noise:--init noise", "class-sample:--init class-sample",
                  "class-sample-0:--init class-sample --steps 0"]
REAL_PER_CLASS = 200        # real training images per class for the diversity denominator
REAL_SEED = 12345           # fixes that sample and the CAS baseline's sample
CAS_SEED = 7
CAS_HIDDEN = 256
CAS_EPOCHS = 60
CAS_BATCH = 50
CAS_LR = 1e-3
TEST_NN_PER_CLASS = 100     # real test images per class for the copying reference
NN_BATCH = 500              # images per torch.cdist call against the training set
NOT_TARGETS = {"grid", "search", "filmstrip", "confusion", "saliency"}


def say(*parts):
    print(*parts, file=sys.stderr, flush=True)


# ---- inputs

def model_classes(mlpviz, model):
    """Class names of MODEL from `mlpviz info MODEL --json`, checked for 28x28 gray input."""
    try:
        p = subprocess.run([mlpviz, "info", model, "--json"], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True)
    except OSError as e:
        raise QualityError(f"{mlpviz}: cannot run: {e.strerror}") from None
    if p.returncode != 0:
        msg = p.stderr.strip().splitlines()
        raise QualityError(f"{model}: mlpviz info failed: {msg[-1] if msg else p.returncode}")
    try:
        info = json.loads(p.stdout)
        classes = list(info["classes"])
        shape = info["input"]
        dims = (shape["channels"], shape["height"], shape["width"])
    except (ValueError, KeyError, TypeError) as e:
        raise QualityError(f"{model}: unexpected output of mlpviz info --json: {e}") from None
    if dims != (1, 28, 28):
        raise QualityError(f"{model}: input is {dims[0]}x{dims[1]}x{dims[2]} "
                           "(channels x height x width); the judge needs 1x28x28 gray images")
    return classes


def fashion_labels(classes, where):
    """Fashion-MNIST label of each class name; a clear error for an unknown name."""
    labels = []
    for c in classes:
        if c not in FASHION_NAMES:
            raise QualityError(f"{where}: class '{c}' is not a Fashion-MNIST class; the judge "
                               f"knows {', '.join(FASHION_NAMES)}")
        labels.append(FASHION_NAMES.index(c))
    if len(set(labels)) != len(labels):
        raise QualityError(f"{where}: a class name appears twice")
    return labels


def read_png(path):
    import numpy as np
    from PIL import Image
    try:
        with Image.open(path) as im:
            if im.size != (28, 28):
                raise QualityError(f"{path}: {im.size[0]}x{im.size[1]} pixels, expected 28x28 "
                                   "(visualize with --scale 1)")
            return np.asarray(im.convert("L"), dtype=np.float32) / 255.0
    except (OSError, ValueError) as e:
        raise QualityError(f"{path}: cannot read as an image: {e}") from None


def list_folder(folder):
    """{class: {seed: path}} of a visualize folder: <class>-<seed>.png, else <class>.png."""
    try:
        names = sorted(os.listdir(folder))
    except OSError as e:
        raise QualityError(f"{folder}: {e.strerror}") from None
    pngs = [n for n in names if n.endswith(".png") and not n.startswith(".")]
    found = {}
    for n in pngs:
        m = re.fullmatch(r"(.+)-(\d+)\.png", n)
        if m and not m.group(1).startswith("unit-"):
            found.setdefault(m.group(1), {})[int(m.group(2))] = os.path.join(folder, n)
    if not found:
        for n in pngs:
            stem = n[:-4]
            if stem not in NOT_TARGETS and not stem.startswith("unit-"):
                found[stem] = {0: os.path.join(folder, n)}
    if not found:
        raise QualityError(f"{folder}: no <class>-<seed>.png or <class>.png images")
    return found


def load_images(folder, classes=None, seeds=None):
    """(images (n, 28, 28), fashion labels (n,), class names) of a folder, ordered by
    Fashion-MNIST label then seed. With classes/seeds, exactly those files must exist."""
    import numpy as np
    found = list_folder(folder)
    if classes is None:
        classes = sorted(found)
    else:
        extra = sorted(set(found) - set(classes))
        if extra:
            raise QualityError(f"{folder}: images of classes the model does not have: "
                               f"{', '.join(extra)}")
    labels = fashion_labels(classes, folder)
    xs, ys = [], []
    for label, c in sorted(zip(labels, classes)):
        files = found.get(c, {})
        if seeds is not None:
            want = [0] if seeds == 1 else list(range(seeds))
            missing = [s for s in want if s not in files]
            if missing:
                name = f"{c}.png" if seeds == 1 else f"{c}-{missing[0]}.png"
                raise QualityError(f"{os.path.join(folder, name)}: missing "
                                   f"({len(missing)} of {len(want)} images of {c})")
            files = {s: files[s] for s in want}
        if not files:
            raise QualityError(f"{folder}: no image of class {c}")
        for s in sorted(files):
            xs.append(read_png(files[s]))
            ys.append(label)
    return np.stack(xs), np.array(ys, dtype=np.int64), classes


def own_probabilities(folder):
    """Mean probability the drawing model gives its targets, from report.json (or None)."""
    path = os.path.join(folder, "report.json")
    if not os.path.isfile(path):
        return None
    try:
        with open(path) as f:
            rep = json.load(f)
        probs = [float(im["prob"]) for im in rep["images"]]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return sum(probs) / len(probs) if probs else None


# ---- references computed once

class Reference:
    """The real data every start is compared with."""

    def __init__(self, data_dir, judge_weights, cas_runs):
        import numpy as np
        import torch
        t0 = time.time()
        self.net = judge.load_judge(judge_weights)
        self.xtr, self.ytr = judge.read_idx_split(data_dir, "train")
        self.xte, self.yte = judge.read_idx_split(data_dir, "test")
        self.train_flat = torch.from_numpy(self.xtr.reshape(len(self.xtr), -1))
        rng = np.random.default_rng(REAL_SEED)
        # A fixed random order of each class's training images: its first REAL_PER_CLASS
        # are the diversity sample, its first K the CAS baseline's K per class.
        self.order = {c: rng.permutation(np.flatnonzero(self.ytr == c)) for c in range(10)}
        self.real_pairwise = {}
        for c in range(10):
            self.real_pairwise[c] = mean_pairwise(self.xtr[self.order[c][:REAL_PER_CLASS]])
        p = judge.probabilities(self.net, self.xte)
        self.judge_test_accuracy = float((p.argmax(1) == self.yte).mean())
        self.judge_test_mean_p = float(p[np.arange(len(self.yte)), self.yte].mean())
        # The copying reference: the first TEST_NN_PER_CLASS test images of each class (the
        # whole test set takes a minute on 2 cores and moves the mean by about 0.02).
        idx = np.concatenate([np.flatnonzero(self.yte == c)[:TEST_NN_PER_CLASS]
                              for c in range(10)])
        self.test_nn = float(nearest_train(self.train_flat, self.xte[idx]).mean())
        self._cas_baseline = {}
        self.cas_runs = cas_runs
        say(f"quality: references ready in {time.time() - t0:.0f} s")

    def real_sample(self, per_class):
        """per_class real training images of each class, ordered by label then rank."""
        import numpy as np
        idx = np.concatenate([self.order[c][:per_class] for c in range(10)])
        return self.xtr[idx], self.ytr[idx]

    def cas_baseline(self, per_class):
        if per_class not in self._cas_baseline:
            x, y = self.real_sample(per_class)
            self._cas_baseline[per_class] = cas(x, y, self.xte, self.yte, self.cas_runs)
        return self._cas_baseline[per_class]


def mean_pairwise(images):
    """Mean L2 distance over the pairs of distinct images (None for fewer than 2)."""
    import torch
    n = len(images)
    if n < 2:
        return None
    x = torch.from_numpy(images.reshape(n, -1)).double()
    d = torch.cdist(x, x)
    return float(d.sum() / (n * (n - 1)))


def nearest_train(train_flat, images):
    """L2 distance of each image to its nearest training image (numpy, float)."""
    import numpy as np
    import torch
    x = torch.from_numpy(np.ascontiguousarray(images.reshape(len(images), -1)))
    out = []
    for i in range(0, len(x), NN_BATCH):
        d = torch.cdist(x[i:i + NN_BATCH], train_flat, compute_mode="use_mm_for_euclid_dist")
        out.append(d.min(dim=1).values.clamp_min(0))
    return torch.cat(out).numpy().astype(np.float64)


def cas(x, y, xte, yte, runs):
    """Test accuracies on the real test set of `runs` fresh MLPs trained on (x, y), seeds
    CAS_SEED, CAS_SEED + 1, ...: one training run's accuracy moves by about 0.005 with its
    seed, as much as the differences some comparisons look for."""
    return [cas_once(x, y, xte, yte, CAS_SEED + i) for i in range(runs)]


def cas_once(x, y, xte, yte, seed):
    """Test accuracy on the real test set of a fresh MLP trained on (x, y)."""
    import torch
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, CAS_HIDDEN),
                              torch.nn.ReLU(), torch.nn.Linear(CAS_HIDDEN, 10))
    opt = torch.optim.Adam(net.parameters(), lr=CAS_LR)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    net.train()
    for _ in range(CAS_EPOCHS):
        order = torch.randperm(len(xt), generator=gen)
        for i in range(0, len(order), CAS_BATCH):
            idx = order[i:i + CAS_BATCH]
            loss = torch.nn.functional.cross_entropy(net(xt[idx]), yt[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    net.eval()
    with torch.no_grad():
        pred = net(torch.from_numpy(xte)).argmax(1).numpy()
    return float((pred == yte).mean())


# ---- scoring

def score(ref, x, y):
    """Every measure of images x (n, 28, 28) with Fashion-MNIST target labels y."""
    import numpy as np
    p = judge.probabilities(ref.net, x)
    hit = p.argmax(1) == y
    p_target = p[np.arange(len(y)), y]
    per_class = {}
    ratios = []
    present = sorted(set(int(c) for c in y))
    for c in present:
        m = y == c
        pw = mean_pairwise(x[m])
        ratio = None if pw is None else pw / ref.real_pairwise[c]
        if ratio is not None:
            ratios.append(ratio)
        per_class[FASHION_NAMES[c]] = {
            "images": int(m.sum()),
            "judge_recognized": float(hit[m].mean()),
            "judge_mean_prob": float(p_target[m].mean()),
            "judge_top_class": FASHION_NAMES[int(np.bincount(p.argmax(1)[m], minlength=10)
                                                 .argmax())],
            "diversity": ratio,
        }
    nn = nearest_train(ref.train_flat, x)
    counts = np.bincount(y, minlength=10)[present]
    per_class_k = int(counts.min())
    res = {
        "images": int(len(y)),
        "classes": len(present),
        "judge_recognized": float(hit.mean()),
        "judge_mean_prob": float(p_target.mean()),
        "classes_majority_recognized": sum(1 for v in per_class.values()
                                           if v["judge_recognized"] > 0.5),
        "diversity": float(np.mean(ratios)) if ratios else None,
        "nearest_train_l2_mean": float(nn.mean()),
        "nearest_train_l2_median": float(np.median(nn)),
        "cas": None, "cas_sd": None, "cas_runs": None, "cas_baseline": None,
        "cas_baseline_sd": None, "cas_baseline_runs": None, "cas_real_per_class": None,
        "per_class": per_class,
    }
    if len(present) == 10 and counts.min() == counts.max():
        runs = cas(x, y, ref.xte, ref.yte, ref.cas_runs)
        base = ref.cas_baseline(per_class_k)
        res.update(cas=float(np.mean(runs)), cas_sd=float(np.std(runs)), cas_runs=runs,
                   cas_baseline=float(np.mean(base)), cas_baseline_sd=float(np.std(base)),
                   cas_baseline_runs=base)
        res["cas_real_per_class"] = per_class_k
    return res


def run_visualize(args, model, flags, out):
    cmd = [args.mlpviz, "visualize", model, "--class", "all", "--seeds", str(args.seeds),
           "--scale", "1", "--quiet", "--out", out] + shlex.split(args.extra) + flags
    say("quality: " + " ".join(shlex.quote(c) for c in cmd))
    t0 = time.time()
    with open(os.path.join(out, "..", os.path.basename(out) + ".log"), "w") as log:
        try:
            p = subprocess.run(cmd, stdout=log, stderr=subprocess.PIPE, text=True)
        except OSError as e:
            raise QualityError(f"{args.mlpviz}: cannot run: {e.strerror}") from None
    if p.returncode != 0:
        lines = p.stderr.strip().splitlines()
        raise QualityError(f"mlpviz visualize failed (exit {p.returncode}) for "
                           f"'{' '.join(flags)}': {lines[-1] if lines else 'no message'}")
    return cmd, time.time() - t0


def parse_starts(items):
    starts = []
    for s in items:
        label, sep, flags = s.partition(":")
        if not sep or not label.strip():
            raise QualityError(f"--starts '{s}': expected LABEL:FLAGS, e.g. 'gray:--init gray'")
        try:
            starts.append((label.strip(), shlex.split(flags)))
        except ValueError as e:
            raise QualityError(f"--starts '{s}': {e}") from None
    labels = [s[0] for s in starts]
    if len(set(labels)) != len(labels):
        raise QualityError("--starts: two starts have the same label")
    return starts


# ---- output

def fmt(v, digits=3):
    return "–" if v is None else f"{v:.{digits}f}"


def table(rows, ref):
    lines = ["| start | images | judge recognized | judge mean p | classes (majority) | "
             "diversity | NN L2 to train | CAS | CAS real | own mean p |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        s = r["scores"]
        cas_real = (f"{fmt(s['cas_baseline'])} ({s['cas_real_per_class']}/class)"
                    if s["cas_baseline"] is not None else "–")
        lines.append(
            f"| {r['start']} | {s['images']} | {fmt(s['judge_recognized'])} | "
            f"{fmt(s['judge_mean_prob'])} | {s['classes_majority_recognized']} of "
            f"{s['classes']} | {fmt(s['diversity'])} | {fmt(s['nearest_train_l2_mean'], 2)} | "
            f"{fmt(s['cas'])}{' ± ' + fmt(s['cas_sd']) if s['cas_sd'] is not None else ''} | {cas_real} | {fmt(r.get('own_mean_prob'))} |")
    lines.append("")
    lines.append("Judge recognition per class:")
    lines.append("")
    shown = [n for n in FASHION_NAMES if any(n in r["scores"]["per_class"] for r in rows)]
    lines.append("| start | " + " | ".join(shown) + " |")
    lines.append("|---|" + "---|" * len(shown))
    for r in rows:
        pc = r["scores"]["per_class"]
        lines.append(f"| {r['start']} | " + " | ".join(
            fmt(pc[n]["judge_recognized"], 2) if n in pc else "–" for n in shown) + " |")
    lines.append("")
    lines.append(f"Real test images: judge accuracy {ref.judge_test_accuracy:.4f} "
                 f"(mean p {ref.judge_test_mean_p:.3f}); NN L2 to train "
                 f"{ref.test_nn:.2f} ({TEST_NN_PER_CLASS} per class). Diversity 1 = as varied as {REAL_PER_CLASS} real "
                 "training images of the class. \"own mean p\" is the drawing model's own "
                 "confidence, shown for contrast: it is not a quality score. CAS: mean ± sd "
                 f"over {ref.cas_runs} training runs of the CAS classifier, seeds "
                 f"{CAS_SEED}..{CAS_SEED + ref.cas_runs - 1}.")
    return "\n".join(lines)


def write_json(path, doc):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(doc, f, indent=2)
        f.write("\n")
    os.replace(tmp, path)


def write_real(args):
    """Writes --seeds real images per class as <class>-<seed>.png into --write-real DIR."""
    import numpy as np
    from PIL import Image
    if args.split == "train":
        ref_order_rng = np.random.default_rng(REAL_SEED)
        x, y = judge.read_idx_split(args.data, "train")
        order = {c: ref_order_rng.permutation(np.flatnonzero(y == c)) for c in range(10)}
    else:
        x, y = judge.read_idx_split(args.data, "test")
        order = {c: np.flatnonzero(y == c) for c in range(10)}
    os.makedirs(args.write_real, exist_ok=True)
    for c in range(10):
        idx = order[c][:args.seeds]
        if len(idx) < args.seeds:
            raise QualityError(f"{args.split} has only {len(idx)} images of {FASHION_NAMES[c]}")
        for s, i in enumerate(idx):
            name = f"{FASHION_NAMES[c]}-{s}.png" if args.seeds > 1 else f"{FASHION_NAMES[c]}.png"
            img = np.rint(x[i] * 255).astype(np.uint8)
            Image.fromarray(img, mode="L").save(os.path.join(args.write_real, name))
    print(f"quality: wrote {10 * args.seeds} real {args.split} images to {args.write_real}")
    return 0


def main(argv=None):
    ap = argparse.ArgumentParser(prog="quality.py", description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", help="the mlpviz model that draws (.mlp)")
    ap.add_argument("--mlpviz", default="bin/mlpviz", help="the mlpviz binary (bin/mlpviz)")
    ap.add_argument("--seeds", type=int, default=100, help="images per class (100)")
    ap.add_argument("--cas-runs", type=int, default=5, help="CAS training runs, each with "
                    "its own seed; the table shows their mean +- sd (5)")
    ap.add_argument("--starts", nargs="+", metavar="LABEL:FLAGS", default=None,
                    help="starts to score, each a label and the visualize flags it adds "
                         f"(default: {' '.join(repr(s) for s in DEFAULT_STARTS)})")
    ap.add_argument("--extra", default="", help="flags added to every visualize run, before "
                    "the start's (e.g. '--preset default'; write --extra=--FLAG for one flag alone)")
    ap.add_argument("--score-dir", metavar="DIR", nargs="+",
                    help="score existing folders of <class>-<seed>.png instead of running mlpviz")
    ap.add_argument("--json", metavar="OUT", help="write every number to this JSON file")
    ap.add_argument("--keep", metavar="DIR", help="keep the images in DIR/<start>/ (default: "
                    "a temporary folder, removed)")
    ap.add_argument("--data", default=judge.DEFAULT_DATA,
                    help=f"folder of the Fashion-MNIST IDX .gz files ({judge.DEFAULT_DATA})")
    ap.add_argument("--judge", default=judge.DEFAULT_WEIGHTS, help="the judge's weights")
    ap.add_argument("--title", default=None, help="a line printed above the table")
    ap.add_argument("--write-real", metavar="DIR", help="write --seeds real images per class "
                    "as <class>-<seed>.png and stop (for checking the scores)")
    ap.add_argument("--split", choices=["train", "test"], default="train",
                    help="which real images --write-real writes (train: the CAS baseline's)")
    args = ap.parse_args(argv)
    if args.seeds < 1:
        ap.error("--seeds must be at least 1")
    if args.cas_runs < 1:
        ap.error("--cas-runs must be at least 1")
    if not (args.model or args.score_dir or args.write_real):
        ap.error("give --model (to run mlpviz), --score-dir or --write-real")
    try:
        if args.write_real:
            return write_real(args)
        return run(args)
    except QualityError as e:
        print(f"quality: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


def run(args):
    t_start = time.time()
    starts = parse_starts(args.starts or DEFAULT_STARTS) if not args.score_dir else []
    classes = None
    if args.model or not args.score_dir:
        if not os.path.isfile(args.model):
            raise QualityError(f"{args.model}: no such file")
        if not (os.path.isfile(args.mlpviz) and os.access(args.mlpviz, os.X_OK)):
            raise QualityError(f"{args.mlpviz}: no such executable (build it: make bin/mlpviz)")
        classes = model_classes(args.mlpviz, args.model)
        fashion_labels(classes, args.model)
    for d in args.score_dir or []:
        if not os.path.isdir(d):
            raise QualityError(f"{d}: no such folder")
    for path in (args.judge, os.path.join(args.data, "train-images-idx3-ubyte.gz")):
        if not os.path.isfile(path):
            hint = ("train it: /usr/bin/python3 scripts/quality/judge.py train"
                    if path == args.judge else
                    "install Debian's dataset-fashion-mnist")
            raise QualityError(f"{path}: no such file ({hint})")
    # Folders to score are read first, so that a bad one fails before the minute of setup.
    folders = [(d, load_images(d, classes)) for d in args.score_dir or []]
    ref = Reference(args.data, args.judge, args.cas_runs)
    rows = []
    if args.score_dir:
        for d, (x, y, _) in folders:
            rows.append({"start": os.path.basename(os.path.normpath(d)) or d, "folder": d,
                         "own_mean_prob": own_probabilities(d), "scores": score(ref, x, y)})
    else:
        work = tempfile.mkdtemp(prefix="mlpviz-quality-")
        try:
            for label, flags in starts:
                safe = re.sub(r"[^A-Za-z0-9._-]", "_", label)
                out = os.path.join(args.keep, safe) if args.keep else os.path.join(work, safe)
                if os.path.isdir(out):
                    shutil.rmtree(out)
                os.makedirs(out)
                cmd, seconds = run_visualize(args, args.model, flags, out)
                x, y, _ = load_images(out, classes, args.seeds)
                t0 = time.time()
                s = score(ref, x, y)
                say(f"quality: {label}: drawn in {seconds:.0f} s, scored in "
                    f"{time.time() - t0:.0f} s")
                rows.append({"start": label, "flags": " ".join(flags),
                             "command": " ".join(shlex.quote(c) for c in cmd),
                             "visualize_seconds": round(seconds, 1),
                             "own_mean_prob": own_probabilities(out), "scores": s})
        finally:
            shutil.rmtree(work, ignore_errors=True)
    if args.title:
        print(f"\n{args.title}\n")
    print(table(rows, ref))
    if args.json:
        record_path = os.path.splitext(args.judge)[0] + ".json"
        judge_record = None
        if os.path.isfile(record_path):
            with open(record_path) as f:
                judge_record = json.load(f)
        write_json(args.json, {
            "date": time.strftime("%Y-%m-%d %H:%M"),
            "command": " ".join(shlex.quote(a) for a in sys.argv),
            "model": args.model, "seeds": args.seeds, "extra": args.extra,
            "judge": {"weights": os.path.relpath(args.judge), "test_accuracy": ref.judge_test_accuracy,
                      "test_mean_prob_true_class": ref.judge_test_mean_p,
                      "record": judge_record},
            "reference": {"test_nearest_train_l2_mean": ref.test_nn,
                          "test_images_per_class_for_nn": TEST_NN_PER_CLASS,
                          "real_per_class_for_diversity": REAL_PER_CLASS,
                          "real_mean_pairwise_l2": {FASHION_NAMES[c]: v for c, v in
                                                    ref.real_pairwise.items()},
                          "cas_baseline": {str(k): v for k, v in ref._cas_baseline.items()}},
            "cas_recipe": {"mlp": f"784-{CAS_HIDDEN}-10 relu", "optimizer": f"Adam lr {CAS_LR}",
                           "epochs": CAS_EPOCHS, "batch": CAS_BATCH, "seed": CAS_SEED,
                           "runs": args.cas_runs},
            "starts": rows,
            "seconds": round(time.time() - t_start, 1),
        })
        say(f"quality: wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
