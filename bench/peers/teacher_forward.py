"""PyTorch peer of bench_teacher_forward: the Qwen2 teacher forward (ids -> final-normed hidden
states, no LM head), float32, inference mode, on the parameters and ids the C++ bench dumped.

Candidates (the fastest on this machine and shape is timed; --impl forces one):
  hf          transformers' Qwen2Model with attn_implementation="sdpa".
  sdpa        a hand-written Qwen2 forward: F.rms_norm, F.linear per projection, RoPE from cached
              cos/sin tables, F.scaled_dot_product_attention(is_causal=True, enable_gqa=True),
              F.silu gate.
  sdpa_fused  the same with q/k/v concatenated into one weight (one GEMM) and gate/up into one
              (one GEMM), the usual inference-engine fusions.
  sdpa_rep    sdpa_fused with GQA by repeat_interleave of k/v instead of enable_gqa.
  hf+compile  hf under torch.compile (inductor) with torch._inductor.config.freezing (weights
              constant-folded and prepacked for oneDNN: the recommended CPU inference path).
  sdpa_fused+compile  sdpa_fused under torch.compile.
The compiled candidates are tried with --compile auto|on (compilation is not timed: warm-up).
Prints one JSON line; `check` is mean |hidden| (the C++ bench prints the same).
"""

import argparse

import peer_common as pc
import torch
import torch.nn.functional as F


def build(p, cfg):
    L, C, H, KV, N = cfg["layers"], cfg["hidden"], cfg["heads"], cfg["kv_heads"], cfg["head_dim"]
    eps = cfg["eps"]
    layers = []
    for l in range(L):
        pre = f"model.layers.{l}."
        g = lambda n: p[pre + n]  # noqa: E731
        layers.append({
            "in_norm": g("input_layernorm.weight"), "post_norm": g("post_attention_layernorm.weight"),
            "wq": g("self_attn.q_proj.weight"), "bq": g("self_attn.q_proj.bias"),
            "wk": g("self_attn.k_proj.weight"), "bk": g("self_attn.k_proj.bias"),
            "wv": g("self_attn.v_proj.weight"), "bv": g("self_attn.v_proj.bias"),
            "wo": g("self_attn.o_proj.weight"),
            "wg": g("mlp.gate_proj.weight"), "wu": g("mlp.up_proj.weight"), "wd": g("mlp.down_proj.weight"),
        })
        lay = layers[-1]
        lay["wqkv"] = torch.cat([lay["wq"], lay["wk"], lay["wv"]], 0).contiguous()
        lay["bqkv"] = torch.cat([lay["bq"], lay["bk"], lay["bv"]], 0).contiguous()
        lay["wgu"] = torch.cat([lay["wg"], lay["wu"]], 0).contiguous()
    embed = p["model.embed_tokens.weight"]
    final = p["model.norm.weight"]
    inv = 1.0 / (cfg["theta"] ** (torch.arange(0, N, 2, dtype=torch.float32) / N))

    def rope_tables(T):
        t = torch.arange(T, dtype=torch.float32)
        f = torch.outer(t, inv)
        e = torch.cat([f, f], -1)
        return e.cos(), e.sin()

    tables = {}

    def rope(x, cos, sin):  # x [B, heads, T, N]
        x1, x2 = x[..., : N // 2], x[..., N // 2:]
        return x * cos + torch.cat([-x2, x1], -1) * sin

    def forward(ids, fused, gqa_mode):
        B, T = ids.shape
        if T not in tables:
            tables[T] = rope_tables(T)
        cos, sin = tables[T]
        x = F.embedding(ids, embed)
        G = H // KV
        for lay in layers:
            h = F.rms_norm(x, (C,), lay["in_norm"], eps)
            if fused:
                qkv = F.linear(h, lay["wqkv"], lay["bqkv"])
                q, k, v = qkv.split([H * N, KV * N, KV * N], -1)
            else:
                q = F.linear(h, lay["wq"], lay["bq"])
                k = F.linear(h, lay["wk"], lay["bk"])
                v = F.linear(h, lay["wv"], lay["bv"])
            q = q.view(B, T, H, N).transpose(1, 2)
            k = k.view(B, T, KV, N).transpose(1, 2)
            v = v.view(B, T, KV, N).transpose(1, 2)
            q = rope(q, cos, sin)
            k = rope(k, cos, sin)
            if gqa_mode == "enable_gqa":
                o = F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=True)
            else:
                k = k.repeat_interleave(G, dim=1)
                v = v.repeat_interleave(G, dim=1)
                o = F.scaled_dot_product_attention(q, k, v, is_causal=True)
            x = x + F.linear(o.transpose(1, 2).reshape(B, T, H * N), lay["wo"])
            h = F.rms_norm(x, (C,), lay["post_norm"], eps)
            if fused:
                gu = F.linear(h, lay["wgu"])
                gt, up = gu.chunk(2, -1)
            else:
                gt, up = F.linear(h, lay["wg"]), F.linear(h, lay["wu"])
            x = x + F.linear(F.silu(gt) * up, lay["wd"])
        return F.rms_norm(x, (C,), final, eps)

    return forward


