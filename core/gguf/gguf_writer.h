#pragma once
// GGUF v3 writer: tests build random-weight models of real shapes with it, and tools write
// quantized files. Metadata keeps insertion order; tensor data is aligned to `alignment`.
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "core/dtype.h"
#include "core/gguf/gguf_types.h"

namespace mllm {

class GgufWriter {
  public:
    explicit GgufWriter(uint32_t alignment = kGgufDefaultAlignment);

    void set_u32(std::string_view key, uint32_t v);
    void set_i32(std::string_view key, int32_t v);
    void set_u64(std::string_view key, uint64_t v);
    void set_f32(std::string_view key, float v);
    void set_bool(std::string_view key, bool v);
    void set_string(std::string_view key, std::string_view v);
    void set_string_array(std::string_view key, const std::vector<std::string>& v);
    void set_f32_array(std::string_view key, const std::vector<float>& v);
    void set_i32_array(std::string_view key, const std::vector<int32_t>& v);

    // ne[0] is the contiguous dimension; data must hold exactly row_bytes(type, ne[0]) * rows.
    void add_tensor(std::string_view name, DType type, const std::vector<int64_t>& ne,
                    const void* data, size_t nbytes);

    std::vector<uint8_t> to_bytes() const;
    void write(const std::string& path) const;  // throws mllm::Error on I/O failure

  private:
    struct Tensor {
        std::string name;
        DType type;
        std::vector<int64_t> ne;
        std::vector<uint8_t> data;
    };
    void begin_kv(std::string_view key, GgufType type);

    uint32_t alignment_;
    uint64_t n_kv_ = 0;
    std::vector<uint8_t> kv_bytes_;
    std::vector<Tensor> tensors_;
};

}  // namespace mllm
