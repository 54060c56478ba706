// The GGUF reader against hostile files: every validation check with its message, truncation
// at every offset, every byte corrupted, and paths that are not GGUF files.
#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <filesystem>
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
using test::expect_error;
using test::one_tensor_file;
using test::open_error;
using test::parse;
using test::Raw;
using test::write_temp;

// ---------------------------------------------------------------------------------------------
// Hostile files: every validation check, each with its message.

TEST(GgufHostile, BadMagic) {
    auto bytes = one_tensor_file();
    bytes[3] = 'X';
    expect_error(bytes, "bad magic");
    expect_error({'G', 'G', 'M', 'L', 1, 0, 0, 0}, "not a GGUF file");
    expect_error({'G', 'G'}, "bad magic");
    expect_error({}, "bad magic");
    EXPECT_THROW(GgufFile::parse(nullptr, 0), Error);
}

TEST(GgufHostile, UnsupportedVersion) {
    for (uint32_t v : {0u, 1u, 4u, 0xFFFFFFFFu}) {
        auto bytes = one_tensor_file();
        std::memcpy(bytes.data() + 4, &v, 4);
        expect_error(bytes, "unsupported GGUF version " + std::to_string(v));
    }
}

TEST(GgufHostile, CountsLargerThanTheFile) {
    expect_error(Raw().header(1000000, 0).zeros(64).b, "tensor count 1000000 cannot fit");
    expect_error(Raw().header(~0ull, 0).b, "tensor count");
    expect_error(Raw().header(0, 1000000).zeros(64).b, "metadata count 1000000 cannot fit");
    expect_error(Raw().header(0, ~0ull).b, "metadata count");
    // Within the coarse bound but still more entries than there are bytes for.
    expect_error(Raw().header(0, 2).key("a", GgufType::STRING).str(std::string(20, 'x')).zeros(1).b,
                 "truncated GGUF: metadata key needs 8 bytes");
}

TEST(GgufHostile, StringLengthPastEnd) {
    // Key length past the end.
    expect_error(Raw().header(0, 1).u64(1000).zeros(20).b, "metadata key claims 1000 bytes");
    expect_error(Raw().header(0, 1).u64(~0ull).zeros(20).b, "metadata key claims");
    // String value past the end.
    expect_error(Raw().header(0, 1).key("k", GgufType::STRING).u64(500).zeros(8).b,
                 "metadata string claims 500 bytes");
    // String array element past the end.
    expect_error(
        Raw().header(0, 1).array("k", GgufType::STRING, 2).str("ok").u64(1ull << 62).zeros(4).b,
        "array string claims");
    // Tensor name past the end.
    expect_error(Raw().header(1, 0).u64(300).zeros(40).b, "tensor name claims 300 bytes");
}

TEST(GgufHostile, UnknownValueType) {
    expect_error(Raw().header(0, 1).str("k").u32(13).zeros(16).b, "'k' has unknown value type 13");
    expect_error(Raw().header(0, 1).str("k").u32(0xFFFFFFFFu).zeros(16).b,
                 "unknown value type 4294967295");
}

TEST(GgufHostile, UnknownArrayElementType) {
    expect_error(Raw().header(0, 1).key("k", GgufType::ARRAY).u32(13).u64(1).zeros(8).b,
                 "array 'k' has unknown element type 13");
}

TEST(GgufHostile, NestedArray) {
    expect_error(Raw().header(0, 1).array("k", GgufType::ARRAY, 1).u32(4).u64(1).u32(7).b,
                 "nested array in 'k'");
}

TEST(GgufHostile, ArrayCountPastEnd) {
    expect_error(Raw().header(0, 1).array("k", GgufType::U32, 1000).zeros(16).b,
                 "claims 1000 elements");
    expect_error(Raw().header(0, 1).array("k", GgufType::U64, ~0ull).zeros(16).b,
                 "elements, more than");
    // count * 8 wraps to a small number: must still be caught.
    expect_error(Raw().header(0, 1).array("k", GgufType::F64, (1ull << 61) + 1).zeros(16).b,
                 "elements");
    expect_error(Raw().header(0, 1).array("k", GgufType::STRING, 1ull << 40).zeros(16).b,
                 "strings, more than the file holds");
}