def build_hf(p, cfg, compiled=False):
    from transformers import Qwen2Config, Qwen2Model
    hc = Qwen2Config(vocab_size=cfg["vocab"], hidden_size=cfg["hidden"], intermediate_size=cfg["mlp"],
                     num_hidden_layers=cfg["layers"], num_attention_heads=cfg["heads"],
                     num_key_value_heads=cfg["kv_heads"], head_dim=cfg["head_dim"],
                     rms_norm_eps=cfg["eps"], rope_theta=cfg["theta"], max_position_embeddings=4096,
                     tie_word_embeddings=False, attn_implementation="sdpa", torch_dtype=torch.float32)
    model = Qwen2Model(hc).eval()
    sd = {k[len("model."):]: v for k, v in p.items() if k.startswith("model.")}
    missing, unexpected = model.load_state_dict(sd, strict=False)
    missing = [m for m in missing if "rotary" not in m]
    if missing or unexpected:
        raise SystemExit(f"hf load: missing {missing}, unexpected {unexpected}")

    if compiled:
        import torch._inductor.config as inductor_config
        inductor_config.freezing = True
        model = torch.compile(model)

    def forward(ids):
        return model(input_ids=ids, use_cache=False).last_hidden_state

    return forward


def main():
    ap = argparse.ArgumentParser()
    pc.add_common_args(ap, 8, 256)
    ap.add_argument("--impl", default="auto", choices=["auto", "hf", "sdpa", "sdpa_fused", "sdpa_rep",
                                                       "hf+compile", "sdpa_fused+compile"])
    ap.add_argument("--compile", default="auto", choices=["auto", "off"],
                    help="off: leave the torch.compile candidates out of --impl auto")
    pc.add_model_args(ap)
    a = ap.parse_args()
    pc.setup_threads(a.threads)
    load_start = pc.loadavg()
    cfg = dict(layers=a.layers, hidden=a.hidden, heads=a.heads, kv_heads=a.kv_heads, head_dim=a.head_dim,
               mlp=a.mlp, vocab=a.vocab, eps=1e-6, theta=10000.0)
    p = pc.load_tensors(a.load)
    ids = p["bench.ids"].to(torch.int64)
    if tuple(ids.shape) != (a.batch, a.time):
        raise SystemExit(f"dumped ids are {tuple(ids.shape)}, expected ({a.batch}, {a.time})")
    hand = build(p, cfg)
    cands = {
        "hf": build_hf(p, cfg),
        "sdpa": lambda ids: hand(ids, False, "enable_gqa"),
        "sdpa_fused": lambda ids: hand(ids, True, "enable_gqa"),
        "sdpa_rep": lambda ids: hand(ids, True, "repeat"),
    }
    if a.impl.endswith("+compile") or (a.impl == "auto" and a.compile == "auto"):
        cands["hf+compile"] = build_hf(p, cfg, compiled=True)
        cands["sdpa_fused+compile"] = torch.compile(lambda ids: hand(ids, True, "enable_gqa"))
    if a.impl != "auto":
        cands = {a.impl: cands[a.impl]}
    with torch.inference_mode():
        checks = {name: fn(ids).abs().mean().item() for name, fn in cands.items()}  # also compiles
        if a.impl == "auto":
            cands = pc.agreeing(cands, checks, "sdpa")  # the plain eager formulation is the reference
            impl, probes = pc.pick_fastest({n: (lambda f=f: f(ids)) for n, f in cands.items()}, a.warmup)
        else:
            impl, probes = a.impl, {}
        fn = cands[impl]
        samples = pc.time_fn(lambda: fn(ids), a.warmup, a.iters)
    pc.emit({"bench": "teacher_forward", "impl": "torch:" + impl, "B": a.batch, "T": a.time, "C": a.hidden,
             "layers": a.layers, "threads": torch.get_num_threads(), "warmup": a.warmup,
             "check": checks[impl], "checks": checks, "probe_s": probes, "load_start": load_start,
             "load_end": pc.loadavg()}, samples, a.batch * a.time)


if __name__ == "__main__":
    main()
