#pragma once
// The generation loop: prefill the prompt in one batch, then sample and decode token by token,
// streaming text that never splits a UTF-8 character.
#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "runtime/sampler.h"
#include "runtime/session.h"

namespace mllm {

struct GenerateOptions {
    int n_predict = 128;      // tokens to generate at most (< 0: until the context is full)
    bool stop_at_eog = true;  // end at the model's end-of-generation tokens
};

struct GenerateResult {
    std::string text;
    std::vector<int32_t> tokens;  // generated ids (an end-of-generation token is not included)
    int64_t prompt_tokens = 0;
    double prompt_ms = 0;
    double decode_ms = 0;      // from the first sampled token to the last
    int64_t decode_steps = 0;  // single-token evals (the first token comes from the prefill)
    bool stopped_at_eog = false;

    double prompt_tokens_per_s() const {
        return prompt_ms > 0 ? prompt_tokens * 1000.0 / prompt_ms : 0;
    }
    double decode_tokens_per_s() const {
        return decode_ms > 0 ? decode_steps * 1000.0 / decode_ms : 0;
    }
};

// Called with each complete piece of text; returning false stops generation.
using TextSink = std::function<bool(std::string_view)>;

// Continues the session's context with `prompt` (which may be empty if the session already holds
// tokens) and generates. Throws mllm::Error if the prompt does not fit the context.
GenerateResult generate(Session& session, Sampler& sampler, std::span<const int32_t> prompt,
                        const GenerateOptions& options, const TextSink& sink = {});

// Peak resident set size of this process, in bytes.
int64_t peak_rss_bytes();

}  // namespace mllm
