#!/usr/bin/python3
"""run.py: mlpviz against PyTorch, workload by workload, interleaved.

usage: /usr/bin/python3 scripts/bench/run.py [--runs R] [--bench build/opt/bench]
           [--mlpviz bin/mlpviz] [--model models/fashion-mnist.mlp] [--workloads a,b,c]
           [--no-torch] [--markdown] [--python /usr/bin/python3] [--torch-blas-dir DIR]

Exports the model to a temporary directory (mlpviz export --npy), asks the C bench for the
machine's peak (`BENCH peak` prints `PEAK <gflops_1_core> <gflops_all_cores> <threads>`), then
runs R rounds; in each round every workload runs once in the C bench and once in each torch
configuration, one process each, one after the other. The machine's speed drifts between
runs, so the ratios are taken within a round (mlpviz / the best torch configuration, in
items per second) and their median is reported. train-big and viz-640 are slow: they run
min(R, 3) rounds.

Both benches print `RESULT <workload> <seconds> <items> <flops>` per timed repetition. The
C bench may also print `THREADS <n>` (the threads the workload used) to choose which peak its
GFLOP/s are compared with; without it grad-1 is compared with the one-core peak and the
other workloads with the all-cores peak.

Exit status: 0 when every process succeeded, 1 when any failed, 130 when interrupted.
"""
import argparse
import os
import platform
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile

WORKLOADS = ["train-small", "train-big", "grad-1", "grad-10", "grad-256", "viz-10", "viz-640"]
SLOW = {"train-big", "viz-640"}
SLOW_ROUNDS = 3
TARGETS = {"train-small": 1.5, "train-big": 1.5, "grad-1": 10.0, "grad-10": 5.0,
           "grad-256": None, "viz-10": 5.0, "viz-640": 1.5}
SINGLE_THREAD_DEFAULT = {"grad-1"}  # peak used when the C bench does not say
TORCH_ENV = {"OMP_NUM_THREADS": "2", "OPENBLAS_NUM_THREADS": "2"}
TORCH_CONFIGS = [("torch-1t", 1), ("torch-2t", 2)]  # (name, --torch-threads)
HERE = os.path.dirname(os.path.abspath(__file__))


def say(*parts):
    print(*parts, flush=True)


def command_text(cmd, env=None):
    prefix = "".join(f"{k}={shlex.quote(v)} " for k, v in (env or {}).items())
    return prefix + " ".join(shlex.quote(c) for c in cmd)


def run(cmd, env_extra, timeout):
    """(ok, stdout, why) of one process; why explains a failure and carries its stderr."""
    env = dict(os.environ)
    env.update(env_extra or {})
    try:
        p = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           text=True, timeout=timeout)
    except subprocess.TimeoutExpired as e:
        err = e.stderr.decode(errors="replace") if isinstance(e.stderr, bytes) else (e.stderr or "")
        return False, "", f"timed out after {timeout} s\n{err}"
    except OSError as e:
        return False, "", f"cannot run: {e}"
    if p.returncode != 0:
        return False, p.stdout, f"exit status {p.returncode}\n{p.stderr}"
    return True, p.stdout, p.stderr


def parse_results(text, workload):
    """[(seconds, items, flops)] of the RESULT lines for workload, the THREADS value, and the
    extra key=value fields of the last RESULT line (the C bench adds allocs= and rss_kb=)."""
    out, threads, extras = [], None, ""
    for line in text.splitlines():
        f = line.split()
        if len(f) >= 5 and f[0] == "RESULT" and f[1] == workload:
            try:
                s, items, flops = float(f[2]), int(float(f[3])), float(f[4])
            except ValueError:
                continue
            if s > 0:
                out.append((s, items, flops))
                extras = " ".join(f[5:])
        elif len(f) == 2 and f[0] == "THREADS":
            try:
                threads = int(f[1])
            except ValueError:
                pass
    return out, threads, extras


def machine():
    model = "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    try:
        usable = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        usable = os.cpu_count()
    try:
        date = subprocess.run(["date", "-u"], stdout=subprocess.PIPE, text=True).stdout.strip()
    except OSError:
        date = "?"
    return model, os.cpu_count(), usable, date


def median(xs):
    return statistics.median(xs) if xs else None


def fmt_s(v):
    return "-" if v is None else f"{v:.4g}"


