#pragma once
// Value types of GGUF metadata, as numbered by the format.
#include <cstddef>
#include <cstdint>
#include <string_view>

namespace mllm {

enum class GgufType : uint32_t {
    U8 = 0,
    I8 = 1,
    U16 = 2,
    I16 = 3,
    U32 = 4,
    I32 = 5,
    F32 = 6,
    BOOL = 7,
    STRING = 8,
    ARRAY = 9,
    U64 = 10,
    I64 = 11,
    F64 = 12,
};

constexpr uint32_t kGgufMagic = 0x46554747;  // "GGUF" read as a little-endian uint32
constexpr uint32_t kGgufDefaultAlignment = 32;

// Size in bytes of a fixed-size value type; 0 for STRING and ARRAY (variable) and unknown ids.
size_t gguf_scalar_size(GgufType t);
std::string_view gguf_type_name(GgufType t);

}  // namespace mllm
