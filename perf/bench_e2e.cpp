// End-to-end decode and 128-token prefill on random-weight models of real shapes, with the
// machine's memory read bandwidth measured in the same run so decode speed is reported as a
// fraction of the memory roofline: (weight bytes read per token) / (read bandwidth).
#include <benchmark/benchmark.h>

#include <filesystem>
#include <map>
#include <memory>
#include <string>

#include "core/error.h"
#include "perf/bandwidth.h"
#include "runtime/session.h"
#include "tests/support/random_model.h"
#include "tests/support/test_env.h"

namespace mllm {
namespace {

struct ModelCase {
    const char* name;
    test::ModelShape (*shape)();
    DType type;
    bool vulkan;  // also run on the Vulkan backend (the cases)
};

// Backend, as the dashboard reads it from the name ("Decode/vulkan/..."; none means the CPU).
struct E2eCase {
    const ModelCase* model;
    const char* backend;
};

const ModelCase kCases[] = {
    {"SmolLM2-135M/q4_0", test::smollm2_135m, DType::Q4_0, true},
    {"SmolLM2-135M/q8_0", test::smollm2_135m, DType::Q8_0, true},
    {"TinyLlama-1.1B/q4_0", test::tinyllama_11b, DType::Q4_0, true},
    {"TinyLlama-1.1B/q4_k", test::tinyllama_11b, DType::Q4_K, false},
    {"Qwen2.5-0.5B/q4_0", test::qwen25_05b, DType::Q4_0, false},
};

// Model files are generated once per build tree (the 1.1B one takes a while) and reused.
std::string model_path(const ModelCase& c) {
    std::string file = std::string(c.name) + ".gguf";
    for (char& ch : file)
        if (ch == '/') ch = '-';
    const std::filesystem::path dir = std::filesystem::path(test::build_dir()) / "perf-models";
    std::filesystem::create_directories(dir);
    const std::string path = (dir / file).string();
    if (!std::filesystem::exists(path)) {
        const std::string tmp = path + ".tmp";
        test::write_random_model(tmp, c.shape(), c.type, c.type);
        std::filesystem::rename(tmp, path);
    }
    return path;
}

double bandwidth() {
    static const double bw = perf::measure_read_bandwidth();
    return bw;
}

// Bytes of weights one decode step reads: every matrix once (the embedding table only for
// the output projection when it is tied; the lookup reads one row).
double weight_bytes_per_token(const Model& m) {
    double bytes = 0;
    for (const GgufTensor& t : m.file->tensors()) {
        if (t.name == "token_embd.weight" && !m.config.tied_embeddings) continue;
        bytes += static_cast<double>(t.nbytes);
    }
    return bytes;
}

constexpr int kThreads = 2;

// Decode as llama-bench's tg128 measures it: 128 tokens after a short prompt, then start over,
// so attention reads a short KV cache and the weights dominate, as the roofline assumes.
// A session on the case's backend, or nullptr after marking the benchmark skipped (no device).
std::unique_ptr<Session> open_session(benchmark::State& state, std::shared_ptr<const Model> model,
                                      SessionOptions o, const char* backend) {
    o.backend = backend;
    try {
        return std::make_unique<Session>(std::move(model), o);
    } catch (const Error& e) {
        state.SkipWithError(e.what());
        return nullptr;
    }
}

// Device work per decode token (GPU backends).
void count_work(benchmark::State& state, Session& s, int64_t n_tokens) {
    const Session::StepWork w = s.step_work(n_tokens);
    if (w.dispatches == 0) return;
    state.counters["dispatches"] = static_cast<double>(w.dispatches);
    state.counters["submits"] = static_cast<double>(w.submits);
}

void BM_Decode(benchmark::State& state, E2eCase e) {
    const ModelCase* c = e.model;
    auto model = load_model(model_path(*c));
    SessionOptions o;
    o.n_threads = kThreads;
    o.n_ctx = 136;
    auto session = open_session(state, model, o, e.backend);
    if (!session) return;
    Session& s = *session;
    const std::vector<int32_t> prompt = {1, 300, 400, 500, 600, 700, 800, 900};
    s.eval(prompt);
    int32_t next = 1000;
    for (auto _ : state) {
        if (s.n_past() + 1 > s.n_ctx()) {
            state.PauseTiming();
            s.reset();
            s.eval(prompt);
            state.ResumeTiming();
        }
        benchmark::DoNotOptimize(s.eval(std::span<const int32_t>(&next, 1)).data());
    }
    const double bytes = weight_bytes_per_token(*model);
    state.counters["tok/s"] =
        benchmark::Counter(static_cast<double>(state.iterations()), benchmark::Counter::kIsRate);
    state.counters["weight_MB"] = bytes / 1e6;
    state.counters["bandwidth_GBps"] = bandwidth() / 1e9;
    state.counters["roofline_tok/s"] = bandwidth() / bytes;
    state.SetBytesProcessed(static_cast<int64_t>(bytes * static_cast<double>(state.iterations())));
    count_work(state, s, 1);
}

void BM_Prefill128(benchmark::State& state, E2eCase e) {
    auto model = load_model(model_path(*e.model));
    SessionOptions o;
    o.n_threads = kThreads;
    o.n_ctx = 256;
    auto session = open_session(state, model, o, e.backend);
    if (!session) return;
    Session& s = *session;
    std::vector<int32_t> prompt(128);
    for (size_t i = 0; i < prompt.size(); ++i) prompt[i] = static_cast<int32_t>(300 + 7 * i);
    for (auto _ : state) {
        s.reset();
        benchmark::DoNotOptimize(s.eval(prompt).data());
    }
    state.counters["tok/s"] = benchmark::Counter(128.0 * static_cast<double>(state.iterations()),
                                                 benchmark::Counter::kIsRate);
    count_work(state, s, 128);
}

void BM_MemoryReadBandwidth(benchmark::State& state) {
    for (auto _ : state)
        state.counters["bandwidth_GBps"] =
            perf::measure_read_bandwidth(size_t{1} << 30, kThreads, 3) / 1e9;
}

int register_all() {
    benchmark::RegisterBenchmark("MemoryReadBandwidth/1GiB/2threads", BM_MemoryReadBandwidth)
        ->Iterations(1)
        ->Unit(benchmark::kMillisecond)
        ->UseRealTime();
    for (const ModelCase& c : kCases) {
        // Wall-clock time: the work runs on several threads, so the caller's CPU time undercounts.
        benchmark::RegisterBenchmark((std::string("Decode/") + c.name).c_str(), BM_Decode,
                                     E2eCase{&c, "cpu"})
            ->Unit(benchmark::kMillisecond)
            ->MinTime(2.0)
            ->UseRealTime();
        benchmark::RegisterBenchmark((std::string("Prefill128/") + c.name).c_str(), BM_Prefill128,
                                     E2eCase{&c, "cpu"})
            ->Unit(benchmark::kMillisecond)
            ->MinTime(2.0)
            ->UseRealTime();
    }
#ifdef MLLM_HAVE_VULKAN
    // The Vulkan cases: SmolLM2 Q4_0 and Q8_0 (on lavapipe, against the CPU backend on
    // the same cores) and TinyLlama Q4_0 (on a real GPU, against its memory roofline). Skipped
    // with the reason where there is no Vulkan device.
    for (const ModelCase& c : kCases) {
        if (!c.vulkan) continue;
        benchmark::RegisterBenchmark((std::string("Decode/vulkan/") + c.name).c_str(), BM_Decode,
                                     E2eCase{&c, "vulkan"})
            ->Unit(benchmark::kMillisecond)
            ->MinTime(2.0)
            ->UseRealTime();
        benchmark::RegisterBenchmark((std::string("Prefill128/vulkan/") + c.name).c_str(),
                                     BM_Prefill128, E2eCase{&c, "vulkan"})
            ->Unit(benchmark::kMillisecond)
            ->MinTime(1.0)
            ->UseRealTime();
    }
#endif
    return 0;
}
const int kRegistered = register_all();

}  // namespace
}  // namespace mllm
