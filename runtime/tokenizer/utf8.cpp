#include "runtime/tokenizer/utf8.h"

#include "runtime/tokenizer/tokenizer.h"

namespace mllm {

namespace {
constexpr std::string_view kReplacementUtf8 = "\xEF\xBF\xBD";  // U+FFFD
}

size_t first_invalid_utf8(std::string_view s) {
    size_t i = 0;
    while (i < s.size()) {
        const size_t n = utf8::valid_prefix_length(s.substr(i, 4));
        if (n == 0) return i;
        i += n;
    }
    return s.size();
}

bool is_valid_utf8(std::string_view s) {
    return first_invalid_utf8(s) == s.size();
}

std::string Utf8StreamBuffer::push(std::string_view piece) {
    std::string out;
    out.reserve(piece.size() + pending_.size());
    for (const char c : piece) {
        const auto b = static_cast<uint8_t>(c);
        if (!pending_.empty()) {
            const auto lead = static_cast<uint8_t>(pending_[0]);
            if (utf8::continuation_ok(lead, pending_.size(), b)) {
                pending_ += c;
                if (pending_.size() == utf8::expected_length(lead)) {
                    out += pending_;
                    pending_.clear();
                }
                continue;
            }
            // The character was cut short: replace what we held, then read b afresh.
            out += kReplacementUtf8;
            pending_.clear();
        }
        const size_t n = utf8::expected_length(b);
        if (n == 1) {
            out += c;
        } else if (n == 0) {
            out += kReplacementUtf8;
        } else {
            pending_ += c;
        }
    }
    return out;
}

std::string Utf8StreamBuffer::flush() {
    std::string out = pending_.empty() ? std::string() : std::string(kReplacementUtf8);
    pending_.clear();
    return out;
}

}  // namespace mllm
