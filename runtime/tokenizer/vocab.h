#pragma once
// What both tokenizer kinds share: the token table with per-token attributes, the special ids, and
// the splitting of text around special tokens that happens before any subword algorithm runs.
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace mllm {
class GgufFile;
class Tokenizer;
}  // namespace mllm

namespace mllm::tokenizer_detail {

// Token attributes, as llama.cpp derives them from tokenizer.ggml.token_type.
enum TokenAttr : uint16_t {
    kAttrUndefined = 0,
    kAttrUnknown = 1 << 0,
    kAttrUnused = 1 << 1,
    kAttrNormal = 1 << 2,
    kAttrControl = 1 << 3,
    kAttrUserDefined = 1 << 4,
    kAttrByte = 1 << 5,
    kAttrLstrip = 1 << 6,  // swallow whitespace to the left when split out of text
    kAttrRstrip = 1 << 7,  // ... and to the right
};

enum class VocabKind { Spm, Bpe };

// A piece of the input after special tokens were split out: either a token, or a span of text.
struct Fragment {
    int32_t token = -1;  // >= 0: a special token
    size_t offset = 0;   // text span otherwise
    size_t length = 0;
};

struct Vocab {
    VocabKind kind = VocabKind::Spm;
    std::vector<std::string> text;
    std::vector<float> score;
    std::vector<uint16_t> attr;
    std::unordered_map<std::string_view, int32_t> ids;  // views into `text`

    int32_t bos = -1, eos = -1, unk = -1;
    bool add_bos = false, add_eos = false;
    bool add_space_prefix = false;  // SentencePiece: text starts as if after a space
    std::vector<int32_t> eog;       // sorted
    std::vector<int32_t> special;   // split-out candidates, longest text first
    std::optional<std::string> chat_template;

    // Loads tokens, scores, types and the special ids; `kind` must be set first. The defaults for
    // add_bos/add_space_prefix are the caller's (they depend on the pre-tokenizer too).
    void load(const GgufFile& f);

    int32_t n_tokens() const { return static_cast<int32_t>(text.size()); }
    bool in_range(int32_t id) const { return id >= 0 && id < n_tokens(); }
    int32_t find(std::string_view s) const {
        const auto it = ids.find(s);
        return it == ids.end() ? -1 : it->second;
    }
    bool has(int32_t id, uint16_t a) const { return (attr[static_cast<size_t>(id)] & a) != 0; }

    // Splits text around special tokens, longest first, as llama.cpp's tokenizer_st_partition:
    // user-defined tokens always, control and unknown ones only with parse_special.
    std::vector<Fragment> partition(std::string_view s, bool parse_special) const;

    // The byte a "<0xAB>" token stands for, or -1 if the text is not of that form.
    static int byte_of(std::string_view t) {
        const auto hex = [](char c) {
            if (c >= '0' && c <= '9') return c - '0';
            if (c >= 'A' && c <= 'F') return c - 'A' + 10;
            if (c >= 'a' && c <= 'f') return c - 'a' + 10;
            return -1;
        };
        if (t.size() != 6 || t.substr(0, 3) != "<0x" || t[5] != '>') return -1;
        const int hi = hex(t[3]), lo = hex(t[4]);
        return hi < 0 || lo < 0 ? -1 : hi * 16 + lo;
    }

    // Shared part of token_to_piece: for tokens whose piece is their raw text or nothing, sets
    // `out` and returns true. Leaves normal and byte tokens to the caller.
    bool special_piece(int32_t id, bool render_special, std::string& out) const;
};

// The two tokenizer kinds, by tokenizer.ggml.model: "llama" and "gpt2".
std::unique_ptr<Tokenizer> make_spm_tokenizer(const GgufFile& f);
std::unique_ptr<Tokenizer> make_bpe_tokenizer(const GgufFile& f);

}  // namespace mllm::tokenizer_detail
