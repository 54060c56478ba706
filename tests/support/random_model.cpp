#include "tests/support/random_model.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <random>
#include <vector>

#include "core/gguf/gguf_writer.h"
#include "core/quant/quant.h"

namespace mllm::test {

ModelShape smollm2_135m() {
    ModelShape s;
    s.n_vocab = 49152;
    s.n_embd = 576;
    s.n_layer = 30;
    s.n_head = 9;
    s.n_head_kv = 3;
    s.n_ff = 1536;
    s.n_ctx = 8192;
    s.tied_embeddings = true;
    s.rope_base = 100000;
    return s;
}

ModelShape qwen25_05b() {
    ModelShape s;
    s.arch = "qwen2";
    s.n_vocab = 151936;
    s.n_embd = 896;
    s.n_layer = 24;
    s.n_head = 14;
    s.n_head_kv = 2;
    s.n_ff = 4864;
    s.n_ctx = 32768;
    s.tied_embeddings = true;
    s.rope_base = 1000000;
    return s;
}

ModelShape tinyllama_11b() {
    ModelShape s;
    s.n_vocab = 32000;
    s.n_embd = 2048;
    s.n_layer = 22;
    s.n_head = 32;
    s.n_head_kv = 4;
    s.n_ff = 5632;
    s.n_ctx = 2048;
    return s;
}

namespace {

class TensorMaker {
  public:
    TensorMaker(GgufWriter& w, uint64_t seed) : w_(w), rng_(seed) {}

    // Uniform weights scaled by 1/sqrt(fan_in), so activations keep their size through the layers.
    void matrix(const std::string& name, DType type, int64_t cols, int64_t rows) {
        std::vector<float> data(static_cast<size_t>(cols * rows));
        const float scale = std::sqrt(3.0f / static_cast<float>(cols));
        std::uniform_real_distribution<float> dist(-scale, scale);
        for (float& v : data) v = dist(rng_);
        std::vector<uint8_t> bytes(row_bytes(type, cols) * static_cast<size_t>(rows));
        for (int64_t r = 0; r < rows; ++r)
            quantize_row(type, data.data() + r * cols,
                         bytes.data() + static_cast<size_t>(r) * row_bytes(type, cols), cols);
        w_.add_tensor(name, type, {cols, rows}, bytes.data(), bytes.size());
    }
    void vector(const std::string& name, int64_t n, float center, float spread) {
        std::vector<float> data(static_cast<size_t>(n));
        std::uniform_real_distribution<float> dist(center - spread, center + spread);
        for (float& v : data) v = dist(rng_);
        w_.add_tensor(name, DType::F32, {n}, data.data(), data.size() * sizeof(float));
    }

