// Vulkan kernels alone, on the device MLLM_VK_DEVICE selects (lavapipe here, a GPU when there is
// one); skipped with the reason where there is no Vulkan device.
//   Dispatch/vulkan/<n>[/no_barriers]: n tiny dispatches (a 576-float add) in one submit, with a
//     barrier between each as a decode step records them (or none): the fixed cost a dispatch
//     adds, whatever its work.
//   Gemv/vulkan/<type>/<rows>x<k>: one decode matmul (one token) in the layout the backend uses on
//     this device (repacked, texel-buffer weights on CPU devices); bytes_per_second is the weight
//     bytes read. Its time includes one submit and wait, as Dispatch/vulkan/1 shows.
//   Gemm128/vulkan/<type>/<rows>x<k>: the same for a 128-token prefill; GMACs counts
//     multiply-adds.
#ifdef MLLM_HAVE_VULKAN

#include <benchmark/benchmark.h>

#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "backends/vulkan/ops/vk_elementwise.h"
#include "backends/vulkan/ops/vk_matmul.h"
#include "backends/vulkan/vk_context.h"
#include "core/dtype.h"
#include "core/error.h"
#include "core/fp16.h"

namespace mllm::vk {
namespace {

// The device, opened once for every benchmark; null (with the reason) when there is none.
Context* context(std::string& why) {
    static std::string error;
    static const std::unique_ptr<Context> ctx = []() -> std::unique_ptr<Context> {
        try {
            return Context::open();
        } catch (const Error& e) {
            error = e.what();
            return nullptr;
        }
    }();
    why = error;
    return ctx.get();
}

Allocation device_floats(Context& ctx, int64_t n, float value) {
    Allocation a = ctx.memory().allocate(4 * static_cast<VkDeviceSize>(n));
    const std::vector<float> v(static_cast<size_t>(n), value);
    ctx.write(a, 0, v.data(), 4 * v.size());
    return a;
}

void BM_VkDispatch(benchmark::State& state) {
    std::string why;
    Context* ctx = context(why);
    if (ctx == nullptr) return state.SkipWithError(why.c_str());
    constexpr int64_t kFloats = 576;
    const Allocation a = device_floats(*ctx, kFloats, 1.0f);
    const Allocation y = device_floats(*ctx, kFloats, 0.0f);
    const auto n = state.range(0);
    Sequence seq(ctx->device());
    seq.begin();
    for (int64_t i = 0; i < n; ++i) {
        ElementwiseArgs args;
        args.op = Elementwise::Add;
        args.n = kFloats;
        args.cols = kFloats;
        args.a = a.range();
        args.b = a.range();
        args.y = y.range();
        record_elementwise(*ctx, seq, args);
        if (state.range(1) != 0) seq.barrier();
    }
    seq.end();
    seq.run();  // pipelines compiled, memory touched
    for (auto _ : state) seq.run();
    state.counters["us_per_dispatch"] =
        benchmark::Counter(static_cast<double>(n), benchmark::Counter::kIsIterationInvariantRate |
                                                       benchmark::Counter::kInvert);
}

// Random weight bytes with sane fp16 scales (the speed does not depend on the values).
std::vector<uint8_t> random_weights(DType t, int64_t rows, int64_t k) {
    std::vector<uint8_t> w(row_bytes(t, k) * static_cast<size_t>(rows));
    std::mt19937 rng(7);
    for (auto& b : w) b = static_cast<uint8_t>(rng());
    const size_t block = dtype_traits(t).type_size;
    const uint16_t scale = fp32_to_fp16(0.01f);
    for (size_t off = 0; off < w.size(); off += block) std::memcpy(&w[off], &scale, 2);
    return w;
}

void BM_VkMatmul(benchmark::State& state, DType t, int64_t tokens) {
    std::string why;
    Context* ctx = context(why);
    if (ctx == nullptr) return state.SkipWithError(why.c_str());
    const int64_t rows = state.range(0), k = state.range(1);
    const std::vector<uint8_t> host = random_weights(t, rows, k);
    MatMulArgs args;
    args.weight_type = t;
    args.m = rows;
    args.k = k;
    args.n = tokens;
    Allocation w;
    if (matmul_repacks(ctx->props(), t)) {
        w = upload_repacked(*ctx, t, host.data(), rows, k);
        args.repacked = true;
    } else {
        w = ctx->memory().allocate(host.size() + 4);
        ctx->write(w, 0, host.data(), host.size());
    }
    const Allocation x = device_floats(*ctx, k * tokens, 0.5f);
    const Allocation y = device_floats(*ctx, rows * tokens, 0.0f);
    args.w = w.range();
    args.x = x.range();
    args.y = y.range();
    Sequence seq(ctx->device());
    seq.begin();
    record_matmul(*ctx, seq, args);
    seq.end();
    seq.run();
    for (auto _ : state) seq.run();
    state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(host.size()));
    // Multiply-adds per second: rows * k * tokens.
    state.counters["GMACs"] = benchmark::Counter(static_cast<double>(rows * k * tokens) * 1e-9,
                                                 benchmark::Counter::kIsIterationInvariantRate);
}

int register_all() {
    for (int n : {1, 64})
        for (int barriers : {1, 0})
            benchmark::RegisterBenchmark(
                ("Dispatch/vulkan/" + std::to_string(n) + (barriers ? "" : "/no_barriers")).c_str(),
                BM_VkDispatch)
                ->Args({n, barriers})
                ->Unit(benchmark::kMicrosecond)
                ->UseRealTime();
    // SmolLM2-135M's projections (q/o, k/v, gate/up, down, the tied output) and TinyLlama's
    // q/o, gate/up and down (the K-quants' rows need k to be a multiple of 256).
    const std::vector<std::pair<int64_t, int64_t>> shapes = {
        {576, 576},   {192, 576},   {1536, 576},  {576, 1536},
        {49152, 576}, {2048, 2048}, {5632, 2048}, {2048, 5632}};
    for (DType t : {DType::Q4_0, DType::Q8_0, DType::Q4_K, DType::Q6_K, DType::F16})
        for (const auto& [rows, k] : shapes) {
            if (k % dtype_traits(t).block_size != 0) continue;
            const std::string shape =
                std::string(dtype_name(t)) + "/" + std::to_string(rows) + "x" + std::to_string(k);
            benchmark::RegisterBenchmark(("Gemv/vulkan/" + shape).c_str(), BM_VkMatmul, t, 1)
                ->Args({rows, k})
                ->Unit(benchmark::kMicrosecond)
                ->UseRealTime();
            if (rows <= 2048)
                benchmark::RegisterBenchmark(("Gemm128/vulkan/" + shape).c_str(), BM_VkMatmul, t,
                                             128)
                    ->Args({rows, k})
                    ->Unit(benchmark::kMillisecond)
                    ->UseRealTime();
        }
    return 0;
}
const int kRegistered = register_all();

}  // namespace
}  // namespace mllm::vk

#endif  // MLLM_HAVE_VULKAN
