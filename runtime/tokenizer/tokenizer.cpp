#include "runtime/tokenizer/tokenizer.h"

#include <algorithm>

#include "core/error.h"
#include "core/gguf/gguf_reader.h"
#include "runtime/tokenizer/vocab.h"

namespace mllm {

using tokenizer_detail::Vocab;

std::unique_ptr<Tokenizer> Tokenizer::from_gguf(const GgufFile& f) {
    const std::optional<std::string_view> model = f.get_string("tokenizer.ggml.model");
    if (!model) fail(f.path(), ": no tokenizer in this file (tokenizer.ggml.model is missing)");
    if (*model == "llama") return tokenizer_detail::make_spm_tokenizer(f);
    if (*model == "gpt2") return tokenizer_detail::make_bpe_tokenizer(f);
    fail(f.path(), ": unsupported tokenizer model '", *model,
         "' (tokenizer.ggml.model; supported: llama, gpt2)");
}

Tokenizer::Tokenizer(std::unique_ptr<Vocab> vocab) : vocab_(std::move(vocab)) {}
Tokenizer::~Tokenizer() = default;

std::string Tokenizer::decode(const std::vector<int32_t>& ids, bool render_special) const {
    std::string out;
    bool strip_space = vocab_->add_space_prefix;
    for (const int32_t id : ids) {
        std::string piece = token_to_piece(id, render_special);
        // The prefix space belongs to the first token that spells text, not to BOS or the like.
        if (strip_space && vocab_->in_range(id) &&
            !vocab_->has(id, tokenizer_detail::kAttrControl | tokenizer_detail::kAttrUnknown)) {
            if (!piece.empty() && piece[0] == ' ') piece.erase(0, 1);
            strip_space = false;
        }
        out += piece;
    }
    return out;
}

int32_t Tokenizer::n_vocab() const {
    return vocab_->n_tokens();
}
int32_t Tokenizer::bos_id() const {
    return vocab_->bos;
}
int32_t Tokenizer::eos_id() const {
    return vocab_->eos;
}
bool Tokenizer::adds_bos() const {
    return vocab_->add_bos;
}
bool Tokenizer::adds_eos() const {
    return vocab_->add_eos;
}
std::optional<std::string> Tokenizer::chat_template() const {
    return vocab_->chat_template;
}

bool Tokenizer::is_end_of_generation(int32_t id) const {
    return std::binary_search(vocab_->eog.begin(), vocab_->eog.end(), id);
}

const std::string& Tokenizer::token_text(int32_t id) const {
    if (!vocab_->in_range(id))
        fail("token id ", id, " is outside the vocab of ", vocab_->n_tokens(), " tokens");
    return vocab_->text[static_cast<size_t>(id)];
}

int32_t Tokenizer::find_token(std::string_view text) const {
    return vocab_->find(text);
}

}  // namespace mllm
