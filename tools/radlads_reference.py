"""Independent float64 PyTorch transcription of the RAD-RWKV6 and RAD-RWKV7 token mixers.

Written from docs/spec.md §3.3, §3.4 and §9.1-9.3 ONLY (no look at the C++
mixers, no call into fla): it exists to produce golden files (tools/gen_mixer_goldens.py) that
check our engine against a second, separately written implementation. Readability first: plain
loops over time, one formula per line, the spec's own state layouts.

Not a script. Library entry points:
    rwkv6_mixer(cfg, p, x)                   -> y
    rwkv7_mixer(cfg, p, x, layer, v_first)   -> (y, v_first_out)
    parameter_shapes(cfg)                    -> {name: shape}   (§9.2 names)
where `cfg` is a student config.json dict (§9.1 keys), `p` maps the §9.2 tensor names relative
to `model.layers.{i}.self_attn.` (e.g. "q_proj.weight", "time_maa_w1", "w0") to float64
tensors, and x [B, T, C] is the mixer input (the RMS-normed hidden state).

Conventions transcribed from the spec (section in brackets):
- Linear layers `*_proj.weight`, `gate.weight` are [out, in]: y = x W^T + b.  LoRA factors
  (`time_maa_w1`, `w1`, `g1`, ...) are [in, out]: y = x W1 W2.                        [§9.2]
- Heads: channel h*N + n is channel n of head h. GQA: query head h reads kv head
  h // (H / KV).                                                                     [§3.3 item 2]
- RoPE, rotate-half layout, positions 0..T-1 of the window, omega_i = theta^(-2i/N),
  angle table [t*omega, t*omega], x*cos + rotate_half(x)*sin, rotate_half = [-x2, x1];
  applied to r and k per head BEFORE the GQA expansion.                              [§3.2, §9.3]
- RWKV6: tokenshift with x_{-1} = 0; the five LoRA blocks in the order r, k, v, w, g; decay
  log w = max(-exp(d), -5); balance_state k <- k * (1 - w) after GQA expansion; GLA recurrence
  with the state indexed [key, value], S_t = diag(w_t) S_{t-1} + k_t^T v_t,
  p_t = N^-1/2 r_t S_t (the updated state; scale on r, always); optional GroupNorm of p;
  gate; o_proj.                                                                      [§3.3, §9.3]
- RWKV7: no tokenshift; log w = -exp(-0.5 - softplus(-w_raw)); a = sigmoid(a0 + x A1 A2);
  value residual (layer 0 stores v_first = v' after GQA expansion; layers >= 1 use
  v = v' + sigmoid(v0 + x V1 V2) * (v_first - v')); keys in the balance form
  (kappa = k / max(||k||, 1e-12) per head, k~ = k * (1 - w + a)) or the standard form
  (kappa = normalize(k * k_k), k~ = k * (1 + (a - 1) * k_a)); recurrence with the state indexed
  [value, key]: S_t = S_{t-1} (diag(w_t) - kappa_t^T (a_t * kappa_t)) + v_t^T k~_t,
  y_t = S_t r_t^T; GroupNorm (groupnorm_att) or y * N^-1/2; gate; o_proj.            [§3.4, §9.3]
- GroupNorm: H groups of N channels (one per head), biased variance, eps = N * 1e-5, affine
  ln_x.weight / ln_x.bias [H*N].                                                     [§3.4 item 9, §9.2]
- Gate: type 1 g = sigmoid(x_g Wg^T); type 2 g = sigmoid(x_g G1) G2; type 0 none. (x_g is the
  tokenshifted input in RWKV6, x in RWKV7.)                                          [§3.3 item 5, §9.3]
- o = (y * g) Wo^T (+ o_proj.bias when attention_output_bias).                       [§9.1, §9.3]
- The initial recurrent state is zero (a training window starts from an empty state).
"""

import torch
import torch.nn.functional as F

# ----------------------------------------------------------------------------------------------
# Shapes
# ----------------------------------------------------------------------------------------------


def dims(cfg):
    C = cfg["hidden_size"]
    H = cfg["num_attention_heads"]
    KV = cfg["num_key_value_heads"]
    N = cfg.get("head_dim") or C // H
    return C, H, KV, N


