#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "core/error.h"
#include "core/gguf/gguf_reader.h"
#include "core/gguf/gguf_writer.h"
#include "tests/support/gguf_bytes.h"
#include "tests/support/test_env.h"

namespace mllm {
namespace {

using test::every_type_file;
using test::one_tensor_file;
using test::parse;
using test::Raw;

// ---------------------------------------------------------------------------------------------
// Round trips

TEST(Gguf, WriterRoundTripMetadata) {
    GgufWriter w;
    w.set_u32("k.u32", 4000000000u);
    w.set_i32("k.i32", -7);
    w.set_u64("k.u64", 1ull << 50);
    w.set_f32("k.f32", 0.125f);
    w.set_bool("k.true", true);
    w.set_bool("k.false", false);
    w.set_string("k.string", "llama");
    w.set_string("k.empty", "");
    w.set_string_array("k.strings", {"<unk>", "", "\xe2\x96\x81the"});
    w.set_f32_array("k.floats", {-1.0f, 0.0f, 3.5f});
    w.set_i32_array("k.ints", {1, -2, 2147483647});
    w.set_i32_array("k.no_ints", {});
    const auto bytes = w.to_bytes();
    const auto f = parse(bytes);

    EXPECT_EQ(f->version(), 3u);
    EXPECT_EQ(f->alignment(), kGgufDefaultAlignment);
    EXPECT_EQ(f->file_size(), bytes.size());
    EXPECT_EQ(f->find("general.alignment"), nullptr);
    EXPECT_TRUE(f->tensors().empty());
    ASSERT_EQ(f->metadata().size(), 12u);
    EXPECT_EQ(f->metadata()[0].first, "k.u32");  // insertion order is kept
    EXPECT_EQ(f->metadata()[11].first, "k.no_ints");

    EXPECT_EQ(f->find("k.u32")->type, GgufType::U32);
    EXPECT_EQ(f->get_uint("k.u32"), 4000000000u);
    EXPECT_EQ(f->get_int("k.u32"), 4000000000);
    EXPECT_EQ(f->get_int("k.i32"), -7);
    EXPECT_EQ(f->get_uint("k.u64"), 1ull << 50);
    EXPECT_EQ(f->get_float("k.f32"), 0.125);
    EXPECT_EQ(f->get_float("k.i32"), -7.0);  // integers widen to float
    EXPECT_EQ(f->get_bool("k.true"), true);
    EXPECT_EQ(f->get_bool("k.false"), false);
    EXPECT_EQ(f->get_string("k.string"), "llama");
    EXPECT_EQ(f->get_string("k.empty"), "");
    EXPECT_EQ(f->get_string_array("k.strings"),
              (std::vector<std::string_view>{"<unk>", "", "\xe2\x96\x81the"}));
    EXPECT_EQ(f->get_float_array("k.floats"), (std::vector<float>{-1.0f, 0.0f, 3.5f}));
    EXPECT_EQ(f->get_int_array("k.ints"), (std::vector<int64_t>{1, -2, 2147483647}));
    EXPECT_TRUE(f->get_int_array("k.no_ints").empty());
    EXPECT_EQ(f->find("k.no_ints")->elem_type, GgufType::I32);

    // Absent keys: nullopt / empty, never an error.
    EXPECT_FALSE(f->get_uint("nope").has_value());
    EXPECT_FALSE(f->get_string("nope").has_value());
    EXPECT_FALSE(f->get_bool("nope").has_value());
    EXPECT_FALSE(f->get_float("nope").has_value());
    EXPECT_TRUE(f->get_string_array("nope").empty());
    EXPECT_TRUE(f->get_float_array("nope").empty());
    EXPECT_EQ(f->find_tensor("nope"), nullptr);
}

TEST(Gguf, TypedGettersRejectWrongTypes) {
    GgufWriter w;
    w.set_i32("neg", -1);
    w.set_string("s", "x");
    w.set_f32("f", 1.0f);
    w.set_u32("u", 1);
    w.set_f32_array("fa", {1.0f});
    const auto bytes = w.to_bytes();
    const auto f = parse(bytes);
    auto message = [](auto&& fn) {
        try {
            fn();
        } catch (const Error& e) {
            return std::string(e.what());
        }
        return std::string("(no error)");
    };
    EXPECT_NE(message([&] { f->get_uint("neg"); }).find("should be a non-negative integer"),
              std::string::npos);
    EXPECT_NE(message([&] { f->get_int("s"); }).find("'s' should be an integer, found string"),
              std::string::npos);
    EXPECT_NE(message([&] { f->get_int("f"); }).find("found float32"), std::string::npos);
    EXPECT_NE(message([&] { f->get_float("s"); }).find("should be a number"), std::string::npos);
    EXPECT_NE(message([&] { f->get_bool("u"); }).find("should be a bool, found uint32"),
              std::string::npos);
    EXPECT_NE(message([&] { f->get_string("u"); }).find("should be a string, found uint32"),
              std::string::npos);
    EXPECT_NE(message([&] { f->get_string_array("fa"); }).find("array of strings"),
              std::string::npos);
    EXPECT_NE(message([&] { f->get_int_array("fa"); }).find("array of integers"),
              std::string::npos);
    EXPECT_NE(message([&] { f->get_float_array("s"); }).find("array of floats"), std::string::npos);
}

TEST(Gguf, EveryMetadataTypeRoundTrips) {
    const auto bytes = every_type_file();
    const auto f = parse(bytes);
    ASSERT_EQ(f->metadata().size(), 26u);

    auto type_of = [&](const char* k) { return f->find(k)->type; };
    EXPECT_EQ(type_of("u8"), GgufType::U8);
    EXPECT_EQ(type_of("i8"), GgufType::I8);
    EXPECT_EQ(type_of("u16"), GgufType::U16);
    EXPECT_EQ(type_of("i16"), GgufType::I16);
    EXPECT_EQ(type_of("u32"), GgufType::U32);
    EXPECT_EQ(type_of("i32"), GgufType::I32);
    EXPECT_EQ(type_of("u64"), GgufType::U64);
    EXPECT_EQ(type_of("i64"), GgufType::I64);
    EXPECT_EQ(type_of("f32"), GgufType::F32);
    EXPECT_EQ(type_of("f64"), GgufType::F64);
    EXPECT_EQ(type_of("bool"), GgufType::BOOL);
    EXPECT_EQ(type_of("string"), GgufType::STRING);

    EXPECT_EQ(f->get_uint("u8"), 200u);
    EXPECT_EQ(f->get_int("i8"), -100);
    EXPECT_EQ(f->get_uint("u16"), 60000u);
    EXPECT_EQ(f->get_int("i16"), -30000);
    EXPECT_EQ(f->get_uint("u32"), 4000000000u);
    EXPECT_EQ(f->get_int("i32"), -2000000000);
    EXPECT_EQ(f->get_uint("u64"), 0xFFFFFFFFFFFFFFF0ull);
    EXPECT_EQ(f->get_int("i64"), -5000000000ll);
    EXPECT_EQ(f->get_float("f32"), 1.5);
    EXPECT_EQ(f->get_float("f64"), -2.25);
    EXPECT_EQ(f->get_float("u64"), 18446744073709551600.0);  // unsigned, not wrapped negative
    EXPECT_EQ(f->get_bool("bool"), true);
    EXPECT_EQ(f->get_string("string"), "h\xc3\xa9llo");
    EXPECT_EQ(f->get_string("empty_string"), "");
    // A uint64 above INT64_MAX cannot be returned as int64: an error, not a wrapped value.
    EXPECT_THROW(f->get_int("u64"), Error);
    EXPECT_THROW(f->get_uint("i8"), Error);  // negative

    EXPECT_EQ(f->get_int_array("a.u8"), (std::vector<int64_t>{1, 2, 255}));
    EXPECT_EQ(f->get_int_array("a.i8"), (std::vector<int64_t>{-1, 7}));
    EXPECT_EQ(f->get_int_array("a.u16"), (std::vector<int64_t>{65535, 0}));
    EXPECT_EQ(f->get_int_array("a.i16"), (std::vector<int64_t>{-32768}));
    EXPECT_EQ(f->get_int_array("a.u32"), (std::vector<int64_t>{4294967295ll, 1}));
    EXPECT_EQ(f->get_int_array("a.i32"), (std::vector<int64_t>{-1, 0, 1}));
    EXPECT_EQ(f->get_int_array("a.u64"), (std::vector<int64_t>{1ll << 40}));
    EXPECT_EQ(f->get_int_array("a.i64"), (std::vector<int64_t>{-(1ll << 40), 3}));
    EXPECT_EQ(f->get_float_array("a.f32"), (std::vector<float>{0.25f, -8.0f}));
    EXPECT_EQ(f->get_float_array("a.f64"),
              (std::vector<float>{std::numeric_limits<float>::infinity(), -0.5f}));
    EXPECT_EQ(f->get_string_array("a.string"), (std::vector<std::string_view>{"one", "", "three"}));
    const GgufValue* bools = f->find("a.bool");
    ASSERT_EQ(bools->elem_type, GgufType::BOOL);
    ASSERT_EQ(bools->count, 3u);
    EXPECT_EQ(bools->elems[0], 1);
    EXPECT_EQ(bools->elems[1], 0);
    EXPECT_EQ(bools->elems[2], 1);
    EXPECT_EQ(f->find("a.empty")->count, 0u);
    EXPECT_TRUE(f->get_int_array("a.empty").empty());

    ASSERT_EQ(f->tensors().size(), 2u);
    const GgufTensor* h = f->find_tensor("t.f16");
    ASSERT_NE(h, nullptr);
    EXPECT_EQ(h->type, DType::F16);
    EXPECT_EQ(h->n_dims, 1);
    EXPECT_EQ(h->nbytes, 6u);
    uint16_t half;
    std::memcpy(&half, h->data + 4, 2);
    EXPECT_EQ(half, 0xc200);
    const GgufTensor* t = f->find_tensor("t.f32");
    ASSERT_NE(t, nullptr);
    EXPECT_EQ(t->shape_string(), "[4, 2]");
    EXPECT_EQ(t->n_elements(), 8);
    // Both tensors lie in one data section that starts aligned and ends at the end of the file.
    EXPECT_EQ(t->data - t->offset, h->data - h->offset);
    const size_t data_start = bytes.size() - (t->offset + t->nbytes);
    EXPECT_EQ(data_start % kGgufDefaultAlignment, 0u);
    EXPECT_EQ(std::memcmp(h->data, bytes.data() + data_start, h->nbytes), 0);
    float last;
    std::memcpy(&last, t->data + 28, 4);
    EXPECT_EQ(last, 3.5f);
}

TEST(Gguf, HugeUnsignedValuesAreNotWrapped) {
    Raw r;
    r.header(0, 2).key("big", GgufType::U64).u64(1ull << 63);
    r.array("bigs", GgufType::U64, 2).u64(5).u64(~0ull);
    const auto f = parse(r.b);
    EXPECT_EQ(f->get_uint("big"), 1ull << 63);
    EXPECT_EQ(f->get_float("big"), 9223372036854775808.0);
    try {
        f->get_int("big");
        ADD_FAILURE() << "no error";
    } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find("does not fit a signed 64-bit integer"),
                  std::string::npos)
            << e.what();
    }
    EXPECT_THROW(f->get_int_array("bigs"), Error);
}

