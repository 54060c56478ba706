// Hand-built GGUF files for the reader's tests (files with every metadata type, a minimal one) and
// the checks on parse errors.
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <fstream>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/error.h"
#include "core/gguf/gguf_reader.h"
#include "tests/support/gguf_raw.h"
#include "tests/support/test_env.h"

namespace mllm::test {

inline std::shared_ptr<const GgufFile> parse(const std::vector<uint8_t>& bytes) {
    return GgufFile::parse(bytes.data(), bytes.size(), "hostile.gguf");
}

// Parsing must fail with mllm::Error whose message names the file and contains `needle`.
inline void expect_error(const std::vector<uint8_t>& bytes, const std::string& needle) {
    try {
        parse(bytes);
        ADD_FAILURE() << "parsed without error; expected a message containing '" << needle << "'";
    } catch (const Error& e) {
        const std::string msg = e.what();
        EXPECT_NE(msg.find(needle), std::string::npos) << "message: " << msg;
        EXPECT_EQ(msg.rfind("hostile.gguf", 0), 0u) << "message does not name the file: " << msg;
    }
}

inline std::string open_error(const std::string& path) {
    try {
        GgufFile::open(path);
    } catch (const Error& e) {
        return e.what();
    }
    ADD_FAILURE() << "opened " << path << " without error";
    return {};
}

inline std::string write_temp(const std::vector<uint8_t>& bytes) {
    const std::string path = temp_path(".gguf");
    std::ofstream(path, std::ios::binary)
        .write(reinterpret_cast<const char*>(bytes.data()),
               static_cast<std::streamsize>(bytes.size()));
    return path;
}

// A file with one value of every metadata type, an array of every element type and two tensors,
// the last of which ends exactly at the end of the file (no trailing padding), so that every
// strict prefix of it is invalid.
inline std::vector<uint8_t> every_type_file() {
    Raw r;
    r.header(2, 26);
    r.key("u8", GgufType::U8).put<uint8_t>(200);
    r.key("i8", GgufType::I8).put<int8_t>(-100);
    r.key("u16", GgufType::U16).put<uint16_t>(60000);
    r.key("i16", GgufType::I16).put<int16_t>(-30000);
    r.key("u32", GgufType::U32).put<uint32_t>(4000000000u);
    r.key("i32", GgufType::I32).put<int32_t>(-2000000000);
    r.key("u64", GgufType::U64).put<uint64_t>(0xFFFFFFFFFFFFFFF0ull);
    r.key("i64", GgufType::I64).put<int64_t>(-5000000000ll);
    r.key("f32", GgufType::F32).put<float>(1.5f);
    r.key("f64", GgufType::F64).put<double>(-2.25);
    r.key("bool", GgufType::BOOL).put<uint8_t>(1);
    r.key("string", GgufType::STRING).str("h\xc3\xa9llo");
    r.key("empty_string", GgufType::STRING).str("");
    r.array("a.u8", GgufType::U8, 3).put<uint8_t>(1).put<uint8_t>(2).put<uint8_t>(255);
    r.array("a.i8", GgufType::I8, 2).put<int8_t>(-1).put<int8_t>(7);
    r.array("a.u16", GgufType::U16, 2).put<uint16_t>(65535).put<uint16_t>(0);
    r.array("a.i16", GgufType::I16, 1).put<int16_t>(-32768);
    r.array("a.u32", GgufType::U32, 2).put<uint32_t>(4294967295u).put<uint32_t>(1);
    r.array("a.i32", GgufType::I32, 3).put<int32_t>(-1).put<int32_t>(0).put<int32_t>(1);
    r.array("a.u64", GgufType::U64, 1).put<uint64_t>(1ull << 40);
    r.array("a.i64", GgufType::I64, 2).put<int64_t>(-(1ll << 40)).put<int64_t>(3);
    r.array("a.f32", GgufType::F32, 2).put<float>(0.25f).put<float>(-8.0f);
    r.array("a.f64", GgufType::F64, 2).put<double>(1e300).put<double>(-0.5);
    r.array("a.bool", GgufType::BOOL, 3).put<uint8_t>(1).put<uint8_t>(0).put<uint8_t>(1);
    r.array("a.string", GgufType::STRING, 3).str("one").str("").str("three");
    r.array("a.empty", GgufType::I32, 0);
    r.tensor("t.f16", {3}, static_cast<uint32_t>(DType::F16), 0);
    r.tensor("t.f32", {4, 2}, static_cast<uint32_t>(DType::F32), 32);
    r.pad(kGgufDefaultAlignment);
    r.put<uint16_t>(0x3c00).put<uint16_t>(0x4000).put<uint16_t>(0xc200).zeros(26);
    for (int i = 0; i < 8; ++i) r.put<float>(static_cast<float>(i) * 0.5f);
    return r.b;
}

// A minimal valid file: `meta` bytes of key/values (n_kv of them) and one f32 tensor [8].
inline std::vector<uint8_t> one_tensor_file(uint64_t n_kv = 0,
                                            const std::vector<uint8_t>& meta = {}) {
    Raw r;
    r.header(1, n_kv);
    r.b.insert(r.b.end(), meta.begin(), meta.end());
    r.tensor("w", {8}, 0, 0).pad(32).zeros(32);
    return r.b;
}

}  // namespace mllm::test
