#!/usr/bin/env python3
"""Writes tiny random Qwen2 teacher fixtures with Hugging Face transformers (tests/data/qwen2/).

How to run (from the repository root; CPU only, a few seconds):

    tools/.venv/bin/python tools/gen_qwen2_fixtures.py

    (any venv with the packages pinned in tools/requirements.txt: torch, transformers,
    safetensors, numpy.)

For each fixture directory tests/data/qwen2/<name>/:
  config.json, model.safetensors   exactly what transformers' Qwen2ForCausalLM.save_pretrained
                                   (safe_serialization=True) writes (generation_config.json is
                                   deleted: nothing reads it)
  logits.safetensors               tokens_0 I32 [7], logits_0 F32 [7, V], logits64_0 F64 [7, V],
                                   tokens_1 I32 [33], logits_1 F32 [33, V], logits64_1 F64 [33, V]
                                   with metadata (versions, how computed, description)
logits_i: the model in float32 with attn_implementation="eager", one sequence (batch 1, no
padding, positions 0..T-1, no attention mask beyond causal). logits64_i: the same weights cast
to float64, same code path (the tighter oracle for an fp32 engine: compare against it).
The bf16 fixture stores its weights in bfloat16 (config "dtype": "bfloat16"); its logits are
computed from those bf16 weights upcast to float32 (and to float64), i.e. exactly what an engine
that converts BF16 -> F32 on load must produce.

Weights are NOT transformers' init: every parameter is redrawn from a fixed-seed generator
(linear weights and embeddings N(0, 0.15^2), q/k/v biases N(0, 0.1^2), RMSNorm weights
1 + N(0, 0.1^2)) so logits are far from zero and every tensor matters.

Determinism: fixed seeds, torch.use_deterministic_algorithms(True), one torch thread. Rerunning
reproduces every file byte for byte on the same torch / transformers versions (checked with cmp;
model.safetensors has a single metadata key, so the Rust writer's order does not vary, and
logits.safetensors goes through tools/oracle_writer.py).
"""

import contextlib
import json
import os
import shutil
import sys

import torch
import transformers
from transformers import Qwen2Config, Qwen2ForCausalLM
from transformers.models.qwen2 import modeling_qwen2 as mq

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from oracle_writer import write_safetensors  # noqa: E402

OUT_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                       "tests", "data", "qwen2")
SEQ_LENS = (7, 33)

FIXTURES = [
    # name, seed, config kwargs, description
    ("tiny_tied_hd16", 4101,
     dict(vocab_size=300, hidden_size=48, intermediate_size=96, num_hidden_layers=2,
          num_attention_heads=4, num_key_value_heads=2, head_dim=16, tie_word_embeddings=True,
          rope_theta=1000000.0, rms_norm_eps=1e-6),
     "tied embeddings; GQA 4 heads / 2 kv heads; explicit head_dim 16 != hidden/heads (12), so "
     "q_proj is [64, 48] and o_proj [48, 64]; rope_theta 1e6 (written by transformers 5 as "
     "rope_parameters.rope_theta); 2 layers"),
    ("tiny_mha_3l", 4102,
     dict(vocab_size=300, hidden_size=32, intermediate_size=64, num_hidden_layers=3,
          num_attention_heads=2, num_key_value_heads=2, tie_word_embeddings=False,
          rms_norm_eps=1e-5),
     "untied; MHA 2 heads / 2 kv heads, head_dim 16 implicit (hidden/heads); default RoPE "
     "theta (10000); rms_norm_eps 1e-5; 3 layers"),
    ("tiny_gqa4_untied", 4103,
     dict(vocab_size=300, hidden_size=64, intermediate_size=72, num_hidden_layers=2,
          num_attention_heads=8, num_key_value_heads=2, tie_word_embeddings=False,
          rms_norm_eps=1e-6),
     "untied; GQA 8 heads / 2 kv heads (group 4), head_dim 8 implicit; default RoPE theta "
     "(10000); 2 layers"),
]
BF16_OF = "tiny_mha_3l"  # also saved in bfloat16 as <name>_bf16


