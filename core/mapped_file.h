#pragma once
// Read-only memory map of a whole file. Weights are used straight from the map (zero-copy), so
// the resident set grows only with the pages a step actually touches.
#include <cstddef>
#include <cstdint>
#include <string>

namespace mllm {

class MappedFile {
  public:
    explicit MappedFile(const std::string& path);  // throws mllm::Error naming the path
    ~MappedFile();
    MappedFile(const MappedFile&) = delete;
    MappedFile& operator=(const MappedFile&) = delete;

    const uint8_t* data() const { return data_; }
    size_t size() const { return size_; }
    const std::string& path() const { return path_; }

  private:
    std::string path_;
    const uint8_t* data_ = nullptr;
    size_t size_ = 0;
};

}  // namespace mllm
