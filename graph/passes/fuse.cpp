#include <map>
#include <utility>

#include "graph/passes/passes.h"

namespace mllm::graph {
namespace {

bool single_use(const std::vector<int>& uses, NodeId id) {
    return uses[static_cast<size_t>(id)] == 1;
}

// RmsNorm(x) * w  ->  RmsNormMul(x, w)
void fuse_rms_norm(Graph& g, const std::vector<int>& uses) {
    for (Node& n : g.nodes) {
        if (n.dead || n.op != Op::Mul) continue;
        Node& norm = g[n.inputs[0]];
        if (norm.op != Op::RmsNorm || !single_use(uses, n.inputs[0]) ||
            g[n.inputs[1]].op != Op::Weight)
            continue;
        n.op = Op::RmsNormMul;
        n.attrs.eps = norm.attrs.eps;
        n.inputs = {norm.inputs[0], n.inputs[1]};
        norm.dead = true;
    }
}

// Silu(gate) * up  ->  SwiGlu(gate, up)
void fuse_swiglu(Graph& g, const std::vector<int>& uses) {
    for (Node& n : g.nodes) {
        if (n.dead || n.op != Op::Mul) continue;
        Node& silu = g[n.inputs[0]];
        if (silu.op != Op::Silu || !single_use(uses, n.inputs[0])) continue;
        n.op = Op::SwiGlu;
        n.inputs = {silu.inputs[0], n.inputs[1]};
        silu.dead = true;
    }
}

// SwiGlu(MatMul(x, Wg), MatMul(x, Wu))  ->  GatedMatMul(x, Wg, Wu): each thread computes its
// rows of gate and up and applies the activation while they are still in cache, so the two
// products never make a round trip through memory and no separate elementwise pass runs.
void fuse_gated_matmul(Graph& g, const std::vector<int>& uses) {
    for (Node& n : g.nodes) {
        if (n.dead || n.op != Op::SwiGlu) continue;
        Node& gate = g[n.inputs[0]];
        Node& up = g[n.inputs[1]];
        const bool plain = gate.op == Op::MatMul && up.op == Op::MatMul &&
                           gate.inputs.size() == 2 && up.inputs.size() == 2 &&
                           gate.inputs[0] == up.inputs[0];
        if (!plain || !single_use(uses, n.inputs[0]) || !single_use(uses, n.inputs[1])) continue;
        n.op = Op::GatedMatMul;
        n.inputs = {gate.inputs[0], gate.inputs[1], up.inputs[1]};
        gate.dead = true;
        up.dead = true;
    }
}

// MatMul(x, W) + b  ->  MatMul(x, W, b), taking the Add's place so its readers need no change.
void fuse_bias(Graph& g, const std::vector<int>& uses) {
    for (Node& n : g.nodes) {
        if (n.dead || n.op != Op::Add) continue;
        const NodeId mm_id = n.inputs[0];
        Node& mm = g[mm_id];
        const Node& bias = g[n.inputs[1]];
        if (mm.op != Op::MatMul || mm.inputs.size() != 2 || !single_use(uses, mm_id) ||
            bias.op != Op::Weight || bias.rows != 1)
            continue;
        const NodeId bias_id = n.inputs[1];
        std::string name = std::move(mm.name);
        n.op = Op::MatMul;
        n.inputs = {mm.inputs[0], mm.inputs[1], bias_id};
        n.name = std::move(name);
        mm.dead = true;
    }
}

// MatMuls reading the same activation run as one group led by the first of them.
void group_shared_input(Graph& g) {
    std::map<NodeId, NodeId> leader_by_input;
    for (NodeId id = 0; id < static_cast<NodeId>(g.nodes.size()); ++id) {
        Node& n = g[id];
        if (n.dead || n.op != Op::MatMul) continue;
        auto [it, first] = leader_by_input.emplace(n.inputs[0], id);
        n.group_leader = it->second;
        (void)first;
    }
    // A group of one is no group.
    std::map<NodeId, int> size;
    for (const Node& n : g.nodes)
        if (!n.dead && n.op == Op::MatMul) ++size[n.group_leader];
    for (Node& n : g.nodes)
        if (!n.dead && n.op == Op::MatMul && size[n.group_leader] == 1) n.group_leader = kNoNode;
}

}  // namespace

void fuse(Graph& g) {
    fuse_rms_norm(g, g.use_counts());
    fuse_swiglu(g, g.use_counts());
    fuse_gated_matmul(g, g.use_counts());
    fuse_bias(g, g.use_counts());
    group_shared_input(g);
}

}  // namespace mllm::graph
