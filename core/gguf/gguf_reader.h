#pragma once
// GGUF v2/v3 reader. Parses and validates the whole header before anything is used: a file that
// passes open() can be read without further bounds checks (every tensor lies inside the file,
// aligned, with a known type and a shape whose byte size does not overflow).
#include <array>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "core/dtype.h"
#include "core/gguf/gguf_types.h"

namespace mllm {

class MappedFile;

struct GgufValue {
    GgufType type = GgufType::U8;
    // Scalars: the integer types widen into one of these, floats into f, bool into u.
    uint64_t u = 0;
    int64_t i = 0;
    double f = 0;
    std::string_view str;  // STRING, pointing into the file
    // ARRAY
    GgufType elem_type = GgufType::U8;
    uint64_t count = 0;
    const uint8_t* elems = nullptr;         // fixed-size elements, little-endian
    std::vector<std::string_view> strings;  // elements of a STRING array
};

struct GgufTensor {
    std::string name;
    DType type = DType::F32;
    int n_dims = 0;
    std::array<int64_t, 4> ne{1, 1, 1, 1};  // ne[0] is the contiguous dimension
    uint64_t offset = 0;                    // relative to the data section
    size_t nbytes = 0;
    const uint8_t* data = nullptr;  // inside the mapping

    int64_t n_elements() const { return ne[0] * ne[1] * ne[2] * ne[3]; }
    std::string shape_string() const;
};

class GgufFile {
  public:
    static std::shared_ptr<const GgufFile> open(const std::string& path);
    // Parses an in-memory image (tests, fuzzers). The bytes are copied.
    static std::shared_ptr<const GgufFile> parse(const uint8_t* data, size_t size,
                                                 std::string name = "<memory>");

    ~GgufFile();
    GgufFile(const GgufFile&) = delete;
    GgufFile& operator=(const GgufFile&) = delete;

    const std::string& path() const { return name_; }
    // Maps the whole file in now (MappedFile::populate); nothing to do for a parsed image.
    void populate() const;
    uint32_t version() const { return version_; }
    uint32_t alignment() const { return alignment_; }
    size_t file_size() const { return size_; }

    const std::vector<std::pair<std::string, GgufValue>>& metadata() const { return kv_; }
    const GgufValue* find(std::string_view key) const;
    // Typed getters: nullopt when absent; mllm::Error when present with an incompatible type.
    std::optional<uint64_t> get_uint(std::string_view key) const;
    std::optional<int64_t> get_int(std::string_view key) const;
    std::optional<double> get_float(std::string_view key) const;
    std::optional<bool> get_bool(std::string_view key) const;
    std::optional<std::string_view> get_string(std::string_view key) const;
    // Array getters: empty when absent; mllm::Error on a type mismatch.
    std::vector<std::string_view> get_string_array(std::string_view key) const;
    std::vector<float> get_float_array(std::string_view key) const;
    std::vector<int64_t> get_int_array(std::string_view key) const;

    const std::vector<GgufTensor>& tensors() const { return tensors_; }
    const GgufTensor* find_tensor(std::string_view name) const;

  private:
    GgufFile() = default;
    void parse_header();

    std::string name_;
    std::unique_ptr<MappedFile> map_;
    std::vector<uint8_t> owned_;
    const uint8_t* data_ = nullptr;
    size_t size_ = 0;
    uint32_t version_ = 0;
    uint32_t alignment_ = kGgufDefaultAlignment;
    std::vector<std::pair<std::string, GgufValue>> kv_;
    std::unordered_map<std::string_view, size_t> kv_index_;
    std::vector<GgufTensor> tensors_;
    std::unordered_map<std::string_view, size_t> tensor_index_;
};

}  // namespace mllm
