#pragma once
// Perplexity by llama.cpp's convention (see tools/mllm_perplexity.cpp).
#include <functional>
#include <string>

#include "runtime/session.h"

namespace mllm {

struct PerplexityResult {
    double perplexity = 0;
    int64_t scored_tokens = 0;
    int chunks = 0;
};

// Splits the tokenized text into chunks of session.n_ctx() tokens (at most max_chunks; < 0: all)
// and scores each. on_chunk(chunk_index, running_perplexity) follows progress.
PerplexityResult perplexity(Session& session, const std::string& text, int max_chunks,
                            const std::function<void(int, double)>& on_chunk = {});

}  // namespace mllm
