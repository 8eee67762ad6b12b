#!/usr/bin/env python3
"""Writes complete tiny RADLADS student models "we did not write" (tests/data/students/).

How to run (from the repository root; CPU only, well under a minute):

    tools/.venv/bin/python tools/gen_student_fixtures.py

    (any venv with the packages pinned in tools/requirements.txt: torch, transformers,
    safetensors, numpy, and huggingface_hub, which transformers depends on.)

Each fixture tests/data/students/<name>/ is a Hugging Face model directory laid out exactly as
the converted models the RADLADS paper released (docs/spec.md §9):

  config.json                  model_type rwkv6qwen2 / rwkv7qwen2, architectures
                               ["RWKV{6,7}Qwen2ForCausalLM"], auto_map, every §9.1 key (some
                               lora_rank_* deliberately null: the loader must apply the released
                               code's per-type defaults), plus the usual Qwen2 extras
  model.safetensors            written by `safetensors.torch.save_file` (metadata {"format": "pt"})
  or model-0000K-of-0000N.safetensors + model.safetensors.index.json
                               split by huggingface_hub's `save_torch_state_dict` (the code
                               transformers' save_pretrained uses)
  logits.safetensors           tokens_0 I32 [9], logits_0 F32 [9, V], tokens_1 I32 [40],
                               logits_1 F32 [40, V] (tools/oracle_writer.py, deterministic)

The logits come from an independent float64 PyTorch forward of the whole model, computed from
the files as written (read back with safetensors, the index followed for the sharded fixture,
config.json re-read and its null ranks resolved here, from §9.1):

  x = embed_tokens[tokens]
  per layer l:  h = x + Mixer_l(RMSNorm(x; input_layernorm))
                x = h + down( silu(gate_proj(u)) * up_proj(u) ),  u = RMSNorm(h; post_attention_layernorm)
  logits = lm_head(RMSNorm(x; model.norm))                        (untied lm_head)

RMSNorm(x; w) = w * x * rsqrt(mean(x^2) + rms_norm_eps). The released code computes it in fp32;
here everything, the norms included, is float64 (the tight oracle for an fp32 engine), and the
logits are cast to float32 once at the end. The mixers are tools/radlads_reference.py's
rwkv6_mixer / rwkv7_mixer (a float64 transcription of docs/spec.md §3.3, §3.4, §9 that no
C++ author looked at), RWKV-7's v_first passed from layer 0 to the later layers. One sequence,
positions 0..T-1, zero initial recurrent state.

Weights are random draws (NOT the spec's init), rounded to the stored dtype before anything is
computed from them, at scales where every path matters: decays from ~0.99 down to RWKV-6's
e^-5 clamp, tokenshift lerps U(0,1), LoRA outputs O(0.3), gates O(1), value-residual mix and
in-context rates around 0.5, RoPE at theta 1e4 / 1e6. The generator prints, and stores in the
metadata as `sensitivity`, how far the logits move when each mechanism is switched off in the
reference (so a fixture demonstrably exercises it), and as `transformers_cross_check` a second
opinion on the decoder around the mixers: transformers' own Qwen2ForCausalLM (float64) with the
fixture's embedding / norm / MLP / head tensors and each self_attn replaced by the reference
mixer must reproduce the logits (asserted < 1e-12 relative; it is exactly 0).

Determinism: fixed seeds, torch.use_deterministic_algorithms(True), one torch thread; the
safetensors files carry one metadata key (so the Rust writer's map order cannot vary) and the
logits go through tools/oracle_writer.py. Rerunning rewrites every file byte for byte
identically on the same package versions (checked with `diff -r` against a copy).
"""

import contextlib
import json
import os
import shutil
import sys

import huggingface_hub
import numpy
import safetensors
import torch
import torch.nn.functional as F
from huggingface_hub import save_torch_state_dict
from safetensors import safe_open
from safetensors.torch import save_file
import transformers
from transformers import Qwen2Config, Qwen2ForCausalLM
from transformers.models.qwen2 import modeling_qwen2 as mq

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import radlads_reference as ref  # noqa: E402
from oracle_writer import write_safetensors  # noqa: E402

OUT_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                       "tests", "data", "students")
SEQ_LENS = (9, 40)

