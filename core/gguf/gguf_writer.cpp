#include "core/gguf/gguf_writer.h"

#include <cstdio>
#include <cstring>
#include <memory>

#include "core/error.h"

namespace mllm {
namespace {

template <typename T>
void put(std::vector<uint8_t>& out, T v) {
    const size_t at = out.size();
    out.resize(at + sizeof(T));
    std::memcpy(out.data() + at, &v, sizeof(T));
}

void put_string(std::vector<uint8_t>& out, std::string_view s) {
    put<uint64_t>(out, s.size());
    out.insert(out.end(), s.begin(), s.end());
}

void pad_to(std::vector<uint8_t>& out, size_t alignment) {
    out.resize((out.size() + alignment - 1) / alignment * alignment, 0);
}

}  // namespace

GgufWriter::GgufWriter(uint32_t alignment) : alignment_(alignment) {
    if (alignment != kGgufDefaultAlignment) set_u32("general.alignment", alignment);
}

void GgufWriter::begin_kv(std::string_view key, GgufType type) {
    ++n_kv_;
    put_string(kv_bytes_, key);
    put<uint32_t>(kv_bytes_, static_cast<uint32_t>(type));
}

void GgufWriter::set_u32(std::string_view key, uint32_t v) {
    begin_kv(key, GgufType::U32);
    put(kv_bytes_, v);
}
void GgufWriter::set_i32(std::string_view key, int32_t v) {
    begin_kv(key, GgufType::I32);
    put(kv_bytes_, v);
}
void GgufWriter::set_u64(std::string_view key, uint64_t v) {
    begin_kv(key, GgufType::U64);
    put(kv_bytes_, v);
}
void GgufWriter::set_f32(std::string_view key, float v) {
    begin_kv(key, GgufType::F32);
    put(kv_bytes_, v);
}
void GgufWriter::set_bool(std::string_view key, bool v) {
    begin_kv(key, GgufType::BOOL);
    put<uint8_t>(kv_bytes_, v ? 1 : 0);
}
void GgufWriter::set_string(std::string_view key, std::string_view v) {
    begin_kv(key, GgufType::STRING);
    put_string(kv_bytes_, v);
}

void GgufWriter::set_string_array(std::string_view key, const std::vector<std::string>& v) {
    begin_kv(key, GgufType::ARRAY);
    put<uint32_t>(kv_bytes_, static_cast<uint32_t>(GgufType::STRING));
    put<uint64_t>(kv_bytes_, v.size());
    for (const auto& s : v) put_string(kv_bytes_, s);
}

void GgufWriter::set_f32_array(std::string_view key, const std::vector<float>& v) {
    begin_kv(key, GgufType::ARRAY);
    put<uint32_t>(kv_bytes_, static_cast<uint32_t>(GgufType::F32));
    put<uint64_t>(kv_bytes_, v.size());
    for (float x : v) put(kv_bytes_, x);
}

void GgufWriter::set_i32_array(std::string_view key, const std::vector<int32_t>& v) {
    begin_kv(key, GgufType::ARRAY);
    put<uint32_t>(kv_bytes_, static_cast<uint32_t>(GgufType::I32));
    put<uint64_t>(kv_bytes_, v.size());
    for (int32_t x : v) put(kv_bytes_, x);
}

void GgufWriter::add_tensor(std::string_view name, DType type, const std::vector<int64_t>& ne,
                            const void* data, size_t nbytes) {
    if (ne.empty() || ne.size() > 4)
        fail("gguf writer: tensor '", name, "' needs 1 to 4 dimensions");
    int64_t rows = 1;
    for (size_t d = 1; d < ne.size(); ++d) rows *= ne[d];
    if (ne[0] % dtype_traits(type).block_size != 0)
        fail("gguf writer: tensor '", name, "' row length is not a multiple of the block size");
    const size_t want = row_bytes(type, ne[0]) * static_cast<size_t>(rows);
    if (want != nbytes)
        fail("gguf writer: tensor '", name, "' has ", nbytes, " bytes, shape needs ", want);
    const auto* p = static_cast<const uint8_t*>(data);
    tensors_.push_back(Tensor{std::string(name), type, ne, std::vector<uint8_t>(p, p + nbytes)});
}

std::vector<uint8_t> GgufWriter::to_bytes() const {
    std::vector<uint8_t> out;
    put<uint32_t>(out, kGgufMagic);
    put<uint32_t>(out, 3);
    put<uint64_t>(out, tensors_.size());
    put<uint64_t>(out, n_kv_);
    out.insert(out.end(), kv_bytes_.begin(), kv_bytes_.end());
    uint64_t offset = 0;
    for (const Tensor& t : tensors_) {
        put_string(out, t.name);
        put<uint32_t>(out, static_cast<uint32_t>(t.ne.size()));
        for (int64_t d : t.ne) put<uint64_t>(out, static_cast<uint64_t>(d));
        put<uint32_t>(out, static_cast<uint32_t>(t.type));
        put<uint64_t>(out, offset);
        offset += (t.data.size() + alignment_ - 1) / alignment_ * alignment_;
    }
    pad_to(out, alignment_);
    for (const Tensor& t : tensors_) {
        out.insert(out.end(), t.data.begin(), t.data.end());
        pad_to(out, alignment_);
    }
    return out;
}

void GgufWriter::write(const std::string& path) const {
    const std::vector<uint8_t> bytes = to_bytes();
    std::unique_ptr<FILE, int (*)(FILE*)> f(std::fopen(path.c_str(), "wb"), &std::fclose);
    if (!f) fail("cannot create '", path, "'");
    if (std::fwrite(bytes.data(), 1, bytes.size(), f.get()) != bytes.size())
        fail("cannot write '", path, "'");
}

}  // namespace mllm
