#!/usr/bin/env python3
"""Step-2 throughput of the tiny model at 1 and 2 worker ranks (bench/gang_step_bench.cpp).

Runs, interleaved round by round on the same machine: one rank with every core's thread (what
`run` does with one worker), one rank with one thread, and two ranks of one thread each at
dp 2, tp 2 and pp 2. Prints a markdown table: median tok/s over rounds, the ratio to the
one-rank row, and the share of a step that rank 0 spent in communication.

    python3 bench/run_gang_bench.py --build build/release [--rounds 3] [--arch rwkv7]
"""
import argparse
import json
import os
import statistics
import subprocess
import sys


def run(build, ranks, extra, threads, arch):
    env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
               OMP_WAIT_POLICY="passive")
    cmd = ["mpirun", "-np", str(ranks), "--oversubscribe", "--bind-to", "none",
           os.path.join(build, "bench", "gang_step_bench"), "--threads", str(threads), "--arch", arch] + extra
    out = subprocess.run(cmd, env=env, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--build", default="build/release")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--arch", default="rwkv7", choices=["rwkv6", "rwkv7"])
    a = p.parse_args()
    cores = os.cpu_count() or 1
    rows = [("1 rank", 1, [], cores), ("1 rank, 1 thread", 1, [], 1),
            ("2 ranks dp 2", 2, [], max(1, cores // 2)), ("2 ranks tp 2", 2, ["--tp", "2"], max(1, cores // 2)),
            ("2 ranks pp 2", 2, ["--pp", "2"], max(1, cores // 2))]
    results = {r[0]: [] for r in rows}
    for _ in range(a.rounds):
        for name, n, extra, threads in rows:
            results[name].append(run(a.build, n, extra, threads, a.arch))
    base = statistics.median(j["tok_per_s"] for j in results["1 rank"])
    first = results["1 rank"][0]
    print(f"step 2 (distill), tiny {a.arch} student, B{first['B']} T{first['T']} micro-batch "
          f"{first['micro_batch']}, {a.rounds} rounds x {first['iters']} steps, {cores} cores")
    print("| layout | threads/rank | tok/s | vs 1 rank | comm share |")
    print("|---|---:|---:|---:|---:|")
    for name, n, extra, threads in rows:
        tok = statistics.median(j["tok_per_s"] for j in results[name])
        comm = statistics.median(j["comm_share"] for j in results[name])
        print(f"| {name} | {threads} | {tok:,.0f} | {tok / base:.2f}x | {comm:.0%} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
