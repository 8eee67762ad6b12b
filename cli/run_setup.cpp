#include "cli/run_setup.h"

#include <chrono>
#include <cstdlib>
#include <filesystem>

#include <nlohmann/json.hpp>

#include "base/file.h"
#include "base/gzip.h"
#include "base/host_info.h"
#include "base/log.h"
#include "cli/plan_command.h"
#include "contract/run_layout.h"
#include "plan/plan_report.h"
#include "storage/binidx.h"
#include "storage/text_tokenizer.h"

namespace radlads {
namespace {

constexpr const char* kRunConfigRole = "run_config";
constexpr const char* kRunConfigCopy = "inputs/run.yaml";

bool IsText(const std::string& path) {
  auto ends = [&](std::string_view s) {
    return path.size() >= s.size() && path.compare(path.size() - s.size(), s.size(), s) == 0;
  };
  return ends(".txt") || ends(".txt.gz") || ends(".md");
}

// A data source: either text files (tokenized into RUN/data/<name>) or an existing token dataset.
struct DataSource {
  std::vector<std::vector<std::uint32_t>> docs;  // text: the tokenized documents
  std::string dataset;                           // token dataset path (no tokenization)
  bool text = false;
  std::uint64_t tokens = 0;
};

// `tokenizer`: read and tokenize text files with it (the coordinator); null: only decide the kind.
Result<DataSource> PrepareData(const RunSettings& s, const std::vector<std::string>& paths, const char* key,
                               const TextTokenizer* tokenizer) {
  DataSource d;
  bool any_text = false, any_tokens = false;
  for (const std::string& p : paths) (IsText(p) ? any_text : any_tokens) = true;
  if (any_text && any_tokens) {
    return Status::InvalidArgument(s.base_dir + "/" + s.name + ".yaml: data." + key +
                                   ": mixes text files and token datasets; give one kind");
  }
  if (any_tokens) {
    if (paths.size() != 1) {
      return Status::InvalidArgument(s.name + ": data." + std::string(key) + ": give exactly one token dataset");
    }
    d.dataset = s.Resolve(paths[0]);
    RADLADS_ASSIGN_OR_RETURN(TokenDataset ds, TokenDataset::Open(d.dataset));
    d.tokens = ds.size();
    return d;
  }
  d.text = true;
  if (tokenizer == nullptr) return d;
  for (const std::string& p : paths) {
    RADLADS_ASSIGN_OR_RETURN(std::string text, ReadMaybeGzipFile(s.Resolve(p)));
    if (text.empty()) return Status::InvalidArgument(s.Resolve(p) + ": empty text file (data." + key + ")");
    d.docs.push_back(tokenizer->Encode(text));
    d.tokens += d.docs.back().size() + 1;  // + end-of-text
  }
  return d;
}

Status WriteData(const DataSource& d, const std::string& prefix, const TextTokenizer& tokenizer) {
  if (!d.text || PathExists(prefix + ".idx")) return Status::Ok();
  BinidxWriterOptions o;
  o.vocab_size = tokenizer.vocab_size();
  o.eos_id = tokenizer.end_of_text_id();
  RADLADS_ASSIGN_OR_RETURN(BinidxWriter w, BinidxWriter::Create(prefix, o));
  for (const auto& doc : d.docs) RADLADS_RETURN_IF_ERROR(w.AppendDocument(doc));
  return w.Finish();
}

std::int64_t NowUnixMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// The plan inputs of a run config (recipe, cluster, teacher config, the training data's size).
Result<PlanInputs> LoadRunPlanInputs(const RunSettings& settings, const std::string& teacher_dir,
                                     const std::string& train_path, std::uint64_t train_tokens,
                                     PlanOptions* options) {
  PlanCommandArgs pa;
  pa.recipe = settings.recipe.find('/') != std::string::npos ? settings.Resolve(settings.recipe) : settings.recipe;
  pa.cluster = settings.cluster.find('/') != std::string::npos ? settings.Resolve(settings.cluster) : settings.cluster;
  pa.model_dir = teacher_dir;
  pa.data_tokens = static_cast<std::int64_t>(train_tokens);
  RADLADS_ASSIGN_OR_RETURN(PlanInputs inputs, LoadPlanInputs(pa));
  inputs.data.path = train_path;
  inputs.data.format = "binidx";
  *options = PlanOptionsFromArgs(pa);
  return inputs;
}

// Loads the teacher and both datasets, and derives the student.
Status LoadModelsAndData(RunSetup& r, const std::string& train_path, const std::string& heldout_path) {
  RADLADS_ASSIGN_OR_RETURN(TokenDataset train, TokenDataset::Open(train_path));
  RADLADS_ASSIGN_OR_RETURN(TokenDataset heldout, TokenDataset::Open(heldout_path));
  RADLADS_RETURN_IF_ERROR(heldout.CheckVocabulary(static_cast<std::uint64_t>(r.plan().teacher.vocab_size)));
  r.train.emplace(std::move(train));
  r.heldout.emplace(std::move(heldout));
  r.student = StudentConfigFromRecipe(r.plan().recipe, r.plan().teacher);
  return Status::Ok();
}

}  // namespace

TaskEnv RunSetup::Env(const std::string& run_dir) {
  TaskEnv env;
  env.plan = &planned.plan;
  env.settings = &settings;
  env.layout = RunLayout{run_dir};
  env.teacher = &*teacher;
  env.teacher_dir = teacher_dir;
  env.train = &*train;
  env.heldout = &*heldout;
  env.student = student;
  env.cache_dtype = settings.cache_dtype == "BF16" ? DType::kBF16 : DType::kF32;
  env.checkpoint_every_steps = plan().cluster.checkpoint.every_steps;
  env.checkpoint_every_seconds = static_cast<double>(plan().cluster.checkpoint.every_minutes) * 60.0;
  env.run_started_unix_ms = started_unix_ms;
  return env;
}

Result<std::unique_ptr<RunSetup>> PrepareRunAsCoordinator(const std::string& config_path,
                                                          const std::string& run_dir,
                                                          std::optional<double> host_memory_gib,
                                                          const std::string& cluster,
                                                          const std::function<Status(const Plan&)>& check_plan) {
  auto r = std::make_unique<RunSetup>();
  const RunLayout layout{run_dir};
  // ---- Validate every input before writing anything. ----
  RADLADS_ASSIGN_OR_RETURN(r->settings, LoadRunSettings(config_path));
  if (!cluster.empty()) {  // a path on the command line is relative to the working directory
    r->settings.cluster = cluster.find('/') != std::string::npos
                              ? std::filesystem::absolute(cluster).lexically_normal().string()
                              : cluster;
  }
  const RunSettings& settings = r->settings;
  r->teacher_dir = settings.Resolve(settings.teacher);
  log::Info("loading teacher " + r->teacher_dir);
  Result<Qwen2Teacher> teacher = LoadQwen2Teacher(r->teacher_dir);
  if (!teacher.ok()) return teacher.status().WithContext("teacher");
  r->teacher.emplace(std::move(teacher).value());
  // Text is tokenized with the teacher's own tokenizer (byte tokens for the tiny teacher).
  RADLADS_ASSIGN_OR_RETURN(TextTokenizer tokenizer, TextTokenizer::ForRun(settings.data.tokenizer, r->teacher_dir));
  if (tokenizer.vocab_size() > static_cast<std::uint64_t>(r->teacher->config.vocab_size) && !tokenizer.is_bytes()) {
    return Status::InvalidArgument(r->teacher_dir + "/tokenizer.json: " + std::to_string(tokenizer.vocab_size()) +
                                   " token ids, but config.json vocab_size is " +
                                   std::to_string(r->teacher->config.vocab_size) +
                                   ": expected the tokenizer of this model");
  }
  RADLADS_ASSIGN_OR_RETURN(DataSource train_src, PrepareData(settings, settings.data.train, "train", &tokenizer));
  RADLADS_ASSIGN_OR_RETURN(DataSource heldout_src, PrepareData(settings, settings.data.heldout, "heldout", &tokenizer));
  if (train_src.text || heldout_src.text) log::Info("text tokenized with " + tokenizer.description());
  const std::string train_path = train_src.text ? layout.Abs(RunLayout::TrainPrefix()) : train_src.dataset;
  const std::string heldout_path = heldout_src.text ? layout.Abs(RunLayout::HeldoutPrefix()) : heldout_src.dataset;

  PlanOptions options;
  RADLADS_ASSIGN_OR_RETURN(r->inputs, LoadRunPlanInputs(settings, r->teacher_dir, train_path, train_src.tokens, &options));
  // The run config itself is an input: workers read their copy of it.
  RADLADS_ASSIGN_OR_RETURN(std::string config_text, ReadFileToString(config_path));
  r->inputs.files.push_back({kRunConfigRole, std::filesystem::absolute(config_path).lexically_normal().string(),
                             kRunConfigCopy, std::move(config_text)});
  RADLADS_ASSIGN_OR_RETURN(r->planned, PlanRunDirectory(r->inputs, options, run_dir,
                                                        host_memory_gib ? host_memory_gib : HostMemoryGib()));
  if (check_plan) RADLADS_RETURN_IF_ERROR(check_plan(r->plan()));

  // ---- Write the run directory (idempotent for the same plan). ----
  RADLADS_RETURN_IF_ERROR(CreateDirectories(layout.Abs(RunLayout::DataDir())));
  RADLADS_RETURN_IF_ERROR(WriteData(train_src, layout.Abs(RunLayout::TrainPrefix()), tokenizer));
  RADLADS_RETURN_IF_ERROR(WriteData(heldout_src, layout.Abs(RunLayout::HeldoutPrefix()), tokenizer));
  RADLADS_RETURN_IF_ERROR(WriteRunDirectory(r->plan(), r->inputs, run_dir, &r->planned.notes));
  const std::string started = layout.Abs(RunLayout::StartedAtFile());
  if (!PathExists(started)) RADLADS_RETURN_IF_ERROR(AtomicWriteFile(started, std::to_string(NowUnixMs()) + "\n"));
  r->started_unix_ms = NowUnixMs();
  if (auto t = ReadFileToString(started); t.ok()) r->started_unix_ms = std::atoll(t->c_str());
  RADLADS_RETURN_IF_ERROR(LoadModelsAndData(*r, train_path, heldout_path));
  return r;
}

Result<std::unique_ptr<RunSetup>> OpenRunAsWorker(const std::string& run_dir) {
  auto r = std::make_unique<RunSetup>();
  const RunLayout layout{run_dir};
  RADLADS_RETURN_IF_ERROR(CheckRunFormat(run_dir));
  const std::string plan_path = layout.Abs(RunLayout::PlanFile());
  RADLADS_ASSIGN_OR_RETURN(std::string plan_text, ReadFileToString(plan_path));
  const nlohmann::json plan_json = nlohmann::json::parse(plan_text, nullptr, /*allow_exceptions=*/false);
  std::string config_source;
  if (!plan_json.is_discarded() && plan_json.contains("inputs") && plan_json["inputs"].contains("files")) {
    for (const auto& f : plan_json["inputs"]["files"]) {
      if (f.value("role", "") == kRunConfigRole) config_source = f.value("source", "");
    }
  }
  if (config_source.empty()) {
    return Status::FailedPrecondition(plan_path + " names no run config (inputs.files role \"" +
                                      std::string(kRunConfigRole) + "\"): workers serve runs prepared by "
                                      "`radlads-coord run CONFIG --run " + run_dir + "`");
  }
  RADLADS_ASSIGN_OR_RETURN(std::string config_text, ReadFileToString(layout.Abs(kRunConfigCopy)));
  RADLADS_ASSIGN_OR_RETURN(r->settings, ParseRunSettingsYaml(config_text, config_source));
  // The cluster the coordinator planned with (`run --cluster` may have replaced the config's).
  for (const auto& f : plan_json["inputs"]["files"]) {
    if (f.value("role", "") == "cluster") r->settings.cluster = f.value("source", r->settings.cluster);
  }
  const RunSettings& settings = r->settings;
  r->teacher_dir = settings.Resolve(settings.teacher);
  Result<Qwen2Teacher> teacher = LoadQwen2Teacher(r->teacher_dir);
  if (!teacher.ok()) return teacher.status().WithContext("teacher");
  r->teacher.emplace(std::move(teacher).value());
  RADLADS_ASSIGN_OR_RETURN(DataSource train_src, PrepareData(settings, settings.data.train, "train", nullptr));
  RADLADS_ASSIGN_OR_RETURN(DataSource heldout_src, PrepareData(settings, settings.data.heldout, "heldout", nullptr));
  const std::string train_path = train_src.text ? layout.Abs(RunLayout::TrainPrefix()) : train_src.dataset;
  const std::string heldout_path = heldout_src.text ? layout.Abs(RunLayout::HeldoutPrefix()) : heldout_src.dataset;
  std::uint64_t train_tokens = train_src.tokens;
  if (train_src.text) {
    RADLADS_ASSIGN_OR_RETURN(TokenDataset ds, TokenDataset::Open(train_path));
    train_tokens = ds.size();
  }
  PlanOptions options;
  RADLADS_ASSIGN_OR_RETURN(r->inputs, LoadRunPlanInputs(settings, r->teacher_dir, train_path, train_tokens, &options));
  r->inputs.files.push_back({kRunConfigRole, config_source, kRunConfigCopy, config_text});
  RADLADS_ASSIGN_OR_RETURN(std::optional<double> planned_host, ParsePlannedHostMemory(plan_text, plan_path));
  RADLADS_ASSIGN_OR_RETURN(r->planned, PlanRunDirectory(r->inputs, options, run_dir, planned_host));
  const std::string text = PlanJsonText(r->plan());
  const std::string diff = DescribePlanDifference(plan_json, nlohmann::json::parse(text));
  if (!diff.empty()) {
    return Status::FailedPrecondition(plan_path + ": this worker's plan differs from the run's (" + diff +
                                      "): are the worker and the coordinator the same build, reading the "
                                      "same inputs?");
  }
  if (auto t = ReadFileToString(layout.Abs(RunLayout::StartedAtFile())); t.ok()) {
    r->started_unix_ms = std::atoll(t->c_str());
  }
  RADLADS_RETURN_IF_ERROR(LoadModelsAndData(*r, train_path, heldout_path));
  return r;
}

}  // namespace radlads
