#pragma once
// Attention over an f16 KV cache: scores, softmax and the weighted sum of values in one kernel,
// causal, with grouped-query heads (several query heads read one KV head).
#include <cstdint>

#include "graph/ir.h"

namespace mllm::cpu {

// One layer's cache, head-major: KV head h's rows for positions 0 .. n_ctx - 1 are contiguous
// (head_dim halfs each), so a decode step's attention reads each head's keys and values as one
// sequential stream. They come from memory (the step's weights have pushed them out of the
// caches), and a stream is what the hardware prefetchers follow best; position-major rows put a
// head's rows a whole row of heads apart.
struct KvLayer {
    uint16_t* k = nullptr;
    uint16_t* v = nullptr;
    int64_t n_ctx = 0;
    int64_t width = 0;  // n_head_kv * head_dim: the width of a step's k and v rows
    int64_t head_dim = 0;

    // Index in k (or v) of column `col` of the k (or v) row of position `pos`.
    int64_t at(int64_t pos, int64_t col) const {
        return (col / head_dim * n_ctx + pos) * head_dim + col % head_dim;
    }
};

// Converts k and v rows [row_begin, row_end) of this step into cache rows n_past + row.
void kv_store(const float* k, const float* v, const KvLayer& cache, int64_t n_past,
              int64_t row_begin, int64_t row_end);

// Query heads that share a KV head are computed up to this many at a time (attention.cpp): three
// heads' accumulators for four keys' scores, or 32 output dimensions, fill 12 of the 16 AVX2
// registers. Passes of four fit only two keys or 16 dimensions; TinyLlama's 8 heads per KV head
// ran 10-17% faster in passes of 3, 3 and 2 than of 4 and 4, Qwen2.5's 7 about as fast.
constexpr int kAttentionHeadsPerPass = 3;

// out[t, h*hd ...] for tasks [task_begin, task_end), task = t * n_head + h; token t sees cache
// positions 0 ..= n_past + t. scores: scratch of at least
// kAttentionHeadsPerPass * (n_past + n_tokens) floats. kv_from_memory: the cache rows are not in
// the CPU caches (a decode step, whose weights have pushed them out), so the kernel prefetches
// them ahead of use; a prefill step's tokens reuse the rows from cache.
void attention(const float* q, const KvLayer& cache, float* out, int64_t n_past,
               const graph::Attrs& attrs, int64_t task_begin, int64_t task_end, float* scores,
               bool kv_from_memory);

}  // namespace mllm::cpu
