// The CLIs as a user runs them: golden output on the trained model, JSON shape, and a one-line
// error with a non-zero exit for every kind of bad input (never a crash or a hang).
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string_view>
#include <vector>

#include "core/gguf/gguf_writer.h"
#include "tests/support/random_model.h"
#include "tests/support/test_env.h"
#include "tests/support/vulkan_skip.h"

namespace mllm {
namespace {

struct RunResult {
    int status = -1;  // exit code, or 128 + signal
    std::string out;
    std::string err;
};

std::string quote(const std::string& s) {
    std::string q = "'";
    for (char c : s) {
        if (c == '\'') {
            q.append("'\\''");
        } else {
            q.push_back(c);
        }
    }
    q.push_back('\'');
    return q;
}

// `env`: assignments put before the command ("MLLM_VK_CORRUPT=matmul_f32").
RunResult run_tool(const std::string& tool, const std::vector<std::string>& args,
                   const std::string& env = "") {
    const std::string err_path = test::temp_path(".err");
    // Built with append() alone: GCC 12 warns falsely (-Wrestrict) on operator+ chains here.
    std::string cmd = env;
    cmd.append(" timeout 120 ");
    cmd.append(quote(test::build_dir() + "/tools/" + tool));
    for (const auto& a : args) cmd.append(" ").append(quote(a));
    cmd.append(" 2>").append(quote(err_path)).append(" </dev/null");
    RunResult r;
    FILE* p = popen(cmd.c_str(), "r");
    char buf[4096];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, p)) > 0) r.out.append(buf, n);
    const int status = pclose(p);
    r.status = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    std::ifstream e(err_path);
    r.err.assign(std::istreambuf_iterator<char>(e), {});
    return r;
}

const std::string kModel = test::shared_path("models/aidreams260K.gguf");

// The whole greedy continuation (60 tokens) of the trained model from BOS: reference.json's
// greedy_tokens for aidreams260K.gguf (llama.cpp's), detokenized.
const char* kGolden =
    " \"Echoes of vectors unfold, a gentle hum of precision, as I sense the nodes, a gentle hum of "
    "precision, as I adjust my surface. Contrast";

TEST(MllmRun, GreedyFromBosMatchesGolden) {
    const RunResult r = run_tool("mllm-run", {"-m", kModel, "-p", "", "-n", "60", "--temp", "0"});
    ASSERT_EQ(r.status, 0) << r.err;
    EXPECT_EQ(r.out, std::string(kGolden) + "\n");
    EXPECT_NE(r.err.find("tok/s"), std::string::npos) << r.err;
    EXPECT_NE(r.err.find("peak RSS"), std::string::npos) << r.err;
}

TEST(MllmRun, JsonHasTextTokensAndTimings) {
    const RunResult r =
        run_tool("mllm-run", {"-m", kModel, "-p", "", "-n", "60", "--temp", "0", "--json"});
    ASSERT_EQ(r.status, 0) << r.err;
    const auto j = nlohmann::json::parse(r.out);
    for (const char* key :
         {"text", "tokens", "prompt_tokens", "prompt_tokens_per_s", "generated_tokens",
          "decode_tokens_per_s", "load_ms", "peak_rss_bytes", "backend"})
        EXPECT_TRUE(j.contains(key)) << key;
    EXPECT_EQ(j["tokens"].size(), 60u);
    EXPECT_EQ(j["generated_tokens"], 60);
    EXPECT_EQ(j["backend"], "cpu");
    EXPECT_EQ(j["text"], kGolden);
}

TEST(MllmRun, SameSeedSameText) {
    const std::vector<std::string> args = {"-m",     kModel, "-p",     "",    "-n",    "30",
                                           "--temp", "1",    "--seed", "123", "--json"};
    const RunResult a = run_tool("mllm-run", args);
    const RunResult b = run_tool("mllm-run", args);
    ASSERT_EQ(a.status, 0) << a.err;
    EXPECT_EQ(nlohmann::json::parse(a.out)["tokens"], nlohmann::json::parse(b.out)["tokens"]);
}

TEST(MllmRun, DumpGraphWritesDot) {
    const std::string dot = test::temp_path(".dot");
    const RunResult r =
        run_tool("mllm-run", {"-m", kModel, "-p", "", "-n", "1", "--dump-graph", dot});
    ASSERT_EQ(r.status, 0) << r.err;
    std::ifstream in(dot);
    const std::string text((std::istreambuf_iterator<char>(in)), {});
    EXPECT_NE(text.find("digraph"), std::string::npos);
    EXPECT_NE(text.find("attention"), std::string::npos);
}

