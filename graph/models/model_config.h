#pragma once
// Hyper-parameters of a transformer, read from GGUF metadata ("{arch}.embedding_length", ...).
#include <string>

#include "core/gguf/gguf_reader.h"
#include "graph/ir.h"

namespace mllm::graph {

struct ModelConfig {
    std::string arch;  // general.architecture: "llama", "qwen2"
    std::string name;
    int n_vocab = 0;
    int n_embd = 0;
    int n_layer = 0;
    int n_head = 0;
    int n_head_kv = 0;
    int head_dim = 0;
    int n_ff = 0;
    int n_ctx_train = 0;
    float norm_eps = 1e-5f;
    float rope_base = 10000;
    float rope_freq_scale = 1;  // 1 / linear scaling factor
    RopeMode rope_mode = RopeMode::Normal;
    bool qkv_bias = false;
    bool tied_embeddings = false;  // no output.weight: the token embedding is reused
};

// Reads and checks the configuration; throws mllm::Error naming what is missing, invalid or
// unsupported (unknown architecture, heads that don't divide the width, ...).
ModelConfig read_model_config(const GgufFile& file);

}  // namespace mllm::graph