TEST(GgufHostile, DimensionCount) {
    expect_error(Raw().header(1, 0).tensor("w", {}, 0, 0).pad(32).zeros(32).b,
                 "'w' has 0 dimensions");
    expect_error(Raw().header(1, 0).tensor("w", {1, 1, 1, 1, 1}, 0, 0).pad(32).zeros(32).b,
                 "'w' has 5 dimensions");
    expect_error(Raw().header(1, 0).str("w").u32(0xFFFFFFFFu).zeros(64).b, "4294967295 dimensions");
}

TEST(GgufHostile, ZeroOrNegativeDimension) {
    expect_error(Raw().header(1, 0).tensor("w", {8, 0}, 0, 0).pad(32).zeros(32).b,
                 "'w' has invalid dimension 0");
    expect_error(Raw().header(1, 0).tensor("w", {1ull << 63}, 0, 0).pad(32).zeros(32).b,
                 "invalid dimension");
}

TEST(GgufHostile, ElementCountOverflow) {
    expect_error(Raw().header(1, 0).tensor("w", {1ull << 32, 1ull << 32}, 0, 0).pad(32).zeros(32).b,
                 "'w' element count overflows");
    expect_error(Raw().header(1, 0).tensor("w", {3, 1ull << 62}, 0, 0).pad(32).zeros(32).b,
                 "element count overflows");
}

TEST(GgufHostile, ByteSizeOverflow) {
    // 2^62 f32 elements: the element count fits int64, the byte size (2^64) does not.
    expect_error(Raw().header(1, 0).tensor("w", {1ull << 31, 1ull << 31}, 0, 0).pad(32).zeros(32).b,
                 "'w' byte size overflows");
    // The same overflow inside one row (used to wrap to a 0-byte tensor and pass).
    expect_error(Raw().header(1, 0).tensor("w", {1ull << 62}, 0, 0).pad(32).zeros(32).b,
                 "byte size overflows");
    expect_error(Raw().header(1, 0).tensor("w", {1ull << 62, 1}, 0, 0).pad(32).zeros(32).b,
                 "byte size overflows");
    // f64 and i64: 8 bytes per element.
    expect_error(Raw().header(1, 0).tensor("w", {1ull << 61}, 28, 0).pad(32).zeros(32).b,
                 "byte size overflows");
    expect_error(
        Raw().header(1, 0).tensor("w", {1ull << 30, 1ull << 32}, 27, 0).pad(32).zeros(32).b,
        "byte size overflows");
    // Large but representable: reported as past the end instead.
    expect_error(Raw().header(1, 0).tensor("w", {1ull << 40}, 0, 0).pad(32).zeros(32).b,
                 "extends past the end");
}

TEST(GgufHostile, UnknownTensorType) {
    for (uint32_t type : {4u, 5u, 16u, 31u, 1000u, 0xFFFFFFFFu}) {
        expect_error(Raw().header(1, 0).tensor("w", {32}, type, 0).pad(32).zeros(256).b,
                     "'w' has unknown tensor type " + std::to_string(type));
    }
}

TEST(GgufHostile, RowLengthNotMultipleOfBlock) {
    expect_error(Raw().header(1, 0).tensor("w", {33, 2}, 2, 0).pad(32).zeros(256).b,
                 "row length 33, not a multiple of its block size 32");
    expect_error(Raw().header(1, 0).tensor("w", {128}, 12, 0).pad(32).zeros(256).b,
                 "not a multiple of its block size 256");
}

