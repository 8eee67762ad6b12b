#!/usr/bin/env python3
"""Writes the RAD-RWKV6 / RAD-RWKV7 mixer golden files (tests/data/oracles/mixer_<case>.safetensors).

How to run (from the repository root; CPU only, a few seconds):

    tools/.venv/bin/python tools/gen_mixer_goldens.py

    (any venv with the packages pinned in tools/requirements.txt; fla is imported only for the
    cross-check of the two recurrences described below, not to compute any golden value.)

What it computes: tools/radlads_reference.py (an independent float64 transcription of
docs/spec.md §3.3, §3.4, §9) on random parameters, forward and backward by torch autograd of
L = sum(y * dy). Tensors, metadata and cases are documented in docs/formats/oracles.md, which the
C++ tests are written against.

Inputs and parameters are drawn in float64 from fixed torch.Generator seeds and rounded to
float32 (stored as F64, exactly representable in F32), so an fp32 engine reading them sees the
very values the reference used. Parameter scales are chosen so every path matters: decays from
~0.99 to the e^-5 clamp (RWKV6) / over most of (0.545, 1) (RWKV7), sigmoids away from
saturation, LoRA outputs of order 0.1-1, tokenshift mixes in (0, 1).

Cross-check (run every time, result in each file's metadata `checks`): the two recurrences of
the reference (written in the spec's layouts) are compared with flash-linear-attention's naive
references on random inputs -- GLA against naive_recurrent_gla, the RWKV-7 [value, key] form
against dplr_recurrence in its [key, value] form with a = -kappa, b = kappa * a -- so the mixer
goldens and the recurrence goldens are known to use one and the same recurrence.

Determinism: fixed seeds, torch.use_deterministic_algorithms(True), one torch thread, and the
deterministic writer tools/oracle_writer.py. Rerunning reproduces the committed files byte for
byte on the same torch version (checked with cmp).
"""

import json
import math
import os
import sys
import warnings

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import radlads_reference as ref  # noqa: E402
from oracle_writer import write_safetensors  # noqa: E402

OUT_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                       "tests", "data", "oracles")

# Shapes shared by every case.
B, T, C, H, KV, N = 2, 19, 64, 4, 2, 16
RANK = 8        # decay, tokenshift, iclr, value-residual LoRA ranks
RANK_GATE = 16  # LoRA gate rank


def student_config(model_type, **flags):
    """A complete config.json (docs/spec.md §9.1) with every key explicit."""
    rwkv6 = model_type == "rwkv6qwen2"
    cls = "RWKV6Qwen2" if rwkv6 else "RWKV7Qwen2"
    mod = "rwkv6qwen2" if rwkv6 else "rwkv7qwen2"
    cfg = {
        "architectures": [f"{cls}ForCausalLM"],
        "auto_map": {
            "AutoConfig": f"configuration_{mod}.{cls}Config",
            "AutoModelForCausalLM": f"modeling_{mod}.{cls}ForCausalLM",
        },
        "model_type": model_type,
        "vocab_size": 320,
        "hidden_size": C,
        "intermediate_size": 128,
        "num_hidden_layers": 3,
        "num_attention_heads": H,
        "num_key_value_heads": KV,
        "head_dim": N,
        "hidden_act": "silu",
        "max_position_embeddings": 4096,
        "rms_norm_eps": 1e-06,
        "tie_word_embeddings": False,
        "rope_theta": flags.pop("rope_theta", 10000.0),
        "rope_scaling": None,
        "use_sliding_window": False,
        "attention_dropout": 0.0,
        "bos_token_id": 1,
        "eos_token_id": 2,
        "torch_dtype": "float32",
        "use_rope": flags.pop("use_rope"),
        "attention_bias": True,
        "attention_output_bias": flags.pop("attention_output_bias", False),
        "gate_rank_type": flags.pop("gate_rank_type"),
        "lora_rank_gate": RANK_GATE,
        "balance_state": flags.pop("balance_state"),
        "groupnorm_att": flags.pop("groupnorm_att"),
        "use_tokenshift": flags.pop("use_tokenshift", False),
        "lora_rank_decay": RANK,
    }
    if rwkv6:
        cfg["lora_rank_tokenshift"] = RANK
    else:
        cfg["lora_rank_iclr"] = RANK
        cfg["lora_rank_value_residual_mix"] = RANK
        cfg["num_attention_layers"] = 0
    if flags:
        raise ValueError(f"unknown flags {flags}")
    return cfg


