// The llama-family transformer (llama, qwen2): pre-norm blocks of GQA attention with RoPE and a
// SwiGLU feed-forward. Emitted as primitive ops; graph/passes/fuse.cpp fuses them.
#include <cmath>
#include <string>
#include <unordered_map>

#include "core/error.h"
#include "graph/models/builder.h"

namespace mllm::graph {
namespace {

class LlamaBuilder {
  public:
    LlamaBuilder(const ModelConfig& c, const GgufFile& f, const BuildOptions& o)
        : c_(c), f_(f), o_(o) {}

    Graph build() {
        const int64_t n = o_.n_tokens;
        const int q_width = c_.n_head * c_.head_dim;
        const int kv_width = c_.n_head_kv * c_.head_dim;
        g_.n_tokens = n;
        g_.kv = KvSpec{c_.n_layer, c_.n_head_kv, c_.head_dim};
        g_.tokens = input("tokens", n);
        g_.positions = input("positions", n);

        NodeId x =
            op(Op::Embed, "embed", {weight("token_embd.weight", c_.n_embd, c_.n_vocab), g_.tokens},
               n, c_.n_embd);
        for (int l = 0; l < c_.n_layer; ++l) {
            const std::string blk = "blk." + std::to_string(l) + ".";
            NodeId h = norm(x, blk + "attn_norm.weight", blk + "attn_norm");
            NodeId q = linear(h, blk + "attn_q", c_.n_embd, q_width, c_.qkv_bias);
            NodeId k = linear(h, blk + "attn_k", c_.n_embd, kv_width, c_.qkv_bias);
            NodeId v = linear(h, blk + "attn_v", c_.n_embd, kv_width, c_.qkv_bias);
            q = rope(q, c_.n_head, blk + "q_rope");
            k = rope(k, c_.n_head_kv, blk + "k_rope");
            Node store = make(Op::KvStore, blk + "kv_store", {k, v}, 0, kv_width);
            store.attrs.layer = l;
            const NodeId stored = g_.add(std::move(store));
            Node attn = make(Op::Attention, blk + "attention", {q, stored}, n, q_width);
            attn.attrs.layer = l;
            attn.attrs.n_head = c_.n_head;
            attn.attrs.n_head_kv = c_.n_head_kv;
            attn.attrs.head_dim = c_.head_dim;
            attn.attrs.attn_scale = 1.0f / std::sqrt(static_cast<float>(c_.head_dim));
            const NodeId a = g_.add(std::move(attn));
            x = op(Op::Add, blk + "attn_residual",
                   {x, linear(a, blk + "attn_output", q_width, c_.n_embd)}, n, c_.n_embd);

            h = norm(x, blk + "ffn_norm.weight", blk + "ffn_norm");
            NodeId gate = linear(h, blk + "ffn_gate", c_.n_embd, c_.n_ff);
            NodeId up = linear(h, blk + "ffn_up", c_.n_embd, c_.n_ff);
            gate = op(Op::Silu, blk + "ffn_silu", {gate}, n, c_.n_ff);
            NodeId act = op(Op::Mul, blk + "ffn_gated", {gate, up}, n, c_.n_ff);
            x = op(Op::Add, blk + "ffn_residual",
                   {x, linear(act, blk + "ffn_down", c_.n_ff, c_.n_embd)}, n, c_.n_embd);
        }
        if (!o_.logits_all && n > 1) x = op(Op::TakeLast, "take_last", {x}, 1, c_.n_embd);
        x = norm(x, "output_norm.weight", "output_norm");
        const char* out_name = c_.tied_embeddings ? "token_embd.weight" : "output.weight";
        g_.logits = op(Op::MatMul, "logits", {x, weight(out_name, c_.n_embd, c_.n_vocab)},
                       g_[x].rows, c_.n_vocab);
        if (o_.argmax) {
            Node pick = make(Op::Argmax, "argmax", {g_.logits}, g_[x].rows, 1);
            pick.dtype = DType::I32;
            g_.argmax = g_.add(std::move(pick));
        }
        return std::move(g_);
    }

