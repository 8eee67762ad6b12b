"""PyTorch peer of bench_lm_step: the whole tiny student (and teacher) in float32, on the tensors
the C++ bench dumped (--dump), for one of
  --stage distill   one step-2 optimizer step: teacher forward (no grad), student forward,
                    KL(teacher || student) per token over the full-vocabulary logits
                    (F.kl_div with log targets), autograd backward, global-norm clip 1.0,
                    AdamW betas (0.9, 0.95), eps 1e-8, no weight decay;
  --stage finetune  one step-3 optimizer step: student forward, next-token CE, backward, clip,
                    AdamW;
  --stage eval      one evaluation batch, inference mode: teacher forward and CE, student
                    forward, student CE, KL and top-1 agreement.

The decoder around the mixers is Qwen2's (docs/spec.md §2.0): x += Mixer(RMSNorm(x)),
x += down(silu(gate(u)) * up(u)) with u = RMSNorm(x), a final RMSNorm and an untied head;
RAD-RWKV7's layer 0 passes its value on as v_first. The mixers are align_step.py's (chunked
matrix-form recurrences); the teacher is teacher_forward.py's fastest hand-written eager form
(fused q/k/v and gate/up GEMMs, SDPA with enable_gqa).

Candidates, chosen by timing in the warm-up as align_step.py does: the recurrence chunk length
(16/32 for GLA, 16/32/64 for DPLR, those dividing T), for training the AdamW variant
(foreach / fused), and then (--compile auto) the best of those under torch.compile (inductor,
teacher and student forward compiled; AOTAutograd compiles the backward too). The JSON names the
one timed. Compilation happens in the warm-up, untimed.
"""

import argparse

import align_step as al
import peer_common as pc
import teacher_forward as tfw
import torch
import torch.nn.functional as F


def build_student(p, arch, dims, layers, L, eps, theta):
    C = dims[0]
    blocks = []
    for l in range(layers):
        pre = f"model.layers.{l}."
        mp = {k[len(pre) + len("self_attn."):]: v for k, v in p.items() if k.startswith(pre + "self_attn.")}
        mixer = al.Rwkv6(mp, dims, L) if arch == "rwkv6" else al.Rwkv7(mp, dims, L, theta, al.dplr_chunked)
        blocks.append((mixer, p[pre + "input_layernorm.weight"], p[pre + "post_attention_layernorm.weight"],
                       p[pre + "mlp.gate_proj.weight"], p[pre + "mlp.up_proj.weight"],
                       p[pre + "mlp.down_proj.weight"]))
    embed, final = p["model.embed_tokens.weight"], p["model.norm.weight"]

    def forward(ids):
        x = F.embedding(ids, embed)
        v_first = None
        for mixer, n1, n2, wg, wu, wd in blocks:
            o, v_first = mixer.mix(F.rms_norm(x, (C,), n1, eps), v_first)
            x = x + o
            u = F.rms_norm(x, (C,), n2, eps)
            x = x + F.linear(F.silu(F.linear(u, wg)) * F.linear(u, wu), wd)
        return F.rms_norm(x, (C,), final, eps)

    return forward


# The student tensors a layer may hold, per architecture: those the forward above reads, and
# (RAD-RWKV7) r_k, k_k, k_a of the released layout, which its settings leave unread (no bonus;
# balance_state replaces k_k / k_a). bench_lm_step refuses a recipe whose flags differ from the
# ones computed here; anything else dumped means a feature this peer does not compute.
USED = {
    "rwkv6": {"time_maa_x", "time_maa_w1", "time_maa_w2", "time_maa_r", "time_maa_k", "time_maa_v",
              "time_maa_w", "time_maa_g", "q_proj.weight", "q_proj.bias", "k_proj.weight", "k_proj.bias",
              "v_proj.weight", "v_proj.bias", "time_decay", "time_decay_w1", "time_decay_w2",
              "gate.weight", "o_proj.weight"},
    "rwkv7": {"q_proj.weight", "q_proj.bias", "k_proj.weight", "k_proj.bias", "v_proj.weight",
              "v_proj.bias", "w0", "w1", "w2", "a0", "a1", "a2", "v0", "v1", "v2", "g1", "g2",
              "o_proj.weight", "r_k", "k_k", "k_a"},
}


def kl_per_token(zs, zt):
    return F.kl_div(F.log_softmax(zs, -1), F.log_softmax(zt, -1), log_target=True, reduction="sum") / zs.shape[0]