CASES = [
    # name, seed, layer, config, description
    ("rwkv6_default", 3101, 0,
     student_config("rwkv6qwen2", use_tokenshift=True, gate_rank_type=1, balance_state=True,
                    groupnorm_att=False, use_rope=False),
     "RAD-RWKV6, released setting: tokenshift, full-rank gate, balance_state, no GroupNorm "
     "(y scaled by N^-1/2 in the GLA), no RoPE"),
    ("rwkv6_variant", 3102, 1,
     student_config("rwkv6qwen2", use_tokenshift=False, gate_rank_type=2, balance_state=False,
                    groupnorm_att=True, use_rope=True, rope_theta=10000.0),
     "RAD-RWKV6 variant: RoPE (theta 1e4), LoRA gate, GroupNorm of the N^-1/2-scaled GLA output, "
     "no tokenshift (no time_maa_* tensors), no balance_state"),
    ("rwkv7_l0", 3103, 0,
     student_config("rwkv7qwen2", gate_rank_type=2, balance_state=True, groupnorm_att=False,
                    use_rope=True, rope_theta=1000000.0),
     "RAD-RWKV7 layer 0, paper form: balance_state keys, RoPE (theta 1e6), LoRA gate, y * N^-1/2; "
     "stores v_first_out"),
    ("rwkv7_l1", 3104, 1,
     student_config("rwkv7qwen2", gate_rank_type=2, balance_state=True, groupnorm_att=False,
                    use_rope=True, rope_theta=1000000.0),
     "RAD-RWKV7 layer 1, paper form: balance_state keys, RoPE (theta 1e6), LoRA gate, y * N^-1/2; "
     "value residual from the input v_first"),
    ("rwkv7_std_l1", 3105, 1,
     student_config("rwkv7qwen2", gate_rank_type=1, balance_state=False, groupnorm_att=True,
                    use_rope=False, attention_output_bias=True),
     "RAD-RWKV7 layer 1, standard RWKV-7 keys (k_k, k_a), GroupNorm, full-rank gate, "
     "o_proj bias, no RoPE; value residual from the input v_first"),
]


class Draw:
    def __init__(self, seed):
        self.g = torch.Generator().manual_seed(seed)

    def randn(self, *shape):
        return torch.randn(*shape, generator=self.g, dtype=torch.float64)

    def uniform(self, lo, hi, *shape):
        return lo + (hi - lo) * torch.rand(*shape, generator=self.g, dtype=torch.float64)


def per_head_ramp(lo, hi, d):
    """[1, 1, H*N]: in every head, channel n goes linearly from lo to hi, plus a little noise."""
    ramp = torch.linspace(lo, hi, N, dtype=torch.float64).repeat(H)
    return (ramp + 0.1 * d.randn(H * N)).reshape(1, 1, H * N)


