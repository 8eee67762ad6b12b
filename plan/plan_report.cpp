#include "plan/plan_report.h"

#include <cmath>
#include <cstdio>
#include <string>

#include "contract/json_codec.h"
#include "plan/disk_estimate.h"

namespace radlads {
namespace {

using nlohmann::json;

std::string Fixed(double v, int decimals) {
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%.*f", decimals, v);
  return buf;
}

std::string Pad(std::string s, std::size_t width) {
  if (s.size() < width) s.append(width - s.size(), ' ');
  return s;
}

std::string PadLeft(std::string s, std::size_t width) {
  if (s.size() < width) s.insert(0, width - s.size(), ' ');
  return s;
}

std::string Params(double n) {
  if (n >= 1e9) return Fixed(n / 1e9, 2) + "B";
  if (n >= 1e6) return Fixed(n / 1e6, 1) + "M";
  if (n >= 1e3) return Fixed(n / 1e3, 1) + "K";
  return Fixed(n, 0);
}

// GFLOP with one decimal, or 3 significant digits below 1 GFLOP (the tiny model).
std::string Gflop(double flops) {
  const double g = flops / 1e9;
  if (g >= 1.0) return Fixed(g, 1);
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.3g", g);
  return buf;
}

std::string StepName(RecipeStepKind k) {
  switch (k) {
    case RecipeStepKind::kAlign: return "1 align";
    case RecipeStepKind::kDistill: return "2 distill";
    case RecipeStepKind::kFinetune: return "3 finetune";
  }
  return "?";
}

json MemoryJson(const MemoryBreakdown& b) {
  json terms = json::array();
  for (const MemoryTerm& t : b.terms) {
    terms.push_back({{"name", t.name}, {"bytes", std::llround(t.bytes)}, {"formula", t.formula}});
  }
  return {{"what", b.what},
          {"detail", b.detail},
          {"total_bytes", std::llround(b.total_bytes)},
          {"capacity_bytes", std::llround(b.capacity_bytes)},
          {"usable_bytes", std::llround(b.usable_bytes)},
          {"fits", b.fits()},
          {"terms", terms}};
}

json TaskJson(const Plan& plan, const TaskSpec& t) {
  json j = codec::ToJson(t);
  const double est = EstimateTaskSeconds(plan, t);
  j["est_seconds"] = est > 0 ? json(std::round(est * 10.0) / 10.0) : json(nullptr);
  return j;
}

// Rounds to 4 significant digits so the document does not carry float noise.
double Sig4(double v) {
  if (v == 0.0 || !std::isfinite(v)) return v;
  const double mag = std::pow(10.0, std::floor(std::log10(std::fabs(v))) - 3.0);
  return std::round(v / mag) * mag;
}

std::string Short(const json& j) {
  std::string s = j.dump();
  if (s.size() > 80) s = s.substr(0, 77) + "...";
  return s;
}

std::string Diff(const json& a, const json& b, const std::string& path) {
  if (a.type() != b.type()) return path + ": " + Short(a) + " (old) vs " + Short(b) + " (new)";
  if (a.is_object()) {
    for (auto it = a.begin(); it != a.end(); ++it) {
      const std::string p = path.empty() ? it.key() : path + "." + it.key();
      if (!b.contains(it.key())) return p + ": present in the old plan only";
      std::string d = Diff(it.value(), b.at(it.key()), p);
      if (!d.empty()) return d;
    }
    for (auto it = b.begin(); it != b.end(); ++it) {
      if (!a.contains(it.key())) {
        return (path.empty() ? it.key() : path + "." + it.key()) + ": present in the new plan only";
      }
    }
    return "";
  }
  if (a.is_array()) {
    const std::size_t n = std::min(a.size(), b.size());
    for (std::size_t i = 0; i < n; ++i) {
      std::string label = path + "[" + std::to_string(i) + "]";
      if (a[i].is_object() && a[i].contains("id")) label = path + "[" + a[i]["id"].get<std::string>() + "]";
      std::string d = Diff(a[i], b[i], label);
      if (!d.empty()) return d;
    }
    if (a.size() != b.size()) {
      return path + ": " + std::to_string(a.size()) + " entries (old) vs " + std::to_string(b.size()) +
             " (new)";
    }
    return "";
  }
  if (a != b) return path + ": " + Short(a) + " (old) vs " + Short(b) + " (new)";
  return "";
}

}  // namespace

std::string FormatCount(std::int64_t v) {
  std::string digits = std::to_string(v < 0 ? -v : v);
  std::string out;
  for (std::size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0) out += ',';
    out += digits[i];
  }
  return v < 0 ? "-" + out : out;
}