def main():
    ap = argparse.ArgumentParser()
    pc.add_common_args(ap, 8, 256)
    ap.add_argument("--stage", required=True, choices=["distill", "finetune", "eval"])
    ap.add_argument("--arch", required=True, choices=["rwkv6", "rwkv7"])
    pc.add_train_args(ap)
    pc.add_model_args(ap)
    a = ap.parse_args()
    pc.setup_threads(a.threads)
    load_start = pc.loadavg()
    raw = pc.load_tensors(a.load)
    ids = raw["bench.ids"].to(torch.int64)
    targets = raw["bench.targets"].to(torch.int64)
    B, T = ids.shape
    if (B, T) != (a.batch, a.time):
        raise SystemExit(f"dumped ids are {tuple(ids.shape)}, expected ({a.batch}, {a.time})")
    C = a.hidden
    dims = (C, a.heads, a.kv_heads, a.head_dim)
    eps, theta = 1e-6, 10000.0
    tp = {k[len("teacher."):]: v for k, v in raw.items() if k.startswith("teacher.")}
    sp0 = {k: v for k, v in raw.items() if not k.startswith(("teacher.", "bench."))}
    for k in sp0:
        if ".self_attn." in k and k.split(".self_attn.", 1)[1] not in USED[a.arch]:
            raise SystemExit(f"student tensor {k} is not computed by this peer")
    cfg = dict(layers=a.layers, hidden=C, heads=a.heads, kv_heads=a.kv_heads, head_dim=a.head_dim,
               mlp=a.mlp, vocab=a.vocab, eps=eps, theta=theta)
    teacher_hand = tfw.build(tp, cfg)
    w_teacher = tp["lm_head.weight"]
    train = a.stage != "eval"

    def fresh(L, adamw, compiled):
        """(student forward, params dict, the timed function)."""
        sp = {k: v.clone().requires_grad_(train) for k, v in sp0.items()}
        student = build_student(sp, a.arch, dims, a.layers, L, eps, theta)
        teacher = lambda: teacher_hand(ids, True, "enable_gqa")  # noqa: E731
        w_s = sp["lm_head.weight"]
        if a.stage == "distill":
            def loss_fn(ht):
                return kl_per_token(student(ids).reshape(-1, C) @ w_s.t(), ht.reshape(-1, C) @ w_teacher.t())
        elif a.stage == "finetune":
            def loss_fn(ht):
                return F.cross_entropy(student(ids).reshape(-1, C) @ w_s.t(), targets)
        else:
            def loss_fn(ht):
                zt = ht.reshape(-1, C) @ w_teacher.t()
                zs = student(ids).reshape(-1, C) @ w_s.t()
                n = zt.shape[0]
                return (kl_per_token(zs, zt), F.cross_entropy(zt, targets, reduction="sum") / n,
                        (zs.argmax(-1) == zt.argmax(-1)).sum() / n, F.cross_entropy(zs, targets, reduction="sum"))
        if compiled:
            teacher, loss_fn = torch.compile(teacher), torch.compile(loss_fn)

        def teacher_hidden():
            if a.stage == "finetune":
                return None
            with torch.no_grad():
                return teacher()

        if not train:
            def run():
                with torch.inference_mode():
                    return loss_fn(teacher_hidden())
            return run, sp, loss_fn, teacher_hidden
        params = [t for t in sp.values()]
        kw = {"foreach": True} if adamw == "foreach" else {"fused": True}
        opt = torch.optim.AdamW(params, lr=a.lr, betas=(0.9, 0.95), eps=1e-8, weight_decay=0.0, **kw)

        def step():
            loss = loss_fn(teacher_hidden())
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0, foreach=True)
            opt.step()
            opt.zero_grad(set_to_none=True)
            return loss
        return step, sp, loss_fn, teacher_hidden

    chunks = [a.chunk] if a.chunk else ([16, 32] if a.arch == "rwkv6" else [16, 32, 64])
    chunks = [L for L in chunks if T % L == 0]
    adamws = (["foreach", "fused"] if a.adamw == "auto" else [a.adamw]) if train else ["-"]
    (L, adamw, compiled), probes = pc.choose(lambda L, w, c: fresh(L, w, c)[0], chunks, adamws, a.compile, a.warmup)

    # The checks on a fresh copy, then the timing on it.
    fn, sp, loss_fn, teacher_hidden = fresh(L, adamw, compiled)
    result = {}
    if train:
        with torch.no_grad():
            result["check"] = loss_fn(teacher_hidden()).item()
        fn()
        with torch.no_grad():
            result["check_after"] = loss_fn(teacher_hidden()).item()
    else:
        kl, tce, top1, _ = fn()
        result.update(check=kl.item(), check_teacher_ce=tce.item(), check_top1=top1.item())
    samples = pc.time_fn(fn, a.warmup, a.iters)
    result = {"bench": f"lm_step_{a.stage}_{a.arch}",
              "impl": f"torch:{'compile' if compiled else 'eager'} L={L}" + (f" adamw={adamw}" if train else ""),
              "stage": a.stage, "arch": a.arch, "B": B, "T": T, "C": C, "layers": a.layers, "chunk": L,
              "adamw": adamw, "compiled": compiled, "threads": torch.get_num_threads(), "warmup": a.warmup,
              **result,
              "probe_s": {f"L{k[0]}/{k[1]}{'/compiled' if k[2] else ''}": v for k, v in probes.items()},
              "load_start": load_start, "load_end": pc.loadavg()}
    pc.emit(result, samples, B * T)


if __name__ == "__main__":
    main()
