#pragma once
// Attention over an f16 KV cache: scores, softmax and the weighted sum of values in one kernel,
// causal, with grouped-query heads (several query heads read one KV head).
#include <cstdint>

#include "graph/ir.h"

namespace mllm::cpu {

// One layer's cache: row p holds position p, n_head_kv * head_dim halfs wide.
struct KvLayer {
    uint16_t* k = nullptr;
    uint16_t* v = nullptr;
    int64_t n_ctx = 0;
    int64_t width = 0;  // n_head_kv * head_dim
};

// Converts k and v rows [row_begin, row_end) of this step into cache rows n_past + row.
void kv_store(const float* k, const float* v, const KvLayer& cache, int64_t n_past,
              int64_t row_begin, int64_t row_end);

// Query heads that share a KV head are computed up to this many at a time (attention.cpp).
constexpr int kAttentionHeadsPerPass = 4;

// out[t, h*hd ...] for tasks [task_begin, task_end), task = t * n_head + h; token t sees cache
// positions 0 ..= n_past + t. scores: scratch of at least
// kAttentionHeadsPerPass * (n_past + n_tokens) floats.
void attention(const float* q, const KvLayer& cache, float* out, int64_t n_past,
               const graph::Attrs& attrs, int64_t task_begin, int64_t task_end, float* scores);

}  // namespace mllm::cpu