  private:
    GgufWriter& w_;
    std::mt19937_64 rng_;
};

void write_vocab(GgufWriter& w, int n_vocab) {
    std::vector<std::string> tokens = {"<unk>", "<s>", "</s>"};
    std::vector<float> scores = {0, 0, 0};
    std::vector<int32_t> types = {2, 3, 3};  // unknown, control, control
    for (int b = 0; b < 256; ++b) {
        char buf[8];
        std::snprintf(buf, sizeof buf, "<0x%02X>", b);
        tokens.emplace_back(buf);
        scores.push_back(0);
        types.push_back(6);  // byte
    }
    // Made-up pieces: all two-letter strings with and without the word-start mark, then numbered.
    const std::string letters = "etaoinshrdlucmfwypvbgkjqxz";
    for (int i = 0; static_cast<int>(tokens.size()) < n_vocab; ++i) {
        std::string piece;
        const size_t pairs = letters.size() * letters.size();
        if (static_cast<size_t>(i) < 2 * pairs) {
            const size_t j = static_cast<size_t>(i) % pairs;
            piece = (static_cast<size_t>(i) < pairs ? "\xE2\x96\x81" : "") +
                    std::string(1, letters[j / letters.size()]) + letters[j % letters.size()];
        } else {
            piece = "\xE2\x96\x81w" + std::to_string(i);
        }
        tokens.push_back(piece);
        scores.push_back(-static_cast<float>(i) * 0.01f);
        types.push_back(1);
    }
    w.set_string("tokenizer.ggml.model", "llama");
    w.set_string_array("tokenizer.ggml.tokens", tokens);
    w.set_f32_array("tokenizer.ggml.scores", scores);
    w.set_i32_array("tokenizer.ggml.token_type", types);
    w.set_u32("tokenizer.ggml.bos_token_id", 1);
    w.set_u32("tokenizer.ggml.eos_token_id", 2);
    w.set_u32("tokenizer.ggml.unknown_token_id", 0);
}

}  // namespace

ModelShape ci_sized(ModelShape s) {
    s.n_layer = 2;
    s.n_vocab = 2048;
    s.n_ff = std::min(s.n_ff, 1024);
    return s;
}

void write_random_model(const std::string& path, const ModelShape& s, DType type, DType embd_type,
                        uint64_t seed) {
    GgufWriter w;
    const std::string a = s.arch + ".";
    const int head_dim = s.n_embd / s.n_head;
    w.set_string("general.architecture", s.arch);
    w.set_string("general.name", "random-" + s.arch);
    w.set_u32(a + "context_length", static_cast<uint32_t>(s.n_ctx));
    w.set_u32(a + "embedding_length", static_cast<uint32_t>(s.n_embd));
    w.set_u32(a + "block_count", static_cast<uint32_t>(s.n_layer));
    w.set_u32(a + "feed_forward_length", static_cast<uint32_t>(s.n_ff));
    w.set_u32(a + "attention.head_count", static_cast<uint32_t>(s.n_head));
    w.set_u32(a + "attention.head_count_kv", static_cast<uint32_t>(s.n_head_kv));
    w.set_u32(a + "rope.dimension_count", static_cast<uint32_t>(head_dim));
    w.set_f32(a + "rope.freq_base", s.rope_base);
    w.set_f32(a + "attention.layer_norm_rms_epsilon", 1e-5f);
    write_vocab(w, s.n_vocab);

    TensorMaker m(w, seed);
    const int64_t q_width = static_cast<int64_t>(s.n_head) * head_dim;
    const int64_t kv_width = static_cast<int64_t>(s.n_head_kv) * head_dim;
    m.matrix("token_embd.weight", embd_type, s.n_embd, s.n_vocab);
    m.vector("output_norm.weight", s.n_embd, 1.0f, 0.2f);
    if (!s.tied_embeddings) m.matrix("output.weight", embd_type, s.n_embd, s.n_vocab);
    for (int l = 0; l < s.n_layer; ++l) {
        const std::string b = "blk." + std::to_string(l) + ".";
        m.vector(b + "attn_norm.weight", s.n_embd, 1.0f, 0.2f);
        m.matrix(b + "attn_q.weight", type, s.n_embd, q_width);
        m.matrix(b + "attn_k.weight", type, s.n_embd, kv_width);
        m.matrix(b + "attn_v.weight", type, s.n_embd, kv_width);
        if (s.arch == "qwen2") {
            m.vector(b + "attn_q.bias", q_width, 0.0f, 0.5f);
            m.vector(b + "attn_k.bias", kv_width, 0.0f, 0.5f);
            m.vector(b + "attn_v.bias", kv_width, 0.0f, 0.5f);
        }
        m.matrix(b + "attn_output.weight", type, q_width, s.n_embd);
        m.vector(b + "ffn_norm.weight", s.n_embd, 1.0f, 0.2f);
        m.matrix(b + "ffn_gate.weight", type, s.n_embd, s.n_ff);
        m.matrix(b + "ffn_up.weight", type, s.n_embd, s.n_ff);
        m.matrix(b + "ffn_down.weight", type, s.n_ff, s.n_embd);
    }
    w.write(path);
}

}  // namespace mllm::test
