#pragma once
// Strict UTF-8 well-formedness (Unicode table 3-7: no overlong forms, no surrogates, nothing past
// U+10FFFF), shared by the validator, the streaming detokenizer and the decoder.
#include <cstddef>
#include <cstdint>
#include <string_view>

namespace mllm::utf8 {

// Total bytes of a sequence starting with this lead byte; 0 if it cannot start one.
inline size_t expected_length(uint8_t lead) {
    if (lead < 0x80) return 1;
    if (lead < 0xC2) return 0;  // continuation byte, or the overlong leads C0/C1
    if (lead < 0xE0) return 2;
    if (lead < 0xF0) return 3;
    if (lead < 0xF5) return 4;
    return 0;
}

// Whether b may be byte `index` (1..3) of a sequence that starts with `lead`. The second byte's
// range depends on the lead; that is what rules out overlongs, surrogates and > U+10FFFF.
inline bool continuation_ok(uint8_t lead, size_t index, uint8_t b) {
    if (index == 1) {
        switch (lead) {
            case 0xE0:
                return b >= 0xA0 && b <= 0xBF;
            case 0xED:
                return b >= 0x80 && b <= 0x9F;
            case 0xF0:
                return b >= 0x90 && b <= 0xBF;
            case 0xF4:
                return b >= 0x80 && b <= 0x8F;
            default:
                break;
        }
    }
    return b >= 0x80 && b <= 0xBF;
}

// Length of the well-formed sequence at the start of s, or 0 when s does not start with one.
inline size_t valid_prefix_length(std::string_view s) {
    if (s.empty()) return 0;
    const auto lead = static_cast<uint8_t>(s[0]);
    const size_t n = expected_length(lead);
    if (n == 0 || s.size() < n) return 0;
    for (size_t k = 1; k < n; ++k) {
        if (!continuation_ok(lead, k, static_cast<uint8_t>(s[k]))) return 0;
    }
    return n;
}

// The code point of a sequence already known to be well-formed and n bytes long.
inline uint32_t decode_valid(const char* p, size_t n) {
    const auto b0 = static_cast<uint8_t>(p[0]);
    if (n == 1) return b0;
    static constexpr uint8_t kLeadMask[5] = {0, 0x7F, 0x1F, 0x0F, 0x07};
    uint32_t cp = b0 & kLeadMask[n];
    for (size_t k = 1; k < n; ++k) cp = (cp << 6) | (static_cast<uint8_t>(p[k]) & 0x3F);
    return cp;
}

}  // namespace mllm::utf8