# ----------------------------------------------------------------------------------------------
# Fixtures
# ----------------------------------------------------------------------------------------------

FIXTURES = [
    dict(
        name="rwkv6qwen2_default", seed=5101, model_type="rwkv6qwen2", dtype="float32",
        shard_bytes=None,
        sizes=dict(vocab_size=300, hidden_size=48, intermediate_size=96, num_hidden_layers=2,
                   num_attention_heads=4, num_key_value_heads=2, head_dim=None,
                   rms_norm_eps=1e-6, rope_theta=1000000.0),
        flags=dict(use_rope=False, attention_bias=True, attention_output_bias=False,
                   gate_rank_type=1, balance_state=True, groupnorm_att=False,
                   use_tokenshift=True),
        ranks=dict(lora_rank_decay=None, lora_rank_gate=None, lora_rank_tokenshift=None),
        description="RAD-RWKV6 released setting (qwerky6.yaml / HF6 defaults): tokenshift, "
                    "full-rank gate, balance_state, no GroupNorm, no RoPE; GQA 4 heads / 2 kv "
                    "heads, head_dim 12 implied (no head_dim key); every lora_rank_* null, so the "
                    "rwkv6qwen2 defaults apply: tokenshift 32, decay 64 (D < 4096) -- not the "
                    "rwkv7 formula, which gives 32 for decay"),
    dict(
        name="rwkv7qwen2_default", seed=5102, model_type="rwkv7qwen2", dtype="float32",
        shard_bytes=None,
        sizes=dict(vocab_size=288, hidden_size=64, intermediate_size=96, num_hidden_layers=3,
                   num_attention_heads=4, num_key_value_heads=1, head_dim=16,
                   rms_norm_eps=1e-6, rope_theta=10000.0),
        flags=dict(use_rope=True, attention_bias=True, attention_output_bias=False,
                   gate_rank_type=2, balance_state=True, groupnorm_att=False,
                   use_tokenshift=False),
        ranks=dict(lora_rank_decay=None, lora_rank_gate=None, lora_rank_iclr=None,
                   lora_rank_value_residual_mix=None),
        description="RAD-RWKV7 paper form (HF7 defaults + use_rope as the released models): RoPE "
                    "(theta 1e4) on r and k, LoRA gate, balance_state keys, y * N^-1/2; 3 layers "
                    "(value residual from layer 0 in layers 1 and 2); GQA 4 heads / 1 kv head; "
                    "every lora_rank_* null, so the rwkv7qwen2 formula 32*max(1, round(D^e*m/32)) "
                    "applies: 32 for decay, iclr, value residual and gate at D = 64"),
    dict(
        name="rwkv7qwen2_std_groupnorm", seed=5103, model_type="rwkv7qwen2", dtype="bfloat16",
        shard_bytes=None,
        sizes=dict(vocab_size=240, hidden_size=32, intermediate_size=80, num_hidden_layers=2,
                   num_attention_heads=2, num_key_value_heads=2, head_dim=16,
                   rms_norm_eps=1e-5, rope_theta=1000000.0),
        flags=dict(use_rope=True, attention_bias=True, attention_output_bias=True,
                   gate_rank_type=2, balance_state=False, groupnorm_att=True,
                   use_tokenshift=False),
        ranks=dict(lora_rank_decay=8, lora_rank_gate=40, lora_rank_iclr=16,
                   lora_rank_value_residual_mix=24),
        description="RAD-RWKV7 standard RWKV-7 keying (the repo's final qwerky7.yaml): "
                    "balance_state false (kappa = normalize(k * k_k), k~ = k * (1 + (a-1) * k_a)), "
                    "per-head GroupNorm (eps N*1e-5) instead of N^-1/2, RoPE theta 1e6, LoRA gate, "
                    "o_proj bias (attention_output_bias); MHA 2/2, head_dim 16; explicit distinct "
                    "ranks (decay 8, iclr 16, value residual 24, gate 40); weights stored in "
                    "BF16 (torch_dtype bfloat16), logits from those BF16 values"),
    dict(
        name="rwkv6qwen2_sharded", seed=5104, model_type="rwkv6qwen2", dtype="float32",
        shard_bytes=120_000,
        sizes=dict(vocab_size=256, hidden_size=48, intermediate_size=64, num_hidden_layers=3,
                   num_attention_heads=6, num_key_value_heads=2, head_dim=8,
                   rms_norm_eps=1e-6, rope_theta=10000.0),
        flags=dict(use_rope=True, attention_bias=False, attention_output_bias=False,
                   gate_rank_type=2, balance_state=False, groupnorm_att=True,
                   use_tokenshift=False),
        ranks=dict(lora_rank_decay=16, lora_rank_gate=24, lora_rank_tokenshift=None),
        description="RAD-RWKV6 variant, SHARDED (huggingface_hub save_torch_state_dict, "
                    "max_shard_size 120000 bytes: model-0000K-of-0000N.safetensors + "
                    "model.safetensors.index.json): no tokenshift (no time_maa_* tensors), "
                    "LoRA gate (rank 24), GroupNorm of the N^-1/2-scaled GLA output, no "
                    "balance_state, RoPE theta 1e4, attention_bias false (no q/k/v biases); "
                    "GQA 6 heads / 2 kv heads (group 3), head_dim 8; decay rank 16"),
    dict(
        name="rwkv7qwen2_gate1_obias", seed=5105, model_type="rwkv7qwen2", dtype="float32",
        shard_bytes=None,
        sizes=dict(vocab_size=200, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                   num_attention_heads=4, num_key_value_heads=4, head_dim=8,
                   rms_norm_eps=1e-6, rope_theta=10000.0),
        flags=dict(use_rope=False, attention_bias=False, attention_output_bias=True,
                   gate_rank_type=1, balance_state=True, groupnorm_att=False,
                   use_tokenshift=False),
        ranks=dict(lora_rank_decay=16, lora_rank_gate=None, lora_rank_iclr=8,
                   lora_rank_value_residual_mix=None),
        description="RAD-RWKV7 with a full-rank gate (gate.weight), no q/k/v biases "
                    "(attention_bias false) but an o_proj bias, no RoPE, balance_state; MHA 4/4, "
                    "head_dim 8; ranks decay 16, iclr 8, value residual null (-> 32), gate null "
                    "(unused with gate_rank_type 1)"),
]