TEST(Gguf, WriterRoundTripTensorsWithCustomAlignment) {
    for (uint32_t alignment : {32u, 64u, 256u}) {
        SCOPED_TRACE(alignment);
        struct Spec {
            const char* name;
            DType type;
            std::vector<int64_t> ne;
        };
        const std::vector<Spec> specs = {
            {"a.f32", DType::F32, {3, 5}},         {"b.f16", DType::F16, {7}},
            {"c.bf16", DType::BF16, {2, 3, 4, 5}}, {"d.q4_0", DType::Q4_0, {64, 3}},
            {"e.q8_0", DType::Q8_0, {32, 1, 2}},   {"f.q4_k", DType::Q4_K, {256, 2}},
            {"g.q6_k", DType::Q6_K, {512}},        {"h.q5_0", DType::Q5_0, {96, 1, 1, 2}},
        };
        GgufWriter w(alignment);
        w.set_string("general.architecture", "test");
        std::vector<std::vector<uint8_t>> payloads;
        for (size_t s = 0; s < specs.size(); ++s) {
            int64_t rows = 1;
            for (size_t d = 1; d < specs[s].ne.size(); ++d) rows *= specs[s].ne[d];
            std::vector<uint8_t> data(row_bytes(specs[s].type, specs[s].ne[0]) *
                                      static_cast<size_t>(rows));
            for (size_t i = 0; i < data.size(); ++i)
                data[i] = static_cast<uint8_t>(i * 31 + s * 7 + 1);
            w.add_tensor(specs[s].name, specs[s].type, specs[s].ne, data.data(), data.size());
            payloads.push_back(std::move(data));
        }
        const std::string path = test::temp_path(".gguf");
        w.write(path);
        const auto mem = w.to_bytes();
        for (const auto& f : {GgufFile::open(path), parse(mem)}) {
            EXPECT_EQ(f->alignment(), alignment);
            EXPECT_EQ(f->file_size(), mem.size());
            if (alignment != kGgufDefaultAlignment) {
                EXPECT_EQ(f->get_uint("general.alignment"), alignment);
            }
            EXPECT_EQ(f->get_string("general.architecture"), "test");
            ASSERT_EQ(f->tensors().size(), specs.size());
            for (size_t s = 0; s < specs.size(); ++s) {
                const GgufTensor& t = f->tensors()[s];
                EXPECT_EQ(t.name, specs[s].name);
                EXPECT_EQ(f->find_tensor(specs[s].name), &t);
                EXPECT_EQ(t.type, specs[s].type);
                EXPECT_EQ(t.n_dims, static_cast<int>(specs[s].ne.size()));
                for (int d = 0; d < 4; ++d) {
                    const int64_t want = d < t.n_dims ? specs[s].ne[static_cast<size_t>(d)] : 1;
                    EXPECT_EQ(t.ne[static_cast<size_t>(d)], want) << t.name << " dim " << d;
                }
                EXPECT_EQ(t.nbytes, payloads[s].size());
                EXPECT_EQ(t.offset % alignment, 0u);
                EXPECT_EQ(static_cast<size_t>(t.data - f->tensors()[0].data) % alignment, 0u);
                EXPECT_EQ(std::memcmp(t.data, payloads[s].data(), t.nbytes), 0) << t.name;
            }
        }
        // The mapping is page-aligned, so tensor data pointers are aligned in memory too.
        const auto mapped = GgufFile::open(path);
        for (const GgufTensor& t : mapped->tensors())
            EXPECT_EQ(reinterpret_cast<uintptr_t>(t.data) % alignment, 0u) << t.name;
        EXPECT_EQ(mapped->path(), path);
    }
}

