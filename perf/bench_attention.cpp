// The CPU attention kernel per context length, single-threaded (the backend splits the work
// across threads):
//   Attention/decode: one decode query (all heads of a model's layout) against an f16 KV cache of
//     n positions, read from the CPU caches (the kernel's compute); decode_cold reads it from
//     memory, as a real decode step does after its weights have streamed through. Reports the KV
//     bytes read per second, the quantity that bounds long-context decode.
//   Attention/prefill: a prompt of n tokens from an empty cache, every token's heads; GFLOPS
//     counts the multiply-adds of scores and weighted values as two flops each.
#include <benchmark/benchmark.h>

#include <random>
#include <vector>

#include "backends/cpu/kernels/attention.h"
#include "core/fp16.h"

namespace mllm {
namespace {

// Query heads per KV head differ by model, and the kernel computes up to three heads of a KV
// head at a time: SmolLM2-135M 9 over 3 (passes of 3), Qwen2.5-0.5B 14 over 2 (3 + 3 + 1),
// TinyLlama-1.1B 32 over 4 (3 + 3 + 2); all of 64 dimensions. An f16 cache of n_ctx random
// positions and n_queries tokens' queries.
struct AttentionCase {
    graph::Attrs a;
    std::vector<uint16_t> k, v;
    std::vector<float> q, out, scores;
    cpu::KvLayer layer;

    AttentionCase(int n_head, int n_head_kv, int64_t n_ctx, int64_t n_queries) {
        a.n_head = n_head;
        a.n_head_kv = n_head_kv;
        a.head_dim = 64;
        a.attn_scale = 0.125f;
        const int64_t width = static_cast<int64_t>(a.n_head_kv) * a.head_dim;
        k.resize(static_cast<size_t>(n_ctx * width));
        v.resize(k.size());
        std::mt19937 rng(1);
        std::normal_distribution<float> dist;
        for (size_t i = 0; i < k.size(); ++i) {
            k[i] = fp32_to_fp16(dist(rng));
            v[i] = fp32_to_fp16(dist(rng));
        }
        q.resize(static_cast<size_t>(n_queries * a.n_head * a.head_dim));
        out.resize(q.size());
        for (float& x : q) x = dist(rng);
        scores.resize(static_cast<size_t>(cpu::kAttentionHeadsPerPass * n_ctx));
        layer = cpu::KvLayer{k.data(), v.data(), n_ctx, width, a.head_dim};
    }
};

void BM_AttentionDecode(benchmark::State& state, int n_head, int n_head_kv, bool cold) {
    const int64_t n_ctx = state.range(0);
    AttentionCase c(n_head, n_head_kv, n_ctx, 1);
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
        cpu::attention(c.q.data(), c.layer, c.out.data(), n_ctx - 1, c.a, 0, c.a.n_head,
                       c.scores.data(), /*kv_from_memory=*/true);
        benchmark::DoNotOptimize(c.out.data());
    }
    // Each query head reads its KV head's keys and values once.
    const double bytes =
        2.0 * static_cast<double>(n_ctx) * c.a.head_dim * sizeof(uint16_t) * c.a.n_head;
    state.SetBytesProcessed(static_cast<int64_t>(bytes * static_cast<double>(state.iterations())));
    state.counters["ctx"] = static_cast<double>(n_ctx);
}

void BM_AttentionPrefill(benchmark::State& state, int n_head, int n_head_kv) {
    const int64_t n = state.range(0);
    AttentionCase c(n_head, n_head_kv, n, n);
    for (auto _ : state) {
        cpu::attention(c.q.data(), c.layer, c.out.data(), 0, c.a, 0, n * c.a.n_head,
                       c.scores.data(), /*kv_from_memory=*/false);
        benchmark::DoNotOptimize(c.out.data());
    }
    // Token t meets t + 1 keys: n (n + 1) / 2 score and value products of head_dim per head.
    const double macs =
        static_cast<double>(n) * static_cast<double>(n + 1) / 2 * c.a.head_dim * c.a.n_head * 2;
    state.counters["GFLOPS"] =
        benchmark::Counter(2 * macs * static_cast<double>(state.iterations()),
                           benchmark::Counter::kIsRate, benchmark::Counter::kIs1000);
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
BENCHMARK_CAPTURE(BM_AttentionPrefill, smollm2, 9, 3)
    ->Name("Attention/prefill/smollm2-heads")
    ->Arg(128)
    ->Arg(512)
    ->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_AttentionPrefill, tinyllama, 32, 4)
    ->Name("Attention/prefill/tinyllama-heads")
    ->Arg(512)
    ->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace mllm