# ----------------------------------------------------------------------------------------------
# config.json (§9.1) and its independent resolution
# ----------------------------------------------------------------------------------------------


def config_json(fx):
    """The config.json dict as the released models lay it out: every §9.1 key, in the order
    transformers' to_json_string writes (sorted keys), nulls kept."""
    rwkv6 = fx["model_type"] == "rwkv6qwen2"
    n = "6" if rwkv6 else "7"
    s, f = fx["sizes"], fx["flags"]
    cfg = {
        "architectures": [f"RWKV{n}Qwen2ForCausalLM"],
        "auto_map": {
            "AutoConfig": f"configuration_rwkv{n}qwen2.RWKV{n}Qwen2Config",
            "AutoModelForCausalLM": f"modeling_rwkv{n}qwen2.RWKV{n}Qwen2ForCausalLM",
        },
        "model_type": fx["model_type"],
        "vocab_size": s["vocab_size"],
        "hidden_size": s["hidden_size"],
        "intermediate_size": s["intermediate_size"],
        "num_hidden_layers": s["num_hidden_layers"],
        "num_attention_heads": s["num_attention_heads"],
        "num_key_value_heads": s["num_key_value_heads"],
        "hidden_act": "silu",
        "max_position_embeddings": 32768,
        "initializer_range": 0.02,
        "rms_norm_eps": s["rms_norm_eps"],
        "use_cache": True,
        "tie_word_embeddings": False,
        "rope_theta": s["rope_theta"],
        "rope_scaling": None,
        "use_sliding_window": False,
        "sliding_window": 32768,
        "max_window_layers": s["num_hidden_layers"],
        "attention_dropout": 0.0,
        "bos_token_id": 1,
        "eos_token_id": 2,
        "torch_dtype": fx["dtype"],
        "transformers_version": "4.48.1",
    }
    if s["head_dim"] is not None:
        cfg["head_dim"] = s["head_dim"]
    cfg.update(f)
    cfg.update(fx["ranks"])
    if not rwkv6:
        cfg["num_attention_layers"] = 0
    return dict(sorted(cfg.items()))