def parameter_shapes(cfg):
    """The mixer's tensors (§9.2), names relative to `model.layers.{i}.self_attn.`."""
    C, H, KV, N = dims(cfg)
    s = {
        "q_proj.weight": (H * N, C),
        "k_proj.weight": (KV * N, C),
        "v_proj.weight": (KV * N, C),
        "o_proj.weight": (C, H * N),
    }
    if cfg["attention_bias"]:
        s["q_proj.bias"] = (H * N,)
        s["k_proj.bias"] = (KV * N,)
        s["v_proj.bias"] = (KV * N,)
    if cfg["attention_output_bias"]:
        s["o_proj.bias"] = (C,)
    if cfg["gate_rank_type"] == 1:
        s["gate.weight"] = (H * N, C)
    elif cfg["gate_rank_type"] == 2:
        rg = cfg["lora_rank_gate"]
        s["g1"] = (C, rg)
        s["g2"] = (rg, H * N)  # §9.2 writes [r_g, D]; D == H*N in every config we write
    if cfg["groupnorm_att"]:
        s["ln_x.weight"] = (H * N,)
        s["ln_x.bias"] = (H * N,)
    if cfg["model_type"] == "rwkv6qwen2":
        if cfg["use_tokenshift"]:
            rts = cfg["lora_rank_tokenshift"]
            for name in ("x", "r", "k", "v", "w", "g"):
                s[f"time_maa_{name}"] = (1, 1, C)
            s["time_maa_w1"] = (C, 5 * rts)
            s["time_maa_w2"] = (5, rts, C)
        rd = cfg["lora_rank_decay"]
        s["time_decay"] = (1, 1, H * N)
        s["time_decay_w1"] = (C, rd)
        s["time_decay_w2"] = (rd, H * N)
    elif cfg["model_type"] == "rwkv7qwen2":
        for name in ("w0", "a0", "v0", "k_k", "k_a"):
            s[name] = (1, 1, H * N)  # §9.2 writes [1, 1, D]; D == H*N in every config we write
        rd, ra, rv = cfg["lora_rank_decay"], cfg["lora_rank_iclr"], cfg["lora_rank_value_residual_mix"]
        s["w1"], s["w2"] = (C, rd), (rd, H * N)
        s["a1"], s["a2"] = (C, ra), (ra, H * N)
        s["v1"], s["v2"] = (C, rv), (rv, H * N)
        s["r_k"] = (H, N)
    else:
        raise ValueError(cfg["model_type"])
    return s


# ----------------------------------------------------------------------------------------------
# Shared pieces
# ----------------------------------------------------------------------------------------------


def linear(x, p, name):
    """x W^T (+ b): `name.weight` is [out, in]."""
    y = x @ p[name + ".weight"].T
    if name + ".bias" in p:
        y = y + p[name + ".bias"]
    return y


