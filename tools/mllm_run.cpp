// mllm-run: generate text with a GGUF model. Flags follow llama.cpp's llama-cli where they overlap.
#include <CLI/CLI.hpp>
#include <chrono>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <string>

#include "backends/registry.h"
#include "runtime/chat.h"
#include "runtime/generate.h"
#include "runtime/session.h"
#include "tools/cli_common.h"

namespace {

struct Args {
    std::string model;
    std::string prompt;
    std::string prompt_file;
    int n_predict = 128;
    int64_t n_ctx = 0;
    std::string backend = "cpu";
    int threads = -1;
    mllm::SamplerParams sampling;
    bool json = false;
    std::string dump_graph;
    bool chat = false;
    std::string system;
    bool list_devices = false;
    bool self_test = false;
};

// --list-devices: what each backend could run on.
int list_devices(const Args& a) {
    mllm::BackendOptions bo;
    bo.n_threads = a.threads;
    for (const std::string& line : mllm::describe_devices(bo)) std::cout << line << "\n";
    return 0;
}

// --self-test: every kernel of the chosen backend against its reference, now (no cache).
int self_test(const Args& a) {
    mllm::BackendOptions bo;
    bo.n_threads = a.threads;
    auto backend = mllm::create_backend(a.backend, bo);
    const auto lines = backend->self_test();
    std::cout << backend->info().name << " (" << backend->info().device << "): ";
    if (lines.empty()) {
        std::cout << "no self-test (its kernels are checked by the test suite)\n";
        return 0;
    }
    std::cout << lines.size() << " pipeline families\n";
    int failed = 0;
    for (const mllm::SelfTestLine& l : lines) {
        std::cout << "  " << l.name << ": " << (l.ok ? "ok" : "FAILED (" + l.detail + ")") << "\n";
        failed += l.ok ? 0 : 1;
    }
    if (failed > 0) std::cout << failed << " failed: their nodes run on the CPU\n";
    return failed > 0 ? 1 : 0;
}

void print_stats(const mllm::Session& s, double load_ms, const mllm::GenerateResult& r) {
    std::fprintf(stderr,
                 "\n[mllm] backend %s (%s) | load %.1f ms | prompt %lld tokens, %.1f tok/s | "
                 "generated %zu tokens, "
                 "%.1f tok/s | peak RSS %.1f MiB (KV cache %.1f MiB, arena %.1f MiB)\n",
                 s.device().name.c_str(), s.device().device.c_str(), load_ms,
                 static_cast<long long>(r.prompt_tokens), r.prompt_tokens_per_s(), r.tokens.size(),
                 r.decode_tokens_per_s(), static_cast<double>(mllm::peak_rss_bytes()) / (1 << 20),
                 static_cast<double>(s.kv_cache_bytes()) / (1 << 20),
                 static_cast<double>(s.arena_bytes()) / (1 << 20));
    if (s.device_memory_bytes() > 0)
        std::fprintf(stderr, "[mllm] %s device memory %.1f MiB\n", s.device().name.c_str(),
                     static_cast<double>(s.device_memory_bytes()) / (1 << 20));
}

void say_backend_notice(const mllm::Session& s) {
    std::fprintf(stderr, "[mllm] running on %s; passed over: %s\n", s.device().name.c_str(),
                 s.backend_notice().c_str());
}

int run(const Args& a) {
    using namespace mllm;
    const auto t0 = std::chrono::steady_clock::now();
    auto model = load_model(a.model);
    SessionOptions so;
    so.backend = a.backend;
    so.n_threads = a.threads;
    so.n_ctx = a.n_ctx;
    Session session(model, so);
    const std::string notice = session.backend_notice();
    if (!notice.empty()) say_backend_notice(session);
    const double load_ms =
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();

    Sampler sampler(a.sampling);
    if (!a.dump_graph.empty()) {
        std::ofstream out(a.dump_graph);
        // The decode step as generation runs it (ending in an argmax when greedy).
        out << session.dump_graph(1, false, sampler.plain_greedy());
        if (!out) fail("cannot write '", a.dump_graph, "'");
    }
    GenerateOptions go;
    go.n_predict = a.n_predict;
    if (a.chat) return run_chat(session, sampler, go, a.system, std::cin, std::cout);

    std::string prompt = a.prompt_file.empty() ? a.prompt : tools::read_text_file(a.prompt_file);
    if (!is_valid_utf8(prompt)) fail("the prompt is not valid UTF-8");
    const std::vector<int32_t> tokens = model->tokenizer->encode(prompt, true, true);
    const GenerateResult r = generate(session, sampler, tokens, go, [&](std::string_view piece) {
        if (!a.json) {
            std::cout << piece;
            std::cout.flush();
        }
        return true;
    });
    // --backend auto may also give up a device while preparing the first step: say that too.
    if (session.backend_notice() != notice) say_backend_notice(session);
    if (a.json) {
        nlohmann::json j;
        j["text"] = r.text;
        j["tokens"] = r.tokens;
        j["prompt_tokens"] = r.prompt_tokens;
        j["prompt_tokens_per_s"] = r.prompt_tokens_per_s();
        j["generated_tokens"] = r.tokens.size();
        j["decode_tokens_per_s"] = r.decode_tokens_per_s();
        j["load_ms"] = load_ms;
        j["peak_rss_bytes"] = peak_rss_bytes();
        j["backend"] = session.device().name;
        j["device"] = session.device().device;
        j["n_ctx"] = session.n_ctx();
        j["kv_cache_bytes"] = session.kv_cache_bytes();
        j["arena_bytes"] = session.arena_bytes();
        if (session.device_memory_bytes() > 0)
            j["device_memory_bytes"] = session.device_memory_bytes();
        // The decode step generation ran (ending in the argmax when greedy).
        const bool greedy = sampler.plain_greedy();
        if (const Session::StepWork w = session.step_work(1, greedy); w.dispatches > 0) {
            j["dispatches_per_token"] = w.dispatches;
            j["submits_per_token"] = w.submits;
        }
        if (const int64_t n = session.fallback_nodes(greedy); n > 0) j["cpu_fallback_nodes"] = n;
        j["seed"] = sampler.seed();
        std::cout << j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
    } else {
        std::cout << "\n";
        print_stats(session, load_ms, r);
    }
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    Args a;
    CLI::App app{"mllm-run: generate text with a GGUF model"};
    app.add_option("-m,--model", a.model, "GGUF model file");
    auto* p = app.add_option("-p,--prompt", a.prompt, "prompt text (\"\" starts from BOS)");
    app.add_option("-f,--file", a.prompt_file, "read the prompt from a file")->excludes(p);
    app.add_option("-n,--n-predict", a.n_predict,
                   "tokens to generate (-1: until the context is full)");
    app.add_option("-c,--ctx-size", a.n_ctx,
                   "context size in tokens (0: the model's, at most 4096)");
    app.add_option("--backend", a.backend, "cpu | vulkan | auto");
    app.add_option("-t,--threads", a.threads, "CPU threads (default: one per core)");
    app.add_option("--temp", a.sampling.temperature, "temperature (0: greedy)");
    app.add_option("--top-k", a.sampling.top_k, "top-k (0: off)");
    app.add_option("--top-p", a.sampling.top_p, "top-p (1: off)");
    app.add_option("--min-p", a.sampling.min_p, "min-p (0: off)");
    app.add_option("--repeat-penalty", a.sampling.repeat_penalty, "repetition penalty (1: off)");
    app.add_option("--repeat-last-n", a.sampling.repeat_last_n,
                   "tokens the repetition penalty looks back over");
    app.add_option("-s,--seed", a.sampling.seed, "random seed (same seed, same text)");
    app.add_flag("--json", a.json, "print one JSON object with the text, token ids and timings");
    app.add_option("--dump-graph", a.dump_graph, "write the planned decode graph as Graphviz DOT");
    app.add_flag("-i,--chat", a.chat, "interactive chat using the model's chat template");
    app.add_option("--system", a.system, "system message for --chat");
    app.add_flag("--list-devices", a.list_devices, "list the devices each backend can use");
    app.add_flag("--self-test", a.self_test,
                 "check every kernel of --backend on a small problem against its reference");
    CLI11_PARSE(app, argc, argv);
    return mllm::tools::run_main("mllm-run", [&] {
        if (a.threads == 0 || a.threads < -1) mllm::fail("--threads must be at least 1");
        if (a.threads == -1) a.threads = 0;
        if (a.list_devices) return list_devices(a);
        if (a.self_test) return self_test(a);
        if (a.model.empty()) mllm::fail("--model is required (-m FILE)");
        return run(a);
    });
}
