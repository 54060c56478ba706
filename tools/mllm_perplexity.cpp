// mllm-perplexity: perplexity of a model on a text, by llama.cpp's llama-perplexity convention so
// numbers compare across runtimes: chunks of N tokens, the first token of each chunk replaced by
// BOS when the model adds BOS, negative log-likelihood averaged over the second half of each chunk.
#include <CLI/CLI.hpp>
#include <cmath>
#include <iostream>
#include <nlohmann/json.hpp>

#include "runtime/perplexity.h"
#include "runtime/session.h"
#include "tools/cli_common.h"

int main(int argc, char** argv) {
    std::string model_path, text_file, backend = "cpu";
    int64_t n_ctx = 512;
    int chunks = -1;
    int threads = -1;
    bool json = false;
    CLI::App app{"mllm-perplexity: perplexity of a GGUF model on a text file"};
    app.add_option("-m,--model", model_path, "GGUF model file")->required();
    app.add_option("-f,--file", text_file, "text file")->required();
    app.add_option("-c,--ctx-size", n_ctx, "tokens per chunk");
    app.add_option("--chunks", chunks, "chunks to score (-1: all)");
    app.add_option("--backend", backend, "cpu | vulkan | auto");
    app.add_option("-t,--threads", threads, "CPU threads (default: one per core)");
    app.add_flag("--json", json, "print {\"perplexity\": ..., \"tokens\": ...}");
    CLI11_PARSE(app, argc, argv);
    return mllm::tools::run_main("mllm-perplexity", [&] {
        if (threads == 0 || threads < -1) mllm::fail("--threads must be at least 1");
        if (n_ctx < 2) mllm::fail("-c must be at least 2");
        auto model = mllm::load_model(model_path);
        mllm::SessionOptions so;
        so.backend = backend;
        so.n_threads = threads < 0 ? 0 : threads;
        so.n_ctx = n_ctx;
        so.n_batch = n_ctx;
        mllm::Session session(model, so);
        const std::string text = mllm::tools::read_text_file(text_file);
        const mllm::PerplexityResult r =
            mllm::perplexity(session, text, chunks, [&](int chunk, double running) {
                if (!json) std::cerr << "[" << chunk << "] " << running << "\n";
            });
        if (json) {
            std::cout << nlohmann::json{{"perplexity", r.perplexity},
                                        {"tokens", r.scored_tokens},
                                        {"chunks", r.chunks},
                                        {"backend", session.device().name}}
                             .dump()
                      << "\n";
        } else {
            std::cout << "perplexity: " << r.perplexity << " over " << r.scored_tokens
                      << " tokens in " << r.chunks << " chunks of " << n_ctx << "\n";
        }
        return 0;
    });
}
