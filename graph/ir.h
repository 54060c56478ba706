#pragma once
// The op graph: a model step (a prefill batch or one decode token) as a list of nodes in
// execution order. Every activation is a 2-D row-major matrix [rows = tokens, cols = width];
// weights keep their GGUF layout (ne[0] contiguous), so a weight [out, in] has rows = ne[1].
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "core/dtype.h"
#include "core/gguf/gguf_reader.h"

namespace mllm::graph {

using NodeId = int32_t;
constexpr NodeId kNoNode = -1;

enum class Op : uint8_t {
    Input,      // step input written by the executor: token ids or positions (I32)
    Weight,     // a tensor of the model file, used in place
    Embed,      // rows of a (possibly quantized) table picked by token id
    RmsNorm,    // x / sqrt(mean(x^2) + eps)
    Mul,        // x * w, w broadcast over rows
    Add,        // a + b, b broadcast over rows when it has one row
    MatMul,     // x[n, k] times W[m, k]^T (+ bias after fusion) -> [n, m]
    Rope,       // rotary position embedding over the heads of x
    KvStore,    // appends k and v rows to this layer's cache at the step's positions
    Attention,  // q against the layer's cache: causal, GQA -> [n, heads * head_dim]
    Silu,       // x * sigmoid(x)
    TakeLast,   // the last row only (generation needs only the last token's logits)
    Argmax,     // each row's largest value's column (lowest on ties, NaN never wins): I32 [rows, 1]
    // Created by the fusion pass:
    RmsNormMul,   // RmsNorm followed by Mul with its weight
    SwiGlu,       // silu(gate) * up
    GatedMatMul,  // silu(x . Wg^T) * (x . Wu^T): a SwiGLU feed-forward's gate and up in one op
};

std::string_view op_name(Op op);

enum class RopeMode : uint8_t {
    Normal,  // rotate adjacent pairs (x[2i], x[2i+1]): llama
    Neox,    // rotate (x[i], x[i + d/2]): qwen2, phi, neox
};

struct Attrs {
    float eps = 0;      // RmsNorm
    int n_head = 0;     // Rope, Attention: heads of the rotated/query tensor
    int n_head_kv = 0;  // Attention
    int head_dim = 0;   // Rope, Attention
    int layer = -1;     // KvStore, Attention: which cache
    RopeMode rope_mode = RopeMode::Normal;
    float rope_base = 10000;
    float rope_freq_scale = 1;  // positions are multiplied by this (linear scaling)
    float attn_scale = 1;
};

struct Node {
    Op op = Op::Input;
    std::string name;
    std::vector<NodeId> inputs;
    DType dtype = DType::F32;
    int64_t rows = 1;
    int64_t cols = 1;
    Attrs attrs;
    const GgufTensor* weight = nullptr;  // Op::Weight

    // Filled by passes.
    bool dead = false;              // folded into another node by fusion
    NodeId group_leader = kNoNode;  // MatMuls sharing one input run as one group (fusion)
    int device = -1;                // index into the backend list given to placement
    int64_t offset = -1;            // byte offset in the activation arena (memory planning)

    size_t bytes() const { return row_bytes(dtype, cols) * static_cast<size_t>(rows); }
    bool is_activation() const { return op != Op::Weight && !dead; }
};

// The KV cache the graph reads and writes: sized by the runtime, owned by the backend.
struct KvSpec {
    int n_layer = 0;
    int n_head_kv = 0;
    int head_dim = 0;
};

struct Graph {
    std::vector<Node> nodes;
    NodeId tokens = kNoNode;     // Input: I32 [n, 1]
    NodeId positions = kNoNode;  // Input: I32 [n, 1]
    NodeId logits = kNoNode;     // F32 [rows, n_vocab]: the output, unless argmax is set
    NodeId argmax = kNoNode;     // I32 [rows, 1]: the greedy token, the output when present
    int64_t n_tokens = 0;
    KvSpec kv;
    int64_t arena_bytes = 0;  // set by memory planning

    // What the step hands back: the greedy token ids when the graph has them, else the logits.
    NodeId output() const { return argmax != kNoNode ? argmax : logits; }
    NodeId add(Node n);
    const Node& operator[](NodeId id) const { return nodes[static_cast<size_t>(id)]; }
    Node& operator[](NodeId id) { return nodes[static_cast<size_t>(id)]; }
    // Number of live nodes that read each node's output.
    std::vector<int> use_counts() const;
};

}  // namespace mllm::graph
