#pragma once
// A GoogleTest fixture for tests of the Vulkan backend's pieces: one Context for the whole suite
// (on the device MLLM_VK_DEVICE selects), host <-> device copies, and running what a test
// records. Without a device every test skips with the reason, or fails on CI (CI=true).
#ifdef MLLM_HAVE_VULKAN

#include <gtest/gtest.h>

#include <algorithm>
#include <memory>
#include <string>
#include <vector>

#include "backends/vulkan/vk_context.h"
#include "core/error.h"
#include "tests/support/vulkan_skip.h"

namespace mllm::test {

class VulkanContextTest : public ::testing::Test {
  protected:
    static void SetUpTestSuite() {
        try {
            ctx_ = vk::Context::open();
        } catch (const Error& e) {
            error_ = e.what();
        }
    }
    static void TearDownTestSuite() { ctx_.reset(); }
    void SetUp() override {
        if (!ctx_) MLLM_NO_VULKAN_DEVICE(error_);
    }

    vk::Context& ctx() { return *ctx_; }

    vk::Allocation upload(const void* data, size_t bytes) {
        vk::Allocation a = ctx().memory().allocate(bytes);
        ctx().write(a, 0, data, bytes);
        return a;
    }
    template <typename T>
    vk::Allocation upload(const std::vector<T>& v) {
        return upload(v.data(), v.size() * sizeof(T));
    }
    std::vector<float> download(const vk::Allocation& a, size_t count, size_t offset_floats = 0) {
        std::vector<float> out(count);
        ctx().read(a, offset_floats * sizeof(float), out.data(), count * sizeof(float));
        return out;
    }
    // What a binding needs beyond its payload: the offset aligned down, rounding to words.
    uint64_t slack() {
        return std::max<uint64_t>(ctx().props().min_storage_buffer_offset_alignment, 4) + 4;
    }
    // Records `record` into a fresh sequence, runs it, and returns its dispatch count.
    template <typename F>
    size_t run(F&& record) {
        vk::Sequence seq(ctx().device());
        seq.begin();
        record(seq);
        seq.end();
        seq.run();
        return seq.dispatches();
    }

    static inline std::unique_ptr<vk::Context> ctx_;
    static inline std::string error_;
};

}  // namespace mllm::test

#endif  // MLLM_HAVE_VULKAN
