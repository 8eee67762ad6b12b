#include "pipeline/gang_trainer.h"

#include <cmath>
#include <utility>

#include "base/check.h"
#include "kernels/ops/grad_norm.h"
#include "pipeline/model_shard.h"

namespace radlads {
namespace {

// Message tags between stages (the pp communicator); MPI keeps messages of one (peer, tag) in
// order, so micro-batch i's message is always the i-th of its tag.
constexpr int kTagHidden = 301;
constexpr int kTagVFirst = 302;
constexpr int kTagTeacher = 303;
constexpr int kTagGradHidden = 311;
constexpr int kTagGradVFirst = 312;

void SendTensor(Communicator& c, const Tensor& t, int peer, int tag) {
  c.Send(t.f32(), static_cast<std::size_t>(t.numel()), peer, tag);
}
Tensor RecvTensor(Communicator& c, const Shape& shape, int peer, int tag) {
  Tensor t = Tensor::Empty(shape);
  c.Recv(t.f32(), static_cast<std::size_t>(t.numel()), peer, tag);
  return t;
}


// A finetune step's statistics in the step-2 record (kl and top1 zero).
DistillStepStats AsStepStats(const FinetuneStepStats& f) {
  DistillStepStats s;
  s.student_ce = f.ce;
  s.tokens = f.tokens;
  return s;
}

}  // namespace

GangTrainer::GangTrainer(DecoderModel& student, ParamSet& params, DecoderModel* teacher, const OptimizerSettings& opt,
                         std::int64_t loss_chunk, const ModelParallelGroups& groups,
                         const std::map<std::string, Shape, std::less<>>& full_shapes)
    : student_(student), params_(params), teacher_(teacher), chunk_(loss_chunk), groups_(groups) {
  if (groups_.tp != nullptr && groups_.tp->size() == 1) groups_.tp = nullptr;
  if (groups_.pp != nullptr && groups_.pp->size() == 1) groups_.pp = nullptr;
  if (Whole()) {
    if (teacher_ != nullptr) {
      kd_ = std::make_unique<DistillTrainer>(student_, params_, *teacher_, opt, chunk_);
      optimizer_ = &kd_->optimizer();
    } else {
      ft_ = std::make_unique<FinetuneTrainer>(student_, params_, opt, chunk_);
      optimizer_ = &ft_->optimizer();
    }
    return;
  }
  RADLADS_CHECK(groups_.mp != nullptr && groups_.full_vocab > 0) << "GangTrainer: model-parallel groups incomplete";
  for (Param* p : params_.params()) {
    if (!p->trainable) continue;
    auto it = full_shapes.find(p->name);
    RADLADS_CHECK(it != full_shapes.end()) << "GangTrainer: no full shape for " << p->name;
    if (it->second == p->value.shape()) {
      replicated_.push_back(p);
      if (TpPartialGradient(p->name, it->second, p->value.shape())) tp_partial_.push_back(p);
    } else {
      sliced_.push_back(p);
    }
  }
  const int first = student_.shard().first_layer;
  carries_v_first_ = student_.mixer(first).kind() == "rad-rwkv7";
  own_optimizer_ = std::make_unique<AdamWOptimizer>(params_, opt);
  optimizer_ = own_optimizer_.get();
  // The norm of the whole model's gradient: sliced blocks from every rank, replicated ones from
  // tp rank 0 only (every tp rank holds the same after the tp sum).
  const bool count_replicated = groups_.tp == nullptr || groups_.tp->rank() == 0;
  Communicator* mp = groups_.mp;
  optimizer_->set_grad_norm([this, count_replicated, mp](const std::vector<Param*>&) {
    auto sq = [](const std::vector<Param*>& ps) {
      std::vector<Tensor> g;
      for (const Param* p : ps) g.push_back(p->grad);
      const double n = GlobalGradNorm(g);
      return n * n;
    };
    double total = sq(sliced_) + (count_replicated ? sq(replicated_) : 0.0);
    mp->AllReduceSum(&total, 1);
    return std::sqrt(total);
  });
}

GangTrainer::~GangTrainer() = default;

DistillStepStats GangTrainer::LastStageLoss(const LmBatch& b, const Tensor& student_hidden, const Tensor& teacher_hidden,
                                            float grad_scale, Tensor& dhidden) {
  dhidden = Tensor::Zeros(student_hidden.shape());
  Tensor dw = student_.head_grad();
  const HeadGrads grads{&dhidden, dw.defined() ? &dw : nullptr};
  const VocabShard vs{groups_.tp, student_.shard().vocab_begin, groups_.full_vocab};
  if (teacher_ != nullptr) {
    return DistillHeadLoss(student_hidden, student_.head_weight(), teacher_hidden, teacher_->head_weight(), b.targets,
                           grad_scale, chunk_, &vs, grads);
  }
  return AsStepStats(FinetuneHeadLoss(student_hidden, student_.head_weight(), b.targets, grad_scale, chunk_, &vs, grads));
}

DistillStepStats GangTrainer::AccumulateStep(const std::vector<LmBatch>& mbs, float grad_scale) {
  const double m = static_cast<double>(mbs.size());
  DistillStepStats total;
  auto add = [&](const DistillStepStats& s) {
    total.kl += s.kl / m;
    total.top1 += s.top1 / m;
    total.student_ce += s.student_ce / m;
    total.tokens += s.tokens;
  };
  if (Whole()) {
    for (const LmBatch& b : mbs) {
      if (kd_ != nullptr) {
        add(kd_->Accumulate(b, grad_scale));
      } else {
        add(AsStepStats(ft_->Accumulate(b, grad_scale)));
      }
    }
    return total;
  }
  const DecoderShard& sh = student_.shard();
  const bool first = sh.first_stage, last = sh.last_stage;
  Communicator* pp = groups_.pp;
  const int stage = pp != nullptr ? pp->rank() : 0;
  const Qwen2Config& cfg = student_.config();
  const std::int64_t C = cfg.hidden_size, A = cfg.num_attention_heads * cfg.head_dim;
  // v_first travels from the stage holding layer 0 to every later one.
  const bool recv_v_first = carries_v_first_ && !first;
  const bool send_v_first = carries_v_first_;

  // Forward phase.
  std::vector<StageActivations> kept(mbs.size());  // stage inputs (earlier stages)
  std::vector<StageActivations> dins(mbs.size());  // input gradients (last stage)
  for (std::size_t i = 0; i < mbs.size(); ++i) {
    const LmBatch& b = mbs[i];
    const Shape hs = {b.inputs.dim(0), b.inputs.dim(1), C};
    StageActivations in_s, in_t;
    if (!first) {
      in_s.hidden = RecvTensor(*pp, hs, stage - 1, kTagHidden);
      if (recv_v_first) in_s.v_first = RecvTensor(*pp, {hs[0], hs[1], A}, stage - 1, kTagVFirst);
      if (teacher_ != nullptr) in_t.hidden = RecvTensor(*pp, hs, stage - 1, kTagTeacher);
    }
    StageActivations t_out;
    if (teacher_ != nullptr) t_out = teacher_->StageForward(in_t, b.inputs, /*need_backward=*/false);
    if (last) {
      StageActivations s_out = student_.StageForward(in_s, b.inputs, /*need_backward=*/true);
      Tensor dh;
      add(LastStageLoss(b, s_out.hidden, t_out.hidden, grad_scale, dh));
      dins[i] = student_.StageBackward(StageActivations{dh, Tensor()});
    } else {
      StageActivations s_out = student_.StageForward(in_s, b.inputs, /*need_backward=*/false);
      SendTensor(*pp, s_out.hidden, stage + 1, kTagHidden);
      if (send_v_first) {
        RADLADS_CHECK(s_out.v_first.defined()) << "stage " << stage << ": no v_first to pass on";
        SendTensor(*pp, s_out.v_first, stage + 1, kTagVFirst);
      }
      if (teacher_ != nullptr) SendTensor(*pp, t_out.hidden, stage + 1, kTagTeacher);
      kept[i] = std::move(in_s);
    }
  }
  // Backward phase.
  for (std::size_t i = 0; i < mbs.size(); ++i) {
    const LmBatch& b = mbs[i];
    StageActivations din;
    if (last) {
      din = std::move(dins[i]);
    } else {
      const Shape hs = {b.inputs.dim(0), b.inputs.dim(1), C};
      StageActivations dout;
      dout.hidden = RecvTensor(*pp, hs, stage + 1, kTagGradHidden);
      if (send_v_first) dout.v_first = RecvTensor(*pp, {hs[0], hs[1], A}, stage + 1, kTagGradVFirst);
      student_.StageForward(kept[i], b.inputs, /*need_backward=*/true);  // recompute
      kept[i] = StageActivations();
      din = student_.StageBackward(dout);
    }
    if (!first) {
      SendTensor(*pp, din.hidden, stage - 1, kTagGradHidden);
      if (recv_v_first) SendTensor(*pp, din.v_first, stage - 1, kTagGradVFirst);
    }
  }
  // Statistics live on the last stage: give them to every stage.
  if (pp != nullptr) {
    double s[4] = {total.kl, total.top1, total.student_ce, static_cast<double>(total.tokens)};
    if (!last) s[0] = s[1] = s[2] = s[3] = 0.0;
    pp->AllReduceSum(s, 4);
    total.kl = s[0];
    total.top1 = s[1];
    total.student_ce = s[2];
    total.tokens = static_cast<std::int64_t>(s[3]);
  }
  if (groups_.tp != nullptr) {
    for (Param* p : tp_partial_) groups_.tp->AllReduceSum(p->grad.f32(), static_cast<std::size_t>(p->grad.numel()));
  }
  return total;
}

}  // namespace radlads
