"""PyTorch peer of bench_align_step: one step-1 alignment step of a RAD-RWKV6 / RAD-RWKV7 mixer
(forward, loss = mean_tokens ||target - y||_2 / sqrt(C), autograd backward, global-norm clip 1.0,
AdamW betas (0.9, 0.95), eps 1e-8, no weight decay), float32, on the parameters and inputs the
C++ bench dumped (--dump).

The mixers follow tools/radlads_reference.py (the spec transcription) but are written for speed:
float32, the LoRA blocks of the tokenshift as one batched matmul, and the recurrences in the
chunked matrix form (no Python loop over time steps; one over chunks):
  GLA (RAD-RWKV6): per chunk of L tokens with inclusive log-decay cumsum b (per channel),
    A = (q e^{b-m}) (k e^{m-b})^T masked causal (m = the chunk's midpoint of b, so no factor
    exceeds e^{5(L-1)/2}: valid for the RAD-RWKV6 clamp log w >= -5 and L <= 32),
    o = A v + (q e^b) S,  S <- e^{b_L} S + (k e^{b_L-b})^T v.
  DPLR (RAD-RWKV7), fla's chunk_dplr_delta_rule WY form: A_qk, A_qb (j <= i), A_ak, A_ab (j < i)
    from the same factorisation (RAD-RWKV7's log w > -0.61, so any L <= 64 is safe), one
    torch.linalg.solve_triangular(I - A_ab, [A_ak V, a e^{ge}]) per chunk batch, then
    sa = U + W S, o = A_qk V + A_qb sa + (q e^{gc}) S, S <- e^{gt} S + Kd^T V + Bd^T sa.
  --impl fla (rwkv7 only) uses flash-linear-attention's own pure-PyTorch chunked reference
  (fla.ops.generalized_delta_rule.dplr.naive.dplr_chunkwise) instead, for comparison.
The chunk length (--chunk 0 = try 16/32 for GLA, 16/32/64 for DPLR) and the AdamW variant
(foreach / fused) are chosen by timing in eager mode; then (--compile auto) the forward + loss of
the best one is also run under torch.compile (inductor; AOTAutograd compiles the backward too,
fusing the elementwise chains of both), and the faster of eager and compiled is timed. The JSON
says which. Compilation happens in the warm-up, untimed.
"""

import argparse
import math

import peer_common as pc
import torch
import torch.nn.functional as F

PRE = None  # "model.layers.{l}.self_attn."


# ---------------------------------------------------------------------------------------------
# Recurrences, chunked matrix form. Inputs [B, T, H, D]; T must be a multiple of L.
# ---------------------------------------------------------------------------------------------