TEST(GgufHostile, OffsetNotAligned) {
    expect_error(Raw().header(1, 0).tensor("w", {8}, 0, 16).pad(32).zeros(64).b,
                 "'w' offset 16 is not aligned to 32");
    expect_error(Raw().header(1, 0).tensor("w", {8}, 0, 1).pad(32).zeros(64).b, "not aligned");
    // With a custom alignment the check follows general.alignment.
    Raw r;
    r.header(1, 1).key("general.alignment", GgufType::U32).u32(64);
    r.tensor("w", {8}, 0, 32).pad(64).zeros(128);
    expect_error(r.b, "offset 32 is not aligned to 64");
}

TEST(GgufHostile, TensorDataPastEnd) {
    expect_error(Raw().header(1, 0).tensor("w", {100}, 0, 0).pad(32).zeros(32).b,
                 "'w' (400 bytes at offset 0) extends past the end of the file");
    expect_error(Raw().header(1, 0).tensor("w", {8}, 0, 64).pad(32).zeros(64).b,
                 "extends past the end");
    expect_error(Raw().header(1, 0).tensor("w", {8}, 0, 1ull << 63).pad(32).zeros(32).b,
                 "extends past the end");
    expect_error(Raw().header(1, 0).tensor("w", {8}, 0, ~0ull - 31).pad(32).zeros(32).b,
                 "extends past the end");
    // No room even for the padding before the data section.
    auto r = Raw().header(1, 0).tensor("w", {8}, 0, 0);
    r.b.resize(r.b.size() + 1);
    expect_error(r.b, "data section starts past the end");
    // One byte short.
    auto bytes = one_tensor_file();
    bytes.pop_back();
    expect_error(bytes, "extends past the end");
}

TEST(GgufHostile, DuplicateTensorName) {
    expect_error(
        Raw().header(2, 0).tensor("w", {8}, 0, 0).tensor("w", {8}, 0, 32).pad(32).zeros(64).b,
        "duplicate tensor name 'w'");
}

TEST(GgufHostile, DuplicateKey) {
    Raw r;
    r.header(0, 3).key("a", GgufType::U8).put<uint8_t>(1);
    r.key("b", GgufType::U8).put<uint8_t>(2).key("a", GgufType::STRING).str("again");
    expect_error(r.b, "duplicate metadata key 'a'");
}

TEST(GgufHostile, BadAlignment) {
    auto with_alignment = [](auto write_value) {
        Raw meta;
        write_value(meta);
        return one_tensor_file(1, meta.b);
    };
    const std::string msg = "general.alignment must be a power of two";
    expect_error(with_alignment([](Raw& m) { m.key("general.alignment", GgufType::U32).u32(0); }),
                 msg);
    expect_error(with_alignment([](Raw& m) { m.key("general.alignment", GgufType::U32).u32(3); }),
                 msg);
    expect_error(with_alignment([](Raw& m) { m.key("general.alignment", GgufType::U32).u32(48); }),
                 msg);
    expect_error(
        with_alignment([](Raw& m) { m.key("general.alignment", GgufType::U32).u32(1u << 21); }),
        msg);
    expect_error(
        with_alignment([](Raw& m) { m.key("general.alignment", GgufType::I32).put<int32_t>(-32); }),
        msg);
    expect_error(
        with_alignment([](Raw& m) { m.key("general.alignment", GgufType::U64).u64(1ull << 32); }),
        msg);
    expect_error(
        with_alignment([](Raw& m) { m.key("general.alignment", GgufType::STRING).str("32"); }),
        msg);
    expect_error(
        with_alignment([](Raw& m) { m.key("general.alignment", GgufType::F32).put<float>(32.0f); }),
        msg);
    expect_error(
        with_alignment([](Raw& m) { m.key("general.alignment", GgufType::BOOL).put<uint8_t>(1); }),
        msg);
    expect_error(
        with_alignment([](Raw& m) { m.array("general.alignment", GgufType::U32, 1).u32(32); }),
        msg);
    // Valid non-default alignments are honoured, also in other integer types.
    const auto ok =
        with_alignment([](Raw& m) { m.key("general.alignment", GgufType::U8).put<uint8_t>(8); });
    EXPECT_EQ(parse(ok)->alignment(), 8u);
    const auto one =
        with_alignment([](Raw& m) { m.key("general.alignment", GgufType::U64).u64(1); });
    EXPECT_EQ(parse(one)->alignment(), 1u);
}