// Resident kilobytes of this process's mapping that holds p (/proc/self/smaps), -1 if none.
long mapping_rss_kb(const void* p) {
    std::ifstream smaps("/proc/self/smaps");
    std::string line;
    bool inside = false;
    const auto at = reinterpret_cast<uintptr_t>(p);
    while (std::getline(smaps, line)) {
        uintptr_t lo = 0, hi = 0;
        if (std::sscanf(line.c_str(), "%lx-%lx ", &lo, &hi) == 2 && line.find(':') > 8) {
            inside = lo <= at && at < hi;
        } else if (inside && line.rfind("Rss:", 0) == 0) {
            return std::stol(line.substr(4));
        }
    }
    return -1;
}

TEST(Gguf, PopulateMapsEveryPage) {
    GgufWriter w;
    w.set_string("general.architecture", "test");
    std::vector<uint8_t> data(size_t{32} << 20, 7);
    w.add_tensor("big", DType::F32, {static_cast<int64_t>(data.size() / 4)}, data.data(),
                 data.size());
    const std::string path = test::temp_path(".gguf");
    w.write(path);
    const auto f = GgufFile::open(path);
    const void* tensor = f->tensors()[0].data;
    // Reading the header maps its first pages only (with the kernel's fault-around and large
    // page-cache folios, up to a few MiB).
    const long before = mapping_rss_kb(tensor);
    ASSERT_GE(before, 0);
    EXPECT_LT(before, static_cast<long>(f->file_size() / 1024 / 2));
    f->populate();
    EXPECT_GE(mapping_rss_kb(tensor), static_cast<long>(f->file_size() / 1024) - 4);
}

