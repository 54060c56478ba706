#pragma once
// Random-weight GGUF models with the exact shapes of real ones, written with the project's own
// GGUF writer: tests and benchmarks use them where the real files can't be downloaded.
#include <cstdint>
#include <string>

#include "core/dtype.h"

namespace mllm::test {

struct ModelShape {
    std::string arch = "llama";  // llama | qwen2
    int n_vocab = 0;
    int n_embd = 0;
    int n_layer = 0;
    int n_head = 0;
    int n_head_kv = 0;
    int n_ff = 0;
    int n_ctx = 2048;
    bool tied_embeddings = false;
    float rope_base = 10000;
};

ModelShape smollm2_135m();   // llama, tied, GQA 9/3, 30 layers
ModelShape qwen25_05b();     // qwen2, tied, biases, GQA 14/2, 24 layers
ModelShape tinyllama_11b();  // llama, GQA 32/4, 22 layers

// The same head layout with fewer layers, a 2048-token vocab and a feed-forward of at most 1024:
// small enough for CI, the attention shapes unchanged.
ModelShape ci_sized(ModelShape shape);

// Writes the model: 2-D weights in `type`, the token embedding (and output) in `embd_type`,
// norms and biases in f32. The vocab is SentencePiece-style: <unk> <s> </s>, the 256 byte
// tokens, then made-up pieces. Same seed, same file.
void write_random_model(const std::string& path, const ModelShape& shape, DType type,
                        DType embd_type, uint64_t seed = 42);

}  // namespace mllm::test
