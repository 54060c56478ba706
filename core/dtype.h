#pragma once
// Tensor element types with the numeric ids GGUF files use (ggml's enum ggml_type), and the
// block geometry of each: a row of n elements takes n / block_size * type_size bytes.
#include <cstddef>
#include <cstdint>
#include <string_view>

namespace mllm {

enum class DType : uint32_t {
    F32 = 0,
    F16 = 1,
    Q4_0 = 2,
    Q4_1 = 3,
    Q5_0 = 6,
    Q5_1 = 7,
    Q8_0 = 8,
    Q8_1 = 9,
    Q2_K = 10,
    Q3_K = 11,
    Q4_K = 12,
    Q5_K = 13,
    Q6_K = 14,
    Q8_K = 15,
    I8 = 24,
    I16 = 25,
    I32 = 26,
    I64 = 27,
    F64 = 28,
    BF16 = 30,
};

struct DTypeTraits {
    DType type;
    std::string_view name;
    int64_t block_size;  // elements per block (1 for plain types)
    size_t type_size;    // bytes per block
    bool is_quantized;
    bool weight_supported;  // the runtime can compute with weights of this type
};

// Traits of a raw GGUF type id; nullptr when the id is not a type this runtime knows.
const DTypeTraits* find_dtype(uint32_t raw);
const DTypeTraits& dtype_traits(DType t);
inline std::string_view dtype_name(DType t) {
    return dtype_traits(t).name;
}
// Parses "q4_0", "Q4_K", "f16", ... ; returns false if unknown.
bool parse_dtype(std::string_view name, DType& out);

// Bytes of one row of n elements; n must be a multiple of the block size (checked by callers
// that read files, asserted here).
size_t row_bytes(DType t, int64_t n);

}  // namespace mllm
