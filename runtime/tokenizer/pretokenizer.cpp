#include "runtime/tokenizer/pretokenizer.h"

#include <array>

#include "runtime/tokenizer/unicode.h"

namespace mllm::tokenizer_detail {

namespace {

// The classes the regexes distinguish: \p{L}, \p{N}, \s, and everything else.
enum class Cls : uint8_t { Letter, Number, Space, Other };

Cls cls_of(uint32_t cp) {
    const unicode::CodepointClass c = unicode::classify(cp);
    if (c.whitespace) return Cls::Space;
    if (c.letter()) return Cls::Letter;
    if (c.number()) return Cls::Number;
    return Cls::Other;
}

// Records the end positions of consecutive pieces; empty pieces are dropped.
struct Cuts {
    std::vector<size_t>& ends;
    size_t last;
    void at(size_t p) {
        if (p > last) {
            ends.push_back(p);
            last = p;
        }
    }
};

// A stage splits the code points [b, e) into pieces covering it exactly.
using Stage = void (*)(const uint32_t* cp, size_t b, size_t e, Cuts& cut);

uint32_t ascii_lower(uint32_t c) {
    return (c >= 'A' && c <= 'Z') ? c + 32 : c;
}

// Length of a contraction ('s 't 'm 'd 're 've 'll) starting at pos, or 0.
size_t contraction(const uint32_t* cp, size_t pos, size_t e, bool any_case) {
    if (cp[pos] != '\'' || pos + 1 >= e) return 0;
    const auto fold = [&](uint32_t c) { return any_case ? ascii_lower(c) : c; };
    const uint32_t c1 = fold(cp[pos + 1]);
    if (c1 == 's' || c1 == 't' || c1 == 'm' || c1 == 'd') return 2;
    if (pos + 2 >= e) return 0;
    const uint32_t c2 = fold(cp[pos + 2]);
    if ((c1 == 'r' && c2 == 'e') || (c1 == 'v' && c2 == 'e') || (c1 == 'l' && c2 == 'l')) return 3;
    return 0;
}

// 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)
void split_gpt2(const uint32_t* cp, size_t b, size_t e, Cuts& cut) {
    size_t pos = b;
    while (pos < e) {
        if (const size_t n = contraction(cp, pos, e, false)) {
            cut.at(pos += n);
            continue;
        }
        // One optional space, then a run of letters, of digits, or of other non-space symbols.
        const size_t first = (cp[pos] == ' ' && pos + 1 < e) ? pos + 1 : pos;
        const Cls k = cls_of(cp[first]);
        if (k != Cls::Space) {
            size_t q = first + 1;
            while (q < e && cls_of(cp[q]) == k) ++q;
            cut.at(pos = q);
            continue;
        }
        // Whitespace; when a non-space follows, its last character is left to prefix the next
        // word (the lookahead). A lone space before a word is not matched at all and so becomes
        // its own piece, which is the same thing here.
        size_t q = pos;
        while (q < e && cls_of(cp[q]) == Cls::Space) ++q;
        if (q - pos > 1 && q < e) --q;
        cut.at(pos = q);
    }
}

// (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,max_digits}|
// ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
template <size_t kMaxDigits>
void split_llama3(const uint32_t* cp, size_t b, size_t e, Cuts& cut) {
    const auto is_nl = [](uint32_t c) { return c == '\r' || c == '\n'; };
    size_t pos = b;
    while (pos < e) {
        if (const size_t n = contraction(cp, pos, e, true)) {
            cut.at(pos += n);
            continue;
        }
        const uint32_t c = cp[pos];
        const Cls k = cls_of(c);
        // Letters, optionally after one character that is not a newline, letter or digit.
        if (!is_nl(c) && k != Cls::Number &&
            (k == Cls::Letter || (pos + 1 < e && cls_of(cp[pos + 1]) == Cls::Letter))) {
            size_t q = pos + 1;
            while (q < e && cls_of(cp[q]) == Cls::Letter) ++q;
            cut.at(pos = q);
            continue;
        }
        if (k == Cls::Number) {
            size_t q = pos;
            while (q < e && q - pos < kMaxDigits && cls_of(cp[q]) == Cls::Number) ++q;
            cut.at(pos = q);
            continue;
        }
        // Symbols, optionally after one space, swallowing the newlines that follow them.
        const size_t first = (c == ' ' && pos + 1 < e) ? pos + 1 : pos;
        if (cls_of(cp[first]) == Cls::Other) {
            size_t q = first + 1;
            while (q < e && cls_of(cp[q]) == Cls::Other) ++q;
            while (q < e && is_nl(cp[q])) ++q;
            cut.at(pos = q);
            continue;
        }
        // Whitespace: up to its last newline if it has one; else all of it, less the last
        // character when a non-space follows (so that one prefixes the next word).
        size_t q = pos;
        size_t after_last_nl = 0;
        while (q < e && cls_of(cp[q]) == Cls::Space) {
            if (is_nl(cp[q])) after_last_nl = q + 1;
            ++q;
        }
        if (after_last_nl != 0) {
            q = after_last_nl;
        } else if (q - pos > 1 && q < e) {
            --q;
        }
        cut.at(pos = q);
    }
}

// Splits out every maximal run of code points that `in_run` accepts; the gaps stay pieces.
template <typename Pred>
void split_runs(const uint32_t* cp, size_t b, size_t e, Cuts& cut, Pred in_run) {
    size_t pos = b;
    while (pos < e) {
        if (!in_run(cp[pos])) {
            ++pos;
            continue;
        }
        cut.at(pos);
        while (pos < e && in_run(cp[pos])) ++pos;
        cut.at(pos);
    }
    cut.at(e);
}

// \p{N}: each digit alone.
void split_each_digit(const uint32_t* cp, size_t b, size_t e, Cuts& cut) {
    for (size_t i = b; i < e; ++i) {
        if (cls_of(cp[i]) == Cls::Number) {
            cut.at(i);
            cut.at(i + 1);
        }
    }
    cut.at(e);
}

// [\p{P}\$\+<=>\^~\|]+
void split_punctuation(const uint32_t* cp, size_t b, size_t e, Cuts& cut) {
    split_runs(cp, b, e, cut, [](uint32_t c) {
        if (c == '$' || c == '+' || c == '<' || c == '=' || c == '>' || c == '^' || c == '~' ||
            c == '|')
            return true;
        return unicode::classify(c).category == unicode::Category::Punctuation;
    });
}

// \p{N}+
void split_number_runs(const uint32_t* cp, size_t b, size_t e, Cuts& cut) {
    split_runs(cp, b, e, cut, [](uint32_t c) { return cls_of(c) == Cls::Number; });
}

// [0-9][0-9][0-9]: leftmost non-overlapping triples of ASCII digits.
void split_ascii_triples(const uint32_t* cp, size_t b, size_t e, Cuts& cut) {
    const auto digit = [](uint32_t c) { return c >= '0' && c <= '9'; };
    size_t pos = b;
    while (pos + 3 <= e) {
        if (digit(cp[pos]) && digit(cp[pos + 1]) && digit(cp[pos + 2])) {
            cut.at(pos);
            cut.at(pos += 3);
        } else {
            ++pos;
        }
    }
    cut.at(e);
}

std::vector<Stage> stages_of(PreTokenizer kind) {
    switch (kind) {
        case PreTokenizer::Default:
            return {split_punctuation, split_gpt2, split_number_runs, split_ascii_triples};
        case PreTokenizer::Gpt2:
            return {split_gpt2};
        case PreTokenizer::DigitsThenGpt2:
            return {split_each_digit, split_gpt2};
        case PreTokenizer::Llama3:
            return {split_llama3<3>};
        case PreTokenizer::Qwen2:
            return {split_llama3<1>};
    }
    return {};
}

struct NamedPre {
    std::string_view name;
    PreTokenizerInfo info;
};

// The tokenizer.ggml.pre names llama.cpp maps to these regexes.
constexpr PreTokenizerInfo kGpt2{PreTokenizer::Gpt2};
constexpr PreTokenizerInfo kDigits{PreTokenizer::DigitsThenGpt2};
constexpr PreTokenizerInfo kLlama3{PreTokenizer::Llama3, true, true};
constexpr PreTokenizerInfo kLlama3Merging{PreTokenizer::Llama3};
constexpr PreTokenizerInfo kQwen2{PreTokenizer::Qwen2};
constexpr std::array<NamedPre, 36> kNamedPres = {{
    {"default", {}},
    {"gpt-2", kGpt2},
    {"phi-2", kGpt2},
    {"gigachat", kGpt2},
    {"a.x-4.0", kGpt2},
    {"mellum", kGpt2},
    {"mpt", kGpt2},
    {"olmo", kGpt2},
    {"jais", kGpt2},
    {"trillion", kGpt2},
    {"granite-docling", kGpt2},
    {"exaone4", kGpt2},
    {"smollm", kDigits},
    {"starcoder", kDigits},
    {"refact", kDigits},
    {"command-r", kDigits},
    {"codeshell", kDigits},
    {"exaone", kDigits},
    {"minerva-7b", kDigits},
    {"mellum2", kDigits},
    {"llama3", kLlama3},
    {"llama-v3", kLlama3},
    {"llama-bpe", kLlama3},
    {"falcon3", kLlama3},
    {"falcon-h1", kLlama3},
    {"pixtral", kLlama3},
    {"midm-2.0", kLlama3},
    {"lfm2", kLlama3},
    {"dbrx", kLlama3Merging},
    {"smaug-bpe", kLlama3Merging},
    {"qwen2", kQwen2},
    {"deepseek-r1-qwen", kQwen2},
    {"megrez", kQwen2},
    {"stablelm2", kQwen2},
    {"hunyuan", kQwen2},
    {"grok-2", kQwen2},
}};

}  // namespace

std::optional<PreTokenizerInfo> pre_tokenizer_by_name(std::string_view name) {
    if (name.empty()) return PreTokenizerInfo{};
    for (const NamedPre& p : kNamedPres) {
        if (p.name == name) return p.info;
    }
    return std::nullopt;
}

std::vector<std::string> pre_tokenize(PreTokenizer kind, std::string_view text) {
    const std::vector<uint32_t> cps = unicode::decode(text);
    std::vector<size_t> ends;
    if (!cps.empty()) ends.push_back(cps.size());

    std::vector<size_t> next;
    for (const Stage stage : stages_of(kind)) {
        next.clear();
        Cuts cut{next, 0};
        size_t begin = 0;
        for (const size_t end : ends) {
            stage(cps.data(), begin, end, cut);
            cut.at(end);  // a stage never merges across the pieces it was given
            begin = end;
        }
        ends.swap(next);
    }

    std::vector<std::string> words;
    words.reserve(ends.size());
    size_t begin = 0;
    for (const size_t end : ends) {
        std::string w;
        for (size_t i = begin; i < end; ++i) unicode::append_utf8(w, cps[i]);
        words.push_back(std::move(w));
        begin = end;
    }
    return words;
}

}  // namespace mllm::tokenizer_detail