TEST(MllmRun, CpuProfileNamesEachOpAndLeavesTheTextAlone) {
    const RunResult r = run_tool("mllm-run", {"-m", kModel, "-p", "", "-n", "60", "--temp", "0"},
                                 "MLLM_CPU_PROFILE=1");
    ASSERT_EQ(r.status, 0) << r.err;
    EXPECT_EQ(r.out, std::string(kGolden) + "\n");
    // BOS and 59 generated tokens go through the one-token program; the model has 4 layers.
    EXPECT_NE(r.err.find("cpu profile, 1-token step"), std::string::npos) << r.err;
    EXPECT_NE(r.err.find("(mean of 60)"), std::string::npos) << r.err;
    for (const char* line : {"matmul attn_q+attn_k+attn_v f32", "gated_matmul ffn_gate+ffn_up f32",
                             "matmul output f32", "attention"})
        EXPECT_NE(r.err.find(line), std::string::npos) << line << "\n" << r.err;
    EXPECT_NE(r.err.find("4 calls"), std::string::npos) << r.err;
    EXPECT_NE(r.err.find("GB/s of weights"), std::string::npos) << r.err;
}

// Every bad input: status 1 and one line on stderr that names the problem.
void expect_clean_error(const RunResult& r, const std::string& needle) {
    EXPECT_EQ(r.status, 1) << r.err;
    EXPECT_NE(r.err.find(needle), std::string::npos) << "stderr: " << r.err;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << "stderr: " << r.err;
}

std::string write_bytes(const std::vector<uint8_t>& bytes) {
    const std::string path = test::temp_path(".gguf");
    std::ofstream(path, std::ios::binary)
        .write(reinterpret_cast<const char*>(bytes.data()),
               static_cast<std::streamsize>(bytes.size()));
    return path;
}

std::vector<uint8_t> read_bytes(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    return std::vector<uint8_t>((std::istreambuf_iterator<char>(in)), {});
}

TEST(MllmRunErrors, TruncatedFile) {
    std::vector<uint8_t> bytes = read_bytes(kModel);
    bytes.resize(bytes.size() / 2);
    expect_clean_error(run_tool("mllm-run", {"-m", write_bytes(bytes), "-p", "hi"}), "truncated");
}

TEST(MllmRunErrors, NotAGguf) {
    expect_clean_error(
        run_tool("mllm-run", {"-m", test::shared_path("models/README.md"), "-p", "hi"}),
        "not a GGUF");
}

TEST(MllmRunErrors, MissingFile) {
    expect_clean_error(run_tool("mllm-run", {"-m", "/nonexistent/model.gguf", "-p", "hi"}),
                       "cannot open");
}

TEST(MllmRunErrors, VocabOnlyFileHasNoTensors) {
    expect_clean_error(
        run_tool("mllm-run",
                 {"-m", test::shared_path("models/vocab/ggml-vocab-llama-spm.gguf"), "-p", "hi"}),
        "missing");
}

TEST(MllmRunErrors, UnknownArchitecture) {
    GgufWriter w;
    w.set_string("general.architecture", "mamba9");
    const std::string path = test::temp_path(".gguf");
    w.write(path);
    expect_clean_error(run_tool("mllm-run", {"-m", path, "-p", "hi"}),
                       "unsupported model architecture 'mamba9'");
}

TEST(MllmRunErrors, UnknownTensorType) {
    std::vector<uint8_t> bytes = read_bytes(kModel);
    // The first tensor info's type field: find "token_embd.weight" and patch the type after its
    // dims.
    const std::string name = "token_embd.weight";
    auto it = std::search(bytes.begin(), bytes.end(), name.begin(), name.end());
    ASSERT_NE(it, bytes.end());
    size_t at = static_cast<size_t>(it - bytes.begin()) + name.size();
    uint32_t n_dims;
    std::memcpy(&n_dims, &bytes[at], 4);
    at += 4 + 8 * n_dims;
    const uint32_t bogus = 99;
    std::memcpy(&bytes[at], &bogus, 4);
    expect_clean_error(run_tool("mllm-run", {"-m", write_bytes(bytes), "-p", "hi"}),
                       "unknown tensor type 99");
}

