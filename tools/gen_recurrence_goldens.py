#!/usr/bin/env python3
"""Writes the fla golden files for our GLA and DPLR recurrences (tests/data/oracles/{gla,dplr}_*).

How to run (from the repository root; CPU only, about ten seconds):

    tools/.venv/bin/python tools/gen_recurrence_goldens.py

    (any venv with the packages pinned in tools/requirements.txt: torch, numpy, safetensors,
    flash-linear-attention==0.6.0, einops; fla's Triton kernels are NOT used, only its
    pure-PyTorch reference functions, which run on the CPU.)

What it computes: flash-linear-attention's own reference implementations, run in float64 on the
CPU, with gradients by torch autograd of  L = sum(o * do) + sum(hT * dhT)  (random do, dhT):
  - GLA:  fla.ops.gla.naive.naive_recurrent_gla           (inputs [B,T,H,K], state [B,H,K,V])
  - DPLR: fla.ops.generalized_delta_rule.dplr.naive.dplr_recurrence  (inputs [B,H,T,K]!)
Second opinions, recorded in each file's metadata `second_opinion` (max |diff| / max |ref| per
tensor, forward and every gradient):
  - GLA:  dplr_recurrence with alpha = beta = 0 (a GLA by construction, other layout) and
          dplr_chunkwise (fla's chunked pure-PyTorch WY form) with alpha = beta = 0, chunk 16;
  - DPLR: dplr_chunkwise, chunk 16.
  dplr_chunkwise needs T % chunk == 0; T is padded with zero tokens (k = v = q = a = b = 0,
  g = 0: the state passes through unchanged) and the padded rows are dropped.

float64: fla's naive functions cast with `.float()` and allocate the GLA state with
dtype=torch.float32. Inside `fla_float64()` below, `Tensor.float` leaves float64 tensors alone,
`Tensor.new_zeros(dtype=float32)` on a float64 tensor allocates float64, and the default dtype is
float64, so every operation of fla's code runs in float64 (checked: results are float64, and the
independent second opinions agree to ~1e-15).

scale: both naive functions hard-code scale = K^-1/2 on q (there is no scale argument). A file
whose `scale` differs from K^-1/2 feeds fla  q_eff = r * (scale / K^-1/2), built inside the
autograd graph, so `dr` is the gradient with respect to the stored `r` and the file means exactly
"o_t = S_t^T (scale * r_t)". Our kernels take the scale as given (GlaOptions / DplrOptions).

Inputs: drawn in float64 from torch.Generator seeds (fixed per case), then rounded to float32
and stored as float64. They are therefore exactly representable in float32: a C++ test that
reads them as F32 feeds its kernel the very inputs fla saw, so the comparison measures only the
kernel's fp32 arithmetic. Outputs and gradients are fla's float64 values.

Layout in the files: OURS (kernels/ops/gla.h, kernels/ops/dplr.h): r, k, g, a, b [B,T,H,K];
v, o [B,T,H,V]; h0, hT [B,H,K,V] key-major (fla's own state layout). Tensors, metadata and
cases: docs/formats/oracles.md.

Determinism: fixed seeds, torch.use_deterministic_algorithms(True), single-threaded torch, and
a deterministic writer (tools/oracle_writer.py). Rerunning reproduces the committed files byte
for byte on the same torch/fla versions (checked with cmp).
"""

import contextlib
import json
import math
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from oracle_writer import write_safetensors  # noqa: E402

import warnings  # noqa: E402

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # fla warns that Triton cannot run on this CPU
    import fla  # noqa: E402
    from fla.ops.generalized_delta_rule.dplr.naive import dplr_chunkwise, dplr_recurrence  # noqa: E402
    from fla.ops.gla.naive import naive_recurrent_gla  # noqa: E402

OUT_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                       "tests", "data", "oracles")
CHUNK_SECOND_OPINION = 16
LOG_DECAY_RWKV7 = -math.exp(-0.5)  # -0.6065306597...: RWKV-7 log-decay = this * sigmoid(x)