def randomize(model, seed):
    """Redraws every parameter from a fixed-seed generator (see the module docstring)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in sorted(model.named_parameters(), key=lambda kv: kv[0]):
            if name.endswith("norm.weight"):
                v = 1.0 + 0.1 * torch.randn(p.shape, generator=g, dtype=torch.float64)
            elif name.endswith(".bias"):
                v = 0.1 * torch.randn(p.shape, generator=g, dtype=torch.float64)
            else:
                v = 0.15 * torch.randn(p.shape, generator=g, dtype=torch.float64)
            p.copy_(v.to(p.dtype))


def token_sequences(seed, vocab):
    g = torch.Generator().manual_seed(seed + 7)
    return [torch.randint(0, vocab, (T,), generator=g, dtype=torch.int64) for T in SEQ_LENS]


@contextlib.contextmanager
def float64_internals():
    """transformers' Qwen2 computes three things in float32 whatever the model dtype: RMSNorm
    (casts its input to float32), the eager softmax (dtype=torch.float32) and the RoPE table
    (inv_freq and angles in float32). Inside this context a float64 model computes them in
    float64 too; float32 models are unaffected (the same code path as unpatched)."""
    orig_norm = mq.Qwen2RMSNorm.forward
    orig_rope = mq.Qwen2RotaryEmbedding.forward
    orig_eager = mq.eager_attention_forward

    def norm_forward(self, hidden_states):
        if hidden_states.dtype != torch.float64:
            return orig_norm(self, hidden_states)
        variance = hidden_states.pow(2).mean(-1, keepdim=True)
        return self.weight * (hidden_states * torch.rsqrt(variance + self.variance_epsilon))

    def rope_forward(self, x, position_ids):
        if x.dtype != torch.float64:
            return orig_rope(self, x, position_ids)
        cfg = self.config
        assert cfg.rope_parameters["rope_type"] == "default"
        base = float(cfg.rope_parameters["rope_theta"])
        dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
        inv_freq = 1.0 / (base ** (torch.arange(0, dim, 2, dtype=torch.float64) / dim))
        freqs = position_ids[..., None].to(torch.float64) * inv_freq
        emb = torch.cat((freqs, freqs), dim=-1)
        return emb.cos(), emb.sin()

    def eager(module, query, key, value, attention_mask, scaling, dropout=0.0, **kwargs):
        if query.dtype != torch.float64:
            return orig_eager(module, query, key, value, attention_mask, scaling, dropout, **kwargs)
        key_states = mq.repeat_kv(key, module.num_key_value_groups)
        value_states = mq.repeat_kv(value, module.num_key_value_groups)
        attn_weights = torch.matmul(query, key_states.transpose(2, 3)) * scaling
        if attention_mask is not None:
            attn_weights = attn_weights + attention_mask
        attn_weights = torch.softmax(attn_weights, dim=-1)
        attn_output = torch.matmul(attn_weights, value_states).transpose(1, 2).contiguous()
        return attn_output, attn_weights

    mq.Qwen2RMSNorm.forward = norm_forward
    mq.Qwen2RotaryEmbedding.forward = rope_forward
    mq.eager_attention_forward = eager
    try:
        yield
    finally:
        mq.Qwen2RMSNorm.forward = orig_norm
        mq.Qwen2RotaryEmbedding.forward = orig_rope
        mq.eager_attention_forward = orig_eager


def logits_of(model, tokens, dtype):
    m = model.to(dtype)
    with torch.no_grad():
        out = m(input_ids=tokens[None, :], use_cache=False).logits[0]
    assert out.dtype == dtype
    return out


def write_fixture(name, model, tokens, description, weights_note):
    d = os.path.join(OUT_DIR, name)
    if os.path.isdir(d):
        shutil.rmtree(d)
    model.save_pretrained(d, safe_serialization=True)
    gen = os.path.join(d, "generation_config.json")
    if os.path.exists(gen):
        os.remove(gen)
    # Logits from the weights exactly as stored: reload what was written.
    stored = Qwen2ForCausalLM.from_pretrained(d, attn_implementation="eager")
    stored.eval()
    tensors = {}
    fp32_inside = {}
    for i, tok in enumerate(tokens):
        tensors[f"tokens_{i}"] = tok.to(torch.int32)
        tensors[f"logits_{i}"] = logits_of(stored, tok, torch.float32)
        with float64_internals():
            tensors[f"logits64_{i}"] = logits_of(stored, tok, torch.float64)
        plain64 = logits_of(stored, tok, torch.float64)  # unpatched: float32 inside
        fp32_inside[i] = ((plain64 - tensors[f"logits64_{i}"]).norm()
                          / tensors[f"logits64_{i}"].norm()).item()
        stored.to(torch.float32)
    meta = {
        "description": f"{name}: {description}",
        "how": "Qwen2ForCausalLM.from_pretrained(<this dir>, attn_implementation='eager'); "
               "logits_i = model.float()(tokens_i[None]).logits[0] (float32); logits64_i = the "
               "same with model.double() (float64) AND transformers' three internal float32 "
               "casts (RMSNorm, eager softmax, RoPE inv_freq/angles/cos/sin) made float64 "
               "(tools/gen_qwen2_fixtures.py float64_internals), so logits64 is float64 "
               "throughout. Batch 1, no padding, positions 0..T-1. " + weights_note,
        "float32_inside_unpatched_double": json.dumps(
            {f"logits64_{i}": float(f"{v:.2e}") for i, v in fp32_inside.items()}),
        "versions": f"torch {torch.__version__}, transformers {transformers.__version__}",
        "generator": "tools/gen_qwen2_fixtures.py",
    }
    write_safetensors(os.path.join(d, "logits.safetensors"), tensors, meta)
    for i in range(len(tokens)):  # the float32 logits agree with the float64 ones
        a, b = tensors[f"logits_{i}"].double(), tensors[f"logits64_{i}"]
        rel = ((a - b).norm() / b.norm()).item()
        assert rel < 1e-5, (name, i, rel)
    size = sum(os.path.getsize(os.path.join(d, f)) for f in os.listdir(d))
    cfg = json.load(open(os.path.join(d, "config.json")))
    print(f"{d}: {sorted(os.listdir(d))}, {size} bytes, dtype {cfg.get('dtype')}, "
          f"rms(logits_1) {tensors['logits_1'].pow(2).mean().sqrt():.3f}")
    return size


def main():
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)
    os.makedirs(OUT_DIR, exist_ok=True)
    total = 0
    for name, seed, kwargs, description in FIXTURES:
        cfg = Qwen2Config(bos_token_id=1, eos_token_id=2, max_position_embeddings=256,
                          attn_implementation="eager", **kwargs)
        if "head_dim" in kwargs:
            assert cfg.head_dim == kwargs["head_dim"]
        model = Qwen2ForCausalLM(cfg).to(torch.float32)
        model.eval()
        randomize(model, seed)
        tokens = token_sequences(seed, kwargs["vocab_size"])
        total += write_fixture(name, model, tokens, description,
                               "Weights stored in float32.")
        if name == BF16_OF:
            bf16 = model.to(torch.bfloat16)
            total += write_fixture(
                name + "_bf16", bf16, tokens,
                description + "; weights stored in bfloat16 (the same draws rounded)",
                "Weights stored in bfloat16; logits computed from them upcast to float32 / "
                "float64.")
    print(f"total {total} bytes")


if __name__ == "__main__":
    main()