def init_parameter(name, shape, d):
    """Random values (not the spec's init) with scales that make every path matter."""
    if name in ("q_proj.weight", "k_proj.weight", "v_proj.weight", "gate.weight"):
        return d.randn(*shape) * shape[1] ** -0.5
    if name == "o_proj.weight":
        return d.randn(*shape) * shape[1] ** -0.5
    if name.endswith(".bias") and name != "ln_x.bias":
        return 0.2 * d.randn(*shape)
    if name == "ln_x.weight":
        return 1.0 + 0.2 * d.randn(*shape)
    if name == "ln_x.bias":
        return 0.1 * d.randn(*shape)
    if name.startswith("time_maa_") and len(shape) == 3 and shape[:2] == (1, 1):
        return d.uniform(0.0, 1.0, *shape)  # lerp coefficients mu
    if name == "time_decay":
        # d in about [-4.5, 2]: -exp(d) from -0.011 (decay 0.989) past the -5 clamp (d > 1.61).
        return per_head_ramp(-4.5, 2.0, d)
    if name == "w0":
        # sigmoid(w_raw) from ~0.01 to ~0.95: decay from ~0.996 down to ~0.56.
        return per_head_ramp(-5.0, 3.0, d)
    if name in ("a0", "v0"):
        return 0.5 * d.randn(*shape)
    if name == "k_k":
        return d.uniform(0.5, 1.2, *shape)
    if name == "k_a":
        return d.uniform(0.3, 1.5, *shape)
    if name == "r_k":
        return 0.1 * d.randn(*shape)
    if name in ("time_maa_w1", "time_decay_w1", "w1", "a1", "v1", "g1"):
        return (0.2 if name == "g1" else 0.1) * d.randn(*shape)  # x @ W1 ~ 0.8-1.6 before tanh/sigmoid
    if name == "time_maa_w2":
        return d.randn(*shape) * 0.3 * shape[1] ** -0.5  # m_* ~ 0.2
    if name in ("time_decay_w2", "w2", "a2", "v2"):
        return d.randn(*shape) * 0.5 * shape[0] ** -0.5  # LoRA output ~ 0.3-0.5
    if name == "g2":
        return d.randn(*shape) * shape[0] ** -0.5  # gate ~ O(1)
    raise KeyError(name)


def f32_exact(x):
    return x.to(torch.float32).to(torch.float64)


