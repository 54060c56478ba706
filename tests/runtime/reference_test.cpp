// The runtime against llama.cpp's own numbers on ../shared/models/ref (reference.json): prompt
// tokenization, top logits after the prompt, greedy continuation and perplexity, on every file
// and every backend (Vulkan on whatever device MLLM_VK_DEVICE selects; lavapipe on CI).
// Tolerances are the reference pack's (its README), never wider.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <tuple>

#include "core/error.h"
#include "runtime/generate.h"
#include "runtime/perplexity.h"
#include "runtime/session.h"
#include "tests/support/test_env.h"
#include "tests/support/vulkan_skip.h"

namespace mllm {
namespace {

nlohmann::json reference() {
    std::ifstream in(test::shared_path("models/ref/reference.json"));
    return nlohmann::json::parse(in);
}

std::string read_file(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    std::ostringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

bool is_float_file(const std::string& name) {
    for (const char* t : {".f32.", ".f16.", ".bf16.", ".q8_0."})
        if (name.find(t) != std::string::npos) return true;
    return name.find("aidreams") != std::string::npos;
}

// (file, backend): every file on every backend built here.
class ReferenceTest : public ::testing::TestWithParam<std::tuple<std::string, std::string>> {};

TEST_P(ReferenceTest, MatchesLlamaCpp) {
    const auto& [name, backend] = GetParam();
    const nlohmann::json ref = reference();
    const nlohmann::json& want = ref["models"][name];
    const std::string prompt = want.contains("prompt") ? want["prompt"].get<std::string>()
                                                       : ref["prompt"].get<std::string>();
    auto model = load_model(test::shared_path("models/ref/" + name));
    SessionOptions so;
    so.backend = backend;
    std::unique_ptr<Session> owned;
    try {
        owned = std::make_unique<Session>(model, so);
    } catch (const Error& e) {
        if (backend == "cpu") throw;
        MLLM_NO_VULKAN_DEVICE(e.what());
    }
    Session& session = *owned;

    // Tokenization: identical ids.
    const std::vector<int32_t> tokens = model->tokenizer->encode(prompt, true, true);
    EXPECT_EQ(tokens, want["prompt_tokens"].get<std::vector<int32_t>>());

    // Top logits: each listed id within 0.02 (float files) or 0.25 (quantized) of llama.cpp.
    const std::span<const float> logits = session.eval(tokens);
    const double tol =
        (name.find(".f32.") != std::string::npos || name.find(".f16.") != std::string::npos ||
         name.find(".bf16.") != std::string::npos || name.find("aidreams") != std::string::npos)
            ? 0.02
            : 0.25;
    for (const auto& pair : want["top_logits_after_prompt"]) {
        const int id = pair[0].get<int>();
        EXPECT_NEAR(logits[static_cast<size_t>(id)], pair[1].get<double>(), tol) << "token " << id;
    }

    // Greedy continuation: identical for float files; the first token for the others.
    session.reset();
    SamplerParams greedy;
    greedy.temperature = 0;
    Sampler sampler(greedy);
    GenerateOptions go;
    const auto expected = want["greedy_tokens"].get<std::vector<int32_t>>();
    go.n_predict = static_cast<int>(expected.size());
    GenerateResult r = generate(session, sampler, tokens, go);
    std::vector<int32_t> got = r.tokens;
    if (r.stopped_at_eog) got.push_back(expected.back());  // the end token itself is not returned
    if (is_float_file(name)) {
        EXPECT_EQ(got, expected);
    } else {
        ASSERT_FALSE(got.empty());
        EXPECT_EQ(got[0], expected[0]);
    }

    // Perplexity within 1% (llama-perplexity -c 128 --chunks 4).
    SessionOptions po;
    po.backend = backend;
    po.n_ctx = 128;
    po.n_batch = 128;
    Session ppl_session(model, po);
    const PerplexityResult p =
        perplexity(ppl_session, read_file(test::shared_path("models/ref/text.txt")), 4);
    EXPECT_NEAR(p.perplexity / want["perplexity"].get<double>(), 1.0, 0.01)
        << "ours " << p.perplexity;
}

std::vector<std::string> reference_files() {
    std::vector<std::string> names;
    const nlohmann::json ref = reference();  // outlives the loop (items() only refers to it)
    for (const auto& [name, value] : ref["models"].items()) names.push_back(name);
    return names;
}

std::vector<std::string> backends() {
#ifdef MLLM_HAVE_VULKAN
    return {"cpu", "vulkan"};
#else
    return {"cpu"};
#endif
}

INSTANTIATE_TEST_SUITE_P(AllFiles, ReferenceTest,
                         ::testing::Combine(::testing::ValuesIn(reference_files()),
                                            ::testing::ValuesIn(backends())),
                         [](const ::testing::TestParamInfo<ReferenceTest::ParamType>& param) {
                             std::string s =
                                 std::get<0>(param.param) + "_" + std::get<1>(param.param);
                             for (char& c : s)
                                 if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
                             return s;
                         });

}  // namespace
}  // namespace mllm