def fmt_rate(v):
    if v is None:
        return "-"
    return f"{v:,.0f}" if v >= 100 else f"{v:.3g}"


def fmt_gf(v):
    return "-" if v is None else f"{v:.1f}"


def table(header, rows, markdown):
    if markdown:
        lines = ["| " + " | ".join(header) + " |",
                 "|" + "|".join("---" if i == 0 else "---:" for i in range(len(header))) + "|"]
        lines += ["| " + " | ".join(r) + " |" for r in rows]
        return "\n".join(lines)
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows)]
    fmt = lambda r: "  ".join(str(x).ljust(w) if i == 0 else str(x).rjust(w)
                              for i, (x, w) in enumerate(zip(r, widths)))
    return "\n".join([fmt(header), "  ".join("-" * w for w in widths)] + [fmt(r) for r in rows])


def main():
    ap = argparse.ArgumentParser(description="mlpviz against PyTorch, interleaved")
    ap.add_argument("--runs", type=int, default=5, help="rounds (default 5; train-big and "
                    f"viz-640: min(R, {SLOW_ROUNDS}))")
    ap.add_argument("--bench", default="build/opt/bench", help="the C bench")
    ap.add_argument("--mlpviz", default="bin/mlpviz", help="for mlpviz export")
    ap.add_argument("--model", default="models/fashion-mnist.mlp")
    ap.add_argument("--workloads", default=",".join(WORKLOADS),
                    help="comma-separated, in this order (default: all)")
    ap.add_argument("--no-torch", action="store_true", help="the C side only")
    ap.add_argument("--markdown", action="store_true", help="also print a Markdown table")
    ap.add_argument("--python", default="/usr/bin/python3", help="the Python with torch")
    ap.add_argument("--torch-blas-dir", metavar="DIR",
                    help="prepend DIR to LD_LIBRARY_PATH for torch (e.g. an OpenBLAS's "
                         "libblas.so.3 when the system BLAS is the reference one)")
    ap.add_argument("--timeout", type=float, default=1800, help="seconds per process")
    args = ap.parse_args()
    workloads = [w for w in args.workloads.split(",") if w]
    for w in workloads:
        if w not in WORKLOADS:
            ap.error(f"unknown workload '{w}' ({', '.join(WORKLOADS)})")
    if args.runs < 1:
        ap.error("--runs must be positive")
    rounds = {w: min(args.runs, SLOW_ROUNDS) if w in SLOW else args.runs for w in workloads}

    model_name, cpus, usable, date = machine()
    say(f"machine: {model_name}; {cpus} logical CPUs ({usable} usable); {platform.system()} "
        f"{platform.release()}")
    say(f"date: {date}")
    say(f"command: {command_text([sys.executable] + sys.argv)}")

    failures = []
    torch_env = dict(TORCH_ENV)
    if args.torch_blas_dir:
        old = os.environ.get("LD_LIBRARY_PATH")
        torch_env["LD_LIBRARY_PATH"] = args.torch_blas_dir + (":" + old if old else "")
    bench_torch = os.path.relpath(os.path.join(HERE, "bench_torch.py"))
    use_torch = not args.no_torch
    if args.no_torch:
        say("torch: off (--no-torch): mlpviz only")
    else:
        ok, _, why = run([args.python, "-c", "import torch"], torch_env, 120)
        if not ok:
            use_torch = False
            say(f"torch: cannot be imported by {args.python}: mlpviz only")
            say("  " + why.strip().replace("\n", "\n  "))

    tmp = None
    commands = {}
    samples = {}  # (side, workload) -> [(round, seconds, items, flops)]
    threads_said = {}  # workload -> THREADS from the C bench
    extras_said = {}  # workload -> the C bench's extra RESULT fields (last round)
    broken = set()  # (side, workload) that failed: not retried
    info = {}  # torch config -> its INFO line
    peak = None
    interrupted = False
    try:
        if use_torch:
            tmp = tempfile.mkdtemp(prefix="mlpviz-bench-")
            cmd = [args.mlpviz, "export", args.model, "--npy", tmp]
            commands["export"] = command_text(cmd)
            say("$ " + commands["export"])
            ok, _, why = run(cmd, None, 300)
            if not ok:
                say("export failed: mlpviz only\n  " + why.strip().replace("\n", "\n  "))
                failures.append("export: " + why.strip().splitlines()[0])
                use_torch = False

        cmd = [args.bench, "peak"]
        commands["peak"] = command_text(cmd)
        say("$ " + commands["peak"])
        ok, out, why = run(cmd, None, args.timeout)
        if ok:
            for line in out.splitlines():
                f = line.split()
                if len(f) == 4 and f[0] == "PEAK":
                    try:
                        peak = (float(f[1]), float(f[2]), int(float(f[3])))
                    except ValueError:
                        pass
            if peak is None:
                why = "no PEAK line in its output"
        if peak is None:
            say("peak: failed: " + why.strip().replace("\n", "\n  "))
            failures.append("peak: " + why.strip().splitlines()[0] if why.strip() else "peak")
        else:
            say(f"peak: {peak[0]:.1f} GFLOP/s on one core, {peak[1]:.1f} GFLOP/s on "
                f"{peak[2]} threads")

        sides = ["mlpviz"] + ([name for name, _ in TORCH_CONFIGS] if use_torch else [])
        for r in range(1, args.runs + 1):
            for w in workloads:
                if r > rounds[w]:
                    continue
                line = []
                for side in sides:
                    if (side, w) in broken:
                        line.append(f"{side} skipped")
                        continue
                    if side == "mlpviz":
                        cmd, env = [args.bench, w, "--model", args.model], None
                        commands[side] = command_text([args.bench, "WORKLOAD", "--model",
                                                       args.model])
                    else:
                        n = dict(TORCH_CONFIGS)[side]
                        base = [args.python, bench_torch, "--model-dir", tmp, "--runs", "1",
                                "--torch-threads", str(n)]
                        cmd, env = base + [w], torch_env
                        commands[side] = command_text(base + ["WORKLOAD"], env)
                    say(f"$ {command_text(cmd, env)}")
                    ok, out, why = run(cmd, env, args.timeout)
                    got, threads, extras = parse_results(out, w) if ok else ([], None, "")
                    if ok and not got:
                        ok, why = False, f"no RESULT line for {w}\n{why}"
                    if not ok:
                        broken.add((side, w))
                        failures.append(f"{side} {w}: {why.strip().splitlines()[0]}")
                        say(f"  FAILED ({side} {w}): " + why.strip().replace("\n", "\n  "))
                        line.append(f"{side} failed")
                        continue
                    if side == "mlpviz" and threads is not None:
                        threads_said[w] = threads
                    if side == "mlpviz" and extras:
                        extras_said[w] = extras
                    if side != "mlpviz" and side not in info:
                        for l in out.splitlines():
                            if l.startswith("INFO "):
                                info[side] = l[5:]
                    samples.setdefault((side, w), []).extend((r,) + g for g in got)
                    line.append(f"{side} {median([g[0] for g in got]):.4g} s")
                say(f"[round {r}/{rounds[w]}] {w}: " + " | ".join(line))
    except KeyboardInterrupt:
        interrupted = True
        say("\ninterrupted: the summary covers what ran")
    finally:
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)

    # ------------------------------------------------------------------ summary
    def stats(side, w):
        xs = samples.get((side, w), [])
        if not xs:
            return None
        return {"s": median([x[1] for x in xs]), "rate": median([x[2] / x[1] for x in xs]),
                "gf": median([x[3] / x[1] for x in xs]) / 1e9, "n": len(xs),
                "items": xs[0][2], "flops": xs[0][3],
                "by_round": {r: median([x[2] / x[1] for x in xs if x[0] == r])
                             for r in sorted({x[0] for x in xs})}}

    say("")
    say("=" * 30 + " summary")
    say(f"machine: {model_name}; {cpus} logical CPUs ({usable} usable)")
    say(f"date: {date}")
    if peak:
        say(f"peak (C bench): {peak[0]:.1f} GFLOP/s one core, {peak[1]:.1f} GFLOP/s "
            f"{peak[2]} threads")
    for side, text in info.items():
        say(f"{side}: {text}")
    if any("reference BLAS" in t for t in info.values()):
        say("WARNING: torch runs on the netlib reference BLAS, which is unoptimized (about 2.5 "
            "GFLOP/s): its numbers are not a fair baseline. Install OpenBLAS "
            "(apt-get install libopenblas0-pthread) or pass --torch-blas-dir.")
    say("commands:")
    say(f"  {command_text([sys.executable] + sys.argv)}")
    for key, text in commands.items():
        say(f"  {key}: {text}")
    if not use_torch:
        say("torch: not run: mlpviz only")

    header = ["workload", "rounds", "mlpviz s", "mlpviz items/s", "mlpviz GF/s", "% peak"]
    for name, _ in TORCH_CONFIGS if use_torch else []:
        header += [f"{name} s", f"{name} items/s", f"{name} GF/s"]
    if use_torch:
        header += ["best", "mlpviz/best", "target", "status"]
    rows, md_rows, notes = [], [], []
    for w in workloads:
        c = stats("mlpviz", w)
        pct = "-"
        if c and peak:
            threads = threads_said.get(w)
            single = threads == 1 if threads is not None else w in SINGLE_THREAD_DEFAULT
            ref = peak[0] if single else peak[1]
            pct = f"{100 * c['gf'] / ref:.0f}% of {'1' if single else peak[2]}c" if ref > 0 else "-"
        n_rounds = max((len({x[0] for x in samples.get((side, w), [])})
                        for side in ["mlpviz"] + [t for t, _ in TORCH_CONFIGS]), default=0)
        row = [w, str(n_rounds), fmt_s(c and c["s"]), fmt_rate(c and c["rate"]),
               fmt_gf(c and c["gf"]), pct]
        md = list(row)
        if use_torch:
            ts = {name: stats(name, w) for name, _ in TORCH_CONFIGS}
            for name, _ in TORCH_CONFIGS:
                t = ts[name]
                cells = [fmt_s(t and t["s"]), fmt_rate(t and t["rate"]), fmt_gf(t and t["gf"])]
                row += cells
                md += cells
            valid = [name for name in ts if ts[name]]
            best = max(valid, key=lambda name: ts[name]["rate"]) if valid else None
            ratio, spread = None, ""
            if c and best:
                per_round = [c["by_round"][r] / ts[best]["by_round"][r]
                             for r in c["by_round"] if r in ts[best]["by_round"]]
                if per_round:
                    ratio = median(per_round)
                    if len(per_round) > 1:
                        spread = f" ({min(per_round):.2f}-{max(per_round):.2f})"
                for name in valid:
                    t = ts[name]
                    if t["items"] != c["items"]:
                        notes.append(f"{w}: items differ: mlpviz {c['items']}, {name} {t['items']}")
                    if abs(t["flops"] - c["flops"]) > 1e-5 * max(t["flops"], c["flops"]):
                        notes.append(f"{w}: flops differ: mlpviz {c['flops']:.6e}, "
                                     f"{name} {t['flops']:.6e}")
            target = TARGETS[w]
            if ratio is None:
                status = "failed" if any(s == w for _, s in broken) else "-"
            elif target is None:
                status = "report only"
            else:
                status = "met" if ratio >= target else "MISSED"
            tail = [best or "-", "-" if ratio is None else f"{ratio:.2f}x",
                    "-" if target is None else f">= {target:g}x", status]
            row += tail[:1] + ["-" if ratio is None else f"{ratio:.2f}x{spread}"] + tail[2:]
            md += tail
        rows.append(row)
        md_rows.append(md)
    say("")
    say(table(header, rows, markdown=False))
    say("")
    say("s, items/s, GF/s: medians over the rounds (GF/s: 2 flops per multiply-add of the dense "
        "layers); % peak: mlpviz's GF/s over the C bench's measured peak on 1 or all cores.")
    if use_torch:
        say("mlpviz/best: median over the rounds of mlpviz's items/s over the best torch "
            "configuration's in the same round (in parentheses: the lowest and highest round). "
            "torch-1t: torch.set_num_threads(1); torch-2t: 2; both with "
            + " ".join(f"{k}={v}" for k, v in TORCH_ENV.items()) + ".")
    for w, extras in extras_said.items():
        say(f"mlpviz {w}: {extras}")
    for n in dict.fromkeys(notes):
        say("note: " + n)
    if args.markdown:
        say("")
        say(table(header, md_rows, markdown=True))
    if failures:
        say("")
        say(f"{len(failures)} failure(s):")
        for f in failures:
            say("  " + f)
    if interrupted:
        return 130
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
