#include "graph/ir.h"

namespace mllm::graph {

std::string_view op_name(Op op) {
    switch (op) {
        case Op::Input:
            return "input";
        case Op::Weight:
            return "weight";
        case Op::Embed:
            return "embed";
        case Op::RmsNorm:
            return "rms_norm";
        case Op::Mul:
            return "mul";
        case Op::Add:
            return "add";
        case Op::MatMul:
            return "matmul";
        case Op::Rope:
            return "rope";
        case Op::KvStore:
            return "kv_store";
        case Op::Attention:
            return "attention";
        case Op::Silu:
            return "silu";
        case Op::TakeLast:
            return "take_last";
        case Op::Argmax:
            return "argmax";
        case Op::RmsNormMul:
            return "rms_norm_mul";
        case Op::SwiGlu:
            return "swiglu";
        case Op::GatedMatMul:
            return "gated_matmul";
    }
    return "?";
}

NodeId Graph::add(Node n) {
    nodes.push_back(std::move(n));
    return static_cast<NodeId>(nodes.size() - 1);
}

std::vector<int> Graph::use_counts() const {
    std::vector<int> uses(nodes.size(), 0);
    for (const Node& n : nodes) {
        if (n.dead) continue;
        for (NodeId in : n.inputs) ++uses[static_cast<size_t>(in)];
    }
    return uses;
}

}  // namespace mllm::graph
