#include "cli/plan_command.h"

#include <iostream>
#include <utility>

#include <nlohmann/json.hpp>

#include "base/file.h"
#include "base/host_info.h"
#include "cli/run_directory.h"
#include "configs/config_files.h"
#include "configs/model_preset.h"
#include "contract/run_layout.h"
#include "plan/plan_report.h"
#include "storage/token_dataset.h"

namespace radlads {
namespace {

Result<std::pair<std::string, std::string>> ReadConfigFile(ConfigKind kind, const std::string& ref) {
  RADLADS_ASSIGN_OR_RETURN(std::string path, ResolveConfigPath(kind, ref));
  RADLADS_ASSIGN_OR_RETURN(std::string text, ReadFileToString(path));
  return std::make_pair(std::move(path), std::move(text));
}

// Shapes of the teacher the recipe names, when it differs from the model given.
void CheckRecipeTeacher(const Recipe& recipe, const Qwen2Config& model, const std::string& model_name,
                        std::vector<std::string>* warnings) {
  if (recipe.teacher.empty()) return;
  Result<ModelPreset> preset = LoadModelPreset(recipe.teacher);
  if (!preset.ok()) return;
  const Qwen2Config& p = preset->config;
  if (p.num_hidden_layers != model.num_hidden_layers || p.hidden_size != model.hidden_size ||
      p.num_attention_heads != model.num_attention_heads ||
      p.num_key_value_heads != model.num_key_value_heads || p.vocab_size != model.vocab_size) {
    warnings->push_back("the recipe was written for teacher " + recipe.teacher + " (" +
                        DescribeQwen2Config(p) + ") but the model " + model_name + " is " +
                        DescribeQwen2Config(model));
  }
}

}  // namespace

Result<PlanInputs> LoadPlanInputs(const PlanCommandArgs& a) {
  PlanInputs in;
  if (a.recipe.empty()) return Status::InvalidArgument("plan: a RECIPE (name or path) is required");
  if (a.cluster.empty()) return Status::InvalidArgument("plan: --cluster NAME|PATH is required");

  RADLADS_ASSIGN_OR_RETURN(auto recipe_file, ReadConfigFile(ConfigKind::kRecipe, a.recipe));
  RADLADS_ASSIGN_OR_RETURN(in.recipe, ParseRecipeYaml(recipe_file.second, recipe_file.first));
  in.recipe.name = ConfigStem(recipe_file.first);
  in.recipe_name = in.recipe.name;
  in.files.push_back({"recipe", recipe_file.first, "inputs/recipe.yaml", recipe_file.second});

  RADLADS_ASSIGN_OR_RETURN(auto cluster_file, ReadConfigFile(ConfigKind::kCluster, a.cluster));
  RADLADS_ASSIGN_OR_RETURN(in.cluster, ParseClusterYaml(cluster_file.second, cluster_file.first));
  in.cluster.name = ConfigStem(cluster_file.first);
  in.cluster_name = in.cluster.name;
  in.files.push_back({"cluster", cluster_file.first, "inputs/cluster.yaml", cluster_file.second});

  if (!a.model_dir.empty() && !a.model_preset.empty()) {
    return Status::InvalidArgument("plan: give --model DIR or --preset NAME, not both");
  }
  if (!a.model_dir.empty()) {
    RADLADS_ASSIGN_OR_RETURN(in.teacher, LoadQwen2Config(a.model_dir));
    const std::string json_path =
        IsDirectory(a.model_dir) ? JoinPath(a.model_dir, "config.json") : a.model_dir;
    RADLADS_ASSIGN_OR_RETURN(std::string text, ReadFileToString(json_path));
    in.model_name = a.model_dir;
    in.files.push_back({"model_config", json_path, "inputs/config.json", std::move(text)});
    CheckRecipeTeacher(in.recipe, in.teacher, in.model_name, &in.warnings);
  } else {
    const std::string ref = a.model_preset.empty() ? in.recipe.teacher : a.model_preset;
    if (ref.empty()) {
      return Status::InvalidArgument("plan: recipe " + in.recipe_name +
                                     " names no teacher: pass --model DIR or --preset NAME");
    }
    RADLADS_ASSIGN_OR_RETURN(auto preset_file, ReadConfigFile(ConfigKind::kModel, ref));
    RADLADS_ASSIGN_OR_RETURN(ModelPreset preset,
                             ParseModelPresetYaml(preset_file.second, preset_file.first));
    in.teacher = preset.config;
    in.model_name = ConfigStem(preset_file.first);
    in.files.push_back({"model_preset", preset_file.first, "inputs/model.yaml", preset_file.second});
    in.files.push_back({"model_config", "", "inputs/config.json", Qwen2ConfigToJson(in.teacher)});
    if (!a.model_preset.empty()) CheckRecipeTeacher(in.recipe, in.teacher, in.model_name, &in.warnings);
  }

  if (!a.data.empty() && a.data_tokens > 0) {
    return Status::InvalidArgument("plan: give --data PATH or --data-tokens N, not both");
  }
  if (!a.data.empty()) {
    RADLADS_ASSIGN_OR_RETURN(TokenDataset ds, TokenDataset::Open(a.data));
    in.data.path = a.data;
    in.data.format = std::string(TokenFileFormatName(ds.format()));
    in.data.tokens = ds.size();
    if (a.check_vocab) {
      RADLADS_RETURN_IF_ERROR(ds.CheckVocabulary(static_cast<std::uint64_t>(in.teacher.vocab_size)));
    }
  } else if (a.data_tokens > 0) {
    in.data.tokens = static_cast<std::uint64_t>(a.data_tokens);
  } else {
    return Status::InvalidArgument("plan: --data PREFIX (or --data-tokens N) is required");
  }
  return in;
}

PlanOptions PlanOptionsFromArgs(const PlanCommandArgs& a) {
  PlanOptions o;
  if (a.tp > 0 || a.pp > 0 || a.dp > 0) {
    // Unset (0) degrees are filled in against the cluster by RunPlanCommand.
    o.layout = ClusterParallel{a.tp, a.pp, a.dp};
  }
  o.auto_layout = a.auto_layout;
  o.segment_steps = a.segment_steps;
  o.allow_data_repeats = a.allow_data_repeats;
  if (a.cpu_memory_gib > 0) o.cpu_memory_gib = a.cpu_memory_gib;
  o.cost.storage_gbps_per_node = a.storage_gbps;
  return o;
}

int RunPlanCommand(const PlanCommandArgs& args) {
  std::ostream& out = args.out ? *args.out : std::cout;
  std::ostream& err = args.err ? *args.err : std::cerr;
  auto fail = [&](const Status& st) {
    err << "radlads-coord plan: " << st.ToString() << "\n";
    return ExitCodeFor(st);
  };
  Result<PlanInputs> in = LoadPlanInputs(args);
  if (!in.ok()) return fail(in.status());
  PlanOptions opt = PlanOptionsFromArgs(args);
  if (opt.layout.has_value()) {
    // Unset degrees keep the cluster's tp and pp; an unset dp is derived (BuildPlan).
    const ClusterParallel& c = in->cluster.parallel;
    opt.layout = ClusterParallel{args.tp > 0 ? args.tp : c.tp, args.pp > 0 ? args.pp : c.pp,
                                 args.dp > 0 ? args.dp : 0};
  }
  Result<RunDirectoryPlan> planned = PlanRunDirectory(
      *in, opt, args.run_dir, args.host_memory_gib ? args.host_memory_gib : HostMemoryGib());
  if (!planned.ok()) return fail(planned.status());
  const Plan& plan = planned->plan;
  if (args.json) {
    out << PlanJsonText(plan);
  } else {
    out << FormatPlanTable(plan);
  }
  for (const std::string& n : planned->notes) err << "note: " << n << "\n";
  if (!args.run_dir.empty()) {
    if (Status st = WriteRunDirectory(plan, *in, args.run_dir); !st.ok()) return fail(st);
    (args.json ? err : out) << "wrote " << JoinPath(args.run_dir, RunLayout::PlanFile()) << "\n";
  }
  return kExitOk;
}

}  // namespace radlads