@contextlib.contextmanager
def fla_float64():
    """Makes fla's naive reference code compute in float64 (see the module docstring)."""
    orig_float = torch.Tensor.float
    orig_new_zeros = torch.Tensor.new_zeros
    orig_default = torch.get_default_dtype()

    def float_keep64(self, *args, **kwargs):
        if self.dtype == torch.float64:
            return self
        return orig_float(self, *args, **kwargs)

    def new_zeros_keep64(self, *size, **kwargs):
        if self.dtype == torch.float64 and kwargs.get("dtype") == torch.float32:
            kwargs["dtype"] = torch.float64
        return orig_new_zeros(self, *size, **kwargs)

    torch.Tensor.float = float_keep64
    torch.Tensor.new_zeros = new_zeros_keep64
    torch.set_default_dtype(torch.float64)
    try:
        yield
    finally:
        torch.Tensor.float = orig_float
        torch.Tensor.new_zeros = orig_new_zeros
        torch.set_default_dtype(orig_default)


def f32_exact(x):
    """Rounds a float64 tensor to the nearest float32 value, kept as float64."""
    return x.to(torch.float32).to(torch.float64)


class Draw:
    def __init__(self, seed):
        self.g = torch.Generator().manual_seed(seed)

    def randn(self, *shape):
        return torch.randn(*shape, generator=self.g, dtype=torch.float64)

    def rand(self, *shape):
        return torch.rand(*shape, generator=self.g, dtype=torch.float64)


def bthk_to_bhtk(x):
    return x.transpose(1, 2)


