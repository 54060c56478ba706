// libFuzzer target for the GGUF reader. The reader promises that a file it accepts can be used
// without further bounds checks; this target takes it at its word: it parses the input, then
// reads every metadata value, every array element, every string and every tensor byte, and calls
// every typed getter. AddressSanitizer turns any read outside the image into a crash; the
// invariant checks below turn a wrong (but in-bounds) answer into one. Any exception other than
// mllm::Error escapes and is reported as a crash too.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "core/dtype.h"
#include "core/error.h"
#include "core/gguf/gguf_reader.h"

namespace {

// Folds bytes into a value the optimizer cannot drop.
uint64_t g_sink = 0;

void touch(const void* p, size_t n) {
    const auto* b = static_cast<const uint8_t*>(p);
    uint64_t h = g_sink;
    for (size_t i = 0; i < n; ++i) h = (h ^ b[i]) * 0x100000001b3ull;
    g_sink = h;
}
void touch(std::string_view s) {
    touch(s.data(), s.size());
}

void check(bool ok) {
    if (!ok) std::abort();
}

// Calls a getter that may legitimately refuse the value's type.
template <typename Fn>
void try_get(Fn&& fn) {
    try {
        fn();
    } catch (const mllm::Error&) {
    }
}

void touch_value(const mllm::GgufFile& f, std::string_view key, const mllm::GgufValue& v) {
    using mllm::GgufType;
    touch(key);
    check(f.find(key) == &v);
    g_sink += v.u ^ static_cast<uint64_t>(v.i) ^ static_cast<uint64_t>(v.f != v.f);
    if (v.type == GgufType::STRING) touch(v.str);
    if (v.type == GgufType::ARRAY) {
        if (v.elem_type == GgufType::STRING) {
            check(v.strings.size() == v.count);
            for (std::string_view s : v.strings) touch(s);
        } else {
            const size_t elem = mllm::gguf_scalar_size(v.elem_type);
            check(elem != 0);
            if (v.count != 0) touch(v.elems, static_cast<size_t>(v.count) * elem);
        }
    }
    try_get([&] { g_sink += f.get_uint(key).value_or(0); });
    try_get([&] { g_sink += static_cast<uint64_t>(f.get_int(key).value_or(0)); });
    try_get([&] { g_sink += f.get_float(key).value_or(0) > 0; });
    try_get([&] { g_sink += f.get_bool(key).value_or(false); });
    try_get([&] { touch(f.get_string(key).value_or("")); });
    try_get([&] { g_sink += f.get_string_array(key).size(); });
    try_get([&] {
        for (float x : f.get_float_array(key)) g_sink += x > 0;
    });
    try_get([&] {
        for (int64_t x : f.get_int_array(key)) g_sink += static_cast<uint64_t>(x);
    });
}

void touch_tensor(const mllm::GgufFile& f, const mllm::GgufTensor& t) {
    touch(t.name);
    check(f.find_tensor(t.name) == &t);
    check(t.n_dims >= 1 && t.n_dims <= 4);
    for (int64_t d : t.ne) check(d >= 1);
    check(t.offset % f.alignment() == 0);
    const mllm::DTypeTraits& traits = mllm::dtype_traits(t.type);
    check(t.ne[0] % traits.block_size == 0);
    // nbytes must be exactly what the shape needs, computed here without wrap-around.
    uint64_t elements = 1;
    for (int64_t d : t.ne)
        check(!__builtin_mul_overflow(elements, static_cast<uint64_t>(d), &elements));
    check(elements == static_cast<uint64_t>(t.n_elements()));
    uint64_t bytes = 0;
    check(!__builtin_mul_overflow(elements / static_cast<uint64_t>(traits.block_size),
                                  traits.type_size, &bytes));
    check(bytes == t.nbytes);
    check(t.offset + t.nbytes <= f.file_size());
    touch(t.shape_string());
    touch(t.data, t.nbytes);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    std::shared_ptr<const mllm::GgufFile> f;
    try {
        f = mllm::GgufFile::parse(data, size, "fuzz.gguf");
    } catch (const mllm::Error&) {
        return 0;
    }
    check(f->version() == 2 || f->version() == 3);
    check(f->alignment() != 0 && (f->alignment() & (f->alignment() - 1)) == 0);
    for (const auto& [key, value] : f->metadata()) touch_value(*f, key, value);
    for (const mllm::GgufTensor& t : f->tensors()) touch_tensor(*f, t);
    return 0;
}
