#pragma once
// Builds the op graph of one model step from a GGUF file.
#include "core/gguf/gguf_reader.h"
#include "graph/ir.h"
#include "graph/models/model_config.h"

namespace mllm::graph {

struct BuildOptions {
    int64_t n_tokens = 1;     // tokens in this step (prefill batch or 1 for decode)
    bool logits_all = false;  // logits for every token (perplexity) or only the last one
    // End in an Argmax of the logits (greedy decoding: the device hands back one token id, not
    // the logits).
    bool argmax = false;
};

// Checks every tensor the architecture needs (present, shape, supported type) and throws
// mllm::Error naming the first problem.
Graph build_model_graph(const ModelConfig& config, const GgufFile& file,
                        const BuildOptions& options);

}  // namespace mllm::graph
