// Byte-level BPE ("gpt2" vocabs: GPT-2, Llama 3, Qwen2, SmolLM ...). Text is split into words by
// the pre-tokenizer, each word's bytes are spelled with GPT-2's byte-to-unicode alphabet (so every
// byte is a printable vocab character), and ranked merges join neighbouring symbols, lowest rank
// first, as llama.cpp's llm_tokenizer_bpe_session.
#include <array>
#include <queue>
#include <unordered_map>

#include "core/error.h"
#include "core/gguf/gguf_reader.h"
#include "runtime/tokenizer/pretokenizer.h"
#include "runtime/tokenizer/tokenizer.h"
#include "runtime/tokenizer/unicode.h"
#include "runtime/tokenizer/vocab.h"

namespace mllm::tokenizer_detail {

namespace {

// GPT-2's bytes_to_unicode: printable Latin-1 bytes stand for themselves, the other 68 bytes are
// given the code points from U+0100 up, in byte order.
struct ByteAlphabet {
    std::array<std::string, 256> encode;           // byte -> UTF-8 of its stand-in
    std::unordered_map<uint32_t, uint8_t> decode;  // stand-in code point -> byte

    ByteAlphabet() {
        uint32_t next = 256;
        for (uint32_t b = 0; b < 256; ++b) {
            const bool printable =
                (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE;
            const uint32_t cp = printable ? b : next++;
            unicode::append_utf8(encode[b], cp);
            decode[cp] = static_cast<uint8_t>(b);
        }
    }
};

const ByteAlphabet& byte_alphabet() {
    static const ByteAlphabet alphabet;
    return alphabet;
}

class BpeTokenizer final : public Tokenizer {
  public:
    BpeTokenizer(std::unique_ptr<Vocab> v, PreTokenizerInfo pre, std::vector<std::string> merges)
        : Tokenizer(std::move(v)), pre_(pre), merges_(std::move(merges)) {
        ranks_.reserve(merges_.size());
        for (size_t i = 0; i < merges_.size(); ++i) {
            // The first merge wins when a file lists one twice.
            ranks_.emplace(merges_[i], static_cast<int32_t>(i));
        }
    }

    std::vector<int32_t> encode(std::string_view text, bool add_special,
                                bool parse_special) const override {
        const Vocab& v = vocab();
        std::vector<int32_t> out;
        if (add_special && v.add_bos) out.push_back(v.bos);
        for (const Fragment& frag : v.partition(text, parse_special)) {
            if (frag.token >= 0) {
                out.push_back(frag.token);
                continue;
            }
            for (const std::string& word :
                 pre_tokenize(pre_.kind, text.substr(frag.offset, frag.length)))
                encode_word(word, out);
        }
        if (add_special && v.add_eos) out.push_back(v.eos);
        return out;
    }

    std::string token_to_piece(int32_t id, bool render_special) const override {
        const Vocab& v = vocab();
        if (!v.in_range(id)) return {};
        std::string out;
        if (v.special_piece(id, render_special, out)) return out;
        const std::string& t = v.text[static_cast<size_t>(id)];
        if (v.has(id, kAttrByte)) {
            // <0xAB> byte tokens exist in a few BPE vocabs too.
            if (const int b = Vocab::byte_of(t); b >= 0) out += static_cast<char>(b);
            return out;
        }
        // Undo the byte alphabet. A character outside it (a malformed vocab) is kept as is.
        const ByteAlphabet& alphabet = byte_alphabet();
        for (const uint32_t cp : unicode::decode(t)) {
            const auto it = alphabet.decode.find(cp);
            if (it != alphabet.decode.end()) {
                out += static_cast<char>(it->second);
            } else {
                unicode::append_utf8(out, cp);
            }
        }
        return out;
    }

  private:
    struct Symbol {
        int32_t prev, next;
        uint32_t start, len;  // bytes of the encoded word
    };
    struct Bigram {
        int32_t left, right;
        int32_t rank;
        uint32_t len;  // of both symbols together when queued; a different sum means stale
    };
    struct LaterFirst {  // lowest rank on top, then leftmost
        bool operator()(const Bigram& a, const Bigram& b) const {
            return a.rank > b.rank || (a.rank == b.rank && a.left > b.left);
        }
    };

