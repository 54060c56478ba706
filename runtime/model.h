#pragma once
// A model file opened for inference: the mapped GGUF, its configuration and its tokenizer.
#include <memory>
#include <string>

#include "core/gguf/gguf_reader.h"
#include "graph/models/model_config.h"
#include "runtime/tokenizer/tokenizer.h"

namespace mllm {

struct Model {
    std::shared_ptr<const GgufFile> file;
    graph::ModelConfig config;
    std::unique_ptr<Tokenizer> tokenizer;
};

// Opens, validates and reads everything a session needs; throws mllm::Error naming the problem.
std::shared_ptr<const Model> load_model(const std::string& path);

}  // namespace mllm
