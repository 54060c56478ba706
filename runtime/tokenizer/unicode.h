#pragma once
// The little Unicode the tokenizers need: UTF-8 decoding and encoding, and the general category
// of a code point (from a generated range table, see scripts/gen_unicode_tables.py).
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace mllm::unicode {

// The first letter of the Unicode general category; the values are the table's encoding.
enum class Category : uint8_t {
    Unassigned = 0,   // Cn
    Number = 1,       // N*
    Letter = 2,       // L*
    Separator = 3,    // Z*
    Mark = 4,         // M*
    Punctuation = 5,  // P*
    Symbol = 6,       // S*
    Control = 7,      // Cc, Cf, Co, Cs
};

struct CodepointClass {
    Category category = Category::Unassigned;
    bool whitespace = false;  // Unicode White_Space: what \s means in the pre-tokenizer regexes

    bool letter() const { return category == Category::Letter; }
    bool number() const { return category == Category::Number; }
};

CodepointClass classify(uint32_t cp);

// Bytes in the UTF-8 sequence that starts with this byte, judged by its high bits alone (as
// llama.cpp splits text into symbols): 1 for ASCII and for stray continuation bytes.
inline size_t sequence_length(uint8_t lead) {
    if (lead < 0xC0) return 1;
    if (lead < 0xE0) return 2;
    if (lead < 0xF0) return 3;
    return 4;
}

constexpr uint32_t kReplacement = 0xFFFD;

// Decodes UTF-8 leniently: every byte that does not start a well-formed sequence becomes U+FFFD
// on its own, so any input yields code points (the pre-tokenizers then see U+FFFD).
std::vector<uint32_t> decode(std::string_view s);

void append_utf8(std::string& out, uint32_t cp);

namespace detail {
extern const size_t kRangeCount;
extern const uint32_t kRangeStart[];
extern const uint8_t kRangeFlags[];
}  // namespace detail

}  // namespace mllm::unicode