def pad_time(x, multiple):
    """Zero-pads dim 2 (time, head-first layout) to a multiple of `multiple`."""
    T = x.shape[2]
    Tp = -(-T // multiple) * multiple
    if Tp == T:
        return x
    pad = x.new_zeros(x.shape[0], x.shape[1], Tp - T, x.shape[3])
    return torch.cat([x, pad], dim=2)


def q_for_fla(r, scale):
    """fla's naive functions multiply q by K^-1/2; feed r * scale / K^-1/2 so the net is `scale`."""
    K = r.shape[-1]
    default = K ** -0.5
    if scale == default:
        return r
    return r * (scale / default)


def loss_and_grads(o, hT, do, dhT, leaves):
    L = (o * do).sum() + (hT * dhT).sum()
    return torch.autograd.grad(L, leaves)


def rel_max(ref, other):
    den = ref.abs().max().item()
    num = (ref - other).abs().max().item()
    return num / den if den > 0 else num


# ----------------------------------------------------------------------------------------------
# GLA
# ----------------------------------------------------------------------------------------------

def gla_fla_naive(r, k, v, g, h0, do, dhT, scale):
    """fla.ops.gla.naive.naive_recurrent_gla; our layout in and out (fla's is the same here)."""
    leaves = [t.clone().requires_grad_(True) for t in (r, k, v, g, h0)]
    rr, kk, vv, gg, hh = leaves
    with fla_float64():
        o, hT = naive_recurrent_gla(q_for_fla(rr, scale), kk, vv, gg, initial_state=hh,
                                    output_final_state=True)
    assert o.dtype == torch.float64 and hT.dtype == torch.float64
    grads = loss_and_grads(o, hT, do, dhT, leaves)
    return o.detach(), hT.detach(), [x.detach() for x in grads]


def gla_via_dplr(r, k, v, g, h0, do, dhT, scale, chunked):
    """GLA = DPLR with alpha = beta = 0; fla's dplr naive functions take [B,H,T,K]."""
    leaves = [t.clone().requires_grad_(True) for t in (r, k, v, g, h0)]
    rr, kk, vv, gg, hh = leaves
    T = r.shape[1]
    q, kh, vh, gh = (bthk_to_bhtk(x) for x in (q_for_fla(rr, scale), kk, vv, gg))
    zero = torch.zeros_like(kh)
    with fla_float64():
        if chunked:
            c = CHUNK_SECOND_OPINION
            o, hT = dplr_chunkwise(*(pad_time(x, c) for x in (q, kh, vh, zero, zero, gh)),
                                   initial_state=hh, output_final_state=True, chunk_size=c)
            o = o[:, :, :T]
        else:
            o, hT = dplr_recurrence(q, kh, vh, zero, zero, gh, initial_state=hh,
                                    output_final_state=True)
    o = bthk_to_bhtk(o)
    assert o.dtype == torch.float64 and hT.dtype == torch.float64
    grads = loss_and_grads(o, hT, do, dhT, leaves)
    return o.detach(), hT.detach(), [x.detach() for x in grads]


def gla_inputs(seed, B, T, H, K, V, regime):
    d = Draw(seed)
    r = d.randn(B, T, H, K)
    k = d.randn(B, T, H, K)
    v = d.randn(B, T, H, V)
    g = -d.rand(B, T, H, K)  # moderate: log-decay in (-1, 0], decay in (0.37, 1]
    if regime == "strong":
        g[..., 0::3] = -5.0  # RAD-RWKV6's clamp value: decay e^-5 ~ 0.0067 on every 3rd channel
        g[..., 1::3] *= 0.01  # and near-one decays (> 0.99) on another third
    elif regime != "moderate":
        raise ValueError(regime)
    h0 = 0.5 * d.randn(B, H, K, V)
    do = d.randn(B, T, H, V)
    dhT = d.randn(B, H, K, V)
    return [f32_exact(x) for x in (r, k, v, g, h0, do, dhT)]


def make_gla(name, seed, B, T, H, K, V, regime, scale):
    r, k, v, g, h0, do, dhT = gla_inputs(seed, B, T, H, K, V, regime)
    o, hT, (dr, dk, dv, dg, dh0) = gla_fla_naive(r, k, v, g, h0, do, dhT, scale)
    ref = {"o": o, "hT": hT, "dr": dr, "dk": dk, "dv": dv, "dg": dg, "dh0": dh0}
    opinions = {}
    for label, chunked in (("fla.ops.generalized_delta_rule.dplr.naive.dplr_recurrence"
                            "(alpha=beta=0)", False),
                           (f"fla.ops.generalized_delta_rule.dplr.naive.dplr_chunkwise"
                            f"(alpha=beta=0, chunk_size={CHUNK_SECOND_OPINION}, T zero-padded)",
                            True)):
        o2, hT2, g2 = gla_via_dplr(r, k, v, g, h0, do, dhT, scale, chunked)
        other = dict(zip(["o", "hT", "dr", "dk", "dv", "dg", "dh0"], [o2, hT2, *g2]))
        opinions[label] = {n: float(f"{rel_max(ref[n], other[n]):.3e}") for n in ref}
        worst = max(opinions[label].values())
        if worst > 1e-10:
            raise RuntimeError(f"{name}: second opinion {label} disagrees: {opinions[label]}")
    tensors = {"r": r, "k": k, "v": v, "g": g, "h0": h0, "do": do, "dhT": dhT, **ref}
    desc = (f"GLA recurrence, B={B} T={T} H={H} K={K} V={V}, {regime} log-decays "
            + ("(g = -U(0,1))" if regime == "moderate" else
               "(g = -U(0,1); channels k%3==0 at -5, k%3==1 scaled by 0.01)")
            + f", nonzero h0, scale={scale!r}. S_t = diag(exp g_t) S_(t-1) + k_t v_t^T, "
            "o_t = S_t^T (scale r_t). Inputs fp32-exact; outputs/gradients float64.")
    meta = {
        "scale": repr(float(scale)),
        "source": f"fla.ops.gla.naive.naive_recurrent_gla (flash-linear-attention {fla.__version__}),"
                  " float64, gradients by torch autograd",
        "description": desc,
        "kind": "gla",
        "seed": str(seed),
        "loss": "sum(o*do) + sum(hT*dhT)",
        "layout": "r,k,g,dr,dk,dg [B,T,H,K]; v,o,do,dv [B,T,H,V]; h0,hT,dhT,dh0 [B,H,K,V]",
        "second_opinion": json.dumps(opinions, sort_keys=True),
        "versions": f"torch {torch.__version__}, flash-linear-attention {fla.__version__}",
    }
    return tensors, meta


# ----------------------------------------------------------------------------------------------
# DPLR (RWKV-7 / generalized delta rule)
# ----------------------------------------------------------------------------------------------

def dplr_fla(r, g, k, v, a, b, h0, do, dhT, scale, chunked):
    """fla dplr_recurrence / dplr_chunkwise; our [B,T,H,*] layout in and out."""
    leaves = [t.clone().requires_grad_(True) for t in (r, g, k, v, a, b, h0)]
    rr, gg, kk, vv, aa, bb, hh = leaves
    T = r.shape[1]
    q, gh, kh, vh, ah, bh = (bthk_to_bhtk(x) for x in (q_for_fla(rr, scale), gg, kk, vv, aa, bb))
    with fla_float64():
        if chunked:
            c = CHUNK_SECOND_OPINION
            o, hT = dplr_chunkwise(*(pad_time(x, c) for x in (q, kh, vh, ah, bh, gh)),
                                   initial_state=hh, output_final_state=True, chunk_size=c)
            o = o[:, :, :T]
        else:
            o, hT = dplr_recurrence(q, kh, vh, ah, bh, gh, initial_state=hh,
                                    output_final_state=True)
    o = bthk_to_bhtk(o)
    assert o.dtype == torch.float64 and hT.dtype == torch.float64
    grads = loss_and_grads(o, hT, do, dhT, leaves)
    return o.detach(), hT.detach(), [x.detach() for x in grads]


def dplr_inputs(seed, B, T, H, K, V, regime):
    d = Draw(seed)
    r = d.randn(B, T, H, K)
    k = d.randn(B, T, H, K)
    v = d.randn(B, T, H, V)
    kk = d.randn(B, T, H, K)
    kk = kk / kk.norm(dim=-1, keepdim=True)  # unit norm per head (RWKV-7's removal key)
    iclr = d.rand(B, T, H, K)
    a = -kk
    b = kk * iclr
    g = LOG_DECAY_RWKV7 * torch.sigmoid(d.randn(B, T, H, K))  # (-0.6065, 0): RWKV-7's range
    if regime == "strong":
        g[..., 0::3] = -5.0
        g[..., 1::3] = -6.0 - 2.0 * d.rand(B, T, H, K)[..., 1::3]  # fla test_rwkv7: U(-8, -6)
    elif regime != "rwkv7":
        raise ValueError(regime)
    h0 = 0.5 * d.randn(B, H, K, V)
    do = d.randn(B, T, H, V)
    dhT = d.randn(B, H, K, V)
    return [f32_exact(x) for x in (r, g, k, v, a, b, h0, do, dhT)]


def make_dplr(name, seed, B, T, H, K, V, regime, scale):
    r, g, k, v, a, b, h0, do, dhT = dplr_inputs(seed, B, T, H, K, V, regime)
    o, hT, (dr, dg, dk, dv, da, db, dh0) = dplr_fla(r, g, k, v, a, b, h0, do, dhT, scale, False)
    ref = {"o": o, "hT": hT, "dr": dr, "dg": dg, "dk": dk, "dv": dv, "da": da, "db": db,
           "dh0": dh0}
    o2, hT2, g2 = dplr_fla(r, g, k, v, a, b, h0, do, dhT, scale, True)
    other = dict(zip(["o", "hT", "dr", "dg", "dk", "dv", "da", "db", "dh0"], [o2, hT2, *g2]))
    label = (f"fla.ops.generalized_delta_rule.dplr.naive.dplr_chunkwise(chunk_size="
             f"{CHUNK_SECOND_OPINION}, T zero-padded)")
    opinions = {label: {n: float(f"{rel_max(ref[n], other[n]):.3e}") for n in ref}}
    if max(opinions[label].values()) > 1e-9:
        raise RuntimeError(f"{name}: second opinion disagrees: {opinions}")
    tensors = {"r": r, "g": g, "k": k, "v": v, "a": a, "b": b, "h0": h0, "do": do, "dhT": dhT,
               **ref}
    gdesc = ("g = -0.6065*sigmoid(randn)" if regime == "rwkv7" else
             "g = -0.6065*sigmoid(randn); channels k%3==0 at -5, k%3==1 in U(-8,-6)")
    desc = (f"DPLR (RWKV-7 / generalized delta rule) recurrence, B={B} T={T} H={H} K={K} V={V}, "
            f"{regime} regime: kk unit-norm per head, a=-kk, b=kk*U(0,1), {gdesc}; nonzero h0, "
            f"scale={scale!r}. S_t = diag(exp g_t) S_(t-1) + b_t (a_t^T S_(t-1)) + k_t v_t^T, "
            "o_t = S_t^T (scale r_t). Inputs fp32-exact; outputs/gradients float64.")
    meta = {
        "scale": repr(float(scale)),
        "source": f"fla.ops.generalized_delta_rule.dplr.naive.dplr_recurrence "
                  f"(flash-linear-attention {fla.__version__}), float64, gradients by torch autograd",
        "description": desc,
        "kind": "dplr",
        "seed": str(seed),
        "loss": "sum(o*do) + sum(hT*dhT)",
        "layout": "r,g,k,a,b,dr,dg,dk,da,db [B,T,H,K]; v,o,do,dv [B,T,H,V]; "
                  "h0,hT,dhT,dh0 [B,H,K,V]",
        "second_opinion": json.dumps(opinions, sort_keys=True),
        "versions": f"torch {torch.__version__}, flash-linear-attention {fla.__version__}",
    }
    return tensors, meta


# Shapes are chosen so each file stays under 200 KB in float64 (B and H trade against T, K, V);
# together the cases cover B > 1, H > 1, T < 16 < T with T % 16 != 0, T = 64, K != V.
GLA_CASES = [
    # name,                          seed, B, T,  H, K,  V,  regime,     scale (None = K^-1/2)
    ("gla_b2h3_t19_k16v16_moderate", 1101, 2, 19, 3, 16, 16, "moderate", None),
    ("gla_b1h3_t37_k16v16_strong",   1102, 1, 37, 3, 16, 16, "strong",   None),
    ("gla_b1h2_t64_k16v16_moderate", 1103, 1, 64, 2, 16, 16, "moderate", 1.0),
    ("gla_b1h1_t37_k24v40_strong",   1104, 1, 37, 1, 24, 40, "strong",   None),
]
DPLR_CASES = [
    ("dplr_b2h2_t19_k16v16_rwkv7",   2101, 2, 19, 2, 16, 16, "rwkv7",  None),
    ("dplr_b1h1_t64_k16v16_strong",  2103, 1, 64, 1, 16, 16, "strong", 0.5),
    ("dplr_b1h1_t37_k24v40_rwkv7",   2104, 1, 37, 1, 24, 40, "rwkv7",  None),
    ("dplr_b1h1_t37_k24v40_strong",  2105, 1, 37, 1, 24, 40, "strong", None),
]


def main():
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)
    os.makedirs(OUT_DIR, exist_ok=True)
    for cases, maker in ((GLA_CASES, make_gla), (DPLR_CASES, make_dplr)):
        for name, seed, B, T, H, K, V, regime, scale in cases:
            scale = K ** -0.5 if scale is None else scale
            tensors, meta = maker(name, seed, B, T, H, K, V, regime, scale)
            path = os.path.join(OUT_DIR, name + ".safetensors")
            write_safetensors(path, tensors, meta)
            worst = max(max(v.values()) for v in json.loads(meta["second_opinion"]).values())
            print(f"{path}: {os.path.getsize(path)} bytes, second opinion worst rel {worst:.1e}")


if __name__ == "__main__":
    main()
