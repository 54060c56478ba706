#include "runtime/generate.h"

#include <sys/resource.h>

#include <chrono>

#include "core/error.h"

namespace mllm {
namespace {

double ms_since(std::chrono::steady_clock::time_point start) {
    return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start)
        .count();
}

}  // namespace

GenerateResult generate(Session& session, Sampler& sampler, std::span<const int32_t> prompt,
                        const GenerateOptions& options, const TextSink& sink) {
    const Tokenizer& tok = *session.model().tokenizer;
    const int32_t n_vocab = session.model().config.n_vocab;
    GenerateResult result;
    result.prompt_tokens = static_cast<int64_t>(prompt.size());
    if (prompt.empty()) fail("the prompt is empty and the model has no BOS token to start from");
    if (session.n_past() + static_cast<int64_t>(prompt.size()) > session.n_ctx())
        fail("the prompt has ", prompt.size(), " tokens, more than the context of ",
             session.n_ctx(), " holds (raise -c or shorten the prompt)");

    for (int32_t t : prompt) sampler.accept(t);
    // Greedy decoding picks the token on the device and reads back only its id.
    const bool greedy = sampler.plain_greedy();
    std::span<const float> logits;
    int32_t picked = 0;
    auto step = [&](std::span<const int32_t> tokens) {
        if (greedy) {
            picked = session.eval_greedy(tokens);
        } else {
            logits = session.eval(tokens);
        }
    };
    auto start = std::chrono::steady_clock::now();
    step(prompt);
    result.prompt_ms = ms_since(start);

    Utf8StreamBuffer utf8;
    const int64_t budget = options.n_predict < 0 ? session.n_ctx() : options.n_predict;
    start = std::chrono::steady_clock::now();
    for (int64_t i = 0; i < budget; ++i) {
        const int32_t next = greedy ? picked : sampler.sample(logits.data(), n_vocab);
        sampler.accept(next);
        if (options.stop_at_eog && tok.is_end_of_generation(next)) {
            result.stopped_at_eog = true;
            break;
        }
        result.tokens.push_back(next);
        const std::string piece = utf8.push(tok.token_to_piece(next));
        result.text += piece;
        if (sink && !piece.empty() && !sink(piece)) break;
        if (i + 1 == budget || session.n_past() >= session.n_ctx()) break;
        step(std::span<const int32_t>(&next, 1));
        ++result.decode_steps;
    }
    result.decode_ms = ms_since(start);
    const std::string rest = utf8.flush();
    result.text += rest;
    if (sink && !rest.empty()) sink(rest);
    return result;
}

int64_t peak_rss_bytes() {
    struct rusage usage {};
    getrusage(RUSAGE_SELF, &usage);
    return static_cast<int64_t>(usage.ru_maxrss) * 1024;
}

}  // namespace mllm