def lora_rank_formula(D, e, m):
    """r(e, m) = 32 * max(1, round(D^e * m / 32)) (§3.0; Python's round, half to even)."""
    return 32 * max(1, round(D ** e * m / 32))


def resolve_config(raw):
    """§9.1 defaults applied to a parsed config.json: flags by type, head_dim, null ranks."""
    cfg = dict(raw)
    rwkv6 = cfg["model_type"] == "rwkv6qwen2"
    D = cfg["hidden_size"]
    defaults = dict(use_rope=False, attention_bias=True, attention_output_bias=False,
                    balance_state=True, groupnorm_att=False,
                    gate_rank_type=1 if rwkv6 else 2, use_tokenshift=rwkv6)
    for k, v in defaults.items():
        if cfg.get(k) is None:
            cfg[k] = v
    if cfg.get("num_key_value_heads") is None:
        cfg["num_key_value_heads"] = cfg["num_attention_heads"]
    if cfg.get("head_dim") is None:
        cfg["head_dim"] = D // cfg["num_attention_heads"]
    if rwkv6:
        rank_defaults = {
            "lora_rank_tokenshift": 32 if D < 4096 else 64,
            "lora_rank_decay": 64 if D < 4096 else 128,
            "lora_rank_gate": lora_rank_formula(D, 0.8, 0.6),
        }
    else:
        rank_defaults = {
            "lora_rank_decay": lora_rank_formula(D, 0.5, 1.8),
            "lora_rank_iclr": lora_rank_formula(D, 0.5, 1.8),
            "lora_rank_value_residual_mix": lora_rank_formula(D, 0.5, 1.3),
            "lora_rank_gate": lora_rank_formula(D, 0.8, 0.6),
        }
    for k, v in rank_defaults.items():
        if cfg.get(k) is None:
            cfg[k] = v
    C, H, KV, N = ref.dims(cfg)
    assert H * N == C, "every fixture keeps H * N == hidden_size (§9.2 writes D for both)"
    assert H % KV == 0
    return cfg


# ----------------------------------------------------------------------------------------------
# Parameters
# ----------------------------------------------------------------------------------------------


class Draw:
    def __init__(self, seed):
        self.g = torch.Generator().manual_seed(seed)

    def randn(self, *shape):
        return torch.randn(*shape, generator=self.g, dtype=torch.float64)

    def uniform(self, lo, hi, *shape):
        return lo + (hi - lo) * torch.rand(*shape, generator=self.g, dtype=torch.float64)


def per_head_ramp(lo, hi, H, N, d):
    """[1, 1, H*N]: in every head, channel n goes linearly from lo to hi, plus a little noise."""
    ramp = torch.linspace(lo, hi, N, dtype=torch.float64).repeat(H)
    return (ramp + 0.1 * d.randn(H * N)).reshape(1, 1, H * N)


def init_mixer_parameter(name, shape, cfg, d):
    """Random values (not the spec's init) with scales that make every path matter."""
    C, H, KV, N = ref.dims(cfg)
    if name in ("q_proj.weight", "k_proj.weight", "v_proj.weight", "gate.weight",
                "o_proj.weight"):
        return d.randn(*shape) * shape[1] ** -0.5
    if name.endswith(".bias") and name != "ln_x.bias":
        return 0.2 * d.randn(*shape)
    if name == "ln_x.weight":
        return 1.0 + 0.2 * d.randn(*shape)
    if name == "ln_x.bias":
        return 0.1 * d.randn(*shape)
    if name.startswith("time_maa_") and len(shape) == 3 and tuple(shape[:2]) == (1, 1):
        return d.uniform(0.0, 1.0, *shape)  # lerp coefficients mu
    if name == "time_decay":
        # d in about [-4.5, 2]: -exp(d) from -0.011 (decay 0.989) past the -5 clamp (d > 1.61).
        return per_head_ramp(-4.5, 2.0, H, N, d)
    if name == "w0":
        # sigmoid(w_raw) from ~0.01 to ~0.95: decay from ~0.996 down to ~0.56.
        return per_head_ramp(-5.0, 3.0, H, N, d)
    if name in ("a0", "v0"):
        return 0.5 * d.randn(*shape)
    if name == "k_k":
        return d.uniform(0.5, 1.2, *shape)
    if name == "k_a":
        return d.uniform(0.3, 1.5, *shape)
    if name == "r_k":
        return 0.1 * d.randn(*shape)
    if name in ("time_maa_w1", "time_decay_w1", "w1", "a1", "v1", "g1"):
        # x is RMS-normed (entries ~1): x @ W1 ~ 0.8 (1.6 for g1) before tanh / sigmoid.
        return (1.6 if name == "g1" else 0.8) * d.randn(*shape) * shape[0] ** -0.5
    if name == "time_maa_w2":
        return d.randn(*shape) * 0.3 * shape[1] ** -0.5  # m_* ~ 0.2
    if name in ("time_decay_w2", "w2", "a2", "v2"):
        return d.randn(*shape) * 0.5 * shape[0] ** -0.5  # LoRA output ~ 0.3-0.5
    if name == "g2":
        return d.randn(*shape) * shape[0] ** -0.5  # gate ~ O(1)
    raise KeyError(name)


