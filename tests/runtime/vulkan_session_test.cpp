// The Vulkan backend end to end, against the CPU backend: greedy text of the trained model,
// logits and perplexity of random-weight models with real head layouts, prefill-then-decode
// consistency, and graphs split between the GPU and the CPU fallback.
//
// Runs on whatever device MLLM_VK_DEVICE selects (lavapipe on CI). Without a Vulkan device the
// tests are skipped with the reason, except when CI=true: there a missing device fails.
#ifdef MLLM_HAVE_VULKAN

#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "core/error.h"
#include "runtime/perplexity.h"
#include "runtime/session.h"
#include "tests/support/compare.h"
#include "tests/support/random_model.h"
#include "tests/support/test_env.h"
#include "tests/support/vulkan_skip.h"

namespace mllm {
namespace {

// A Vulkan session, or the reason there is none.
std::unique_ptr<Session> vulkan_session(std::shared_ptr<const Model> model, SessionOptions o,
                                        std::string& why) {
    o.backend = "vulkan";
    try {
        return std::make_unique<Session>(std::move(model), o);
    } catch (const Error& e) {
        why = e.what();
        return nullptr;
    }
}

#define MLLM_VULKAN_SESSION(var, model, options)          \
    std::string var##_why;                                \
    auto var = vulkan_session(model, options, var##_why); \
    if (!var) MLLM_NO_VULKAN_DEVICE(var##_why)

int32_t argmax(std::span<const float> logits) {
    return static_cast<int32_t>(std::max_element(logits.begin(), logits.end()) - logits.begin());
}

using test::max_abs_diff;
using test::rms;

// Greedy tokens from BOS.
std::vector<int32_t> greedy(Session& s, int n) {
    std::vector<int32_t> out = {s.model().tokenizer->bos_id()};
    for (int i = 0; i < n; ++i) out.push_back(argmax(s.eval(std::span(out).last(1))));
    return out;
}

TEST(VulkanSession, TrainedModelGreedyTextEqualsCpu) {
    auto model = load_model(test::shared_path("models/aidreams260K.gguf"));
    SessionOptions o;
    Session cpu(model, o);
    MLLM_VULKAN_SESSION(gpu, model, o);
    EXPECT_EQ(gpu->device().name, "vulkan");
    EXPECT_EQ(greedy(*gpu, 60), greedy(cpu, 60));
}

// Greedy tokens picked on the device (eval_greedy: one id read back per step) are the argmax of
// the logits, on the CPU backend and on the GPU, whose step ends in the argmax kernel.
TEST(VulkanSession, GreedyPickedOnTheDeviceIsTheLogitsArgmax) {
    auto model = load_model(test::shared_path("models/aidreams260K.gguf"));
    SessionOptions o;
    Session cpu(model, o);
    MLLM_VULKAN_SESSION(gpu, model, o);
    const std::vector<int32_t> want = greedy(cpu, 40);
    for (Session* s : {&cpu, gpu.get()}) {
        s->reset();
        std::vector<int32_t> got = {s->model().tokenizer->bos_id()};
        for (int i = 0; i < 40; ++i) got.push_back(s->eval_greedy(std::span(got).last(1)));
        EXPECT_EQ(got, want) << s->device().name;
    }
    // A prompt of several tokens in one step, then decode.
    gpu->reset();
    cpu.reset();
    const std::vector<int32_t> prompt(want.begin(), want.begin() + 9);
    EXPECT_EQ(gpu->eval_greedy(prompt), want[9]);
    EXPECT_EQ(argmax(cpu.eval(prompt)), want[9]);
    const std::string dot = gpu->dump_graph(1, false, true);
    EXPECT_NE(dot.find("argmax 1x1 i32\\non vulkan"), std::string::npos) << dot;
}

struct ShapeCase {
    const char* name;
    test::ModelShape shape;
};

class VulkanShapes : public ::testing::TestWithParam<ShapeCase> {};

// Every node on the GPU, and its logits those of the CPU, for prefill and decode.
TEST_P(VulkanShapes, LogitsMatchCpuAndDecodeMatchesPrefill) {
    const std::string path = test::temp_path(".gguf");
    test::write_random_model(path, test::ci_sized(GetParam().shape), DType::F32, DType::F32);
    auto model = load_model(path);
    const std::vector<int32_t> tokens = {1, 300, 301, 302, 303, 400, 500, 600, 700, 800, 900};
    const size_t vocab = static_cast<size_t>(model->config.n_vocab);
    SessionOptions o;
    o.n_ctx = 64;
    Session cpu(model, o);
    const auto c = cpu.eval(tokens, true);
    const std::vector<float> want(c.begin(), c.end());

    MLLM_VULKAN_SESSION(whole, model, o);
    EXPECT_EQ(whole->fallback_nodes(), 0);
    const auto w = whole->eval(tokens, true);
    EXPECT_LT(max_abs_diff(w, want), 2e-3 * std::max(1.0, rms(want)));

    MLLM_VULKAN_SESSION(parts, model, o);
    const size_t split = 4;
    parts->eval(std::span(tokens).first(split));
    for (size_t i = split; i < tokens.size(); ++i) {
        const auto step = parts->eval(std::span(tokens).subspan(i, 1));
        const auto ref = std::span(want).subspan(i * vocab, vocab);
        EXPECT_LT(max_abs_diff(step, ref), 2e-3 * std::max(1.0, rms(ref))) << "token " << i;
    }
}

INSTANTIATE_TEST_SUITE_P(RealShapes, VulkanShapes,
                         ::testing::Values(ShapeCase{"SmolLM2_135M", test::smollm2_135m()},
                                           ShapeCase{"Qwen25_05B", test::qwen25_05b()},
                                           ShapeCase{"TinyLlama_11B", test::tinyllama_11b()}),
                         [](const ::testing::TestParamInfo<ShapeCase>& param) {
                             return std::string(param.param.name);
                         });

// The acceptance test: SmolLM2-135M-shaped Q4_0 and Q8_0 files (layers shrunk for CI),
// perplexity within 1% of the CPU backend's.
class VulkanPerplexity : public ::testing::TestWithParam<DType> {};

TEST_P(VulkanPerplexity, WithinOnePercentOfCpu) {
    test::ModelShape shape = test::smollm2_135m();
    shape.n_layer = 4;
    const std::string path = test::temp_path(".gguf");
    test::write_random_model(path, shape, GetParam(), GetParam());
    auto model = load_model(path);
    std::string text;
    for (int i = 0; i < 40; ++i)
        text += "The quick brown fox jumps over the lazy dog " + std::to_string(i) + ". ";
    SessionOptions o;
    o.n_ctx = 64;
    o.n_batch = 64;
    Session cpu(model, o);
    const PerplexityResult want = perplexity(cpu, text, 2);
    MLLM_VULKAN_SESSION(gpu, model, o);
    const PerplexityResult got = perplexity(*gpu, text, 2);
    EXPECT_EQ(got.scored_tokens, want.scored_tokens);
    EXPECT_NEAR(got.perplexity / want.perplexity, 1.0, 0.01)
        << "vulkan " << got.perplexity << ", cpu " << want.perplexity;
}

INSTANTIATE_TEST_SUITE_P(SmolLM2Shape, VulkanPerplexity,
                         ::testing::Values(DType::Q4_0, DType::Q8_0),
                         [](const ::testing::TestParamInfo<DType>& param) {
                             return std::string(dtype_name(param.param));
                         });

// Nodes the GPU refuses run on the CPU, with the tensors copied across: the answer stays the
// CPU's.
TEST(VulkanSession, RefusedOpsFallBackToTheCpu) {
    const std::string path = test::temp_path(".gguf");
    test::write_random_model(path, test::ci_sized(test::qwen25_05b()), DType::Q8_0, DType::Q8_0);
    auto model = load_model(path);
    const std::vector<int32_t> tokens = {1, 300, 301, 302, 303, 400};
    SessionOptions o;
    o.n_ctx = 32;
    Session cpu(model, o);
    std::vector<float> want;
    for (size_t i = 0; i < tokens.size(); ++i) {
        const auto l = cpu.eval(std::span(tokens).subspan(i, 1));
        want.insert(want.end(), l.begin(), l.end());
    }
    ::setenv("MLLM_VK_DISABLE", "attention,rms_norm_mul", 1);
    std::string why;
    auto gpu = vulkan_session(model, o, why);
    ::unsetenv("MLLM_VK_DISABLE");
    if (!gpu) MLLM_NO_VULKAN_DEVICE(why);
    // Attention takes its KV store along; the norms go too.
    EXPECT_GE(gpu->fallback_nodes(), 3 * 2 + 1);
    const size_t vocab = static_cast<size_t>(model->config.n_vocab);
    size_t same = 0;
    for (size_t i = 0; i < tokens.size(); ++i) {
        const auto l = gpu->eval(std::span(tokens).subspan(i, 1));
        const auto ref = std::span(want).subspan(i * vocab, vocab);
        std::vector<float> diff(vocab);
        for (size_t j = 0; j < vocab; ++j) diff[j] = l[j] - ref[j];
        // Both backends round activations to the same 8-bit blocks and differ only in
        // summation order, which now and then moves one activation to the next level: most
        // tokens agree to float rounding, none by much less.
        const double relative = rms(diff) / rms(ref);
        std::printf("token %zu: relative RMS difference %.6f\n", i, relative);
        same += relative < 1e-4 ? 1 : 0;
        EXPECT_LT(relative, 0.02) << "token " << i;
        EXPECT_EQ(argmax(l), argmax(ref)) << "token " << i;
    }
    EXPECT_GE(2 * same, tokens.size());
    const std::string dot = gpu->dump_graph(1);
    EXPECT_NE(dot.find("on cpu"), std::string::npos);
    EXPECT_NE(dot.find("on vulkan"), std::string::npos);
}

}  // namespace
}  // namespace mllm

#endif  // MLLM_HAVE_VULKAN
