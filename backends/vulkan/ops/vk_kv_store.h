#pragma once
// Appends a step's key and value rows to one layer's f16 KV cache (shaders/kv_store.comp): row r
// goes to cache row positions[r].
#include <cstdint>

#include "backends/vulkan/vk_context.h"

namespace mllm::vk {

struct KvStoreArgs {
    int64_t rows = 0;                                          // tokens
    int64_t width = 0;                                         // n_head_kv * head_dim (even)
    int64_t n_ctx = 0;                                         // cache rows
    BufferRange k, v, positions;                               // f32 [rows, width] x2, i32 [rows]
    int64_t k_offset = 0, v_offset = 0, positions_offset = 0;  // elements
    BufferRange k_cache, v_cache;                              // f16 [n_ctx, width] each
};

void record_kv_store(Context& ctx, Sequence& seq, const KvStoreArgs& args);

}  // namespace mllm::vk
