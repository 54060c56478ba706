// The CPU attention kernel per context length: one decode query (all heads) against an f16 KV
// cache of n positions, single-threaded (the backend splits heads across threads). Reports the
// KV bytes streamed per second, the quantity that bounds long-context decode.
#include <benchmark/benchmark.h>

#include <random>
#include <vector>

#include "backends/cpu/kernels/attention.h"
#include "core/fp16.h"

namespace mllm {
namespace {

void BM_AttentionDecode(benchmark::State& state) {
    const int64_t n_ctx = state.range(0);
    graph::Attrs a;
    a.n_head = 9;  // SmolLM2-135M: 9 query heads over 3 KV heads of 64
    a.n_head_kv = 3;
    a.head_dim = 64;
    a.attn_scale = 0.125f;
    const int64_t width = static_cast<int64_t>(a.n_head_kv) * a.head_dim;
    std::vector<uint16_t> k(static_cast<size_t>(n_ctx * width)), v(k.size());
    std::mt19937 rng(1);
    std::normal_distribution<float> dist;
    for (size_t i = 0; i < k.size(); ++i) {
        k[i] = fp32_to_fp16(dist(rng));
        v[i] = fp32_to_fp16(dist(rng));
    }
    std::vector<float> q(static_cast<size_t>(a.n_head * a.head_dim)), out(q.size()),
        scores(static_cast<size_t>(cpu::kAttentionHeadsPerPass * n_ctx));
    for (float& x : q) x = dist(rng);
    cpu::KvLayer layer{k.data(), v.data(), n_ctx, width, a.head_dim};
    for (auto _ : state) {
        cpu::attention(q.data(), layer, out.data(), n_ctx - 1, a, 0, a.n_head, scores.data());
        benchmark::DoNotOptimize(out.data());
    }
    // Each query head reads its KV head's keys and values once.
    const double bytes =
        2.0 * static_cast<double>(n_ctx) * a.head_dim * sizeof(uint16_t) * a.n_head;
    state.SetBytesProcessed(static_cast<int64_t>(bytes * static_cast<double>(state.iterations())));
    state.counters["ctx"] = static_cast<double>(n_ctx);
}
BENCHMARK(BM_AttentionDecode)
    ->Name("Attention/decode/smollm2-heads")
    ->Arg(128)
    ->Arg(512)
    ->Arg(2048)
    ->Arg(8192);

}  // namespace
}  // namespace mllm