    void encode_word(const std::string& raw_word, std::vector<int32_t>& out) const {
        const Vocab& v = vocab();
        std::string word;
        for (const char c : raw_word) word += byte_alphabet().encode[static_cast<uint8_t>(c)];

        if (pre_.ignore_merges) {
            if (const int32_t id = v.find(word); id >= 0) {
                out.push_back(id);
                return;
            }
        }

        std::vector<Symbol> syms;
        for (uint32_t pos = 0; pos < word.size();) {
            const auto len = static_cast<uint32_t>(std::min<size_t>(
                unicode::sequence_length(static_cast<uint8_t>(word[pos])), word.size() - pos));
            const auto i = static_cast<int32_t>(syms.size());
            syms.push_back({i - 1, pos + len == word.size() ? -1 : i + 1, pos, len});
            pos += len;
        }

        std::priority_queue<Bigram, std::vector<Bigram>, LaterFirst> queue;
        std::string key;
        const auto try_pair = [&](int32_t left, int32_t right) {
            if (left < 0 || right < 0) return;
            const Symbol& a = syms[static_cast<size_t>(left)];
            const Symbol& b = syms[static_cast<size_t>(right)];
            key.assign(word, a.start, a.len);
            key += ' ';
            key.append(word, b.start, b.len);
            const auto it = ranks_.find(key);
            if (it != ranks_.end()) queue.push({left, right, it->second, a.len + b.len});
        };
        for (int32_t i = 1; i < static_cast<int32_t>(syms.size()); ++i) try_pair(i - 1, i);

        while (!queue.empty()) {
            const Bigram bg = queue.top();
            queue.pop();
            Symbol& a = syms[static_cast<size_t>(bg.left)];
            Symbol& b = syms[static_cast<size_t>(bg.right)];
            if (a.len == 0 || b.len == 0 || a.len + b.len != bg.len) continue;
            a.len += b.len;
            b.len = 0;
            a.next = b.next;
            if (b.next >= 0) syms[static_cast<size_t>(b.next)].prev = bg.left;
            try_pair(a.prev, bg.left);
            try_pair(bg.left, a.next);
        }

        for (int32_t i = syms.empty() ? -1 : 0; i >= 0; i = syms[static_cast<size_t>(i)].next) {
            const Symbol& s = syms[static_cast<size_t>(i)];
            const std::string_view piece(word.data() + s.start, s.len);
            if (const int32_t id = v.find(piece); id >= 0) {
                out.push_back(id);
                continue;
            }
            // Not in the vocab (only with an incomplete one): fall back to single-byte tokens,
            // skipping bytes that have none, as llama.cpp does.
            for (const char c : piece) {
                if (const int32_t id = v.find(std::string_view(&c, 1)); id >= 0) out.push_back(id);
            }
        }
    }

    PreTokenizerInfo pre_;
    std::vector<std::string> merges_;
    std::unordered_map<std::string_view, int32_t>
        ranks_;  // "left right" -> rank, views into merges_
};

}  // namespace

std::unique_ptr<Tokenizer> make_bpe_tokenizer(const GgufFile& f) {
    const std::string pre_name(f.get_string("tokenizer.ggml.pre").value_or(""));
    const std::optional<PreTokenizerInfo> pre = pre_tokenizer_by_name(pre_name);
    if (!pre)
        fail(f.path(), ": unsupported BPE pre-tokenizer '", pre_name, "' (tokenizer.ggml.pre)");

    const std::vector<std::string_view> merge_views = f.get_string_array("tokenizer.ggml.merges");
    if (merge_views.empty()) fail(f.path(), ": BPE vocab without tokenizer.ggml.merges");
    std::vector<std::string> merges(merge_views.begin(), merge_views.end());

    auto v = std::make_unique<Vocab>();
    v->kind = VocabKind::Bpe;
    v->add_bos = pre->add_bos;
    v->load(f);
    return std::make_unique<BpeTokenizer>(std::move(v), *pre, std::move(merges));
}

}  // namespace mllm::tokenizer_detail