def mixer_order(cfg):
    """The order the tensors of one self_attn appear in the state dict (module registration
    order of a plausible modeling file: projections, then the RWKV parameters)."""
    shapes = ref.parameter_shapes(cfg)
    first = ["q_proj.weight", "q_proj.bias", "k_proj.weight", "k_proj.bias", "v_proj.weight",
             "v_proj.bias", "o_proj.weight", "o_proj.bias"]
    names = [n for n in first if n in shapes] + [n for n in shapes if n not in first]
    return [(n, shapes[n]) for n in names]


def draw_state_dict(cfg, seed, dtype):
    """{name: tensor in the stored dtype}, in state-dict order."""
    d = Draw(seed)
    C, V, Fi, L = cfg["hidden_size"], cfg["vocab_size"], cfg["intermediate_size"], \
        cfg["num_hidden_layers"]
    sd = {}
    sd["model.embed_tokens.weight"] = d.randn(V, C)
    for layer in range(L):
        pre = f"model.layers.{layer}."
        for name, shape in mixer_order(cfg):
            sd[pre + "self_attn." + name] = init_mixer_parameter(name, shape, cfg, d)
        sd[pre + "mlp.gate_proj.weight"] = d.randn(Fi, C) * C ** -0.5
        sd[pre + "mlp.up_proj.weight"] = d.randn(Fi, C) * C ** -0.5
        sd[pre + "mlp.down_proj.weight"] = d.randn(C, Fi) * Fi ** -0.5
        sd[pre + "input_layernorm.weight"] = 1.0 + 0.2 * d.randn(C)
        sd[pre + "post_attention_layernorm.weight"] = 1.0 + 0.2 * d.randn(C)
    sd["model.norm.weight"] = 1.0 + 0.2 * d.randn(C)
    sd["lm_head.weight"] = d.randn(V, C) * 2.0 * C ** -0.5  # logits RMS ~2
    torch_dtype = {"float32": torch.float32, "bfloat16": torch.bfloat16}[dtype]
    return {k: v.to(torch_dtype).contiguous() for k, v in sd.items()}


# ----------------------------------------------------------------------------------------------
# The independent forward (float64)
# ----------------------------------------------------------------------------------------------


def rms_norm(x, w, eps):
    return w * (x * torch.rsqrt((x * x).mean(dim=-1, keepdim=True) + eps))