std::string FormatGiB(double bytes) {
  const double g = bytes / kGiB;
  if (std::fabs(g) >= 1.0) {
    // Thousands separators for the integer part.
    const auto whole = static_cast<std::int64_t>(std::floor(std::fabs(g) * 10.0 + 0.5));
    return (g < 0 ? "-" : "") + FormatCount(whole / 10) + "." + std::to_string(whole % 10) + " GiB";
  }
  return Fixed(g, 2) + " GiB";
}

std::string FormatDuration(double s) {
  if (s >= 3600.0) return Fixed(s / 3600.0, s >= 36000.0 ? 1 : 2) + " h";
  if (s >= 60.0) return Fixed(s / 60.0, 0) + " min";
  return Fixed(s, s >= 10.0 ? 0 : 1) + " s";
}

std::string FormatPlanTable(const Plan& p) {
  std::string o;
  const ModelSizes& z = p.sizes;
  const Cluster& c = p.cluster;
  o += "radlads plan: " + p.recipe_name + " on " + p.cluster_name + "\n";
  o += "  teacher  " + p.model_name + " (" + DescribeQwen2Config(p.teacher) + ")\n";
  std::string ranks = "decay " + std::to_string(p.student.lora_rank_decay);
  if (p.student.lora_rank_iclr) ranks += ", iclr " + std::to_string(p.student.lora_rank_iclr);
  if (p.student.lora_rank_value_residual_mix) {
    ranks += ", value " + std::to_string(p.student.lora_rank_value_residual_mix);
  }
  if (p.student.lora_rank_gate) ranks += ", gate " + std::to_string(p.student.lora_rank_gate);
  if (p.student.lora_rank_tokenshift) ranks += ", tokenshift " + std::to_string(p.student.lora_rank_tokenshift);
  o += "  student  " + std::string(StudentArchName(p.student.arch)) + " (" +
       std::string(StudentModelType(p.student.arch)) + "): " +
       Params(static_cast<double>(z.StudentTotal())) + " params, mixer " +
       Params(static_cast<double>(z.mixer)) + " per layer (LoRA " + ranks + ")\n";
  o += "  data     " + (p.data.path.empty() ? std::string("(token count only)") : p.data.path) +
       ": " + FormatCount(static_cast<std::int64_t>(p.data.tokens)) + " tokens" +
       (p.data.format.empty() ? "" : " (" + p.data.format + ")") + "\n";
  if (c.HasGpus() && c.gpu) {
    o += "  cluster  " + FormatCount(c.nodes) + " node(s) x " + std::to_string(c.gpus_per_node) +
         " " + c.gpu->name + " (" + Fixed(c.gpu->memory_gib, 1) + " GiB, " +
         Fixed(c.gpu->peak_tflops_bf16, 1) + " TFLOP/s bf16)\n";
  } else {
    o += "  cluster  " + FormatCount(c.nodes) + " node(s) x " + std::to_string(c.cpu_workers) +
         " CPU workers\n";
  }

  o += "\nlayout (steps 2-3): " + std::string("tp ") + std::to_string(p.layout.tp) + " x pp " +
       std::to_string(p.layout.pp) + " x dp " + std::to_string(p.layout.dp) + " = " +
       std::to_string(p.layout.tp * p.layout.pp * p.layout.dp) + " workers (from " +
       LayoutSourceName(p.layout_source) + ")\n";
  for (const StageRange& r : p.stages) {
    o += "  stage " + std::to_string(r.stage) + ": layers " + std::to_string(r.first_layer) + "-" +
         std::to_string(r.last_layer - 1) + " (" + std::to_string(r.layers()) + ")\n";
  }

  o += "\n" + Pad("step", 12) + PadLeft("tokens", 14) + PadLeft("seq_len", 9) + PadLeft("batch", 7) +
       PadLeft("micro", 7) + PadLeft("accum", 7) + PadLeft("opt steps", 11) +
       "  windows used / distinct\n";
  for (const StepPlan& s : p.steps) {
    o += Pad(StepName(s.kind), 12) + PadLeft(FormatCount(s.tokens), 14) +
         PadLeft(FormatCount(s.seq_len), 9) + PadLeft(FormatCount(s.batch), 7) +
         PadLeft(FormatCount(s.micro_batch), 7) + PadLeft(FormatCount(s.grad_accum), 7) +
         PadLeft(FormatCount(s.optimizer_steps), 11) + "  " + FormatCount(s.samples) + " / " +
         FormatCount(static_cast<std::int64_t>(s.unique_windows)) + "\n";
  }

  const CachePlan& k = p.cache;
  o += "\nstep-1 cache: " + FormatCount(static_cast<std::int64_t>(k.segments.size())) +
       " segments of " +
       (k.min_segment_steps == k.max_segment_steps
            ? FormatCount(k.max_segment_steps)
            : FormatCount(k.min_segment_steps) + "-" + FormatCount(k.max_segment_steps)) +
       " steps; " + Fixed(static_cast<double>(k.bytes_per_token) / 1024.0, 1) + " KiB/token, " +
       FormatGiB(static_cast<double>(k.max_segment_steps * k.step_bytes)) + " per segment, " +
       FormatGiB(static_cast<double>(k.total_bytes)) + " in all\n";
  o += "  window W = " + FormatCount(k.window) + " segment(s) in " +
       FormatGiB(static_cast<double>(k.budget_bytes)) +
       (k.kept ? " (the whole cache is kept)" : " (evicted once aligned)") + "; rule: " + k.rule + "\n";

  const std::map<TaskType, int> counts = p.TaskCounts();
  o += "\ntasks: " + FormatCount(static_cast<std::int64_t>(p.tasks.size())) + "\n ";
  for (const auto& [type, n] : counts) o += " " + std::string(TaskTypeName(type)) + " " + FormatCount(n);
  o += "\n";

  const DiskEstimate disk = EstimateDisk(p);
  o += "\ndisk (RUN/): checkpoints " + FormatGiB(static_cast<double>(disk.checkpoint_bytes)) + " kept, " +
       FormatGiB(static_cast<double>(disk.checkpoint_peak_bytes)) + " at most (keep_last " +
       FormatCount(disk.keep_last) + "); step-1 cache " + FormatGiB(static_cast<double>(disk.cache_bytes)) +
       "; export " + FormatGiB(static_cast<double>(disk.export_bytes)) + "; at most " +
       FormatGiB(static_cast<double>(disk.total_peak_bytes)) + " in all\n";

  const double usable = p.memory.empty() ? p.worker.capacity_bytes : p.memory.front().usable_bytes;
  o += "\nmemory per worker: " + FormatGiB(p.worker.capacity_bytes) + ", " + FormatGiB(usable) +
       " usable after the margin\n";
  for (const MemoryBreakdown& b : p.memory) {
    o += "  " + Pad(b.what, 15) + PadLeft(FormatGiB(b.total_bytes), 12) + "  " +
         (b.fits() ? "fits" : "DOES NOT FIT") + "  (" + b.detail + ")\n";
    for (const MemoryTerm& t : b.terms) {
      o += "      " + Pad(t.name, 52) + PadLeft(FormatGiB(t.bytes), 12) + "\n";
    }
  }

  const RunEstimate& e = p.estimate;
  const bool gpu = c.HasGpus();
  o += "\nestimate (MFU";
  for (const StepEstimate& s : e.steps) {
    o += std::string(&s == &e.steps.front() ? " " : ", ") + "step " + StepName(s.kind).substr(0, 1) +
         " " + Fixed(s.utilisation, 2);
  }
  o += gpu && c.gpu ? " of " + Fixed(c.gpu->peak_tflops_bf16, 1) + " TFLOP/s per GPU)\n"
                    : " of " + Fixed(WorkerPeakFlops(c, p.cost) / 1e12, 2) +
                          " TFLOP/s per CPU worker)\n";
  o += "  " + Pad("step", 12) + PadLeft("GFLOP/token", 12) + PadLeft("time", 10) +
       PadLeft(gpu ? "GPU-hours" : "worker-h", 11) + (e.cost_usd ? PadLeft("cost", 11) : "") +
       "  bound\n";
  const double price = c.cost_per_gpu_hour_usd.value_or(0.0);
  for (const StepEstimate& s : e.steps) {
    const double wh = s.seconds / 3600.0 * static_cast<double>(c.WorkerCount());
    o += "  " + Pad(StepName(s.kind), 12) + PadLeft(Gflop(s.flops_per_token.total()), 12) +
         PadLeft(FormatDuration(s.seconds), 10) + PadLeft(Fixed(wh, 1), 11) +
         (e.cost_usd ? PadLeft("$" + FormatCount(std::llround(wh * price)), 11) : "") + "  " +
         s.bound + "\n";
  }
  o += "  " + Pad("total", 12) + PadLeft("", 12) + PadLeft(FormatDuration(e.seconds), 10) +
       PadLeft(Fixed(e.worker_hours, 1), 11) +
       (e.cost_usd ? PadLeft("$" + FormatCount(std::llround(*e.cost_usd)), 11) : "") + "\n";
  const StepEstimate& s1 = e.steps.front();
  o += "  step 1: align task <= " + FormatDuration(s1.align_task_seconds) + ", cache task <= " +
       FormatDuration(s1.cache_task_seconds) + "; I/O (cache + optimizer state) " + FormatGiB(s1.io_bytes) +
       (s1.io_seconds > 0 ? " (" + FormatDuration(s1.io_seconds) + ")" : " (storage bandwidth unknown)") +
       "\n";

  if (!p.warnings.empty()) {
    o += "\nwarnings:\n";
    for (const std::string& w : p.warnings) o += "  - " + w + "\n";
  }
  if (!p.notes.empty()) {
    o += "\nnotes:\n";
    for (const std::string& n : p.notes) o += "  - " + n + "\n";
  }
  return o;
}

