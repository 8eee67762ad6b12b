"""Shared pieces of the PyTorch peers in bench/peers/: environment, timing, JSON output.

Import this module BEFORE torch (it sets OMP_WAIT_POLICY=passive unless the caller chose, and
the OpenMP runtime reads it when torch loads it).
"""

import json
import os
import statistics
import sys
import time

os.environ.setdefault("OMP_WAIT_POLICY", "passive")

import torch  # noqa: E402


def add_common_args(ap, batch, time_):
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--iters", type=int, default=10)
    ap.add_argument("--batch", type=int, default=batch)
    ap.add_argument("--time", type=int, default=time_)
    ap.add_argument("--load", required=True,
                    help="directory with model.safetensors written by the C++ bench's --dump")


def setup_threads(n):
    torch.set_num_threads(n)
    # One interop thread: nothing here runs independent ops concurrently.
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:
        pass
    torch.manual_seed(0)


def load_tensors(directory):
    from safetensors.torch import load_file
    return load_file(os.path.join(directory, "model.safetensors"))


def loadavg():
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def time_fn(fn, warmup, iters):
    for _ in range(warmup):
        fn()
    samples = []
    for _ in range(iters):
        t0 = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t0)
    return samples


def agreeing(candidates, checks, reference, rel_tol=1e-4):
    """The candidates whose check value is within rel_tol of the reference candidate's: one that
    computes something else (seen: inductor under ATEN_CPU_CAPABILITY=avx2 on an AVX-512 host)
    must never be timed as the peer. Each one left out is named on stderr."""
    ref = checks[reference]
    kept = {}
    for name, fn in candidates.items():
        if abs(checks[name] - ref) <= rel_tol * max(abs(ref), 1e-30):
            kept[name] = fn
        else:
            print(f"peer: {name} left out: check {checks[name]!r} differs from {reference}'s {ref!r}",
                  file=sys.stderr, flush=True)
    return kept


def pick_fastest(candidates, warmup, probe_iters=3):
    """candidates: {name: fn}. Runs each `warmup` times, then `probe_iters` timed, interleaved;
    returns (best name, {name: min probe seconds}). The minimum, not the median: on a shared
    machine it is the estimate least disturbed by other processes."""
    for _ in range(max(1, warmup)):
        for fn in candidates.values():
            fn()
    probes = {name: [] for name in candidates}
    for _ in range(probe_iters):
        for name, fn in candidates.items():
            t0 = time.perf_counter()
            fn()
            probes[name].append(time.perf_counter() - t0)
    med = {name: min(s) for name, s in probes.items()}
    return min(med, key=med.get), med


def emit(result, samples, tokens):
    s = sorted(samples)
    med = statistics.median(s) if s else 0.0
    result.update({
        "iters": len(samples),
        "samples_s": [round(x, 6) for x in samples],
        "median_s": med,
        "min_s": s[0] if s else 0.0,
        "tokens": tokens,
        "tok_per_s": tokens / med if med > 0 else 0.0,
        "torch": torch.__version__,
    })
    print(json.dumps(result))
    sys.stdout.flush()