def forward(cfg, W, tokens, stats=None):
    """Logits [T, V] float64 of one sequence. W: {name: float64 tensor}."""
    eps = cfg["rms_norm_eps"]
    x = W["model.embed_tokens.weight"][tokens][None]  # [1, T, C]
    v_first = None
    for layer in range(cfg["num_hidden_layers"]):
        pre = f"model.layers.{layer}."
        p = {k[len(pre + "self_attn."):]: v for k, v in W.items()
             if k.startswith(pre + "self_attn.")}
        u = rms_norm(x, W[pre + "input_layernorm.weight"], eps)
        if cfg["model_type"] == "rwkv6qwen2":
            y = ref.rwkv6_mixer(cfg, p, u)
            if stats is not None:
                _, _, _, x_w, _ = ref.rwkv6_tokenshift(cfg, p, u)
                dd = p["time_decay"] + torch.tanh(x_w @ p["time_decay_w1"]) @ p["time_decay_w2"]
                stats.setdefault("clamped", []).append((-torch.exp(dd) < -5.0).double().mean().item())
        else:
            y, vf = ref.rwkv7_mixer(cfg, p, u, layer, v_first)
            if layer == 0:
                v_first = vf
        if stats is not None:
            stats.setdefault("mixer_rms", []).append(y.pow(2).mean().sqrt().item())
        h = x + y
        u = rms_norm(h, W[pre + "post_attention_layernorm.weight"], eps)
        m = F.silu(u @ W[pre + "mlp.gate_proj.weight"].T) * (u @ W[pre + "mlp.up_proj.weight"].T)
        x = h + m @ W[pre + "mlp.down_proj.weight"].T
    x = rms_norm(x, W["model.norm.weight"], eps)
    return (x @ W["lm_head.weight"].T)[0]


class ReferenceMixer(torch.nn.Module):
    """Stands in for transformers' Qwen2Attention: the reference mixer of one layer. RWKV-7's
    v_first goes from layer 0 to the later layers through `shared`."""

    def __init__(self, cfg, p, layer, shared):
        super().__init__()
        self.cfg, self.p, self.layer, self.shared = cfg, p, layer, shared

    def forward(self, hidden_states, **kwargs):
        if self.cfg["model_type"] == "rwkv6qwen2":
            return ref.rwkv6_mixer(self.cfg, self.p, hidden_states), None
        y, vf = ref.rwkv7_mixer(self.cfg, self.p, hidden_states, self.layer,
                                self.shared.get("v_first"))
        if self.layer == 0:
            self.shared["v_first"] = vf
        return y, None


@contextlib.contextmanager
def float64_rms_norm():
    """transformers' Qwen2RMSNorm computes in float32 whatever the model dtype (as the released
    code does); inside this context a float64 input is normed in float64."""
    orig = mq.Qwen2RMSNorm.forward

    def norm_forward(self, hidden_states):
        if hidden_states.dtype != torch.float64:
            return orig(self, hidden_states)
        variance = hidden_states.pow(2).mean(-1, keepdim=True)
        return self.weight * (hidden_states * torch.rsqrt(variance + self.variance_epsilon))

    mq.Qwen2RMSNorm.forward = norm_forward
    try:
        yield
    finally:
        mq.Qwen2RMSNorm.forward = orig


def transformers_cross_check(cfg, W, tokens, want):
    """Second opinion on the decoder around the mixers: transformers' own Qwen2ForCausalLM
    (embedding, RMSNorm, SwiGLU MLP, residuals, final norm, lm_head) in float64, loaded with the
    fixture's non-mixer tensors, each self_attn replaced by the reference mixer. Returns the max
    relative difference from `want` with float64 norms (must be ~1e-15) and with transformers'
    float32 norms (the released code's precision; informational)."""
    qc = Qwen2Config(vocab_size=cfg["vocab_size"], hidden_size=cfg["hidden_size"],
                     intermediate_size=cfg["intermediate_size"],
                     num_hidden_layers=cfg["num_hidden_layers"],
                     num_attention_heads=cfg["num_attention_heads"],
                     num_key_value_heads=cfg["num_key_value_heads"], head_dim=cfg["head_dim"],
                     rms_norm_eps=cfg["rms_norm_eps"], tie_word_embeddings=False,
                     hidden_act=cfg["hidden_act"], attn_implementation="eager")
    model = Qwen2ForCausalLM(qc).to(torch.float64).eval()
    decoder = {k: v for k, v in W.items() if ".self_attn." not in k}
    missing, unexpected = model.load_state_dict(decoder, strict=False)
    assert not unexpected, unexpected
    assert all(".self_attn." in k for k in missing), missing
    shared = {}
    for layer in range(cfg["num_hidden_layers"]):
        pre = f"model.layers.{layer}.self_attn."
        p = {k[len(pre):]: v for k, v in W.items() if k.startswith(pre)}
        model.model.layers[layer].self_attn = ReferenceMixer(cfg, p, layer, shared)
    out = {}
    with torch.no_grad():
        for label, ctx in (("float64_norms", float64_rms_norm()),
                           ("float32_norms", contextlib.nullcontext())):
            shared.clear()
            with ctx:
                got = model(input_ids=tokens[None], use_cache=False).logits[0]
            out[label] = float(f"{((got - want).abs().max() / want.abs().max()).item():.3g}")
    assert out["float64_norms"] < 1e-12, out
    return out


