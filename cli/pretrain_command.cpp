#include "cli/pretrain_command.h"

#include <cmath>
#include <memory>

#include <nlohmann/json.hpp>

#include "base/file.h"
#include "base/log.h"
#include "base/progress.h"
#include "configs/model_preset.h"
#include "kernels/cpu/parallel.h"
#include "pipeline/model_io.h"
#include "storage/byte_tokenizer.h"

namespace radlads::cli {

Status RunPretrain(const PretrainArgs& args) {
  RADLADS_ASSIGN_OR_RETURN(ModelPreset preset, LoadModelPreset(args.model));
  const Qwen2Config& cfg = preset.config;
  RADLADS_ASSIGN_OR_RETURN(TokenDataset train, TokenDataset::Open(args.train));
  RADLADS_ASSIGN_OR_RETURN(TokenDataset heldout, TokenDataset::Open(args.heldout));
  RADLADS_RETURN_IF_ERROR(train.CheckVocabulary(static_cast<std::uint64_t>(cfg.vocab_size)));
  RADLADS_RETURN_IF_ERROR(heldout.CheckVocabulary(static_cast<std::uint64_t>(cfg.vocab_size)));

  auto params = std::make_unique<ParamSet>();
  DeclareParams(Qwen2ParamSpecs(cfg), *params);
  InitQwen2Params(*params, args.init_range, args.init_seed);
  params->SetTrainable([](const std::string&) { return true; });
  Qwen2Teacher teacher = MakeQwen2Teacher(cfg, std::move(params));
  log::Info("pretraining " + DescribeQwen2Config(cfg) + " on " + train.path() + " (" +
            std::to_string(train.size()) + " tokens), " + std::to_string(cpu::NumThreads()) +
            " threads");

  const std::int64_t per_step = args.opts.seq_len * args.opts.batch;
  ProgressBar bar("pretrain", static_cast<std::uint64_t>(args.opts.tokens / per_step * per_step), "tok");
  auto on_step = [&](const PretrainProgress& p) {
    char s[128];
    if (p.heldout_loss >= 0) {
      std::snprintf(s, sizeof(s), "loss %.4f  heldout %.4f  lr %.2e", p.train_loss, p.heldout_loss, p.lr);
    } else {
      std::snprintf(s, sizeof(s), "loss %.4f  lr %.2e", p.train_loss, p.lr);
    }
    bar.Update(static_cast<std::uint64_t>(p.tokens), s);
  };
  RADLADS_ASSIGN_OR_RETURN(PretrainResult r,
                           Pretrain(*teacher.model, *teacher.params, train, heldout, args.opts, on_step));
  bar.Finish();

  RADLADS_RETURN_IF_ERROR(CreateDirectories(args.out));
  Qwen2Config saved = cfg;
  saved.torch_dtype = "float32";
  RADLADS_RETURN_IF_ERROR(SaveParams(*teacher.params, args.out, DType::kF32, 5ull << 30));
  RADLADS_RETURN_IF_ERROR(AtomicWriteFile(JoinPath(args.out, "config.json"), Qwen2ConfigToJson(saved)));
  RADLADS_RETURN_IF_ERROR(AtomicWriteFile(JoinPath(args.out, "tokenizer.json"), ByteTokenizerJson()));
  const double bits_per_byte = r.heldout_loss / std::log(2.0);
  nlohmann::ordered_json j;
  j["what"] = "a tiny Qwen2-architecture model pretrained by radlads on Jane Austen (not a Qwen2.5 model)";
  j["command"] = args.command_line;
  j["model_preset"] = preset.name;
  j["parameters"] = cfg.ParameterCount();
  j["train_data"] = train.path();
  j["train_data_tokens"] = train.size();
  j["heldout_data"] = heldout.path();
  j["init_seed"] = args.init_seed;
  j["data_seed"] = args.opts.seed;
  j["threads"] = cpu::NumThreads();
  j["seq_len"] = args.opts.seq_len;
  j["batch"] = args.opts.batch;
  j["lr"] = args.opts.lr;
  j["lr_final"] = args.opts.lr_final;
  j["warmup_steps"] = args.opts.warmup_steps;
  j["steps"] = r.steps;
  j["tokens_seen"] = r.tokens;
  j["final_train_loss_nats"] = r.final_train_loss;
  j["heldout_loss_nats"] = r.heldout_loss;
  j["heldout_bits_per_byte"] = bits_per_byte;
  j["seconds"] = r.seconds;
  RADLADS_RETURN_IF_ERROR(AtomicWriteFile(JoinPath(args.out, "training.json"), j.dump(2) + "\n"));
  char msg[256];
  std::snprintf(msg, sizeof(msg), "done: %lld tokens in %.0f s; held-out loss %.4f nats/token = %.3f bits/byte; wrote %s",
                static_cast<long long>(r.tokens), r.seconds, r.heldout_loss, bits_per_byte, args.out.c_str());
  log::Info(msg);
  return Status::Ok();
}

}  // namespace radlads::cli
