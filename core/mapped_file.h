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

    // Maps every page of the file now instead of on first touch (as llama.cpp's default
    // MAP_POPULATE does): otherwise a model's first step pays a page fault per 64 KiB of weights
    // (a 10-token prompt on SmolLM2-135M Q4_0: 173-309 tok/s, 341-390 with the pages mapped at
    // load), and a token's first embedding lookup a fault of its own, a disk read when the file
    // is not in the page cache. Best effort: a failure only leaves the pages to be faulted in
    // later.
    void populate() const;

    const uint8_t* data() const { return data_; }
    size_t size() const { return size_; }
    const std::string& path() const { return path_; }

  private:
    std::string path_;
    const uint8_t* data_ = nullptr;
    size_t size_ = 0;
};

}  // namespace mllm
