// Fused quantized matmul, single-threaded (the runtime splits rows across its threads).
//   GEMV (one token, decode): memory-bound; bytes_per_second is the weight bytes streamed.
//   GEMM (128 tokens, prefill): compute-bound; GFLOPS counts 2 * rows * k * tokens.
// Shapes are real projection sizes, named rows x k (SmolLM2-135M: 1536x576 up/gate, 576x1536
// down, 49152x576 tied output; Qwen2.5-0.5B: 4864x896, 896x4864; TinyLlama 2048x5632). Rows of
// k = 576 (18 blocks of 32) or 896 (28) are not whole groups of 8 blocks, the case decode
// kernels find hardest. GEMV cycles through copies of the weights filling 256 MiB, so every
// iteration reads its weights from memory as decode does (a small matrix would otherwise sit in
// L2/L3); compare its bytes_per_second with BM_MemoryReadBandwidth1Thread from the same run.
// gemv_hot_* keeps its weights in cache: the kernel's compute ceiling. Decode can only reach the
// memory bandwidth where that ceiling is above it.
// MLLM_CPU_ISA=scalar runs the portable kernels.
#include <benchmark/benchmark.h>

#include <cstddef>
#include <cstring>
#include <random>
#include <vector>

#include "backends/cpu/kernels/quant_matmul.h"
#include "core/dtype.h"
#include "core/fp16.h"
#include "core/quant/blocks.h"
#include "perf/bandwidth.h"

