// SentencePiece-style BPE ("llama" vocabs: LLaMA 1/2, TinyLlama, Phi-3, llama2.c models). Spaces
// are spelled "▁", the text is split into UTF-8 characters, and the adjacent pair that forms the
// highest-scoring token is merged until none does, as llama.cpp's llm_tokenizer_spm_session.
// Characters no token covers fall back to <0xAB> byte tokens.
#include <array>
#include <queue>

#include "core/gguf/gguf_reader.h"
#include "runtime/tokenizer/tokenizer.h"
#include "runtime/tokenizer/unicode.h"
#include "runtime/tokenizer/vocab.h"

namespace mllm::tokenizer_detail {

namespace {

constexpr std::string_view kSpace = "\xE2\x96\x81";  // U+2581, SentencePiece's visible space

class SpmTokenizer final : public Tokenizer {
  public:
    explicit SpmTokenizer(std::unique_ptr<Vocab> v) : Tokenizer(std::move(v)) {
        const Vocab& voc = vocab();
        static constexpr char kHex[] = "0123456789ABCDEF";
        for (int b = 0; b < 256; ++b) {
            const char name[6] = {'<', '0', 'x', kHex[b >> 4], kHex[b & 15], '>'};
            int32_t id = voc.find(std::string_view(name, 6));
            if (id < 0) {
                const char c = static_cast<char>(b);
                id = voc.find(std::string_view(&c, 1));
            }
            byte_token_[static_cast<size_t>(b)] = id >= 0 ? id : voc.unk;
        }
    }

    std::vector<int32_t> encode(std::string_view text, bool add_special,
                                bool parse_special) const override {
        const Vocab& v = vocab();
        std::vector<int32_t> out;
        if (add_special && v.add_bos) out.push_back(v.bos);
        // Text at the start, or right after a special token, gets the space prefix.
        bool after_special = true;
        std::string escaped;
        for (const Fragment& frag : v.partition(text, parse_special)) {
            if (frag.token >= 0) {
                out.push_back(frag.token);
                after_special = true;
                continue;
            }
            escaped.clear();
            if (v.add_space_prefix && after_special) escaped += kSpace;
            for (const char c : text.substr(frag.offset, frag.length)) {
                if (c == ' ') {
                    escaped += kSpace;
                } else {
                    escaped += c;
                }
            }
            encode_text(escaped, out);
            after_special = false;
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
            if (const int b = Vocab::byte_of(t); b >= 0) out += static_cast<char>(b);
            return out;
        }
        for (size_t i = 0; i < t.size();) {
            if (t.compare(i, kSpace.size(), kSpace) == 0) {
                out += ' ';
                i += kSpace.size();
            } else {
                out += t[i++];
            }
        }
        return out;
    }

  private:
    struct Symbol {
        int32_t prev, next;
        uint32_t start, len;
    };
    struct Bigram {
        int32_t left, right;
        float score;
        uint32_t len;  // of both symbols together when queued; a different sum means stale
    };
    struct LowerFirst {  // highest score on top, then leftmost
        bool operator()(const Bigram& a, const Bigram& b) const {
            return a.score < b.score || (a.score == b.score && a.left > b.left);
        }
    };

    void encode_text(std::string_view s, std::vector<int32_t>& out) const {
        const Vocab& v = vocab();
        std::vector<Symbol> syms;
        for (uint32_t pos = 0; pos < s.size();) {
            const auto len = static_cast<uint32_t>(std::min<size_t>(
                unicode::sequence_length(static_cast<uint8_t>(s[pos])), s.size() - pos));
            const auto i = static_cast<int32_t>(syms.size());
            syms.push_back({i - 1, pos + len == s.size() ? -1 : i + 1, pos, len});
            pos += len;
        }

        std::priority_queue<Bigram, std::vector<Bigram>, LowerFirst> queue;
        const auto try_pair = [&](int32_t left, int32_t right) {
            if (left < 0 || right < 0) return;
            const Symbol& a = syms[static_cast<size_t>(left)];
            const uint32_t len = a.len + syms[static_cast<size_t>(right)].len;
            const int32_t id = v.find(s.substr(a.start, len));
            if (id >= 0) queue.push({left, right, v.score[static_cast<size_t>(id)], len});
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
            const Symbol& sym = syms[static_cast<size_t>(i)];
            const std::string_view piece = s.substr(sym.start, sym.len);
            if (const int32_t id = v.find(piece); id >= 0) {
                out.push_back(id);
                continue;
            }
            for (const char c : piece) {
                const int32_t id = byte_token_[static_cast<uint8_t>(c)];
                if (id >= 0) out.push_back(id);
            }
        }
    }

    std::array<int32_t, 256> byte_token_{};
};

}  // namespace

std::unique_ptr<Tokenizer> make_spm_tokenizer(const GgufFile& f) {
    auto v = std::make_unique<Vocab>();
    v->kind = VocabKind::Spm;
    v->add_bos = true;
    v->add_space_prefix = f.get_bool("tokenizer.ggml.add_space_prefix").value_or(true);
    v->load(f);
    return std::make_unique<SpmTokenizer>(std::move(v));
}

}  // namespace mllm::tokenizer_detail
