#include "runtime/perplexity.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"

namespace mllm {

PerplexityResult perplexity(Session& session, const std::string& text, int max_chunks,
                            const std::function<void(int, double)>& on_chunk) {
    const Tokenizer& tok = *session.model().tokenizer;
    if (!is_valid_utf8(text)) fail("the text is not valid UTF-8");
    const std::vector<int32_t> tokens = tok.encode(text, true, false);
    const int64_t n_ctx = session.n_ctx();
    int64_t n_chunks = static_cast<int64_t>(tokens.size()) / n_ctx;
    if (max_chunks >= 0) n_chunks = std::min<int64_t>(n_chunks, max_chunks);
    if (n_chunks == 0)
        fail("the text has ", tokens.size(), " tokens, fewer than one chunk of ", n_ctx,
             " (lower -c)");

    const int64_t n_vocab = session.model().config.n_vocab;
    const int64_t first = n_ctx / 2;  // score only tokens that see at least half a chunk of context
    double nll = 0;
    int64_t count = 0;
    std::vector<int32_t> chunk(static_cast<size_t>(n_ctx));
    for (int64_t c = 0; c < n_chunks; ++c) {
        std::copy_n(tokens.begin() + c * n_ctx, n_ctx, chunk.begin());
        if (tok.adds_bos()) chunk[0] = tok.bos_id();
        session.reset();
        const std::span<const float> logits = session.eval(chunk, true);
        for (int64_t j = first; j < n_ctx - 1; ++j) {
            const float* row = logits.data() + j * n_vocab;
            const float max = *std::max_element(row, row + n_vocab);
            double sum = 0;
            for (int64_t v = 0; v < n_vocab; ++v)
                sum += std::exp(static_cast<double>(row[v] - max));
            const int32_t target = tokens[static_cast<size_t>(c * n_ctx + j + 1)];
            nll += -(static_cast<double>(row[target] - max) - std::log(sum));
            ++count;
        }
        if (on_chunk) on_chunk(static_cast<int>(c), std::exp(nll / static_cast<double>(count)));
    }
    return PerplexityResult{std::exp(nll / static_cast<double>(count)), count,
                            static_cast<int>(n_chunks)};
}

}  // namespace mllm