TEST(Gguf, VersionTwoIsAccepted) {
    auto bytes = one_tensor_file();
    bytes[4] = 2;
    EXPECT_EQ(parse(bytes)->version(), 2u);
}

TEST(Gguf, WriterRejectsBadTensors) {
    GgufWriter w;
    const std::vector<uint8_t> data(1024);
    EXPECT_THROW(w.add_tensor("x", DType::F32, {}, data.data(), 0), Error);
    EXPECT_THROW(w.add_tensor("x", DType::F32, {1, 1, 1, 1, 1}, data.data(), 4), Error);
    EXPECT_THROW(w.add_tensor("x", DType::Q4_0, {33}, data.data(), 18), Error);
    EXPECT_THROW(w.add_tensor("x", DType::F32, {4}, data.data(), 15), Error);
    EXPECT_THROW(w.write("/nonexistent-dir/x.gguf"), Error);
}

// ---------------------------------------------------------------------------------------------
// Real files

std::vector<std::string> shared_ggufs(const std::string& dir) {
    std::vector<std::string> out;
    for (const auto& e : std::filesystem::directory_iterator(test::shared_path(dir)))
        if (e.path().extension() == ".gguf") out.push_back(e.path().string());
    std::sort(out.begin(), out.end());
    return out;
}

// Checks that hold for every well-formed model or vocab file.
void check_sane(const GgufFile& f) {
    EXPECT_EQ(f.version(), 3u);
    const auto arch = f.get_string("general.architecture");
    ASSERT_TRUE(arch.has_value());
    EXPECT_FALSE(arch->empty());
    const auto tokens = f.get_string_array("tokenizer.ggml.tokens");
    EXPECT_GT(tokens.size(), 100u);
    EXPECT_TRUE(f.get_string("tokenizer.ggml.model").has_value());
    for (const GgufTensor& t : f.tensors()) {
        EXPECT_FALSE(t.name.empty());
        EXPECT_GE(t.n_dims, 1);
        EXPECT_LE(t.n_dims, 4);
        const size_t rows = static_cast<size_t>(t.n_elements() / t.ne[0]);
        EXPECT_EQ(t.nbytes, row_bytes(t.type, t.ne[0]) * rows) << t.name;
        EXPECT_EQ(t.offset % f.alignment(), 0u);
        EXPECT_LE(t.offset + t.nbytes, f.file_size());
        EXPECT_EQ(f.find_tensor(t.name), &t);
    }
}

