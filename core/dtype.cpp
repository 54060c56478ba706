#include "core/dtype.h"

#include <array>
#include <cassert>
#include <cctype>
#include <string>

#include "core/error.h"

namespace mllm {
namespace {

constexpr std::array kTraits = {
    DTypeTraits{DType::F32, "f32", 1, 4, false, true},
    DTypeTraits{DType::F16, "f16", 1, 2, false, true},
    DTypeTraits{DType::Q4_0, "q4_0", 32, 18, true, true},
    DTypeTraits{DType::Q4_1, "q4_1", 32, 20, true, true},
    DTypeTraits{DType::Q5_0, "q5_0", 32, 22, true, true},
    DTypeTraits{DType::Q5_1, "q5_1", 32, 24, true, false},
    DTypeTraits{DType::Q8_0, "q8_0", 32, 34, true, true},
    DTypeTraits{DType::Q8_1, "q8_1", 32, 36, true, false},
    DTypeTraits{DType::Q2_K, "q2_k", 256, 84, true, false},
    DTypeTraits{DType::Q3_K, "q3_k", 256, 110, true, false},
    DTypeTraits{DType::Q4_K, "q4_k", 256, 144, true, true},
    DTypeTraits{DType::Q5_K, "q5_k", 256, 176, true, true},
    DTypeTraits{DType::Q6_K, "q6_k", 256, 210, true, true},
    DTypeTraits{DType::Q8_K, "q8_k", 256, 292, true, false},
    DTypeTraits{DType::I8, "i8", 1, 1, false, false},
    DTypeTraits{DType::I16, "i16", 1, 2, false, false},
    DTypeTraits{DType::I32, "i32", 1, 4, false, false},
    DTypeTraits{DType::I64, "i64", 1, 8, false, false},
    DTypeTraits{DType::F64, "f64", 1, 8, false, false},
    DTypeTraits{DType::BF16, "bf16", 1, 2, false, true},
};

}  // namespace

const DTypeTraits* find_dtype(uint32_t raw) {
    for (const auto& t : kTraits)
        if (static_cast<uint32_t>(t.type) == raw) return &t;
    return nullptr;
}

const DTypeTraits& dtype_traits(DType t) {
    const DTypeTraits* traits = find_dtype(static_cast<uint32_t>(t));
    assert(traits != nullptr);
    return *traits;
}

bool parse_dtype(std::string_view name, DType& out) {
    std::string lower(name);
    for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    for (const auto& t : kTraits) {
        if (t.name == lower) {
            out = t.type;
            return true;
        }
    }
    return false;
}

size_t row_bytes(DType t, int64_t n) {
    const DTypeTraits& traits = dtype_traits(t);
    assert(n % traits.block_size == 0);
    return static_cast<size_t>(n / traits.block_size) * traits.type_size;
}

}  // namespace mllm
