#include <algorithm>
#include <iterator>
#include <map>

#include "graph/passes/passes.h"

namespace mllm::graph {
namespace {

constexpr int64_t kAlign = 64;  // cache line: kernels may use aligned vector loads

int64_t align_up(int64_t v) {
    return (v + kAlign - 1) / kAlign * kAlign;
}

// First-fit allocator over [0, inf): free intervals merge when released.
class ArenaAllocator {
  public:
    int64_t alloc(int64_t size) {
        size = align_up(std::max<int64_t>(size, 1));
        for (auto it = free_.begin(); it != free_.end(); ++it) {
            if (it->second >= size) {
                const int64_t at = it->first;
                const int64_t rest = it->second - size;
                free_.erase(it);
                if (rest > 0) free_.emplace(at + size, rest);
                return at;
            }
        }
        // Grow: extend a free tail interval if there is one.
        int64_t at = top_;
        if (!free_.empty()) {
            auto last = std::prev(free_.end());
            if (last->first + last->second == top_) {
                at = last->first;
                free_.erase(last);
            }
        }
        top_ = at + size;
        return at;
    }
    void release(int64_t at, int64_t size) {
        size = align_up(std::max<int64_t>(size, 1));
        auto [it, inserted] = free_.emplace(at, size);
        (void)inserted;
        auto next = std::next(it);
        if (next != free_.end() && it->first + it->second == next->first) {
            it->second += next->second;
            free_.erase(next);
        }
        if (it != free_.begin()) {
            auto prev = std::prev(it);
            if (prev->first + prev->second == it->first) {
                prev->second += it->second;
                free_.erase(it);
            }
        }
    }
    int64_t high_water() const { return top_; }

  private:
    std::map<int64_t, int64_t> free_;  // offset -> size
    int64_t top_ = 0;
};

}  // namespace

int64_t plan_memory(Graph& g) {
    const auto count = static_cast<NodeId>(g.nodes.size());
    // A grouped MatMul is written when its leader runs, so it is "defined" at the leader.
    auto defined_at = [&](NodeId id) {
        return g[id].group_leader != kNoNode ? g[id].group_leader : id;
    };
    std::vector<NodeId> last_use(g.nodes.size(), kNoNode);
    for (NodeId id = 0; id < count; ++id) {
        const Node& n = g[id];
        if (n.dead) continue;
        for (NodeId in : n.inputs)
            last_use[static_cast<size_t>(in)] = std::max(last_use[static_cast<size_t>(in)], id);
    }
    last_use[static_cast<size_t>(g.output())] = count;  // the output outlives the step
    // The positions live through the step: kernels that store keys or attend read them without
    // the graph saying so (the Vulkan backend takes each token's position and the causal limit
    // from them), so nothing may be planned over them before the last such node.
    if (g.positions != kNoNode) last_use[static_cast<size_t>(g.positions)] = count;
    // A residual add and the norm of its sum may run as one kernel (the Vulkan backend fuses
    // them), which still reads the add's inputs while it writes the norm: they live until then.
    for (NodeId id = 0; id < count; ++id) {
        const Node& n = g[id];
        if (n.dead || (n.op != Op::RmsNorm && n.op != Op::RmsNormMul)) continue;
        const Node& add = g[n.inputs[0]];
        if (add.op != Op::Add) continue;
        for (NodeId in : add.inputs)
            last_use[static_cast<size_t>(in)] = std::max(last_use[static_cast<size_t>(in)], id);
    }

    // A matmul and a node reading its output may run as one kernel, which still reads the
    // matmul's input while it writes that node's output: the Vulkan backend folds the residual
    // add after a lone matmul into it, and llama's ropes into the queries', keys' and values'
    // group. That input lives until the add, or the last such rope.
    for (NodeId id = 0; id < count; ++id) {
        const Node& n = g[id];
        if (n.dead || (n.op != Op::Add && n.op != Op::Rope)) continue;
        for (NodeId in : n.inputs) {
            const Node& m = g[in];
            const bool grouped = m.group_leader != kNoNode;
            if (m.op == Op::MatMul && !m.inputs.empty() && grouped == (n.op == Op::Rope))
                last_use[static_cast<size_t>(m.inputs[0])] =
                    std::max(last_use[static_cast<size_t>(m.inputs[0])], id);
        }
    }

    // Two consecutive ropes of the step's positions (the queries, then the keys) may run as one
    // kernel (the Vulkan backend pairs them), which reads the first's input while it writes the
    // second's output: that input lives until then.
    for (NodeId id = 0, prev = kNoNode; id < count; ++id) {
        const Node& n = g[id];
        if (n.dead || n.op == Op::Weight || n.op == Op::Input) continue;
        if (n.op == Op::Rope && prev != kNoNode && g[prev].op == Op::Rope) {
            const NodeId first_input = g[prev].inputs[0];
            last_use[static_cast<size_t>(first_input)] =
                std::max(last_use[static_cast<size_t>(first_input)], id);
        }
        prev = id;
    }

    ArenaAllocator arena;
    std::vector<std::vector<NodeId>> frees_after(g.nodes.size());
    for (NodeId id = 0; id < count; ++id) {
        const Node& n = g[id];
        if (n.is_activation() && n.bytes() > 0 && defined_at(id) == id) {
            // Allocate this node (a leader: its whole group) before releasing inputs, so an
            // output never aliases an input of the kernel that writes it.
            for (NodeId m = id; m < count; ++m) {
                Node& member = g[m];
                if (m != id && (member.dead || member.group_leader != id)) continue;
                member.offset = arena.alloc(static_cast<int64_t>(member.bytes()));
                const NodeId last = std::max(last_use[static_cast<size_t>(m)], m);
                if (last < count) frees_after[static_cast<size_t>(last)].push_back(m);
                if (member.group_leader != id) break;  // not a group
            }
        }
        for (NodeId done : frees_after[static_cast<size_t>(id)])
            arena.release(g[done].offset, static_cast<int64_t>(g[done].bytes()));
    }
    g.arena_bytes = arena.high_water();
    return g.arena_bytes;
}

}  // namespace mllm::graph