// Every strict prefix of a valid file is invalid and must fail with mllm::Error (never crash,
// never another exception type); the message always says GGUF and names the file.
void check_every_truncation(const std::vector<uint8_t>& full) {
    ASSERT_NO_THROW(parse(full));
    for (size_t len = 0; len < full.size(); ++len) {
        const std::vector<uint8_t> prefix(full.begin(), full.begin() + static_cast<ptrdiff_t>(len));
        try {
            parse(prefix);
            ADD_FAILURE() << "prefix of " << len << " bytes parsed";
        } catch (const Error& e) {
            const std::string msg = e.what();
            EXPECT_NE(msg.find("GGUF"), std::string::npos) << len << ": " << msg;
        } catch (const std::exception& e) {
            ADD_FAILURE() << "prefix of " << len
                          << " bytes threw a non-mllm exception: " << e.what();
        }
    }
}

TEST(GgufHostile, TruncationAtEveryOffset) {
    check_every_truncation(every_type_file());
    GgufWriter w(64);
    w.set_string("general.architecture", "llama");
    w.set_string_array("tokenizer.ggml.tokens", {"a", "bc", "def"});
    w.set_f32_array("tokenizer.ggml.scores", {0.0f, -1.0f, -2.0f});
    const std::vector<uint8_t> q(2 * 34, 1);
    w.add_tensor("q", DType::Q8_0, {32, 2}, q.data(), q.size());
    const std::vector<float> f(16, 1.0f);
    w.add_tensor("f", DType::F32, {16}, f.data(), f.size() * 4);  // 64 bytes: ends at the end
    check_every_truncation(w.to_bytes());
}

// Overwriting any single byte of a valid file either still parses or fails with mllm::Error.
TEST(GgufHostile, EveryByteCorrupted) {
    const auto full = every_type_file();
    for (size_t at = 0; at < full.size(); ++at) {
        for (uint8_t value : {uint8_t{0x00}, uint8_t{0x7f}, uint8_t{0xff}}) {
            auto bytes = full;
            bytes[at] = value;
            try {
                const auto f = parse(bytes);
                for (const GgufTensor& t : f->tensors())
                    ASSERT_LE(t.offset + t.nbytes, bytes.size());
            } catch (const Error&) {
            } catch (const std::exception& e) {
                ADD_FAILURE() << "byte " << at << " = " << int(value) << ": non-mllm exception "
                              << e.what();
            }
        }
    }
}

TEST(GgufHostile, EmptyFile) {
    const std::string path = write_temp({});
    const std::string msg = open_error(path);
    EXPECT_NE(msg.find("is empty"), std::string::npos) << msg;
    EXPECT_NE(msg.find(path), std::string::npos) << msg;
}

TEST(GgufHostile, NonexistentPath) {
    const std::string path = test::temp_path(".does-not-exist.gguf");
    const std::string msg = open_error(path);
    EXPECT_NE(msg.find("cannot open"), std::string::npos) << msg;
    EXPECT_NE(msg.find(path), std::string::npos) << msg;
    EXPECT_NE(msg.find("No such file"), std::string::npos) << msg;
}

TEST(GgufHostile, DirectoryPath) {
    const std::string dir = test::temp_path(".dir");
    std::filesystem::create_directory(dir);
    const std::string msg = open_error(dir);
    std::filesystem::remove(dir);
    EXPECT_NE(msg.find("not a readable regular file"), std::string::npos) << msg;
    EXPECT_NE(msg.find(dir), std::string::npos) << msg;
}

TEST(GgufHostile, OpenedFileErrorsNameThePath) {
    auto bytes = one_tensor_file();
    bytes[0] = 'X';
    const std::string path = write_temp(bytes);
    const std::string msg = open_error(path);
    EXPECT_EQ(msg.rfind(path + ": not a GGUF file", 0), 0u) << msg;
}

}  // namespace
}  // namespace mllm