namespace mllm::cpu {
namespace {

// Random weight bytes with sane fp16 scale fields (the kernels' speed does not depend on the
// values, but NaN/Inf scales would make the numbers meaningless to look at).
std::vector<uint8_t> make_weights(DType t, int64_t rows, int64_t k) {
    const size_t rb = row_bytes(t, k);
    std::vector<uint8_t> w(rb * static_cast<size_t>(rows));
    std::mt19937 rng(42);
    for (auto& b : w) b = static_cast<uint8_t>(rng());
    const uint16_t scale = fp32_to_fp16(0.01f);
    const size_t block = dtype_traits(t).type_size;
    std::vector<size_t> fields;
    switch (t) {
        case DType::F16:
            for (size_t i = 0; i < w.size(); i += 2) std::memcpy(&w[i], &scale, 2);
            return w;
        case DType::BF16:
            for (size_t i = 0; i < w.size(); i += 2) {
                const uint16_t v = fp32_to_bf16(0.01f);
                std::memcpy(&w[i], &v, 2);
            }
            return w;
        case DType::F32:
            for (size_t i = 0; i < w.size(); i += 4) {
                const float v = 0.01f;
                std::memcpy(&w[i], &v, 4);
            }
            return w;
        case DType::Q4_1:
        case DType::Q4_K:
        case DType::Q5_K:
            fields = {0, 2};
            break;
        case DType::Q6_K:
            fields = {offsetof(BlockQ6_K, d)};
            break;
        default:
            fields = {0};
            break;
    }
    for (size_t off = 0; off < w.size(); off += block)
        for (size_t f : fields) std::memcpy(&w[off + f], &scale, 2);
    return w;
}

// GEMV reads this many bytes of weight copies in turn, far more than the last-level cache.
constexpr size_t kColdBytes = size_t{256} << 20;

// Weights read from memory (kCold) or, for GEMV, one copy that stays in cache (kHot).
enum class Residency { kCold, kHot };

void BM_QuantMatmul(benchmark::State& state, DType t, int64_t tokens, Residency where) {
    const int64_t rows = state.range(0);
    const int64_t k = state.range(1);
    const size_t wrb = row_bytes(t, k);
    const std::vector<uint8_t> w = make_weights(t, rows, k);
    // Decode: copies of the weights, each starting on its own page, visited in turn.
    const size_t stride = (w.size() + 4095) / 4096 * 4096;
    const size_t copies =
        tokens == 1 && where == Residency::kCold ? (kColdBytes + w.size() - 1) / w.size() : 1;
    std::vector<uint8_t> cold(stride * copies);
    for (size_t c = 0; c < copies; ++c) std::memcpy(cold.data() + c * stride, w.data(), w.size());
    const size_t arb = row_bytes(activation_type(t), k);
    std::vector<uint8_t> act(arb * static_cast<size_t>(tokens));
    std::vector<float> x(static_cast<size_t>(k));
    std::mt19937 rng(1);
    std::normal_distribution<float> normal;
    for (int64_t tok = 0; tok < tokens; ++tok) {
        for (auto& v : x) v = normal(rng);
        quantize_activation_row(t, x.data(), act.data() + tok * arb, k);
    }
    std::vector<float> y(static_cast<size_t>(rows * tokens));
    size_t copy = 0;
    for (auto _ : state) {
        const uint8_t* wc = cold.data() + copy * stride;
        copy = copy + 1 == copies ? 0 : copy + 1;
        quant_matmul(t, k, wc, wrb, 0, rows, act.data(), arb, tokens, y.data(), rows);
        benchmark::DoNotOptimize(y.data());
        benchmark::ClobberMemory();
    }
    state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(w.size()));
    state.counters["GFLOPS"] = benchmark::Counter(
        2.0 * double(rows) * double(k) * double(tokens) * double(state.iterations()) * 1e-9,
        benchmark::Counter::kIsRate);
    state.SetLabel(quant_kernel_isa());
}

// Activation quantization, which decode pays once per matmul input.
void BM_QuantizeActivation(benchmark::State& state, DType t) {
    const int64_t k = state.range(0);
    std::vector<float> x(static_cast<size_t>(k));
    std::mt19937 rng(1);
    std::normal_distribution<float> normal;
    for (auto& v : x) v = normal(rng);
    std::vector<uint8_t> act(row_bytes(activation_type(t), k));
    for (auto _ : state) {
        quantize_activation_row(t, x.data(), act.data(), k);
        benchmark::DoNotOptimize(act.data());
    }
    state.SetItemsProcessed(state.iterations() * k);
}

void gemv_shapes(benchmark::internal::Benchmark* b) {
    b->Args({576, 1536})->Args({1536, 576})->Args({49152, 576})->Args({896, 4864});
    b->Args({4864, 896})->Args({2048, 5632})->Args({5632, 2048});
    b->ArgNames({"rows", "k"})->Unit(benchmark::kMicrosecond);
}

// K formats need k % 256 == 0: no k = 576 or 896.
void gemv_shapes_k(benchmark::internal::Benchmark* b) {
    b->Args({576, 1536})->Args({896, 4864})->Args({2048, 5632})->Args({5632, 2048});
    b->Args({49152, 2048})->ArgNames({"rows", "k"})->Unit(benchmark::kMicrosecond);
}

void gemm_shapes(benchmark::internal::Benchmark* b) {
    b->Args({576, 1536})->Args({1536, 576})->Args({2048, 5632});
    b->ArgNames({"rows", "k"})->Unit(benchmark::kMillisecond);
}

void gemm_shapes_k(benchmark::internal::Benchmark* b) {
    b->Args({576, 1536})->Args({2048, 5632});
    b->ArgNames({"rows", "k"})->Unit(benchmark::kMillisecond);
}

// Hot GEMV reads one copy of a 576 x 1536 matrix over and over (486 KiB at Q4_0, 918 KiB at
// Q8_0), from L2 or L3; the 1536 x 576 one has rows of 18 blocks, which end inside a group of 8
// (the row splits of gemv_stream).
void gemv_hot_shapes(benchmark::internal::Benchmark* b) {
    b->Args({576, 1536})->Args({1536, 576})->ArgNames({"rows", "k"})->Unit(benchmark::kMicrosecond);
}

// K formats: rows of three super-blocks instead of 576 elements.
void gemv_hot_shapes_k(benchmark::internal::Benchmark* b) {
    b->Args({576, 1536})->Args({1536, 768})->ArgNames({"rows", "k"})->Unit(benchmark::kMicrosecond);
}

#define MLLM_QMM_BENCH(type, gemv, gemv_hot, gemm)                                                 \
    BENCHMARK_CAPTURE(BM_QuantMatmul, gemv_##type, DType::type, 1, Residency::kCold)->Apply(gemv); \
    BENCHMARK_CAPTURE(BM_QuantMatmul, gemv_hot_##type, DType::type, 1, Residency::kHot)            \
        ->Apply(gemv_hot);                                                                         \
    BENCHMARK_CAPTURE(BM_QuantMatmul, gemm128_##type, DType::type, 128, Residency::kCold)          \
        ->Apply(gemm);

MLLM_QMM_BENCH(Q4_0, gemv_shapes, gemv_hot_shapes, gemm_shapes)
MLLM_QMM_BENCH(Q8_0, gemv_shapes, gemv_hot_shapes, gemm_shapes)
MLLM_QMM_BENCH(Q4_1, gemv_shapes, gemv_hot_shapes, gemm_shapes)
MLLM_QMM_BENCH(Q5_0, gemv_shapes, gemv_hot_shapes, gemm_shapes)
MLLM_QMM_BENCH(Q4_K, gemv_shapes_k, gemv_hot_shapes_k, gemm_shapes_k)
MLLM_QMM_BENCH(Q5_K, gemv_shapes_k, gemv_hot_shapes_k, gemm_shapes_k)
MLLM_QMM_BENCH(Q6_K, gemv_shapes_k, gemv_hot_shapes_k, gemm_shapes_k)
MLLM_QMM_BENCH(F16, gemv_shapes, gemv_hot_shapes, gemm_shapes)
MLLM_QMM_BENCH(BF16, gemv_shapes, gemv_hot_shapes, gemm_shapes)
MLLM_QMM_BENCH(F32, gemv_shapes, gemv_hot_shapes, gemm_shapes)

BENCHMARK_CAPTURE(BM_QuantizeActivation, q8_0, DType::Q4_0)->Arg(2048)->Arg(5632);
BENCHMARK_CAPTURE(BM_QuantizeActivation, q8_k, DType::Q4_K)->Arg(2048)->Arg(5632);

// What single-threaded GEMV is up against: one thread streaming a 1 GiB buffer.
void BM_MemoryReadBandwidth1Thread(benchmark::State& state) {
    for (auto _ : state) {
        state.counters["bandwidth_GBps"] =
            perf::measure_read_bandwidth(size_t{1} << 30, /*threads=*/1, /*passes=*/3) / 1e9;
    }
}
BENCHMARK(BM_MemoryReadBandwidth1Thread)->Iterations(1)->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace mllm::cpu
