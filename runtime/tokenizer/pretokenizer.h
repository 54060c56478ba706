#pragma once
// Byte-level BPE pre-tokenizers: split text into words before merges run. Each is the regex (or
// chain of regexes) that llama.cpp selects by tokenizer.ggml.pre, written as a small scanner over
// code points. A chain applies each stage to every piece the previous stage produced; text a stage
// does not match stays a piece of its own, as with llama.cpp's regex splitting.
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace mllm::tokenizer_detail {

enum class PreTokenizer {
    // No tokenizer.ggml.pre: [\p{P}$+<=>^~|]+ , then GPT-2's regex, then \p{N}+, then [0-9]{3}.
    Default,
    // 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)
    Gpt2,
    // \p{N} (every digit alone), then GPT-2's regex. SmolLM, StarCoder.
    DigitsThenGpt2,
    // (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|
    // \s*[\r\n]+|\s+(?!\S)|\s+
    Llama3,
    // Llama 3's regex with \p{N} (single digits) instead of \p{N}{1,3}.
    Qwen2,
};

struct PreTokenizerInfo {
    PreTokenizer kind = PreTokenizer::Default;
    bool ignore_merges = false;  // a word that is itself a token skips the merges (llama3)
    bool add_bos = false;        // default for tokenizer.ggml.add_bos_token
};

// By tokenizer.ggml.pre (an empty name is "default"); nullopt for names we do not implement.
std::optional<PreTokenizerInfo> pre_tokenizer_by_name(std::string_view name);

// Splits text into words, each re-encoded as UTF-8 from the code points (so ill-formed bytes come
// out as U+FFFD, as in llama.cpp).
std::vector<std::string> pre_tokenize(PreTokenizer kind, std::string_view text);

}  // namespace mllm::tokenizer_detail
