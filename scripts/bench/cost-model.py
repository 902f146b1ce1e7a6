#!/usr/bin/python3
"""cost-model.py: the communication cost of a training step shared by N processes
(src/share.c), against its compute, for the nets of docs/BENCHMARKS.md ("Issue 15").

A step of a job of N nodes (one process per node) takes
    T(N) = C / N + 2 (N - 1) / N * 4 P / bw + (2 (N - 1) + 2 log2 N) * lat
  C    the compute of one step on one node (forward, backward, optimizer), measured or
       estimated below, assumed to divide evenly (the batch's chunks do, up to G of them);
  P    the parameters (float32): each rank sends and receives (N - 1)/N of them twice, once
       in the reduce-scatter of the gradient (MPI_Alltoallv) and once in the all-gather of
       the updated weights, as a ring all-reduce does;
  bw   the link's bandwidth, taken at line rate (10 or 100 Gbit/s);
  lat  the latency of one message (30 us for TCP over 10 GbE, 2 us for RDMA at 100 Gbit/s):
       N - 1 messages in each of the two large exchanges, and two small gathers (the rows'
       losses and hits: 9 bytes a row) of log2 N rounds each.
Nothing overlaps communication with compute (src/share.c does not), and a node's rate does
not fall when its share of the batch shrinks (it does, below a few dozen rows: the numbers
are a bound). The speed-up T(1)/T(N) grows until the last term outweighs what another node
saves; N stops at the batch's chunk count, 8 by default (--grad-chunks up to 256).

Usage: cost-model.py [BATCH]   (default 128)
"""
import math
import sys

batch = int(sys.argv[1]) if len(sys.argv) > 1 else 128


def params(widths):
    return sum(a * b + b for a, b in zip(widths, widths[1:]))


# Compute of one step on one node of this machine (2 Zen 3 cores): the train-small and
# train-big rows of `make bench` (153,000 and 15,800 samples/s at batch 128); the big net is
# estimated at train-big's rate, 6 P FLOPs a sample at 177 GFLOP/s.
nets = [
    ("784-256-128-10 (train-small)", [784, 256, 128, 10], batch / 153000.0),
    ("784-1024-1024-10 (train-big)", [784, 1024, 1024, 10], batch / 15800.0),
    ("12288-4096-4096-100", [12288, 4096, 4096, 100], None),
]
links = [("10 Gbit/s, 30 us", 10e9 / 8, 30e-6), ("100 Gbit/s, 2 us", 100e9 / 8, 2e-6)]
rate = 15800.0 * 6 * params([784, 1024, 1024, 10])  # FLOP/s of train-big

print("batch %d; compute C of one step on one node; T(N) as in the header" % batch)
for name, widths, step in nets:
    P = params(widths)
    C = step if step is not None else 6.0 * P * batch / rate
    print("\n%s: P = %s, %.1f MB of weights, C = %.2f ms" % (name, format(P, ","), 4 * P / 1e6, 1e3 * C))
    for link, bw, lat in links:
        def T(n):
            comm = 2 * (n - 1) / n * 4 * P / bw + (2 * (n - 1) + 2 * math.log2(n)) * lat
            return C / n + comm, comm
        best = max(range(1, 1025), key=lambda n: C / T(n)[0])
        most = min(n for n in range(1, 1025) if C / T(n)[0] >= 0.9 * C / T(best)[0])
        row = []
        for n in (2, 4, 8, 16, 64, 256):
            t, comm = T(n)
            row.append("N=%d %.2fx" % (n, C / t))
        t2, comm2 = T(2)
        print("  %-17s comm at N=2 %.2f ms (%.0f%% of the step); speed-up %s; grows until N = %d "
              "(%.2fx; 90%% of that from N = %d), bound %.2fx"
              % (link, 1e3 * comm2, 100 * comm2 / t2, ", ".join(row), best, C / T(best)[0], most,
                 C / (8 * P / bw)))
