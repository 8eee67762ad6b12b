// radlads-model: inspect model directories, safetensors files and token datasets; compute the
// logits of any supported model; pretrain a tiny Qwen2-architecture teacher; write a randomly
// initialised Qwen2 teacher at a preset's shapes.
#include <cstdio>

#include "cli/cli_util.h"
#include "cli/init_command.h"
#include "cli/inspect.h"
#include "cli/logits_command.h"
#include "cli/pretrain_command.h"
#include "kernels/cpu/parallel.h"

int main(int argc, char** argv) {
  using namespace radlads;
  cli::ReexecWithThreadingDefaults(argc, argv);
  CLI::App app{"radlads-model: inspect models and datasets, compute logits, pretrain a tiny teacher, "
               "initialise a random teacher.\n"
               "Exit codes: 0 success, 1 runtime failure, 2 invalid input or usage."};
  app.require_subcommand(1);
  int threads = 0;
  app.add_option("--threads", threads, "CPU threads (default: RADLADS_THREADS or all cores)")
      ->check(CLI::PositiveNumber);

  cli::InspectOptions inspect_opts;
  std::string inspect_path;
  CLI::App* inspect = app.add_subcommand(
      "inspect", "Describe PATH: a model directory (config + tensor check + tensor table), a "
                 ".safetensors file, or a token dataset (binidx prefix, .npy, .u32)");
  inspect->add_option("path", inspect_path, "Model directory, .safetensors file or dataset")->required();
  inspect->add_flag("--json", inspect_opts.json, "Machine-readable output");
  inspect->add_flag("--all", inspect_opts.all_tensors, "List every tensor (default: the first 40)");
  inspect->add_option("--format", inspect_opts.format, "Dataset format instead of detection")
      ->check(CLI::IsMember({"binidx", "npy", "u32", "u16"}));

  cli::LogitsArgs logits_args;
  CLI::App* logits = app.add_subcommand(
      "logits", "Float32 logits [T, vocab] of a token sequence for a qwen2 / rwkv6qwen2 / rwkv7qwen2 "
                "model directory");
  logits->add_option("--model", logits_args.model, "Model directory")->required();
  logits->add_option("--tokens", logits_args.tokens,
                     "Token ids \"1,2,3\", or a file: 1-D integer .npy, or text of integers")
      ->required();
  logits->add_option("--out", logits_args.out, "Write the logits here as .npy (default: print a summary)");

  cli::PretrainArgs pre;
  CLI::App* pretrain = app.add_subcommand(
      "pretrain", "Pretrain a Qwen2-architecture teacher from scratch (the embedded default's tiny "
                  "teacher) and save it in the Hugging Face layout");
  pretrain->add_option("--model", pre.model, "Model preset name or YAML path (e.g. tiny)")->required();
  pretrain->add_option("--train", pre.train, "Training token dataset")->required();
  pretrain->add_option("--heldout", pre.heldout, "Held-out token dataset (evaluation only)")->required();
  pretrain->add_option("--out", pre.out, "Output model directory")->required();
  pretrain->add_option("--tokens", pre.opts.tokens, "Training tokens (rounded down to whole steps)")
      ->required()->check(CLI::PositiveNumber);
  pretrain->add_option("--seq-len", pre.opts.seq_len, "Tokens per sequence")->capture_default_str();
  pretrain->add_option("--batch", pre.opts.batch, "Sequences per optimizer step")->capture_default_str();
  pretrain->add_option("--lr", pre.opts.lr, "Peak learning rate")->capture_default_str();
  pretrain->add_option("--lr-final", pre.opts.lr_final, "Final learning rate (cosine decay)")->capture_default_str();
  pretrain->add_option("--warmup-steps", pre.opts.warmup_steps, "Linear warmup steps")->capture_default_str();
  pretrain->add_option("--weight-decay", pre.opts.weight_decay, "AdamW weight decay")->capture_default_str();
  pretrain->add_option("--eval-every", pre.opts.eval_every, "Steps between held-out evaluations (0: end only)")
      ->capture_default_str();
  pretrain->add_option("--eval-tokens", pre.opts.eval_tokens, "Held-out tokens per periodic evaluation (0: all)")
      ->capture_default_str();
  pretrain->add_option("--seed", pre.opts.seed, "Data-order seed")->capture_default_str();
  pretrain->add_option("--init-seed", pre.init_seed, "Parameter init seed")->capture_default_str();

  cli::InitArgs init_args;
  CLI::App* init = app.add_subcommand(
      "init", "Write a randomly initialised Qwen2 teacher (transformers' Qwen2 init) in the Hugging Face "
              "layout: config.json, weights (sharded with an index above 5 GB), the preset's tokenizer "
              "files. For tests and benchmarks at real shapes; not a trained model");
  CLI::Option* init_preset =
      init->add_option("--preset", init_args.preset, "Model preset name or YAML path (e.g. qwen2.5-0.5b)");
  init->add_option("--config", init_args.config,
                   "A Hugging Face config.json (or a model directory holding one) instead of a preset; "
                   "its directory's tokenizer files are copied")
      ->excludes(init_preset);
  init->add_option("--out", init_args.out, "Output model directory (must not exist, or be empty)")->required();
  init->add_option("--layers", init_args.layers, "Replace num_hidden_layers (default: the config's)")
      ->check(CLI::PositiveNumber);
  init->add_option("--dtype", init_args.dtype,
                   "Weight dtype (default: bf16 when the config's torch_dtype is bfloat16, else f32)")
      ->check(CLI::IsMember({"bf16", "f32"}));
  init->add_option("--seed", init_args.seed, "Init seed (each tensor draws from (seed, its name))")
      ->capture_default_str();
  init->add_option("--init-range", init_args.init_range, "Standard deviation of the matrices")
      ->capture_default_str();

  if (int rc = cli::ParseOrExitCode(app, argc, argv); rc >= 0) return rc;
  if (threads > 0) cpu::SetNumThreads(threads);
  if (inspect->parsed()) return cli::Finish(cli::Inspect(inspect_path, inspect_opts, stdout));
  if (logits->parsed()) return cli::Finish(cli::RunLogits(logits_args, stdout));
  if (init->parsed()) {
    init_args.command_line = cli::JoinArgv(argc, argv);
    return cli::Finish(cli::RunInit(init_args, stdout));
  }
  if (pretrain->parsed()) {
    pre.command_line = cli::JoinArgv(argc, argv);
    return cli::Finish(cli::RunPretrain(pre));
  }
  return kExitInvalidInput;
}
