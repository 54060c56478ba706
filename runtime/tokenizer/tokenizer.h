#pragma once
// Tokenizers built from a GGUF file's tokenizer.* metadata, token-for-token compatible with
// llama.cpp: SentencePiece-style ("llama") and byte-level BPE ("gpt2") vocabularies.
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace mllm {

class GgufFile;

namespace tokenizer_detail {
struct Vocab;
}

class Tokenizer {
  public:
    // Reads tokenizer.ggml.* from f (f may be closed afterwards: everything is copied). Throws
    // mllm::Error for a missing or unsupported tokenizer model or pre-tokenizer, a malformed vocab
    // (duplicate tokens, short score/type arrays), or special token ids outside the vocab.
    static std::unique_ptr<Tokenizer> from_gguf(const GgufFile& f);
    virtual ~Tokenizer();

    // add_special: BOS first (and EOS last) where the vocab says so: tokenizer.ggml.add_bos_token /
    // add_eos_token, defaulting as llama.cpp does (SentencePiece adds BOS; BPE only for the
    // llama3 pre-tokenizer). parse_special: text spelling a control token ("<|im_start|>") becomes
    // that token; user-defined tokens are always split out, as llama.cpp and HF tokenizers do.
    // Invalid UTF-8 is not rejected here (check with is_valid_utf8 first): SentencePiece encodes
    // its bytes with byte tokens, BPE sees each bad byte as U+FFFD.
    virtual std::vector<int32_t> encode(std::string_view text, bool add_special,
                                        bool parse_special) const = 0;

    // The bytes one token contributes to the output: SentencePiece "▁" becomes a space and <0xAB>
    // the byte 0xAB; byte-level BPE undoes the GPT-2 byte-to-unicode mapping. A piece may be part
    // of a UTF-8 character (feed pieces through Utf8StreamBuffer). Control tokens (BOS, EOS,
    // <|im_end|> ...) give "" unless render_special, then their text. Ids outside [0, n_vocab())
    // give "": a model's output layer may have more rows than the vocab has tokens (Qwen2: 151936
    // rows, 151669 tokens), and those ids spell nothing.
    virtual std::string token_to_piece(int32_t id, bool render_special = false) const = 0;

    // The pieces of ids joined; where the vocab prefixes text with a space (SentencePiece's
    // add_space_prefix) the space before the first text token is dropped, so that
    // decode(encode(x, false, false)) == x for valid UTF-8. Unlike llama.cpp's detokenizer it does
    // not "clean up tokenization spaces" (" ," -> ","): that would break the round trip.
    std::string decode(const std::vector<int32_t>& ids, bool render_special = false) const;

    int32_t n_vocab() const;
    int32_t bos_id() const;  // -1 if none
    int32_t eos_id() const;  // -1 if none
    // EOS, EOT, EOM and the tokens llama.cpp ends generation on by their text (<|im_end|>,
    // <|endoftext|>, <|eot_id|>, <end_of_turn>, <|end|> ...). False for ids outside the vocab.
    bool is_end_of_generation(int32_t id) const;
    bool adds_bos() const;
    bool adds_eos() const;
    std::optional<std::string> chat_template() const;
    // The raw vocab text of a token (e.g. "Ġthe", "▁the", "<0x0A>"); throws for ids out of range.
    const std::string& token_text(int32_t id) const;
    // The id of the token whose vocab text is exactly `text`, or -1.
    int32_t find_token(std::string_view text) const;

  protected:
    explicit Tokenizer(std::unique_ptr<tokenizer_detail::Vocab> vocab);
    const tokenizer_detail::Vocab& vocab() const { return *vocab_; }

  private:
    std::unique_ptr<tokenizer_detail::Vocab> vocab_;
};

// Streaming detokenizer: push pieces as they are generated and get back only complete UTF-8
// characters; a character split across pieces (byte tokens) is held until its last byte arrives.
// The output is always valid UTF-8: bytes that cannot be part of a well-formed character become
// U+FFFD. flush() at the end returns what is left (U+FFFD for an unfinished character) and resets.
class Utf8StreamBuffer {
  public:
    std::string push(std::string_view piece);
    std::string flush();

  private:
    std::string pending_;  // the start of an unfinished character, at most 3 bytes
};

// Whether s is well-formed UTF-8 (no overlong forms, surrogates, or code points past U+10FFFF).
bool is_valid_utf8(std::string_view s);
// The byte offset of the first ill-formed sequence in s, or s.size() if there is none.
size_t first_invalid_utf8(std::string_view s);

}  // namespace mllm
