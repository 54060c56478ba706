#include "runtime/tokenizer/unicode.h"

#include <algorithm>
#include <array>

#include "runtime/tokenizer/utf8.h"

namespace mllm::unicode {

namespace {

CodepointClass from_flags(uint8_t f) {
    return CodepointClass{static_cast<Category>(f & 7), (f & 8) != 0};
}

// ASCII dominates real text: answer it from a small table instead of a binary search.
const std::array<CodepointClass, 128>& ascii_table() {
    static const std::array<CodepointClass, 128> table = [] {
        std::array<CodepointClass, 128> t{};
        size_t r = 0;
        for (uint32_t cp = 0; cp < 128; ++cp) {
            while (r + 1 < detail::kRangeCount && detail::kRangeStart[r + 1] <= cp) ++r;
            t[cp] = from_flags(detail::kRangeFlags[r]);
        }
        return t;
    }();
    return table;
}

}  // namespace

CodepointClass classify(uint32_t cp) {
    if (cp < 128) return ascii_table()[cp];
    if (cp > 0x10FFFF) return {};
    const uint32_t* begin = detail::kRangeStart;
    const uint32_t* end = detail::kRangeStart + detail::kRangeCount;
    // The last range starting at or before cp holds it.
    const size_t r = static_cast<size_t>(std::upper_bound(begin, end, cp) - begin) - 1;
    return from_flags(detail::kRangeFlags[r]);
}

std::vector<uint32_t> decode(std::string_view s) {
    std::vector<uint32_t> out;
    out.reserve(s.size());
    size_t i = 0;
    while (i < s.size()) {
        const size_t n = utf8::valid_prefix_length(s.substr(i, 4));
        if (n == 0) {
            out.push_back(kReplacement);
            ++i;
            continue;
        }
        out.push_back(utf8::decode_valid(s.data() + i, n));
        i += n;
    }
    return out;
}

void append_utf8(std::string& out, uint32_t cp) {
    if (cp < 0x80) {
        out += static_cast<char>(cp);
    } else if (cp < 0x800) {
        out += static_cast<char>(0xC0 | (cp >> 6));
        out += static_cast<char>(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
        out += static_cast<char>(0xE0 | (cp >> 12));
        out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
        out += static_cast<char>(0x80 | (cp & 0x3F));
    } else {
        out += static_cast<char>(0xF0 | (cp >> 18));
        out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
        out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
        out += static_cast<char>(0x80 | (cp & 0x3F));
    }
}

}  // namespace mllm::unicode