json PlanToJson(const Plan& p) {
  json j;
  j["schema"] = kPlanSchema;
  j["version"] = kPlanSchemaVersion;

  json files = json::array();
  for (std::size_t i = 0; i < p.files.size(); ++i) {
    files.push_back({{"role", p.files[i].role},
                     {"source", p.files[i].source},
                     {"copy", p.files[i].copy},
                     {"checksum", p.file_checksums[i]}});
  }
  j["inputs"] = {{"recipe", p.recipe_name},
                 {"model", p.model_name},
                 {"cluster", p.cluster_name},
                 {"data", {{"path", p.data.path}, {"format", p.data.format}, {"tokens", p.data.tokens}}},
                 {"host_memory_gib", p.host_memory_gib ? json(*p.host_memory_gib) : json(nullptr)},
                 {"files", files}};

  const PlanOptions& po = p.options;
  const MemoryModelOptions& mo = po.memory;
  j["options"] = {
      {"auto_layout", po.auto_layout},
      {"segment_steps", po.segment_steps},
      {"allow_data_repeats", po.allow_data_repeats},
      {"cpu_memory_gib", po.cpu_memory_gib ? json(*po.cpu_memory_gib) : json(nullptr)},
      {"memory",
       {{"margin", mo.margin},
        {"gpu_workspace_gib", mo.gpu_workspace_gib},
        {"cpu_workspace_gib", mo.cpu_workspace_gib},
        {"activation_checkpointing", mo.activation_checkpointing},
        {"persistent_bf16_weights", mo.persistent_bf16_weights},
        {"shard_optimizer_over_dp", mo.shard_optimizer_over_dp}}},
      {"cost",
       {{"mfu", {{"align", p.cost.mfu.align}, {"distill", p.cost.mfu.distill}, {"finetune", p.cost.mfu.finetune}}},
        {"cpu_worker_peak_tflops", p.cost.cpu_worker_peak_tflops},
        {"storage_gbps_per_node", p.cost.storage_gbps_per_node}}}};

  const ModelSizes& z = p.sizes;
  j["teacher"] = {{"layers", z.layers},         {"hidden", z.hidden},   {"heads", z.heads},
                  {"kv_heads", z.kv_heads},     {"head_dim", z.head_dim}, {"ffn", z.ffn},
                  {"vocab", z.vocab},           {"tied", z.tied},       {"params", z.TeacherTotal()}};
  j["student"] = {{"architecture", std::string(StudentArchName(p.student.arch))},
                  {"model_type", std::string(StudentModelType(p.student.arch))},
                  {"params", z.StudentTotal()},
                  {"mixer_params_per_layer", z.mixer},
                  {"use_rope", p.student.use_rope},
                  {"use_tokenshift", p.student.use_tokenshift},
                  {"gate_rank_type", p.student.gate_rank_type},
                  {"balance_state", p.student.balance_state},
                  {"groupnorm_att", p.student.groupnorm_att},
                  {"lora_ranks",
                   {{"decay", p.student.lora_rank_decay},
                    {"iclr", p.student.lora_rank_iclr},
                    {"value_residual_mix", p.student.lora_rank_value_residual_mix},
                    {"gate", p.student.lora_rank_gate},
                    {"tokenshift", p.student.lora_rank_tokenshift}}}};

  json stages = json::array();
  for (const StageRange& r : p.stages) {
    stages.push_back({{"stage", r.stage}, {"first_layer", r.first_layer}, {"last_layer", r.last_layer}});
  }
  const Cluster& c = p.cluster;
  j["layout"] = {{"nodes", c.nodes},
                 {"workers_per_node", c.WorkersPerNode()},
                 {"workers", c.WorkerCount()},
                 {"gpu", c.HasGpus() && c.gpu ? json(c.gpu->name) : json(nullptr)},
                 {"tp", p.layout.tp},
                 {"pp", p.layout.pp},
                 {"dp", p.layout.dp},
                 {"source", LayoutSourceName(p.layout_source)},
                 {"stages", stages}};

  json steps = json::array();
  for (const StepPlan& s : p.steps) {
    steps.push_back({{"kind", std::string(RecipeStepKindName(s.kind))},
                     {"tokens", s.tokens},
                     {"seq_len", s.seq_len},
                     {"batch", s.batch},
                     {"micro_batch", s.micro_batch},
                     {"grad_accum", s.grad_accum},
                     {"optimizer_steps", s.optimizer_steps},
                     {"samples", s.samples},
                     {"unique_windows", s.unique_windows},
                     {"magic_prime", s.magic_prime},
                     {"workers", s.workers}});
  }
  j["steps"] = steps;

  const CachePlan& k = p.cache;
  json segs = json::array();
  for (const Segment& s : k.segments) {
    segs.push_back({{"index", s.index},
                    {"steps", s.steps},
                    {"sample_begin", s.sample_begin},
                    {"sample_end", s.sample_end},
                    {"tokens", s.tokens},
                    {"cache_bytes", s.cache_bytes}});
  }
  j["cache"] = {{"bytes_per_token", k.bytes_per_token},
                {"step_bytes", k.step_bytes},
                {"budget_bytes", k.budget_bytes},
                {"total_bytes", k.total_bytes},
                {"window", k.window},
                {"kept", k.kept},
                {"min_segment_steps", k.min_segment_steps},
                {"max_segment_steps", k.max_segment_steps},
                {"rule", k.rule},
                {"segments", segs}};

  const DiskEstimate disk = EstimateDisk(p);
  j["disk"] = {{"keep_last", disk.keep_last},
               {"transfer_bytes", disk.transfer_bytes},
               {"align_bytes", disk.align_bytes},
               {"distill_bytes", disk.distill_bytes},
               {"finetune_bytes", disk.finetune_bytes},
               {"checkpoint_bytes", disk.checkpoint_bytes},
               {"checkpoint_peak_bytes", disk.checkpoint_peak_bytes},
               {"cache_bytes", disk.cache_bytes},
               {"export_bytes", disk.export_bytes},
               {"total_peak_bytes", disk.total_peak_bytes}};

  json mem = json::array();
  for (const MemoryBreakdown& b : p.memory) mem.push_back(MemoryJson(b));
  j["memory"] = {{"device", p.worker.gpu ? "gpu" : "cpu"},
                 {"capacity_bytes", std::llround(p.worker.capacity_bytes)},
                 {"tasks", mem}};

  const RunEstimate& e = p.estimate;
  json est_steps = json::array();
  for (const StepEstimate& s : e.steps) {
    est_steps.push_back({{"kind", std::string(RecipeStepKindName(s.kind))},
                         {"flops_per_token", Sig4(s.flops_per_token.total())},
                         {"teacher_flops_per_token", Sig4(s.flops_per_token.teacher)},
                         {"student_flops_per_token", Sig4(s.flops_per_token.student)},
                         {"flops", Sig4(s.flops)},
                         {"utilisation", s.utilisation},
                         {"workers", s.workers},
                         {"bubble", Sig4(s.bubble)},
                         {"compute_seconds", Sig4(s.compute_seconds)},
                         {"io_bytes", Sig4(s.io_bytes)},
                         {"io_seconds", Sig4(s.io_seconds)},
                         {"seconds", Sig4(s.seconds)},
                         {"bound", s.bound},
                         {"optimizer_step_seconds", Sig4(s.optimizer_step_seconds)}});
  }
  j["estimate"] = {{"peak_flops_per_worker", Sig4(WorkerPeakFlops(c, p.cost))},
                   {"steps", est_steps},
                   {"seconds", Sig4(e.seconds)},
                   {"worker_hours", Sig4(e.worker_hours)},
                   {"cost_usd", e.cost_usd ? json(Sig4(*e.cost_usd)) : json(nullptr)}};

  json counts = json::object();
  for (const auto& [type, n] : p.TaskCounts()) counts[std::string(TaskTypeName(type))] = n;
  j["task_counts"] = counts;
  json tasks = json::array();
  for (const TaskSpec& t : p.tasks) tasks.push_back(TaskJson(p, t));
  j["tasks"] = std::move(tasks);
  j["warnings"] = p.warnings;
  j["notes"] = p.notes;
  return j;
}

