// Writes the seed corpus for fuzz_gguf: small valid GGUF files that between them hold every
// metadata value type, every array element type, custom alignments and tensors of each block
// layout. Usage: make_gguf_seeds <dir>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "core/error.h"
#include "core/gguf/gguf_types.h"
#include "core/gguf/gguf_writer.h"
#include "tests/support/gguf_raw.h"

namespace {

using mllm::DType;
using mllm::GgufType;
using mllm::GgufWriter;
using mllm::test::Raw;

void save(const std::string& dir, const std::string& name, const std::vector<uint8_t>& bytes) {
    const std::string path = dir + "/" + name;
    FILE* f = std::fopen(path.c_str(), "wb");
    if (f == nullptr || std::fwrite(bytes.data(), 1, bytes.size(), f) != bytes.size())
        mllm::fail("cannot write '", path, "'");
    std::fclose(f);
}

void add(GgufWriter& w, const char* name, DType type, std::vector<int64_t> ne, uint8_t fill) {
    int64_t rows = 1;
    for (size_t d = 1; d < ne.size(); ++d) rows *= ne[d];
    std::vector<uint8_t> data(mllm::row_bytes(type, ne[0]) * static_cast<size_t>(rows));
    for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<uint8_t>(fill + i);
    w.add_tensor(name, type, ne, data.data(), data.size());
}

}  // namespace

int main(int argc, char** argv) {
    if (argc != 2) {
        std::fprintf(stderr, "usage: %s <corpus-dir>\n", argv[0]);
        return 2;
    }
    const std::string dir = argv[1];
    try {
        std::filesystem::create_directories(dir);

        save(dir, "empty-metadata.gguf", GgufWriter().to_bytes());

        GgufWriter meta;
        meta.set_string("general.architecture", "llama");
        meta.set_u32("llama.block_count", 2);
        meta.set_i32("i32", -5);
        meta.set_u64("u64", 1ull << 40);
        meta.set_f32("llama.rope.freq_base", 10000.0f);
        meta.set_bool("tokenizer.ggml.add_bos_token", true);
        meta.set_string_array("tokenizer.ggml.tokens", {"<unk>", "<s>", "</s>", "a", "b"});
        meta.set_f32_array("tokenizer.ggml.scores", {0.0f, 0.0f, 0.0f, -1.0f, -2.0f});
        meta.set_i32_array("tokenizer.ggml.token_type", {2, 3, 3, 1, 1});
        save(dir, "metadata.gguf", meta.to_bytes());

        GgufWriter tensors;
        tensors.set_string("general.architecture", "llama");
        add(tensors, "f32", DType::F32, {4, 3}, 1);
        add(tensors, "f16", DType::F16, {5}, 2);
        add(tensors, "bf16", DType::BF16, {2, 2, 2, 2}, 3);
        add(tensors, "q4_0", DType::Q4_0, {32, 2}, 4);
        add(tensors, "q8_0", DType::Q8_0, {32}, 5);
        save(dir, "tensors.gguf", tensors.to_bytes());

        GgufWriter kquants(64);
        add(kquants, "q4_k", DType::Q4_K, {256}, 6);
        add(kquants, "q6_k", DType::Q6_K, {256}, 7);
        save(dir, "kquants-align64.gguf", kquants.to_bytes());

        GgufWriter aligned(8);
        add(aligned, "a", DType::F32, {3}, 8);
        add(aligned, "b", DType::I32, {1, 1, 1, 1}, 9);
        save(dir, "align8.gguf", aligned.to_bytes());

        // Every value type and array element type, written byte by byte.
        Raw r;
        r.put<uint32_t>(mllm::kGgufMagic).put<uint32_t>(3).put<uint64_t>(1).put<uint64_t>(14);
        r.key("u8", GgufType::U8).put<uint8_t>(7);
        r.key("i8", GgufType::I8).put<int8_t>(-7);
        r.key("u16", GgufType::U16).put<uint16_t>(700);
        r.key("i16", GgufType::I16).put<int16_t>(-700);
        r.key("i64", GgufType::I64).put<int64_t>(-70000000000);
        r.key("f64", GgufType::F64).put<double>(0.5);
        r.array("a.u8", GgufType::U8, 2).put<uint8_t>(1).put<uint8_t>(2);
        r.array("a.i8", GgufType::I8, 1).put<int8_t>(-1);
        r.array("a.u16", GgufType::U16, 1).put<uint16_t>(9);
        r.array("a.i16", GgufType::I16, 1).put<int16_t>(-9);
        r.array("a.u64", GgufType::U64, 1).put<uint64_t>(99);
        r.array("a.i64", GgufType::I64, 1).put<int64_t>(-99);
        r.array("a.f64", GgufType::F64, 1).put<double>(2.5);
        r.array("a.bool", GgufType::BOOL, 2).put<uint8_t>(1).put<uint8_t>(0);
        r.str("t").put<uint32_t>(1).put<uint64_t>(8).put<uint32_t>(0).put<uint64_t>(0);
        r.b.resize((r.b.size() + 31) / 32 * 32, 0);
        r.b.resize(r.b.size() + 32, 0x3f);
        Raw v2 = r;
        save(dir, "all-types.gguf", r.b);
        v2.b[4] = 2;
        save(dir, "all-types-v2.gguf", v2.b);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "%s\n", e.what());
        return 1;
    }
    return 0;
}