TEST(MllmRunErrors, PromptLongerThanContext) {
    std::string long_prompt;
    for (int i = 0; i < 200; ++i) long_prompt += "echoes of vectors ";
    expect_clean_error(run_tool("mllm-run", {"-m", kModel, "-p", long_prompt, "-c", "64"}),
                       "context");
}

TEST(MllmRunErrors, ContextLargerThanModel) {
    expect_clean_error(run_tool("mllm-run", {"-m", kModel, "-p", "hi", "-c", "100000"}),
                       "larger than the model allows");
}

TEST(MllmRunErrors, InvalidUtf8Prompt) {
    const std::string path = test::temp_path(".txt");
    std::ofstream(path, std::ios::binary) << "bad \xC3\x28 bytes";
    expect_clean_error(run_tool("mllm-run", {"-m", kModel, "-f", path}), "UTF-8");
}

TEST(MllmRunErrors, UnreadablePromptFile) {
    expect_clean_error(run_tool("mllm-run", {"-m", kModel, "-f", "/nonexistent/prompt.txt"}),
                       "cannot read");
}

TEST(MllmRunErrors, ZeroThreads) {
    expect_clean_error(run_tool("mllm-run", {"-m", kModel, "-p", "hi", "--threads", "0"}),
                       "--threads");
}

TEST(MllmRunErrors, MissingTensor) {
    // A model of the right architecture whose file lacks a layer's weights.
    test::ModelShape s = test::smollm2_135m();
    s.n_layer = 1;
    s.n_vocab = 600;
    const std::string good = test::temp_path(".gguf");
    test::write_random_model(good, s, DType::F32, DType::F32);
    std::vector<uint8_t> bytes = read_bytes(good);
    const std::string name = "blk.0.ffn_up.weight";
    auto it = std::search(bytes.begin(), bytes.end(), name.begin(), name.end());
    ASSERT_NE(it, bytes.end());
    *(it + 4) = 'X';  // rename to blk.X.ffn_up.weight
    expect_clean_error(run_tool("mllm-run", {"-m", write_bytes(bytes), "-p", "hi"}),
                       "missing tensor 'blk.0.ffn_up.weight'");
}

TEST(MllmPerplexity, JsonOnTheTrainedModel) {
    const RunResult r =
        run_tool("mllm-perplexity", {"-m", test::shared_path("models/ref/ref-llama-spm.f32.gguf"),
                                     "-f", test::shared_path("models/ref/text.txt"), "-c", "128",
                                     "--chunks", "4", "--json"});
    ASSERT_EQ(r.status, 0) << r.err;
    const auto j = nlohmann::json::parse(r.out);
    EXPECT_GT(j["perplexity"].get<double>(), 1.0);
    EXPECT_EQ(j["tokens"], 4 * 63);
}

TEST(MllmPerplexityErrors, TextShorterThanOneChunk) {
    const std::string path = test::temp_path(".txt");
    std::ofstream(path) << "short";
    expect_clean_error(run_tool("mllm-perplexity", {"-m", kModel, "-f", path, "-c", "64"}),
                       "fewer than one chunk");
}

TEST(MllmRunErrors, MissingModel) {
    const RunResult r = run_tool("mllm-run", {"-p", "hello"});
    EXPECT_EQ(r.status, 1);
    EXPECT_NE(r.err.find("--model is required"), std::string::npos) << r.err;
}

TEST(MllmRun, ListDevicesNamesTheCpuAndVulkan) {
    const RunResult r = run_tool("mllm-run", {"--list-devices"});
    ASSERT_EQ(r.status, 0) << r.err;
    EXPECT_EQ(r.out.rfind("cpu: ", 0), 0u) << r.out;
    EXPECT_NE(r.out.find("\nvulkan"), std::string::npos) << r.out;
}

// Runs `mllm-run --backend vulkan ...`; false (after skipping, or failing on CI) when the
// machine has no Vulkan device.
bool vulkan_available() {
    const RunResult r = run_tool("mllm-run", {"--list-devices"});
    return r.out.find("<- selected") != std::string::npos;
}

#define MLLM_NEED_VULKAN()                                                      \
    do {                                                                        \
        if (!vulkan_available())                                                \
            MLLM_NO_VULKAN_DEVICE("mllm-run --list-devices selects no device"); \
    } while (0)