std::string PlanJsonText(const Plan& plan) { return PlanToJson(plan).dump(2) + "\n"; }

namespace {

// The document, checked to be a radlads.plan of this version.
Result<json> ParsePlanDocument(std::string_view text, const std::string& src) {
  json j = json::parse(text.begin(), text.end(), nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) return Status::InvalidArgument(src + ": not a JSON object");
  if (j.value("schema", std::string()) != kPlanSchema) {
    return Status::InvalidArgument(src + ": not a " + std::string(kPlanSchema) + " document");
  }
  const json& v = j.contains("version") ? j["version"] : json(nullptr);
  if (!v.is_number_integer() || v.get<std::int64_t>() != kPlanSchemaVersion) {
    return Status::InvalidArgument(src + ": " + std::string(kPlanSchema) + " version " + v.dump() +
                                      "; this build reads version " + std::to_string(kPlanSchemaVersion));
  }
  return j;
}

}  // namespace

Result<std::vector<TaskSpec>> ParsePlanTasks(std::string_view text, std::string_view source) {
  const std::string src(source);
  RADLADS_ASSIGN_OR_RETURN(json j, ParsePlanDocument(text, src));
  if (!j.contains("tasks") || !j["tasks"].is_array()) {
    return Status::InvalidArgument(src + ": tasks: expected an array");
  }
  std::vector<TaskSpec> out(j["tasks"].size());
  for (std::size_t i = 0; i < out.size(); ++i) {
    RADLADS_RETURN_IF_ERROR(codec::FromJson(j["tasks"][i], &out[i], src, "tasks[" + std::to_string(i) + "]"));
  }
  return out;
}

