#include "graph/models/model_config.h"

#include <string_view>

#include "core/error.h"

namespace mllm::graph {
namespace {

struct ArchInfo {
    std::string_view name;
    RopeMode rope_mode;
    bool qkv_bias;
};
// Architectures whose graph graph/models/llama.cpp builds; they differ only in these traits.
constexpr ArchInfo kArchs[] = {
    {"llama", RopeMode::Normal, false},
    {"qwen2", RopeMode::Neox, true},
};

int positive_int(const GgufFile& f, const std::string& key, std::optional<uint64_t> fallback = {}) {
    std::optional<uint64_t> v = f.get_uint(key);
    if (!v) v = fallback;
    if (!v) fail(f.path(), ": missing metadata '", key, "'");
    if (*v == 0 || *v > (1u << 30)) fail(f.path(), ": metadata '", key, "' has invalid value ", *v);
    return static_cast<int>(*v);
}

}  // namespace

ModelConfig read_model_config(const GgufFile& f) {
    ModelConfig c;
    const std::optional<std::string_view> arch = f.get_string("general.architecture");
    if (!arch) fail(f.path(), ": missing metadata 'general.architecture' (is this a model file?)");
    c.arch = std::string(*arch);
    const ArchInfo* info = nullptr;
    for (const ArchInfo& a : kArchs)
        if (a.name == c.arch) info = &a;
    if (info == nullptr)
        fail(f.path(), ": unsupported model architecture '", c.arch, "' (supported: llama, qwen2)");
    c.rope_mode = info->rope_mode;
    c.qkv_bias = info->qkv_bias;
    c.name = std::string(f.get_string("general.name").value_or(c.arch));

    const std::string p = c.arch + ".";
    c.n_embd = positive_int(f, p + "embedding_length");
    c.n_layer = positive_int(f, p + "block_count");
    c.n_head = positive_int(f, p + "attention.head_count");
    c.n_head_kv = positive_int(f, p + "attention.head_count_kv", static_cast<uint64_t>(c.n_head));
    c.n_ff = positive_int(f, p + "feed_forward_length");
    c.n_ctx_train = positive_int(f, p + "context_length");
    if (c.n_embd % c.n_head != 0)
        fail(f.path(), ": embedding length ", c.n_embd, " is not divisible by ", c.n_head,
             " heads");
    c.head_dim =
        positive_int(f, p + "attention.key_length", static_cast<uint64_t>(c.n_embd / c.n_head));
    if (c.n_head % c.n_head_kv != 0)
        fail(f.path(), ": ", c.n_head, " query heads cannot be grouped over ", c.n_head_kv,
             " KV heads");
    if (c.head_dim % 2 != 0) fail(f.path(), ": head size ", c.head_dim, " must be even for RoPE");
    const int rope_dims =
        positive_int(f, p + "rope.dimension_count", static_cast<uint64_t>(c.head_dim));
    if (rope_dims != c.head_dim)
        fail(f.path(), ": partial rotary embeddings (", rope_dims, " of ", c.head_dim,
             " dims) are not supported");

    c.norm_eps =
        static_cast<float>(f.get_float(p + "attention.layer_norm_rms_epsilon").value_or(1e-5));
    c.rope_base = static_cast<float>(f.get_float(p + "rope.freq_base").value_or(10000.0));
    if (!(c.rope_base > 0)) fail(f.path(), ": rope.freq_base must be positive");
    const std::string_view scaling = f.get_string(p + "rope.scaling.type").value_or("none");
    if (scaling == "linear") {
        const double factor = f.get_float(p + "rope.scaling.factor").value_or(1.0);
        if (!(factor > 0)) fail(f.path(), ": rope.scaling.factor must be positive");
        c.rope_freq_scale = static_cast<float>(1.0 / factor);
    } else if (scaling != "none") {
        fail(f.path(), ": unsupported rope scaling type '", scaling, "' (supported: none, linear)");
    } else if (std::optional<double> factor = f.get_float(p + "rope.scale_linear")) {
        if (!(*factor > 0)) fail(f.path(), ": rope.scale_linear must be positive");
        c.rope_freq_scale = static_cast<float>(1.0 / *factor);
    }

    const GgufTensor* embd = f.find_tensor("token_embd.weight");
    if (embd == nullptr) fail(f.path(), ": missing tensor 'token_embd.weight'");
    c.n_vocab = static_cast<int>(embd->ne[1]);
    c.tied_embeddings = f.find_tensor("output.weight") == nullptr;
    return c;
}

}  // namespace mllm::graph