def _chunks(x, L):
    B, T, H, D = x.shape
    return x.view(B, T // L, L, H, D).permute(0, 3, 1, 2, 4)  # [B, H, NC, L, D]


def _unchunk(x):
    B, H, NC, L, D = x.shape
    return x.permute(0, 2, 3, 1, 4).reshape(B, NC * L, H, D)


def gla_chunked(q, k, v, g, scale, L):
    """o_t = S_t^T (scale q_t), S_t = diag(e^{g_t}) S_{t-1} + k_t v_t^T, S_0 = 0."""
    q, k, v, g = (_chunks(t, L) for t in (q * scale, k, v, g))
    B, H, NC, _, K = q.shape
    V = v.shape[-1]
    b = g.cumsum(-2)                       # inclusive
    bL = b[..., -1:, :]                    # [B, H, NC, 1, K]
    m = 0.5 * (b[..., :1, :] + bL)
    qi = q * torch.exp(b - m)
    ki = k * torch.exp(m - b)
    mask = torch.ones(L, L, dtype=torch.bool).tril()
    A = (qi @ ki.transpose(-1, -2)).masked_fill(~mask, 0.0)
    o = A @ v                              # intra-chunk
    if NC > 1:
        qs = q * torch.exp(b)
        kv = (k * torch.exp(bL - b)).transpose(-1, -2) @ v   # [B, H, NC, K, V]
        dL = torch.exp(bL).transpose(-1, -2)                  # [B, H, NC, K, 1]
        S = kv[:, :, 0]
        inter = [torch.zeros(B, H, L, V, dtype=q.dtype)]
        for n in range(1, NC):
            inter.append(qs[:, :, n] @ S)
            if n + 1 < NC:
                S = S * dL[:, :, n] + kv[:, :, n]
        o = o + torch.stack(inter, 2)
    return _unchunk(o)


def dplr_chunked(q, g, k, v, a, b, scale, L):
    """fla's DPLR: sa_t = S_{t-1}^T a_t, S_t = diag(e^{g_t}) S_{t-1} + b_t sa_t^T + k_t v_t^T,
    o_t = S_t^T (scale q_t), S_0 = 0."""
    q, g, k, v, a, b = (_chunks(t, L) for t in (q * scale, g, k, v, a, b))
    B, H, NC, _, K = q.shape
    V = v.shape[-1]
    gc = g.cumsum(-2)
    ge = gc - g
    gt = gc[..., -1:, :]
    m = 0.5 * gt
    eq = torch.exp(gc - m)
    ea = torch.exp(ge - m)
    ek = torch.exp(m - gc)
    Qi, Ai = q * eq, a * ea
    Ki, Bi = k * ek, b * ek
    incl = torch.ones(L, L, dtype=torch.bool).tril()
    strict = torch.ones(L, L, dtype=torch.bool).tril(-1)
    KB = torch.cat([Ki, Bi], -2).transpose(-1, -2)          # [.., K, 2L]
    AqKB = Qi @ KB                                           # [.., L, 2L]
    AaKB = Ai @ KB
    A_qk = AqKB[..., :L].masked_fill(~incl, 0.0)
    A_qb = AqKB[..., L:].masked_fill(~incl, 0.0)
    A_ak = AaKB[..., :L].masked_fill(~strict, 0.0)
    A_ab = AaKB[..., L:].masked_fill(~strict, 0.0)
    rhs = torch.cat([A_ak @ v, a * torch.exp(ge)], -1)      # [.., L, V + K]
    UW = torch.linalg.solve_triangular(-A_ab, rhs, upper=False, unitriangular=True)
    U, W = UW[..., :V], UW[..., V:]
    o_qk = A_qk @ v
    Qh = q * torch.exp(gc)
    dec = torch.exp(gt - gc)
    Kd, Bd = k * dec, b * dec
    kvs = Kd.transpose(-1, -2) @ v                           # [B, H, NC, K, V]
    eT = torch.exp(gt).transpose(-1, -2)                     # [B, H, NC, K, 1]
    outs = []
    S = None
    for n in range(NC):
        if S is None:
            sa = U[:, :, n]
            o_n = o_qk[:, :, n] + A_qb[:, :, n] @ sa
            S = kvs[:, :, n] + Bd[:, :, n].transpose(-1, -2) @ sa
        else:
            sa = U[:, :, n] + W[:, :, n] @ S
            o_n = o_qk[:, :, n] + A_qb[:, :, n] @ sa + Qh[:, :, n] @ S
            if n + 1 < NC:
                S = S * eT[:, :, n] + kvs[:, :, n] + Bd[:, :, n].transpose(-1, -2) @ sa
        outs.append(o_n)
    return _unchunk(torch.stack(outs, 2))


def dplr_fla(q, g, k, v, a, b, scale, L):
    from fla.ops.generalized_delta_rule.dplr.naive import dplr_chunkwise
    t = lambda x: x.transpose(1, 2)  # noqa: E731  [B, T, H, D] -> [B, H, T, D]
    K = q.shape[-1]
    # dplr_chunkwise multiplies q by K^-1/2 itself.
    o, _ = dplr_chunkwise(t(q * (scale * math.sqrt(K))), t(k), t(v), t(a), t(b), t(g),
                          output_final_state=False, chunk_size=L)
    return o.transpose(1, 2)


# ---------------------------------------------------------------------------------------------
# Mixers
# ---------------------------------------------------------------------------------------------

def expand_kv(x, H):
    return x.repeat_interleave(H // x.shape[2], dim=2)


def rope_tables(T, N, theta):
    inv = 1.0 / (theta ** (torch.arange(0, N, 2, dtype=torch.float32) / N))
    f = torch.outer(torch.arange(T, dtype=torch.float32), inv)
    e = torch.cat([f, f], -1)
    return e.cos()[None, :, None, :], e.sin()[None, :, None, :]


def rope(x, cos, sin):
    N = x.shape[-1]
    x1, x2 = x[..., : N // 2], x[..., N // 2:]
    return x * cos + torch.cat([-x2, x1], -1) * sin


class Rwkv6:
    """Released RAD-RWKV6 settings: tokenshift, full gate, balance_state, no RoPE/GroupNorm."""

    def __init__(self, p, dims, L):
        self.p, self.L = p, L
        self.C, self.H, self.KV, self.N = dims
        self.r_ts = p["time_maa_w1"].shape[1] // 5
        self.maa = None

    def mix(self, x, v_first):
        return self.forward(x, v_first), v_first

    def forward(self, x, v_first):
        p, C, H, KV, N = self.p, self.C, self.H, self.KV, self.N
        B, T, _ = x.shape
        delta = F.pad(x[:, :-1], (0, 0, 1, 0)) - x
        xx = torch.addcmul(x, delta, p["time_maa_x"])
        h = torch.tanh(xx @ p["time_maa_w1"]).view(B * T, 5, self.r_ts).transpose(0, 1)
        m = torch.bmm(h, p["time_maa_w2"])                                   # [5, BT, C]
        maa = torch.cat([p["time_maa_" + c] for c in "rkvwg"], 0).view(5, 1, C)
        xs = (x.view(1, B * T, C) + delta.view(1, B * T, C) * (maa + m))     # [5, BT, C]
        r = F.linear(xs[0], p["q_proj.weight"], p["q_proj.bias"]).view(B, T, H, N)
        k = F.linear(xs[1], p["k_proj.weight"], p["k_proj.bias"]).view(B, T, KV, N)
        v = F.linear(xs[2], p["v_proj.weight"], p["v_proj.bias"]).view(B, T, KV, N)
        k, v = expand_kv(k, H), expand_kv(v, H)
        d = torch.addmm(p["time_decay"].view(1, -1), torch.tanh(xs[3] @ p["time_decay_w1"]),
                        p["time_decay_w2"])
        logw = torch.clamp(-torch.exp(d), min=-5.0).view(B, T, H, N)
        k = k * -torch.expm1(logw)                                           # balance_state
        o = gla_chunked(r, k, v, logw, N ** -0.5, self.L).reshape(B * T, H * N)
        g = torch.sigmoid(F.linear(xs[4], p["gate.weight"]))
        return F.linear(o * g, p["o_proj.weight"]).view(B, T, C)


class Rwkv7:
    """Released RAD-RWKV7 settings: RoPE, LoRA gate, balance_state, no GroupNorm."""

    def __init__(self, p, dims, L, theta, recurrence):
        self.p, self.L, self.theta, self.rec = p, L, theta, recurrence
        self.C, self.H, self.KV, self.N = dims
        self.tables = {}

    def forward(self, x, v_first):
        return self.mix(x, v_first)[0]

    def mix(self, x, v_first):
        """(output, v_first for the later layers): layer 0 (v_first None) uses its own value
        and passes it on; later layers mix it in."""
        p, C, H, KV, N = self.p, self.C, self.H, self.KV, self.N
        B, T, _ = x.shape
        if T not in self.tables:
            self.tables[T] = rope_tables(T, N, self.theta)
        cos, sin = self.tables[T]
        x2 = x.view(B * T, C)
        r = F.linear(x2, p["q_proj.weight"], p["q_proj.bias"]).view(B, T, H, N)
        k = F.linear(x2, p["k_proj.weight"], p["k_proj.bias"]).view(B, T, KV, N)
        vp = F.linear(x2, p["v_proj.weight"], p["v_proj.bias"]).view(B, T, KV, N)
        r, k = rope(r, cos, sin), rope(k, cos, sin)
        k, vp = expand_kv(k, H), expand_kv(vp, H)
        w_raw = torch.addmm(p["w0"].view(1, -1), torch.tanh(x2 @ p["w1"]), p["w2"])
        logw = (-math.exp(-0.5) * torch.sigmoid(w_raw)).view(B, T, H, N)
        a = torch.sigmoid(torch.addmm(p["a0"].view(1, -1), x2 @ p["a1"], p["a2"])).view(B, T, H, N)
        if v_first is None:
            v = vp
            v_first = vp.reshape(B, T, H * N)
        else:
            nu = torch.sigmoid(torch.addmm(p["v0"].view(1, -1), x2 @ p["v1"], p["v2"])).view(B, T, H, N)
            v = torch.lerp(vp, v_first.view(B, T, H, N), nu)
        g = torch.sigmoid(x2 @ p["g1"]) @ p["g2"]
        kappa = F.normalize(k, dim=-1, eps=1e-12)
        ktil = k * (1.0 - torch.exp(logw) + a)
        o = self.rec(r, logw, ktil, v, -kappa, kappa * a, N ** -0.5, self.L).reshape(B * T, H * N)
        return F.linear(o * g, p["o_proj.weight"]).view(B, T, C), v_first


def align_loss(y, target):
    C = y.shape[-1]
    return torch.linalg.vector_norm(target - y, dim=-1).mean() / math.sqrt(C)


def make_step(mixer, params, opt, x, target, v_first, compiled=False):
    def fwd_loss():
        return align_loss(mixer.forward(x, v_first), target)

    if compiled:
        fwd_loss = torch.compile(fwd_loss)

    def step():
        loss = fwd_loss()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0, foreach=True)
        opt.step()
        opt.zero_grad(set_to_none=True)
        return loss
    return step


def main():
    ap = argparse.ArgumentParser()
    pc.add_common_args(ap, 8, 128)
    ap.add_argument("--arch", required=True, choices=["rwkv6", "rwkv7"])
    ap.add_argument("--layer", type=int, default=1)
    ap.add_argument("--impl", default="chunked", choices=["chunked", "fla"])
    pc.add_train_args(ap)
    pc.add_model_args(ap)
    a = ap.parse_args()
    pc.setup_threads(a.threads)
    load_start = pc.loadavg()
    raw = pc.load_tensors(a.load)
    pre = f"model.layers.{a.layer}.self_attn."
    x, target = raw["bench.x"], raw["bench.target"]
    v_first = raw.get("bench.v_first")
    B, T, C = x.shape
    if (B, T, C) != (a.batch, a.time, a.hidden):
        raise SystemExit(f"dumped x is {tuple(x.shape)}, expected ({a.batch}, {a.time}, {a.hidden})")
    dims = (C, a.heads, a.kv_heads, a.head_dim)
    init = {k[len(pre):]: v for k, v in raw.items() if k.startswith(pre)}

    def fresh(L, adamw, compiled=False):
        p = {k: v.clone().requires_grad_(k != "r_k") for k, v in init.items()}
        if a.arch == "rwkv6":
            mixer = Rwkv6(p, dims, L)
        else:
            rec = dplr_fla if a.impl == "fla" else dplr_chunked
            mixer = Rwkv7(p, dims, L, 10000.0, rec)
        params = [t for t in p.values() if t.requires_grad]
        kw = {"foreach": True} if adamw == "foreach" else {"fused": True}
        opt = torch.optim.AdamW(params, lr=a.lr, betas=(0.9, 0.95), eps=1e-8, weight_decay=0.0, **kw)
        return mixer, params, make_step(mixer, params, opt, x, target, v_first, compiled)

    chunks = [a.chunk] if a.chunk else ([16, 32] if a.arch == "rwkv6" else [16, 32, 64])
    chunks = [L for L in chunks if T % L == 0]
    adamws = ["foreach", "fused"] if a.adamw == "auto" else [a.adamw]
    (L, adamw, compiled), probes = pc.choose(lambda L, w, c: fresh(L, w, c)[2], chunks, adamws, a.compile, a.warmup)

    # Checks on a fresh copy: loss before any step, and after exactly one step.
    mixer, params, step = fresh(L, adamw, compiled)
    with torch.no_grad():
        check = align_loss(mixer.forward(x, v_first), target).item()
    step()
    with torch.no_grad():
        check_after = align_loss(mixer.forward(x, v_first), target).item()
    samples = pc.time_fn(step, a.warmup, a.iters)
    pc.emit({"bench": "align_step_" + a.arch,
             "impl": f"torch:{a.impl}{'+compile' if compiled else ''} L={L} adamw={adamw}",
             "B": B, "T": T, "C": C, "H": a.heads, "KV": a.kv_heads, "N": a.head_dim, "layer": a.layer,
             "chunk": L, "adamw": adamw, "compiled": compiled, "threads": torch.get_num_threads(), "warmup": a.warmup,
             "check": check, "check_after": check_after,
             "probe_s": {f"L{k[0]}/{k[1]}{'/compiled' if k[2] else ''}": v for k, v in probes.items()},
             "load_start": load_start, "load_end": pc.loadavg()}, samples, B * T)


if __name__ == "__main__":
    main()
