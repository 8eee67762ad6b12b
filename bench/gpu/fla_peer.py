#!/usr/bin/env python3
"""The peer side of the GPU kernel benchmarks (bench/gpu/check.sh, stage 3): fla's chunk_gla
(RAD-RWKV6's GLA recurrence) and chunk_rwkv7 (RAD-RWKV7's DPLR recurrence), forward and
forward + backward, and PyTorch's scaled_dot_product_attention (the teacher's causal GQA
attention, forward), on the shapes our bench_gpu_* binaries time, in bf16 with fp32 states.

    fla_peer.py [--shapes B,T,H,D ...] [--attention B,T,Hq,Hkv,D] [--warmup 3] [--iters 10]

Prints one JSON line per (row, shape) on stdout, with the fields bench/gpu/table.py reads:
row, impl (fla.chunk_gla, fla.chunk_rwkv7, torch.sdpa), B, T, H (Hq, Hkv), D, fwd_ms,
fwdbwd_ms (median over --iters, CUDA events around each call), min_bytes_fwd,
min_bytes_fwdbwd, and error when the row failed. Progress goes to stderr.
Exit 0; 3 when fla cannot be imported (its rows are skipped; attention still runs); 4 without
PyTorch or a CUDA device.

Inputs (fresh, seed 0): r/q, k, v ~ N(0, 1); RAD-RWKV6's log-decay -exp(x) with x uniform in
[-3, 1.6] (so from about -0.05 down to the clamp at -5), scale D^-0.5; RAD-RWKV7's log-decay
-exp(-0.5) * sigmoid(x), a = -kk and b = kk * sigmoid(y) with kk a unit vector per head, scale 1;
initial states N(0, 1) in fp32 [B, H, D, D] (fla's key-major layout), final states returned.
The backward gets random output and final-state gradients.

min_bytes (the least HBM traffic, bf16 tensors of B*T*H*D, fp32 states of B*H*D*D):
  rwkv6 forward: q, k, v, g in and o out (5 tensors) + the initial and final state;
        forward + backward: the forward, then q, k, v, g, do in and 4 gradients out (9 more)
        + the final state's gradient in and the initial state's out;
  rwkv7 forward: r, w, k, v, a, b in and o out (7) + states; forward + backward: 7 + 13, + states;
  attention forward: q and o (Hq heads), k and v (Hkv heads).
Our benchmarks report their own min_bytes; the table uses these only where ours are missing.
"""
import argparse
import inspect
import json
import math
import sys


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def median(xs):
    s = sorted(xs)
    return s[len(s) // 2] if len(s) % 2 else 0.5 * (s[len(s) // 2 - 1] + s[len(s) // 2])


def time_ms(torch, fn, warmup, iters):
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    events = []
    for _ in range(iters):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        fn()
        b.record()
        events.append((a, b))
    torch.cuda.synchronize()
    return median([a.elapsed_time(b) for a, b in events])


def recurrence_bytes(row, B, T, H, D):
    tensor = B * T * H * D * 2
    state = B * H * D * D * 4
    fwd_tensors, bwd_tensors = (5, 9) if row == "rwkv6" else (7, 13)
    fwd = fwd_tensors * tensor + 2 * state
    return fwd, fwd + bwd_tensors * tensor + 2 * state


def run_recurrence(torch, row, fn, B, T, H, D, warmup, iters):
    """Times fn(inputs..., initial_state) -> (o, ht) forward, then forward + backward."""
    g = torch.Generator(device="cuda").manual_seed(0)
    dev, bf = "cuda", torch.bfloat16

    def randn(*shape, dtype=bf):
        return torch.randn(*shape, generator=g, device=dev, dtype=torch.float32).to(dtype)

    shape = (B, T, H, D)
    if row == "rwkv6":
        x = torch.rand(shape, generator=g, device=dev) * 4.6 - 3.0
        inputs = {"q": randn(*shape), "k": randn(*shape), "v": randn(*shape),
                  "g": (-torch.exp(x)).clamp(min=-5.0).to(bf)}
    else:
        kk = torch.nn.functional.normalize(randn(*shape, dtype=torch.float32), dim=-1)
        inputs = {"r": randn(*shape), "k": randn(*shape), "v": randn(*shape),
                  "w": (-math.exp(-0.5) * torch.sigmoid(randn(*shape, dtype=torch.float32))).to(bf),
                  "a": (-kk).to(bf), "b": (kk * torch.sigmoid(randn(*shape, dtype=torch.float32))).to(bf)}
    h0 = randn(B, H, D, D, dtype=torch.float32)
    do, dht = randn(*shape), randn(B, H, D, D, dtype=torch.float32)

    def forward():
        with torch.no_grad():
            fn(inputs, h0)

    leaves = {k: v.detach().clone().requires_grad_(True) for k, v in inputs.items()}
    h0_leaf = h0.detach().clone().requires_grad_(True)

    def forward_backward():
        for t in list(leaves.values()) + [h0_leaf]:
            t.grad = None
        o, ht = fn(leaves, h0_leaf)
        torch.autograd.backward([o, ht], [do, dht])

    fwd = time_ms(torch, forward, warmup, iters)
    fwdbwd = time_ms(torch, forward_backward, warmup, iters)
    return fwd, fwdbwd


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--shapes", nargs="*", default=["8,4096,64,64", "12,512,28,128"])
    ap.add_argument("--attention", default="12,512,28,4,128")
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--iters", type=int, default=10)
    a = ap.parse_args(argv)
    try:
        import torch
    except Exception as e:  # noqa: BLE001 - any import failure means no peer
        log("torch: cannot import (%s)" % e)
        return 4
    if not torch.cuda.is_available():
        log("torch: no CUDA device")
        return 4
    log("torch %s on %s" % (torch.__version__, torch.cuda.get_device_name(0)))

    rc = 0
    fla_fns = {}
    try:
        import fla
        from fla.ops.gla import chunk_gla
        from fla.ops.rwkv7 import chunk_rwkv7
        log("fla %s" % getattr(fla, "__version__", "(unknown version)"))
        rwkv7_params = inspect.signature(chunk_rwkv7).parameters

        def gla(x, h0):
            return chunk_gla(q=x["q"], k=x["k"], v=x["v"], g=x["g"], scale=x["q"].shape[-1] ** -0.5,
                             initial_state=h0, output_final_state=True)

        def rwkv7(x, h0):
            kw = dict(r=x["r"], k=x["k"], v=x["v"], a=x["a"], b=x["b"], scale=1.0,
                      initial_state=h0, output_final_state=True)
            # Some fla versions take the log-decay as log_w (and w as the raw pre-activation).
            kw["log_w" if "log_w" in rwkv7_params else "w"] = x["w"]
            return chunk_rwkv7(**kw)

        fla_fns = {"rwkv6": ("fla.chunk_gla", gla), "rwkv7": ("fla.chunk_rwkv7", rwkv7)}
    except Exception as e:  # noqa: BLE001
        log("fla: cannot import (%s): the rwkv6 and rwkv7 rows are skipped" % e)
        rc = 3

    for s in a.shapes:
        B, T, H, D = (int(x) for x in s.split(","))
        for row, (impl, fn) in fla_fns.items():
            mb_fwd, mb_fwdbwd = recurrence_bytes(row, B, T, H, D)
            rec = {"row": row, "impl": impl, "B": B, "T": T, "H": H, "D": D,
                   "min_bytes_fwd": mb_fwd, "min_bytes_fwdbwd": mb_fwdbwd}
            log("%s %s ..." % (impl, s))
            try:
                rec["fwd_ms"], rec["fwdbwd_ms"] = run_recurrence(torch, row, fn, B, T, H, D, a.warmup, a.iters)
            except Exception as e:  # noqa: BLE001 - report the row, go on with the others
                rec["fwd_ms"] = rec["fwdbwd_ms"] = None
                rec["error"] = "%s: %s" % (type(e).__name__, str(e).splitlines()[0] if str(e) else "")
                torch.cuda.empty_cache()
            print(json.dumps(rec), flush=True)

    if a.attention:
        B, T, Hq, Hkv, D = (int(x) for x in a.attention.split(","))
        rec = {"row": "attention", "impl": "torch.sdpa", "B": B, "T": T, "Hq": Hq, "Hkv": Hkv, "D": D,
               "fwdbwd_ms": None, "min_bytes_fwd": B * T * D * 2 * (2 * Hq + 2 * Hkv)}
        log("torch.sdpa %s ..." % a.attention)
        try:
            g = torch.Generator(device="cuda").manual_seed(0)
            # PyTorch's own layout [B, heads, T, D]: the peer at its best.
            q = torch.randn(B, Hq, T, D, generator=g, device="cuda").to(torch.bfloat16)
            k = torch.randn(B, Hkv, T, D, generator=g, device="cuda").to(torch.bfloat16)
            v = torch.randn(B, Hkv, T, D, generator=g, device="cuda").to(torch.bfloat16)
            sdpa = torch.nn.functional.scaled_dot_product_attention

            def attn():
                with torch.no_grad():
                    sdpa(q, k, v, is_causal=True, enable_gqa=True)

            rec["fwd_ms"] = time_ms(torch, attn, a.warmup, a.iters)
        except Exception as e:  # noqa: BLE001
            rec["fwd_ms"] = None
            rec["error"] = "%s: %s" % (type(e).__name__, str(e).splitlines()[0] if str(e) else "")
        print(json.dumps(rec), flush=True)
    return rc


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