def heads(x, n_heads):
    """[B, T, n_heads * N] -> [B, T, n_heads, N]."""
    B, T, HN = x.shape
    return x.reshape(B, T, n_heads, HN // n_heads)


def merge_heads(x):
    B, T, H, N = x.shape
    return x.reshape(B, T, H * N)


def rope(x, theta):
    """Rotate-half RoPE on [B, T, heads, N], positions 0..T-1 (§3.2)."""
    B, T, Hh, N = x.shape
    i = torch.arange(N // 2, dtype=torch.float64)
    omega = theta ** (-2.0 * i / N)  # [N/2]
    t = torch.arange(T, dtype=torch.float64)
    angle = torch.outer(t, omega)  # [T, N/2]
    angle = torch.cat([angle, angle], dim=-1)  # [T, N]: [t*omega, t*omega]
    cos = torch.cos(angle)[None, :, None, :]
    sin = torch.sin(angle)[None, :, None, :]
    x1, x2 = x[..., : N // 2], x[..., N // 2:]
    rotated = torch.cat([-x2, x1], dim=-1)
    return x * cos + rotated * sin


def expand_kv(x, H):
    """GQA: [B, T, KV, N] -> [B, T, H, N], query head h reads kv head h // (H / KV)."""
    KV = x.shape[2]
    group = H // KV
    idx = torch.tensor([h // group for h in range(H)])
    return x[:, :, idx, :]


def group_norm(y, weight, bias, H, eps):
    """Per-head normalisation of y [B, T, H*N]: H groups of N channels, biased variance."""
    B, T, HN = y.shape
    yh = y.reshape(B, T, H, HN // H)
    mean = yh.mean(dim=-1, keepdim=True)
    var = ((yh - mean) ** 2).mean(dim=-1, keepdim=True)
    normed = (yh - mean) / torch.sqrt(var + eps)
    return normed.reshape(B, T, HN) * weight + bias


def gate(cfg, p, xg):
    """None for gate_rank_type 0, else the sigmoid gate [B, T, H*N]."""
    t = cfg["gate_rank_type"]
    if t == 0:
        return None
    if t == 1:
        return torch.sigmoid(xg @ p["gate.weight"].T)
    if t == 2:
        return torch.sigmoid(xg @ p["g1"]) @ p["g2"]
    raise ValueError(f"gate_rank_type {t}")


def output(cfg, p, y, g):
    if g is not None:
        y = y * g
    return linear(y, p, "o_proj")


# ----------------------------------------------------------------------------------------------
# RAD-RWKV6 (§3.3, §9.3)
# ----------------------------------------------------------------------------------------------


def rwkv6_tokenshift(cfg, p, x):
    """The five data-dependent lerps (§3.3 item 1): returns x_r, x_k, x_v, x_w, x_g."""
    if not cfg["use_tokenshift"]:
        return x, x, x, x, x
    B, T, C = x.shape
    rts = cfg["lora_rank_tokenshift"]
    x_prev = torch.cat([torch.zeros(B, 1, C, dtype=x.dtype), x[:, :-1, :]], dim=1)
    delta = x_prev - x  # Delta_t = x_{t-1} - x_t, x_{-1} = 0
    x_hat = x + delta * p["time_maa_x"]
    lora = torch.tanh(x_hat @ p["time_maa_w1"])  # [B, T, 5 * rts]
    mixed = []
    for i, name in enumerate(("r", "k", "v", "w", "g")):
        block = lora[:, :, i * rts:(i + 1) * rts]  # block i of r_ts consecutive columns
        m = block @ p["time_maa_w2"][i]  # [B, T, C]
        mixed.append(x + delta * (p[f"time_maa_{name}"] + m))
    return tuple(mixed)


def gla_recurrence(r, k, v, w, scale):
    """Per (b, h): S_t = diag(w_t) S_{t-1} + k_t^T v_t with S [key, value], S_0 = 0;
    p_t = scale * r_t S_t (row vector times matrix).  All inputs [B, T, H, N]."""
    B, T, H, N = r.shape
    S = torch.zeros(B, H, N, N, dtype=r.dtype)  # [key, value]
    out = []
    for t in range(T):
        kv = k[:, t, :, :, None] * v[:, t, :, None, :]  # k_t^T v_t: [B, H, key, value]
        S = w[:, t, :, :, None] * S + kv
        p_t = scale * torch.einsum("bhk,bhkv->bhv", r[:, t], S)
        out.append(p_t)
    return torch.stack(out, dim=1)  # [B, T, H, N]


def rwkv6_mixer(cfg, p, x):
    C, H, KV, N = dims(cfg)
    x_r, x_k, x_v, x_w, x_g = rwkv6_tokenshift(cfg, p, x)
    # Projections (§3.3 item 2); RoPE before the GQA expansion (§9.3).
    r = heads(linear(x_r, p, "q_proj"), H)
    k = heads(linear(x_k, p, "k_proj"), KV)
    v = heads(linear(x_v, p, "v_proj"), KV)
    if cfg["use_rope"]:
        r = rope(r, cfg["rope_theta"])
        k = rope(k, cfg["rope_theta"])
    k = expand_kv(k, H)
    v = expand_kv(v, H)
    # Decay (§3.3 item 3).
    d = p["time_decay"] + torch.tanh(x_w @ p["time_decay_w1"]) @ p["time_decay_w2"]
    log_w = torch.clamp(-torch.exp(d), min=-5.0)  # max(-exp(d), -5)
    w = heads(torch.exp(log_w), H)
    # State balancing (§3.3 item 4), after GQA expansion.
    if cfg["balance_state"]:
        k = k * (1.0 - w)
    # Recurrence (§3.3 item 6): one factor N^-1/2, on r.
    y = merge_heads(gla_recurrence(r, k, v, w, N ** -0.5))
    if cfg["groupnorm_att"]:
        y = group_norm(y, p["ln_x.weight"], p["ln_x.bias"], H, N * 1e-5)
    g = gate(cfg, p, x_g)
    return output(cfg, p, y, g)


# ----------------------------------------------------------------------------------------------
# RAD-RWKV7 (§3.4, §9.3)
# ----------------------------------------------------------------------------------------------


def l2_normalize(x, eps=1e-12):
    """x / max(||x||, eps) over the last dim (per head)."""
    norm = torch.sqrt((x * x).sum(dim=-1, keepdim=True))
    return x / torch.clamp(norm, min=eps)


def rwkv7_recurrence(r, w, kappa, a, k_tilde, v):
    """Per (b, h), state S [value, key], S_0 = 0:
        S_t = S_{t-1} (diag(w_t) - kappa_t^T (a_t * kappa_t)) + v_t^T k~_t,   y_t = S_t r_t^T.
    All inputs [B, T, H, N]; returns y [B, T, H, N]."""
    B, T, H, N = r.shape
    S = torch.zeros(B, H, N, N, dtype=r.dtype)  # [value, key]
    eye = torch.eye(N, dtype=r.dtype)
    out = []
    for t in range(T):
        w_t, kap, a_t = w[:, t], kappa[:, t], a[:, t]  # [B, H, N]
        transition = eye * w_t[..., None, :] - kap[..., :, None] * (a_t * kap)[..., None, :]
        S = S @ transition + v[:, t, :, :, None] * k_tilde[:, t, :, None, :]
        y_t = torch.einsum("bhvk,bhk->bhv", S, r[:, t])
        out.append(y_t)
    return torch.stack(out, dim=1)


def rwkv7_mixer(cfg, p, x, layer, v_first=None):
    """Returns (o, v_first_out); v_first_out is v' [B, T, H*N] at layer 0, else None.
    Layers >= 1 need v_first [B, T, H*N] (layer 0's v_first_out)."""
    C, H, KV, N = dims(cfg)
    if cfg["use_tokenshift"]:
        raise ValueError("RAD-RWKV7 has no tokenshift (§3.4)")
    # 1-2. Projections; RoPE on r and k before the GQA expansion.
    r = heads(linear(x, p, "q_proj"), H)
    k = heads(linear(x, p, "k_proj"), KV)
    v_prime = heads(linear(x, p, "v_proj"), KV)
    if cfg["use_rope"]:
        r = rope(r, cfg["rope_theta"])
        k = rope(k, cfg["rope_theta"])
    k = expand_kv(k, H)
    v_prime = expand_kv(v_prime, H)
    # 3. Decay: log w = -exp(-0.5 - softplus(-w_raw)) = -e^-0.5 sigmoid(w_raw).
    w_raw = p["w0"] + torch.tanh(x @ p["w1"]) @ p["w2"]
    log_w = -torch.exp(-0.5 - F.softplus(-w_raw))
    w = heads(torch.exp(log_w), H)
    # 4. In-context learning rate.
    a = heads(torch.sigmoid(p["a0"] + x @ p["a1"] @ p["a2"]), H)
    # 5. Value residual.
    if layer == 0:
        v = v_prime
        v_first_out = merge_heads(v_prime)
    else:
        if v_first is None:
            raise ValueError("layers >= 1 need v_first")
        nu = heads(torch.sigmoid(p["v0"] + x @ p["v1"] @ p["v2"]), H)
        v = v_prime + nu * (heads(v_first, H) - v_prime)
        v_first_out = None
    # 6. Gate.
    g = gate(cfg, p, x)
    # 7. Keys.
    if cfg["balance_state"]:
        kappa = l2_normalize(k)
        k_tilde = k * (1.0 - w + a)
    else:
        kappa = l2_normalize(k * heads(p["k_k"].expand(1, 1, H * N), H))
        k_tilde = k * (1.0 + (a - 1.0) * heads(p["k_a"].expand(1, 1, H * N), H))
    # 8. Recurrence.
    y = merge_heads(rwkv7_recurrence(r, w, kappa, a, k_tilde, v))
    # 9. Normalisation.
    if cfg["groupnorm_att"]:
        y = group_norm(y, p["ln_x.weight"], p["ln_x.bias"], H, N * 1e-5)
    else:
        y = y * N ** -0.5
    # 10. Output.
    return output(cfg, p, y, g), v_first_out
