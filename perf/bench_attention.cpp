// The CPU attention kernel per context length: one decode query (all heads of a model's layout)
// against an f16 KV cache of n positions, single-threaded (the backend splits heads across
// threads). Reports the KV bytes streamed per second, the quantity that bounds long-context decode.
// Attention/decode reads the cache from the CPU caches (the kernel's compute), decode_cold from
// memory, as a real decode step does after its weights have streamed through.
#include <benchmark/benchmark.h>

#include <random>
#include <vector>

#include "backends/cpu/kernels/attention.h"
#include "core/fp16.h"

namespace mllm {
namespace {

// Query heads per KV head differ by model, and the kernel computes up to four heads of a KV head
// at a time: SmolLM2-135M 9 over 3 (passes of 3), Qwen2.5-0.5B 14 over 2 (4 + 3), TinyLlama-1.1B
// 32 over 4 (4 + 4); all of 64 dimensions.
void BM_AttentionDecode(benchmark::State& state, int n_head, int n_head_kv, bool cold) {
    const int64_t n_ctx = state.range(0);
    graph::Attrs a;
    a.n_head = n_head;
    a.n_head_kv = n_head_kv;
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
    // Cold: a decode step's weights have pushed the cache rows out of the CPU caches before its
    // attention reads them; reading a buffer larger than the last-level cache does the same.
    std::vector<uint64_t> flush(cold ? (size_t{64} << 20) / sizeof(uint64_t) : 0, 1);
    for (auto _ : state) {
        if (cold) {
            state.PauseTiming();
            uint64_t sum = 0;
            for (size_t i = 0; i < flush.size(); i += 8) sum += flush[i];
            benchmark::DoNotOptimize(sum);
            state.ResumeTiming();
        }
        cpu::attention(q.data(), layer, out.data(), n_ctx - 1, a, 0, a.n_head, scores.data(),
                       /*kv_from_memory=*/true);
        benchmark::DoNotOptimize(out.data());
    }
    // Each query head reads its KV head's keys and values once.
    const double bytes =
        2.0 * static_cast<double>(n_ctx) * a.head_dim * sizeof(uint16_t) * a.n_head;
    state.SetBytesProcessed(static_cast<int64_t>(bytes * static_cast<double>(state.iterations())));
    state.counters["ctx"] = static_cast<double>(n_ctx);
}
BENCHMARK_CAPTURE(BM_AttentionDecode, smollm2, 9, 3, false)
    ->Name("Attention/decode/smollm2-heads")
    ->Arg(128)
    ->Arg(512)
    ->Arg(2048)
    ->Arg(8192);
BENCHMARK_CAPTURE(BM_AttentionDecode, qwen25, 14, 2, false)
    ->Name("Attention/decode/qwen2.5-heads")
    ->Arg(512)
    ->Arg(2048);
BENCHMARK_CAPTURE(BM_AttentionDecode, tinyllama, 32, 4, false)
    ->Name("Attention/decode/tinyllama-heads")
    ->Arg(512)
    ->Arg(2048);
BENCHMARK_CAPTURE(BM_AttentionDecode, smollm2_cold, 9, 3, true)
    ->Name("Attention/decode_cold/smollm2-heads")
    ->Arg(2048)
    ->Arg(8192);
BENCHMARK_CAPTURE(BM_AttentionDecode, tinyllama_cold, 32, 4, true)
    ->Name("Attention/decode_cold/tinyllama-heads")
    ->Arg(2048);

}  // namespace
}  // namespace mllm