TEST(Gguf, ReadsTrainedModel) {
    const auto f = GgufFile::open(test::shared_path("models/aidreams260K.gguf"));
    check_sane(*f);
    EXPECT_EQ(f->get_string("general.architecture"), "llama");
    EXPECT_EQ(f->metadata().size(), 19u);
    EXPECT_EQ(f->tensors().size(), 39u);  // 4 layers x 9 + embeddings, output norm, output
    EXPECT_EQ(f->get_uint("llama.block_count"), 4u);
    EXPECT_EQ(f->get_uint("llama.embedding_length"), 64u);
    EXPECT_EQ(f->get_string_array("tokenizer.ggml.tokens").size(), 512u);
    EXPECT_EQ(f->get_float_array("tokenizer.ggml.scores").size(), 512u);
    EXPECT_EQ(f->get_int_array("tokenizer.ggml.token_type").size(), 512u);
    const GgufTensor* emb = f->find_tensor("token_embd.weight");
    ASSERT_NE(emb, nullptr);
    EXPECT_EQ(emb->type, DType::F32);
    EXPECT_EQ(emb->shape_string(), "[64, 512]");
    // Trained weights: finite, not all zero.
    const auto* w = reinterpret_cast<const float*>(emb->data);
    double sum_sq = 0;
    for (int64_t i = 0; i < emb->n_elements(); ++i) {
        ASSERT_TRUE(std::isfinite(w[i]));
        sum_sq += static_cast<double>(w[i]) * w[i];
    }
    EXPECT_GT(sum_sq, 1.0);
    int64_t blocks = 0;
    for (const GgufTensor& t : f->tensors()) blocks += t.name.rfind("blk.", 0) == 0;
    EXPECT_EQ(blocks, 36);
}