Result<std::optional<double>> ParsePlannedHostMemory(std::string_view text, std::string_view source) {
  const std::string src(source);
  RADLADS_ASSIGN_OR_RETURN(json j, ParsePlanDocument(text, src));
  const json* v = nullptr;
  if (j.contains("inputs") && j["inputs"].is_object() && j["inputs"].contains("host_memory_gib")) {
    v = &j["inputs"]["host_memory_gib"];
  }
  if (v == nullptr || !(v->is_null() || v->is_number())) {
    return Status::InvalidArgument(src + ": inputs.host_memory_gib: expected a number or null");
  }
  if (v->is_null()) return std::optional<double>();
  return std::optional<double>(v->get<double>());
}

std::string DescribePlanDifference(const json& old_plan, const json& new_plan) {
  return Diff(old_plan, new_plan, "");
}

namespace {

json WithoutLayout(json p) {
  if (!p.is_object()) return p;
  for (const char* k : {"layout", "memory", "estimate", "notes", "warnings"}) p.erase(k);
  if (p.contains("inputs") && p["inputs"].is_object()) {
    json& in = p["inputs"];
    in.erase("cluster");
    if (in.contains("files") && in["files"].is_array()) {
      for (json& f : in["files"]) {
        const std::string role = f.is_object() ? f.value("role", "") : "";
        if (role == "cluster" || role == "run_config") {
          f.erase("source");
          f.erase("checksum");
        }
      }
    }
  }
  for (const char* list : {"steps", "tasks"}) {
    if (!p.contains(list) || !p[list].is_array()) continue;
    for (json& e : p[list]) {
      if (!e.is_object()) continue;
      for (const char* k : {"micro_batch", "grad_accum", "workers", "est_seconds"}) e.erase(k);
    }
  }
  return p;
}

}  // namespace

std::string DescribeProtocolDifference(const json& old_plan, const json& new_plan) {
  return Diff(WithoutLayout(old_plan), WithoutLayout(new_plan), "");
}

}  // namespace radlads