  private:
    Node make(Op kind, std::string name, std::vector<NodeId> inputs, int64_t rows, int64_t cols) {
        Node node;
        node.op = kind;
        node.name = std::move(name);
        node.inputs = std::move(inputs);
        node.rows = rows;
        node.cols = cols;
        return node;
    }
    NodeId op(Op kind, std::string name, std::vector<NodeId> inputs, int64_t rows, int64_t cols) {
        return g_.add(make(kind, std::move(name), std::move(inputs), rows, cols));
    }
    NodeId input(const char* name, int64_t n) {
        Node node = make(Op::Input, name, {}, n, 1);
        node.dtype = DType::I32;
        return g_.add(std::move(node));
    }

    // A weight of shape ne = [cols, rows]; rows == 1 means a vector. Shared tensors (tied
    // embeddings) get one node.
    NodeId weight(const std::string& name, int64_t cols, int64_t rows) {
        if (auto it = weights_.find(name); it != weights_.end()) return it->second;
        const GgufTensor* t = f_.find_tensor(name);
        if (t == nullptr)
            fail(f_.path(), ": missing tensor '", name, "' needed by architecture '", c_.arch, "'");
        const bool shape_ok = t->ne[0] == cols && t->ne[1] == rows && t->ne[2] == 1 &&
                              t->ne[3] == 1 && (rows > 1 || t->n_dims == 1);
        if (!shape_ok)
            fail(f_.path(), ": tensor '", name, "' has shape ", t->shape_string(), ", expected [",
                 cols, rows > 1 ? ", " + std::to_string(rows) : std::string(), "]");
        if (!dtype_traits(t->type).weight_supported)
            fail(f_.path(), ": tensor '", name, "' has type ", dtype_name(t->type),
                 ", which this runtime cannot compute with");
        if (rows == 1 && t->type != DType::F32)
            fail(f_.path(), ": tensor '", name, "' is a ", dtype_name(t->type),
                 " vector; norms and biases must be f32");
        Node node = make(Op::Weight, name, {}, rows, cols);
        node.dtype = t->type;
        node.weight = t;
        const NodeId id = g_.add(std::move(node));
        weights_.emplace(name, id);
        return id;
    }

    NodeId norm(NodeId x, const std::string& weight_name, const std::string& name) {
        Node rms = make(Op::RmsNorm, name, {x}, g_[x].rows, g_[x].cols);
        rms.attrs.eps = c_.norm_eps;
        const NodeId r = g_.add(std::move(rms));
        return op(Op::Mul, name + "_mul", {r, weight(weight_name, c_.n_embd, 1)}, g_[x].rows,
                  g_[x].cols);
    }

    NodeId linear(NodeId x, const std::string& base, int64_t in, int64_t out, bool bias = false) {
        const NodeId y =
            op(Op::MatMul, base, {x, weight(base + ".weight", in, out)}, g_[x].rows, out);
        if (!bias) return y;
        return op(Op::Add, base + "_bias", {y, weight(base + ".bias", out, 1)}, g_[x].rows, out);
    }

    NodeId rope(NodeId x, int heads, const std::string& name) {
        Node r = make(Op::Rope, name, {x, g_.positions}, g_[x].rows, g_[x].cols);
        r.attrs.n_head = heads;
        r.attrs.head_dim = c_.head_dim;
        r.attrs.rope_mode = c_.rope_mode;
        r.attrs.rope_base = c_.rope_base;
        r.attrs.rope_freq_scale = c_.rope_freq_scale;
        return g_.add(std::move(r));
    }

    const ModelConfig& c_;
    const GgufFile& f_;
    const BuildOptions& o_;
    Graph g_;
    std::unordered_map<std::string, NodeId> weights_;
};

}  // namespace

Graph build_model_graph(const ModelConfig& config, const GgufFile& file,
                        const BuildOptions& options) {
    if (options.n_tokens < 1) fail("a model step needs at least one token");
    return LlamaBuilder(config, file, options).build();
}

}  // namespace mllm::graph
