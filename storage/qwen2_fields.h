// Internal to storage/: the config.json keys shared by Qwen2 teachers and the rwkv6qwen2 /
// rwkv7qwen2 students (sizes, norms, RoPE, special tokens), parsed with transformers' defaults.
// Does not check model_type and does not validate relations (ValidateQwen2Config does).
#pragma once

#include <string_view>

#include <nlohmann/json.hpp>

#include "base/status.h"
#include "storage/hf_config.h"

namespace radlads {

Status ParseQwen2CommonFields(const nlohmann::json& j, std::string_view source, Qwen2Config* out);

}  // namespace radlads
