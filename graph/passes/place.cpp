#include "core/error.h"
#include "graph/passes/passes.h"

namespace mllm::graph {

void place(Graph& g, std::span<const DeviceCaps* const> devices) {
    for (Node& n : g.nodes) {
        if (n.dead || n.op == Op::Weight) continue;  // weights are placed by their readers
        n.device = -1;
        for (size_t d = 0; d < devices.size(); ++d) {
            if (devices[d]->supports(g, n)) {
                n.device = static_cast<int>(d);
                break;
            }
        }
        if (n.device < 0) fail("no backend can run node '", n.name, "' (", op_name(n.op), ")");
    }
    // A fused group runs where its leader runs.
    for (Node& n : g.nodes)
        if (!n.dead && n.group_leader != kNoNode) n.device = g[n.group_leader].device;
}

}  // namespace mllm::graph