def sensitivity(cfg, W, tokens):
    """max |logits(variant) - logits| / max |logits| when one mechanism is switched off."""
    base = forward(cfg, W, tokens)

    def rel(c2, W2=None):
        other = forward(c2, W if W2 is None else W2, tokens)
        return float(f"{((other - base).abs().max() / base.abs().max()).item():.3g}")

    out = {}
    rwkv6 = cfg["model_type"] == "rwkv6qwen2"
    if cfg["use_rope"]:
        out["rope"] = rel({**cfg, "use_rope": False})
    if cfg["gate_rank_type"] != 0:
        out["gate"] = rel({**cfg, "gate_rank_type": 0})
    if cfg["groupnorm_att"]:
        out["groupnorm"] = rel({**cfg, "groupnorm_att": False})
    if rwkv6:
        if cfg["balance_state"]:
            out["balance_state"] = rel({**cfg, "balance_state": False})
        if cfg["use_tokenshift"]:
            out["tokenshift"] = rel({**cfg, "use_tokenshift": False})
        W2 = {k: (torch.zeros_like(v) if k.endswith("time_decay_w2") else v) for k, v in W.items()}
        out["decay_lora"] = rel(cfg, W2)
    else:
        # balance form <-> standard keys (k_k / k_a are present in every rwkv7 checkpoint)
        out["keying_form"] = rel({**cfg, "balance_state": not cfg["balance_state"]})
        W2 = {k: (torch.full_like(v, -1e4) if k.endswith("self_attn.v0") else v)
              for k, v in W.items()}
        out["value_residual"] = rel(cfg, W2)  # sigmoid(-1e4) = 0: v = v'
        W2 = {k: (torch.zeros_like(v) if k.endswith("self_attn.w2") else v) for k, v in W.items()}
        out["decay_lora"] = rel(cfg, W2)
        W2 = {k: (torch.zeros_like(v) if k.endswith("self_attn.a2") else v) for k, v in W.items()}
        out["iclr_lora"] = rel(cfg, W2)
    if cfg["attention_bias"]:
        W2 = {k: (torch.zeros_like(v) if k.endswith(("q_proj.bias", "k_proj.bias", "v_proj.bias"))
                  else v) for k, v in W.items()}
        out["qkv_bias"] = rel(cfg, W2)
    if cfg["attention_output_bias"]:
        W2 = {k: (torch.zeros_like(v) if k.endswith("o_proj.bias") else v) for k, v in W.items()}
        out["o_bias"] = rel(cfg, W2)
    return out


# ----------------------------------------------------------------------------------------------
# Writing and reading back
# ----------------------------------------------------------------------------------------------


def write_weights(d, sd, shard_bytes):
    if shard_bytes is None:
        save_file(sd, os.path.join(d, "model.safetensors"), metadata={"format": "pt"})
    else:
        # Exactly what transformers' save_pretrained does for large models: huggingface_hub splits
        # the state dict in its key order, saves each shard with safetensors (metadata
        # {"format": "pt"}) and writes model.safetensors.index.json (json.dump, indent 2).
        save_torch_state_dict(sd, d, max_shard_size=shard_bytes, safe_serialization=True)
        assert os.path.exists(os.path.join(d, "model.safetensors.index.json"))


def read_weights(d):
    """{name: float64 tensor} from the directory as any reader would: index first if present."""
    index = os.path.join(d, "model.safetensors.index.json")
    if os.path.exists(index):
        files = sorted(set(json.load(open(index))["weight_map"].values()))
    else:
        files = ["model.safetensors"]
    W = {}
    for fname in files:
        with safe_open(os.path.join(d, fname), framework="pt") as f:
            for k in f.keys():
                assert k not in W, k
                W[k] = f.get_tensor(k).to(torch.float64)
    return W


def token_sequences(seed, vocab):
    g = torch.Generator().manual_seed(seed + 7)
    return [torch.randint(0, vocab, (T,), generator=g, dtype=torch.int64) for T in SEQ_LENS]