def cross_check_recurrences():
    """The reference's spec-layout recurrences against fla's naive ones (see module docstring)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import fla
        from fla.ops.generalized_delta_rule.dplr.naive import dplr_recurrence
        from fla.ops.gla.naive import naive_recurrent_gla
    d = Draw(9999)
    Bc, Tc, Hc, Nc = 2, 11, 3, 8
    r, k, v = d.randn(Bc, Tc, Hc, Nc), d.randn(Bc, Tc, Hc, Nc), d.randn(Bc, Tc, Hc, Nc)
    w = torch.exp(-d.uniform(0.0, 2.0, Bc, Tc, Hc, Nc))
    # GLA: fla's naive computes in float32 (it casts); compare at float32 precision.
    mine = ref.gla_recurrence(r, k, v, w, Nc ** -0.5)
    theirs, _ = naive_recurrent_gla(*(x.float() for x in (r, k, v, torch.log(w))))
    err_gla = ((mine - theirs.double()).abs().max() / mine.abs().max()).item()
    # RWKV-7: [value, key] spec form vs fla's [key, value] DPLR form with a=-kappa, b=kappa*a.
    kappa = ref.l2_normalize(d.randn(Bc, Tc, Hc, Nc))
    a = torch.sigmoid(d.randn(Bc, Tc, Hc, Nc))
    mine = ref.rwkv7_recurrence(r, w, kappa, a, k, v)
    bhtk = lambda x: x.transpose(1, 2).float().contiguous()  # noqa: E731
    theirs, _ = dplr_recurrence(bhtk(r * Nc ** 0.5), bhtk(k), bhtk(v), bhtk(-kappa),
                                bhtk(kappa * a), bhtk(torch.log(w)))  # its q carries Nc^-1/2
    err_rwkv7 = ((mine - theirs.transpose(1, 2).double()).abs().max() / mine.abs().max()).item()
    if err_gla > 1e-5 or err_rwkv7 > 1e-5:
        raise RuntimeError(f"reference recurrences disagree with fla: gla {err_gla}, rwkv7 {err_rwkv7}")
    return (f"reference recurrences vs flash-linear-attention {fla.__version__} naive "
            f"(float32 there): GLA max rel diff {err_gla:.1e}, RWKV-7 vs dplr_recurrence "
            f"{err_rwkv7:.1e}")


def unused_parameters(cfg, layer):
    """Parameters present in the layout (docs/spec.md §9.2) that the forward does not read: their gradient
    in the golden file is exactly zero."""
    if cfg["model_type"] != "rwkv7qwen2":
        return set()
    unused = {"r_k"}  # present, zero-initialised, unused (RAD-RWKV7 drops the bonus)
    if cfg["balance_state"]:
        unused |= {"k_k", "k_a"}
    if layer == 0:
        unused |= {"v0", "v1", "v2"}  # value residual only from layer 1 on
    return unused


def make_case(name, seed, layer, cfg, description, checks):
    d = Draw(seed)
    shapes = ref.parameter_shapes(cfg)
    params = {n: f32_exact(init_parameter(n, s, d)) for n, s in sorted(shapes.items())}
    for n, s in shapes.items():
        assert tuple(params[n].shape) == tuple(s), (n, params[n].shape, s)
    x = f32_exact(d.randn(B, T, C))
    dy = f32_exact(d.randn(B, T, C))
    rwkv7 = cfg["model_type"] == "rwkv7qwen2"
    v_first = f32_exact(d.randn(B, T, H * N)) if rwkv7 and layer >= 1 else None

    leaves = {n: t.clone().requires_grad_(True) for n, t in params.items()}
    x_leaf = x.clone().requires_grad_(True)
    vf_leaf = v_first.clone().requires_grad_(True) if v_first is not None else None
    v_first_out = None
    if rwkv7:
        y, v_first_out = ref.rwkv7_mixer(cfg, leaves, x_leaf, layer, vf_leaf)
    else:
        y = ref.rwkv6_mixer(cfg, leaves, x_leaf)
    loss = (y * dy).sum()
    wrt = [x_leaf] + [leaves[n] for n in sorted(leaves)] + ([vf_leaf] if vf_leaf is not None else [])
    grads = torch.autograd.grad(loss, wrt, allow_unused=True)
    grads = [torch.zeros_like(w) if g is None else g for w, g in zip(wrt, grads)]

    tensors = {"x": x, "dy": dy, "y": y.detach(), "dx": grads[0]}
    for i, n in enumerate(sorted(leaves)):
        tensors["p." + n] = params[n]
        tensors["dp." + n] = grads[1 + i]
    if vf_leaf is not None:
        tensors["v_first"] = v_first
        tensors["dv_first"] = grads[-1]
    if v_first_out is not None:
        tensors["v_first_out"] = v_first_out.detach()

    unused = unused_parameters(cfg, layer)
    for n, t in tensors.items():  # every golden value finite, every used gradient path alive
        assert torch.isfinite(t).all(), n
        if n.startswith("dp.") and n[3:] in unused:
            assert t.abs().max() == 0, f"{name}: unused parameter {n} has a gradient"
        elif n.startswith("d") and n != "dy":
            assert t.abs().max() > 0, f"{name}: gradient {n} is identically zero"
    meta = {
        "student_config": json.dumps(cfg, indent=2) + "\n",
        "layer": str(layer),
        "description": description + f". B={B} T={T} C={C} H={H} KV={KV} N={N}; "
                       "L = sum(y*dy); inputs and parameters fp32-exact, outputs float64.",
        "loss": "sum(y*dy)",
        "source": "tools/radlads_reference.py (float64 transcription of docs/spec.md "
                  "§3.3/§3.4/§9), gradients by torch autograd",
        "seed": str(seed),
        "checks": checks,
        "unused_parameters": ",".join(sorted(unused)),
        "versions": f"torch {torch.__version__}",
    }
    return tensors, meta


def main():
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)
    os.makedirs(OUT_DIR, exist_ok=True)
    checks = cross_check_recurrences()
    print(checks)
    total = 0
    for name, seed, layer, cfg, desc in CASES:
        tensors, meta = make_case(name, seed, layer, cfg, desc, checks)
        path = os.path.join(OUT_DIR, f"mixer_{name}.safetensors")
        write_safetensors(path, tensors, meta)
        size = os.path.getsize(path)
        total += size
        y = tensors["y"]
        print(f"{path}: {size} bytes, {len(tensors)} tensors, rms(y) {y.pow(2).mean().sqrt():.3f}")
    print(f"total {total} bytes")


if __name__ == "__main__":
    main()
