// A little-endian GGUF byte builder, for the reader's tests and the fuzzer's seeds: the writer
// only emits well-formed files of the types it has setters for, so the other value types and
// every hostile layout are spelled out byte by byte. No gtest: the seed tool links it too.
#pragma once

#include <cstdint>
#include <cstring>
#include <string_view>
#include <vector>

#include "core/gguf/gguf_types.h"

namespace mllm::test {

class Raw {
  public:
    template <typename T>
    Raw& put(T v) {
        const size_t at = b.size();
        b.resize(at + sizeof(T));
        std::memcpy(b.data() + at, &v, sizeof(T));
        return *this;
    }
    Raw& u32(uint32_t v) { return put(v); }
    Raw& u64(uint64_t v) { return put(v); }
    Raw& str(std::string_view s) {
        u64(s.size());
        b.insert(b.end(), s.begin(), s.end());
        return *this;
    }
    Raw& header(uint64_t n_tensors, uint64_t n_kv, uint32_t version = 3) {
        return u32(kGgufMagic).u32(version).u64(n_tensors).u64(n_kv);
    }
    Raw& key(std::string_view k, GgufType t) { return str(k).u32(static_cast<uint32_t>(t)); }
    Raw& array(std::string_view k, GgufType elem, uint64_t count) {
        return key(k, GgufType::ARRAY).u32(static_cast<uint32_t>(elem)).u64(count);
    }
    Raw& tensor(std::string_view name, std::vector<uint64_t> ne, uint32_t type, uint64_t offset) {
        str(name).u32(static_cast<uint32_t>(ne.size()));
        for (uint64_t d : ne) u64(d);
        return u32(type).u64(offset);
    }
    Raw& pad(size_t alignment) {
        b.resize((b.size() + alignment - 1) / alignment * alignment, 0);
        return *this;
    }
    Raw& zeros(size_t n) {
        b.resize(b.size() + n, 0);
        return *this;
    }

    std::vector<uint8_t> b;
};

}  // namespace mllm::test
