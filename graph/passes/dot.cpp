#include "graph/passes/passes.h"

namespace mllm::graph {
namespace {

// Graphviz colors for up to a few devices; the first is the preferred one.
constexpr const char* kDeviceColors[] = {"lightblue", "lightsalmon", "palegreen", "khaki"};

std::string escape(std::string_view s) {
    std::string out;
    for (char c : s) {
        if (c == '"' || c == '\\') out += '\\';
        out += c;
    }
    return out;
}

}  // namespace

void write_dot(const Graph& g, std::span<const std::string> device_names, std::ostream& out) {
    out << "digraph mllm {\n  rankdir=TB;\n  node [shape=box, style=filled, "
           "fontname=\"monospace\"];\n";
    out << "  label=\"" << g.n_tokens << " token(s), activation arena " << g.arena_bytes
        << " bytes\";\n";
    for (NodeId id = 0; id < static_cast<NodeId>(g.nodes.size()); ++id) {
        const Node& n = g[id];
        if (n.dead) continue;
        out << "  n" << id << " [label=\"" << escape(n.name) << "\\n"
            << op_name(n.op) << " " << n.rows << "x" << n.cols << " " << dtype_name(n.dtype);
        if (n.op == Op::Weight) {
            out << "\", shape=note, fillcolor=white];\n";
            continue;
        }
        if (n.device >= 0 && static_cast<size_t>(n.device) < device_names.size())
            out << "\\non " << escape(device_names[static_cast<size_t>(n.device)]);
        if (n.group_leader != kNoNode) out << "\\ngroup of n" << n.group_leader;
        if (n.offset >= 0) out << "\\narena @" << n.offset;
        const int color = n.device < 0 ? 0 : n.device % 4;
        out << "\", fillcolor=" << kDeviceColors[color] << "];\n";
    }
    for (NodeId id = 0; id < static_cast<NodeId>(g.nodes.size()); ++id) {
        const Node& n = g[id];
        if (n.dead) continue;
        for (NodeId in : n.inputs) out << "  n" << in << " -> n" << id << ";\n";
    }
    out << "}\n";
}

}  // namespace mllm::graph