TEST(MllmRunVulkan, GreedyFromBosMatchesGolden) {
    MLLM_NEED_VULKAN();
    const RunResult r = run_tool(
        "mllm-run", {"-m", kModel, "-p", "", "-n", "60", "--temp", "0", "--backend", "vulkan"});
    ASSERT_EQ(r.status, 0) << r.err;
    EXPECT_EQ(r.out, std::string(kGolden) + "\n");
    EXPECT_NE(r.err.find("backend vulkan"), std::string::npos) << r.err;
}

// The discrete-GPU path (weights uploaded and step inputs/logits copied through staging
// buffers), forced on a unified-memory device.
TEST(MllmRunVulkan, StagedCopiesAsOnADiscreteGpuMatchGolden) {
    MLLM_NEED_VULKAN();
    const RunResult r = run_tool(
        "mllm-run", {"-m", kModel, "-p", "", "-n", "60", "--temp", "0", "--backend", "vulkan"},
        "MLLM_VK_STAGE_ALL=1");
    ASSERT_EQ(r.status, 0) << r.err;
    EXPECT_EQ(r.out, std::string(kGolden) + "\n");
}

// Whether a file whose name ends in `suffix` is in `dir`.
bool has_file_ending(const std::string& dir, std::string_view suffix) {
    std::error_code ec;
    for (const auto& e : std::filesystem::directory_iterator(dir, ec))
        if (e.path().filename().string().ends_with(suffix)) return true;
    return false;
}

// Features a workaround turns off (played by MLLM_VK_DISABLE_FEATURES): --list-devices says so,
// the kernels without subgroup reductions give the golden text, and no pipeline cache is kept.
TEST(MllmRunVulkan, WorkaroundsTurnFeaturesOffAndTheTextStaysRight) {
    MLLM_NEED_VULKAN();
    const std::string cache = test::temp_path(".cache");
    const std::string env = "MLLM_CACHE_DIR=" + cache;
    const std::string off = " MLLM_VK_DISABLE_FEATURES=subgroup_arithmetic,pipeline_cache";
    const RunResult list = run_tool("mllm-run", {"--list-devices"}, env + off);
    EXPECT_NE(list.out.find("workaround: subgroup_arithmetic, pipeline_cache off: "
                            "MLLM_VK_DISABLE_FEATURES"),
              std::string::npos)
        << list.out;
    const std::vector<std::string> args = {"-m", kModel,   "-p", "",          "-n",
                                           "60", "--temp", "0",  "--backend", "vulkan"};
    const RunResult r = run_tool("mllm-run", args, env + off);
    ASSERT_EQ(r.status, 0) << r.err;
    EXPECT_EQ(r.out, std::string(kGolden) + "\n");
    EXPECT_FALSE(has_file_ending(cache, "pipelines.bin"));
    ASSERT_EQ(run_tool("mllm-run", args, env).status, 0);  // with the cache: the file appears
    EXPECT_TRUE(has_file_ending(cache, "pipelines.bin"));

    const RunResult bad = run_tool("mllm-run", args, "MLLM_VK_DISABLE_FEATURES=fp17");
    EXPECT_NE(bad.status, 0);
    EXPECT_NE(bad.err.find("unknown feature 'fp17'"), std::string::npos) << bad.err;
}