def versions():
    return (f"torch {torch.__version__}, transformers {transformers.__version__}, "
            f"safetensors {safetensors.__version__}, "
            f"huggingface_hub {huggingface_hub.__version__}, numpy {numpy.__version__}")


def write_fixture(fx):
    d = os.path.join(OUT_DIR, fx["name"])
    if os.path.isdir(d):
        shutil.rmtree(d)
    os.makedirs(d)
    raw = config_json(fx)
    with open(os.path.join(d, "config.json"), "w") as f:
        f.write(json.dumps(raw, indent=2) + "\n")  # as transformers' PretrainedConfig writes it
    cfg = resolve_config(raw)
    sd = draw_state_dict(cfg, fx["seed"], fx["dtype"])
    write_weights(d, sd, fx["shard_bytes"])

    # Everything below works from the files as written.
    cfg = resolve_config(json.load(open(os.path.join(d, "config.json"))))
    W = read_weights(d)
    expected = {f"model.layers.{l}.self_attn.{n}": tuple(s)
                for l in range(cfg["num_hidden_layers"])
                for n, s in ref.parameter_shapes(cfg).items()}
    for k, s in expected.items():
        assert tuple(W[k].shape) == s, (k, W[k].shape, s)
    assert set(k for k in W if ".self_attn." in k) == set(expected)
    for k, v in sd.items():
        assert torch.equal(W[k], v.to(torch.float64)), k

    tokens = token_sequences(fx["seed"], cfg["vocab_size"])
    tensors, stats = {}, {}
    for i, tok in enumerate(tokens):
        logits = forward(cfg, W, tok, stats if i == 1 else None)
        tensors[f"tokens_{i}"] = tok.to(torch.int32)
        tensors[f"logits_{i}"] = logits.to(torch.float32)
    sens = sensitivity(cfg, W, tokens[1])
    cross = {f"T={len(tok)}": transformers_cross_check(cfg, W, tok, forward(cfg, W, tok))
             for tok in tokens}
    resolved = {k: cfg[k] for k in sorted(cfg) if k.startswith("lora_rank_")}
    meta = {
        "description": f"{fx['name']}: {fx['description']}",
        "how": "tools/gen_student_fixtures.py: an independent float64 PyTorch forward of the whole "
               "student (embedding; per layer h = x + mixer(RMSNorm(x)), x = h + SwiGLU(RMSNorm(h)); "
               "final RMSNorm; untied lm_head), mixers from tools/radlads_reference.py, computed "
               "from the weights as stored (read back from this directory) and config.json as "
               "written (null lora_rank_* resolved per docs/spec.md §9.1); logits_i = float32 "
               "cast of the float64 logits. One sequence, positions 0..T-1, zero initial state.",
        "resolved_lora_ranks": json.dumps(resolved, sort_keys=True),
        "sensitivity": json.dumps(sens, sort_keys=True),
        "transformers_cross_check": json.dumps(cross, sort_keys=True),
        "seed": str(fx["seed"]),
        "versions": versions(),
        "generator": "tools/gen_student_fixtures.py",
    }
    if "clamped" in stats:
        meta["rwkv6_clamped_decay_fraction_t40"] = json.dumps(
            [float(f"{c:.3g}") for c in stats["clamped"]])
    write_safetensors(os.path.join(d, "logits.safetensors"), tensors, meta)
    size = sum(os.path.getsize(os.path.join(d, f)) for f in os.listdir(d))
    print(f"{fx['name']}: {sorted(os.listdir(d))}, {size} bytes")
    print(f"  ranks {resolved}")
    print(f"  rms(logits_1) {tensors['logits_1'].pow(2).mean().sqrt():.3f}, mixer rms per layer "
          f"{[round(v, 3) for v in stats['mixer_rms']]}, clamped {stats.get('clamped')}")
    print(f"  sensitivity {sens}")
    print(f"  transformers cross-check {cross}")
    return size


def main():
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)
    os.makedirs(OUT_DIR, exist_ok=True)
    total = sum(write_fixture(fx) for fx in FIXTURES)
    print(f"total {total} bytes")


if __name__ == "__main__":
    main()
