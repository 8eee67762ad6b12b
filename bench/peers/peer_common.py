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


def add_model_args(ap):
    """The tiny model's shape (configs/models/tiny.yaml), as the C++ benches take it."""
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--hidden", type=int, default=128)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--kv-heads", type=int, default=2)
    ap.add_argument("--head-dim", type=int, default=32)
    ap.add_argument("--mlp", type=int, default=384)
    ap.add_argument("--vocab", type=int, default=320)


def add_train_args(ap):
    """The training peers' candidates: the recurrence chunk, the AdamW variant, compilation."""
    ap.add_argument("--chunk", type=int, default=0, help="recurrence chunk; 0: pick the fastest")
    ap.add_argument("--adamw", default="auto", choices=["auto", "foreach", "fused"])
    ap.add_argument("--compile", default="auto", choices=["auto", "on", "off"])
    ap.add_argument("--lr", type=float, default=1e-4)


def choose(make, chunks, adamws, compile_mode, warmup):
    """Picks (L, adamw, compiled) by timing: every eager (chunk, AdamW) pair, then (compile_mode
    auto) the best of them against its compiled form; `on` compiles chunk 32 (or the only one)
    with fused AdamW (or the only one), untried. make(L, adamw, compiled) returns the function
    to time. Returns (best key, probe seconds)."""
    if compile_mode == "on":
        return (32 if 32 in chunks else chunks[0], "fused" if "fused" in adamws else adamws[0], True), {}
    cands = {(L, w, False): make(L, w, False) for L in chunks for w in adamws}
    best, probes = next(iter(cands)), {}
    if len(cands) > 1:
        best, probes = pick_fastest(cands, warmup)
    if compile_mode == "auto":
        L, adamw, _ = best
        comp = (L, adamw, True)
        best, p2 = pick_fastest({best: cands[best], comp: make(L, adamw, True)}, warmup)
        probes.update(p2)
    return best, probes


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
    computes something else must never be timed as the peer (seen: compiled candidates reusing
    inductor kernels cached under another ATEN_CPU_CAPABILITY; run_bench.py now gives each
    setting its own TORCHINDUCTOR_CACHE_DIR). Each one left out is named on stderr."""
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