TEST(Gguf, ReadsReferenceModels) {
    const auto files = shared_ggufs("models/ref");
    ASSERT_GE(files.size(), 14u);
    for (const std::string& path : files) {
        SCOPED_TRACE(path);
        const auto f = GgufFile::open(path);
        check_sane(*f);
        const std::string arch(*f->get_string("general.architecture"));
        EXPECT_TRUE(arch == "llama" || arch == "qwen2") << arch;
        EXPECT_EQ(f->get_uint(arch + ".block_count"), 2u);
        EXPECT_EQ(f->get_uint(arch + ".embedding_length"), 256u);
        const size_t n_vocab = f->get_string_array("tokenizer.ggml.tokens").size();
        const GgufTensor* emb = f->find_tensor("token_embd.weight");
        ASSERT_NE(emb, nullptr);
        EXPECT_EQ(emb->ne[0], 256);
        EXPECT_EQ(emb->ne[1], static_cast<int64_t>(n_vocab));
        ASSERT_NE(f->find_tensor("blk.1.attn_q.weight"), nullptr);
        EXPECT_EQ(f->find_tensor("blk.1.attn_q.weight")->ne[0], 256);
        // 2 layers x 9 (+3 biases for qwen2), embeddings, output norm and an untied output.
        const size_t per_layer = arch == "qwen2" ? 12 : 9;
        const size_t untied = f->find_tensor("output.weight") != nullptr ? 1 : 0;
        EXPECT_EQ(f->tensors().size(), 2 * per_layer + 2 + untied);
    }
}

TEST(Gguf, ReadsVocabFiles) {
    const auto files = shared_ggufs("models/vocab");
    ASSERT_GE(files.size(), 5u);
    for (const std::string& path : files) {
        SCOPED_TRACE(path);
        const auto f = GgufFile::open(path);
        check_sane(*f);
        EXPECT_TRUE(f->tensors().empty());
    }
    const auto qwen = GgufFile::open(test::shared_path("models/vocab/ggml-vocab-qwen2.gguf"));
    EXPECT_EQ(qwen->get_string_array("tokenizer.ggml.tokens").size(), 151669u);
    EXPECT_EQ(qwen->get_string_array("tokenizer.ggml.merges").size(), 151387u);
    EXPECT_EQ(qwen->get_string("tokenizer.ggml.model"), "gpt2");
    const auto llama3 = GgufFile::open(test::shared_path("models/vocab/ggml-vocab-llama-bpe.gguf"));
    EXPECT_EQ(llama3->get_string_array("tokenizer.ggml.tokens").size(), 128256u);
    EXPECT_EQ(llama3->get_string_array("tokenizer.ggml.merges").size(), 280147u);
}

}  // namespace
}  // namespace mllm