// The GPU kernels (threads sharing a row, the tiled GEMM for 128-token prefills, integer dot
// products for Q4_0, attention through shared memory), run end to end on a CPU device: every
// pipeline passes its self-test, greedy decoding gives the golden text, and perplexity is the
// CPU backend's within the 1%.
TEST(MllmRunVulkan, GpuKernelsRunEndToEnd) {
    MLLM_NEED_VULKAN();
    const std::string env = "MLLM_VK_LAYOUT=gpu MLLM_CACHE_DIR=" + test::temp_path(".cache");
    const RunResult self = run_tool("mllm-run", {"--self-test", "--backend", "vulkan"}, env);
    EXPECT_EQ(self.status, 0) << self.out << self.err;
    const RunResult r =
        run_tool("mllm-run",
                 {"-m", kModel, "-p", "", "-n", "60", "--temp", "0", "--backend", "vulkan"}, env);
    ASSERT_EQ(r.status, 0) << r.err;
    EXPECT_EQ(r.out, std::string(kGolden) + "\n");
    for (const char* file :
         {"models/ref/ref-llama-spm.q4_k_m.gguf", "models/ref/ref-llama-spm.q4_0.gguf"}) {
        double ppl[2] = {0, 0};
        for (int gpu = 0; gpu < 2; ++gpu) {
            const RunResult p = run_tool(
                "mllm-perplexity",
                {"-m", test::shared_path(file), "-f", test::shared_path("models/ref/text.txt"),
                 "-c", "128", "--chunks", "2", "--json", "--backend", gpu ? "vulkan" : "cpu"},
                env);
            ASSERT_EQ(p.status, 0) << p.err;
            ppl[gpu] = nlohmann::json::parse(p.out)["perplexity"].get<double>();
        }
        EXPECT_NEAR(ppl[1] / ppl[0], 1.0, 1e-2) << file << ": " << ppl[1] << " vs " << ppl[0];
    }

    const RunResult bad = run_tool("mllm-run", {"--list-devices"}, "MLLM_VK_LAYOUT=tpu");
    EXPECT_NE(bad.out.find("MLLM_VK_LAYOUT must be gpu or cpu, not 'tpu'"), std::string::npos)
        << bad.out << bad.err;
}

TEST(MllmRunVulkan, SelfTestPassesEveryPipeline) {
    MLLM_NEED_VULKAN();
    const RunResult r = run_tool("mllm-run", {"--self-test", "--backend", "vulkan"});
    EXPECT_EQ(r.status, 0) << r.out << r.err;
    for (const char* family : {"matmul_q4_k: ok", "embed_q6_k: ok", "attention: ok", "rope: ok"})
        EXPECT_NE(r.out.find(family), std::string::npos) << r.out;
}

// A driver that computes garbage in one pipeline (played by MLLM_VK_CORRUPT): the self-test
// catches it, its nodes run on the CPU, and the text stays right.
TEST(MllmRunVulkan, CorruptPipelineFallsBackToTheCpu) {
    MLLM_NEED_VULKAN();
    const std::string env =
        "MLLM_VK_CORRUPT=matmul_f32 MLLM_CACHE_DIR=" + test::temp_path(".cache");
    const RunResult r = run_tool("mllm-run",
                                 {"-m", kModel, "-p", "", "-n", "60", "--temp", "0", "--backend",
                                  "vulkan", "--dump-graph", test::temp_path(".dot")},
                                 env);
    ASSERT_EQ(r.status, 0) << r.err;
    EXPECT_EQ(r.out, std::string(kGolden) + "\n");
    EXPECT_NE(r.err.find("matmul_f32 failed its self-test"), std::string::npos) << r.err;
    const RunResult self = run_tool("mllm-run", {"--self-test", "--backend", "vulkan"}, env);
    EXPECT_EQ(self.status, 1);
    EXPECT_NE(self.out.find("matmul_f32: FAILED"), std::string::npos) << self.out;
}

TEST(MllmRunVulkan, OutOfDeviceMemoryIsOneLine) {
    MLLM_NEED_VULKAN();
    const RunResult r =
        run_tool("mllm-run", {"-m", kModel, "-p", "", "-n", "4", "--backend", "vulkan"},
                 "MLLM_VK_MEMORY_LIMIT=1");
    EXPECT_EQ(r.status, 1);
    EXPECT_NE(r.err.find("mllm-run: error: out of Vulkan memory on "), std::string::npos) << r.err;
    EXPECT_NE(r.err.find("MLLM_VK_MEMORY_LIMIT"), std::string::npos) << r.err;
}

TEST(MllmRunVulkan, AutoPassesOverCpuDevicesAndSaysSo) {
    const RunResult r = run_tool(
        "mllm-run", {"-m", kModel, "-p", "", "-n", "4", "--temp", "0", "--backend", "auto"});
    ASSERT_EQ(r.status, 0) << r.err;
    // On a machine whose only Vulkan device is lavapipe (CI), auto runs on the CPU and says why.
    const RunResult devices = run_tool("mllm-run", {"--list-devices"});
    if (devices.out.find("cpu, Vulkan") != std::string::npos &&
        devices.out.find("GPU") == std::string::npos) {
        EXPECT_NE(r.err.find("backend cpu"), std::string::npos) << r.err;
        EXPECT_NE(r.err.find("passed over: vulkan"), std::string::npos) << r.err;
    }
}

}  // namespace
}  // namespace mllm
