#!/usr/bin/env python3
"""Runs the CPU benchmarks side by side: for each row, our C++ program (bench/*.cpp) and its
PyTorch peer (bench/peers/*.py) on the same shapes, the same parameters and inputs (the C++
program dumps them, the peer loads them), the same thread count, OMP_WAIT_POLICY=passive for
both, interleaved round by round (ours, torch, torch, ours, ...), and prints the table:

  row, shape, ours tok/s, torch tok/s, ratio (ours / torch), the peer chosen, and whether both
  computed the same thing (`check`: teacher mean |hidden|; align, distill and finetune steps the
  loss before and after one step — this validates forward, backward and AdamW of the peer
  against ours; the evaluation pass its KL, the teacher's CE and the top-1 agreement).

tok/s = tokens per step / median step time over all rounds. `ratio` is the median of the
per-round ratios (each round's two runs are adjacent in time, so this is robust to the load
drifting between rounds; the pooled tok/s columns are not, and can disagree with it on a busy
machine); `best` is the ratio of the two sides' fastest steps (the least disturbed estimate).
The load average is printed at the start and the end: the machine is shared, so compare
ratios, not absolute numbers.

  python3 bench/run_bench.py [--build build/bench] [--rows teacher,rwkv6,rwkv7,distill,eval,finetune]
                             [--rounds 3]
                             [--iters 5] [--warmup 2] [--threads 2] [--python tools/.venv/bin/python]
                             [--json results.json] [--extra-ours "--chunk 0"] [--quick]
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

# name, kind, ours program, extra args, shape args, label
ROWS = [
    ("teacher", "teacher forward (tiny)", "bench_teacher_forward", [], (8, 256), "B8 T256"),
    ("teacher", "teacher forward (tiny)", "bench_teacher_forward", [], (4, 512), "B4 T512"),
    ("rwkv6", "align step rad-rwkv6", "bench_align_step", ["--arch", "rwkv6"], (8, 128), "B8 T128 C128"),
    ("rwkv6", "align step rad-rwkv6", "bench_align_step", ["--arch", "rwkv6"], (4, 256), "B4 T256 C128"),
    ("rwkv7", "align step rad-rwkv7", "bench_align_step", ["--arch", "rwkv7"], (8, 128), "B8 T128 C128"),
    ("rwkv7", "align step rad-rwkv7", "bench_align_step", ["--arch", "rwkv7"], (4, 256), "B4 T256 C128"),
    # The whole tiny student (bench_lm_step): step 2, the evaluation pass, step 3 at 4x the context.
    ("distill", "distill step rad-rwkv6", "bench_lm_step", ["--stage", "distill", "--arch", "rwkv6"], (8, 256), "B8 T256"),
    ("distill", "distill step rad-rwkv7", "bench_lm_step", ["--stage", "distill", "--arch", "rwkv7"], (8, 256), "B8 T256"),
    ("eval", "eval pass rad-rwkv6", "bench_lm_step", ["--stage", "eval", "--arch", "rwkv6"], (8, 256), "B8 T256"),
    ("eval", "eval pass rad-rwkv7", "bench_lm_step", ["--stage", "eval", "--arch", "rwkv7"], (8, 256), "B8 T256"),
    ("finetune", "finetune step rad-rwkv6", "bench_lm_step", ["--stage", "finetune", "--arch", "rwkv6"], (2, 1024), "B2 T1024"),
    ("finetune", "finetune step rad-rwkv7", "bench_lm_step", ["--stage", "finetune", "--arch", "rwkv7"], (2, 1024), "B2 T1024"),
]
LM_ROWS = ("distill", "eval", "finetune")


# What limits both sides to AVX2 on an AVX-512 machine: OpenBLAS's run-time kernel choice,
# PyTorch's ATen dispatch, MKL and oneDNN. (Our own code: a build for -march=x86-64-v3.)
AVX2_ENV = {
    "OPENBLAS_CORETYPE": "Haswell",
    "ATEN_CPU_CAPABILITY": "avx2",
    "MKL_ENABLE_INSTRUCTIONS": "AVX2",
    "DNNL_MAX_CPU_ISA": "AVX2",
}


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            info = f.read()
    except OSError:
        return "unknown CPU"
    model = next((l.split(":", 1)[1].strip() for l in info.splitlines() if l.startswith("model name")), "unknown CPU")
    flags = next((l for l in info.splitlines() if l.startswith("flags")), "")
    return model + (" (AVX-512)" if " avx512f" in flags else " (AVX2, no AVX-512)")


def loadavg():
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def run_json(cmd, env):
    p = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if p.returncode != 0:
        sys.stderr.write(p.stderr)
        raise SystemExit(f"failed ({p.returncode}): {' '.join(cmd)}")
    lines = [l for l in p.stdout.splitlines() if l.startswith("{")]
    return json.loads(lines[-1])


def peer_cmd(args, row, B, T, load_dir, fixed):
    name = row[0]
    py = [args.python]
    common = ["--batch", str(B), "--time", str(T), "--threads", str(args.threads), "--warmup",
              str(args.warmup), "--iters", str(args.iters), "--load", load_dir]
    if args.no_compile and not fixed:
        common += ["--compile", "off"]
    if name == "teacher":
        return py + [os.path.join(HERE, "peers", "teacher_forward.py")] + common + fixed
    if name in LM_ROWS:
        return py + [os.path.join(HERE, "peers", "lm_step.py")] + row[3] + common + fixed
    return py + [os.path.join(HERE, "peers", "align_step.py"), "--arch", name] + common + fixed


def close(a, b, tol):
    return abs(a - b) <= tol * max(abs(a), abs(b), 1e-30)


def same_checks(ours, torch_res):
    """Every check value ours printed (check, check_after, check_teacher_ce, ...) against the
    peer's: within 1e-4 relative; a top-1 agreement (a count of argmax ties broken by
    rounding) within 2 positions."""
    keys = [k for k, v in ours.items() if k.startswith("check") and isinstance(v, (int, float))]
    for k in keys:
        if k not in torch_res:
            return False
        if "top1" in k:
            if abs(ours[k] - torch_res[k]) * ours["tokens"] > 2:
                return False
        elif not close(ours[k], torch_res[k], 1e-4):
            return False
    return True


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default=os.path.join(ROOT, "build", "bench"))
    ap.add_argument("--rows", default="teacher,rwkv6,rwkv7,distill,eval,finetune")
    ap.add_argument("--shapes", default="", help="only rows whose label contains this, e.g. B8")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--iters", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--python", default="tools/.venv/bin/python")
    ap.add_argument("--extra-ours", default="", help="extra arguments for our programs")
    ap.add_argument("--json", default="", help="write every raw result here")
    ap.add_argument("--baseline", default="",
                    help="another build directory (e.g. of the previous commit): its programs run "
                         "interleaved too and the table gets a 'before' column")
    ap.add_argument("--quick", action="store_true", help="1 round, 3 iterations")
    ap.add_argument("--isa", choices=["native", "avx2"], default="native",
                    help="avx2: both sides limited to AVX2 on an AVX-512 host (OpenBLAS Haswell kernels, "
                         "PyTorch/MKL/oneDNN at AVX2); pair it with a build for -march=x86-64-v3")
    ap.add_argument("--no-compile", action="store_true",
                    help="eager PyTorch only (leave the torch.compile candidates out)")
    args = ap.parse_args()
    if args.quick:
        args.rounds, args.iters = 1, 3
    env = dict(os.environ, OMP_WAIT_POLICY="passive")
    env.pop("OMP_NUM_THREADS", None)
    if args.isa == "avx2":
        env.update(AVX2_ENV)
    # One inductor cache per instruction-set setting: inductor's cache does not key on
    # ATEN_CPU_CAPABILITY, so kernels compiled under one setting were reused under the other
    # (seen: wrong results and NaN under --isa avx2, heap corruption natively afterwards).
    env.setdefault("TORCHINDUCTOR_CACHE_DIR", os.path.join(tempfile.gettempdir(), f"radlads-inductor-{args.isa}"))
    wanted = set(args.rows.split(","))
    rows = [r for r in ROWS if r[0] in wanted and args.shapes in r[5]]
    start_load = loadavg()
    started = time.strftime("%Y-%m-%d %H:%M:%S %Z")
    table, raw = [], []
    with tempfile.TemporaryDirectory(prefix="radlads-bench-") as tmp:
        for i, row in enumerate(rows):
            name, kind, prog, extra, (B, T), label = row
            exe = os.path.join(args.build, "bench", prog)
            shape = ["--batch", str(B), "--time", str(T), "--threads", str(args.threads)]
            ours = [exe] + extra + shape + ["--warmup", str(args.warmup), "--iters", str(args.iters)]
            ours += args.extra_ours.split()
            dump = os.path.join(tmp, f"row{i}")
            first = run_json(ours + ["--dump", dump], env)
            # Round r runs one of each side; the order alternates (round 0: the dump run of ours,
            # then torch; round 1: torch, ours; round 2: ours, torch; ...).
            o_res, t_res, b_res, fixed = [], [], [], []
            base = None
            if args.baseline:
                base = [os.path.join(args.baseline, "bench", prog)] + ours[1:]

            def run_torch():
                res = run_json(peer_cmd(args, row, B, T, dump, fixed), env)
                t_res.append(res)
                if not fixed:  # later rounds reuse the candidate the first peer run picked
                    if name == "teacher":
                        fixed.extend(["--impl", res["impl"].split(":")[1]])
                    elif name in LM_ROWS:
                        fixed.extend(["--chunk", str(res["chunk"]), "--compile", "on" if res["compiled"] else "off"]
                                     + (["--adamw", res["adamw"]] if name != "eval" else []))
                    else:
                        fixed.extend(["--chunk", str(res["chunk"]), "--adamw", res["adamw"],
                                      "--compile", "on" if res["compiled"] else "off"])

            for r in range(args.rounds):
                if r == 0:
                    o_res.append(first)
                    run_torch()
                elif r % 2 == 1:
                    run_torch()
                    o_res.append(run_json(ours, env))
                else:
                    o_res.append(run_json(ours, env))
                    run_torch()
                if base:
                    b_res.append(run_json(base, env))
            o_s = [s for x in o_res for s in x["samples_s"]]
            t_s = [s for x in t_res for s in x["samples_s"]]
            o_med, t_med = statistics.median(o_s), statistics.median(t_s)
            b_med = statistics.median([s for x in b_res for s in x["samples_s"]]) if b_res else 0.0
            tokens = first["tokens"]
            # Per-round ratios: pair each peer run with the neighbouring run of ours.
            ratios = [t["median_s"] / o["median_s"] for o, t in zip(o_res, t_res)]
            ratio = statistics.median(ratios)
            ok = same_checks(first, t_res[0])
            entry = dict(row=kind, shape=label, ours_tok_s=tokens / o_med, torch_tok_s=tokens / t_med,
                         ratio=ratio, ratios=ratios, ratio_best=min(t_s) / min(o_s), peer=t_res[0]["impl"], ours_impl=first.get("chunk"),
                         check_ours=first["check"], check_torch=t_res[0]["check"], same=ok,
                         ours_ms=o_med * 1e3, torch_ms=t_med * 1e3,
                         before_tok_s=tokens / b_med if b_med else 0.0,
                         before_ratio=statistics.median([t["median_s"] / b["median_s"]
                                                         for b, t in zip(b_res, t_res)]) if b_res else 0.0)
            table.append(entry)
            raw.append(dict(row=entry, ours=o_res, torch=t_res, before=b_res))
            print(f"  {kind:24s} {label:14s} ours {o_med*1e3:8.2f} ms  torch {t_med*1e3:8.2f} ms  "
                  f"ratio {ratio:5.2f}x  per-round {[round(x, 2) for x in ratios]}  check {'ok' if ok else 'MISMATCH'}"
                  + (f"  before {b_med*1e3:8.2f} ms" if b_res else ""),
                  file=sys.stderr, flush=True)
    end_load = loadavg()
    print(f"# {started}, {os.uname().nodename}, {os.cpu_count()} cores, threads={args.threads}, "
          f"rounds={args.rounds} x iters={args.iters} (warmup {args.warmup}), OMP_WAIT_POLICY=passive")
    print(f"# load average at start {start_load}, at end {end_load}")
    print(f"# CPU: {cpu_model()}; instruction set: {args.isa}"
          + (" (" + ", ".join(f"{k}={v}" for k, v in AVX2_ENV.items()) + ")" if args.isa == "avx2" else "")
          + f"; ours: {args.build}")
    before = bool(args.baseline)
    print(f"{'row':26s} {'shape':14s} {'ours tok/s':>11s} {'torch tok/s':>12s} {'ratio':>7s} {'best':>6s}  "
          + (f"{'before tok/s':>12s} {'before ratio':>12s}  " if before else "")
          + f"{'same result':11s} torch peer")
    for e in table:
        print(f"{e['row']:26s} {e['shape']:14s} {e['ours_tok_s']:11.0f} {e['torch_tok_s']:12.0f} "
              f"{e['ratio']:6.2f}x {e['ratio_best']:5.2f}x  "
              + (f"{e['before_tok_s']:12.0f} {e['before_ratio']:11.2f}x  " if before else "")
              + f"{'yes' if e['same'] else 'NO':11s} {e['peer']}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(dict(started=started, load_start=start_load, load_end=end_load, rows=raw), f, indent=1)
    if not all(e["same"] for e in table):
        sys.exit(1)


if __name__ == "__main__":
    main()
