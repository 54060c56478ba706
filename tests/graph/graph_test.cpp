// The graph layer: builder checks, fusion, placement and memory planning on a small model.
#include <gtest/gtest.h>

#include <sstream>

#include "core/error.h"
#include "core/gguf/gguf_reader.h"
#include "graph/models/builder.h"
#include "graph/passes/passes.h"
#include "tests/support/random_model.h"
#include "tests/support/test_env.h"

namespace mllm::graph {
namespace {

test::ModelShape tiny_qwen() {
    test::ModelShape s = test::qwen25_05b();
    s.n_layer = 2;
    s.n_vocab = 600;
    s.n_embd = 128;
    s.n_head = 4;
    s.n_head_kv = 2;
    s.n_ff = 256;
    return s;
}

std::shared_ptr<const GgufFile> tiny_file() {
    static std::string path;
    if (path.empty()) {
        path = test::temp_path(".gguf");
        test::write_random_model(path, tiny_qwen(), DType::Q8_0, DType::F32);
    }
    return GgufFile::open(path);
}

class AcceptAll : public DeviceCaps {
  public:
    std::string_view device_name() const override { return "all"; }
    bool supports(const Graph&, const Node&) const override { return true; }
};
class RefuseAttention : public DeviceCaps {
  public:
    std::string_view device_name() const override { return "no-attention"; }
    bool supports(const Graph&, const Node& n) const override { return n.op != Op::Attention; }
};

int count_live(const Graph& g, Op op) {
    int c = 0;
    for (const Node& n : g.nodes) c += (!n.dead && n.op == op);
    return c;
}

TEST(GraphBuilder, BuildsQwen2WithBiasesAndGqa) {
    auto f = tiny_file();
    const ModelConfig c = read_model_config(*f);
    EXPECT_EQ(c.arch, "qwen2");
    EXPECT_EQ(c.rope_mode, RopeMode::Neox);
    EXPECT_TRUE(c.qkv_bias);
    EXPECT_TRUE(c.tied_embeddings);
    EXPECT_EQ(c.head_dim, 32);
    Graph g = build_model_graph(c, *f, BuildOptions{7, false});
    EXPECT_EQ(count_live(g, Op::Attention), 2);
    EXPECT_EQ(count_live(g, Op::MatMul), 2 * 7 + 1);
    EXPECT_EQ(count_live(g, Op::Add), 2 * (3 + 2));  // q/k/v biases + residuals
    EXPECT_EQ(g[g.logits].rows, 1);                  // only the last token's logits
    EXPECT_EQ(g[g.logits].cols, 600);
    Graph all = build_model_graph(c, *f, BuildOptions{7, true});
    EXPECT_EQ(all[all.logits].rows, 7);
}

TEST(GraphPasses, FusionFoldsNormsFfnBiasesAndGroupsSharedInputs) {
    auto f = tiny_file();
    Graph g = build_model_graph(read_model_config(*f), *f, BuildOptions{3, false});
    fuse(g);
    EXPECT_EQ(count_live(g, Op::RmsNorm), 0);
    EXPECT_EQ(count_live(g, Op::Silu), 0);
    EXPECT_EQ(count_live(g, Op::SwiGlu), 0);
    EXPECT_EQ(count_live(g, Op::RmsNormMul), 2 * 2 + 1);
    EXPECT_EQ(count_live(g, Op::GatedMatMul), 2);     // gate, up and SwiGLU as one op per layer
    EXPECT_EQ(count_live(g, Op::MatMul), 2 * 5 + 1);  // q, k, v, output, down per layer + logits
    EXPECT_EQ(count_live(g, Op::Add), 2 * 2);         // only residuals remain
    for (const Node& n : g.nodes) {
        if (n.dead) continue;
        if (n.op == Op::GatedMatMul) {
            ASSERT_EQ(n.inputs.size(), 3u);
            EXPECT_TRUE(g[n.inputs[1]].name.ends_with(".ffn_gate.weight")) << g[n.inputs[1]].name;
            EXPECT_TRUE(g[n.inputs[2]].name.ends_with(".ffn_up.weight")) << g[n.inputs[2]].name;
        }
        if (n.op == Op::MatMul && n.name.ends_with("attn_q")) {
            EXPECT_EQ(n.inputs.size(), 3u);  // the bias folded in
        }
    }
    // Q, K and V share a leader; output, down and the logits stand alone.
    std::map<NodeId, int> group_sizes;
    for (const Node& n : g.nodes)
        if (!n.dead && n.op == Op::MatMul && n.group_leader != kNoNode)
            ++group_sizes[n.group_leader];
    ASSERT_EQ(group_sizes.size(), 2u);
    for (auto [leader, size] : group_sizes) EXPECT_EQ(size, 3) << g[leader].name;
}

TEST(GraphPasses, PlacementFallsBackToTheNextDevice) {
    auto f = tiny_file();
    Graph g = build_model_graph(read_model_config(*f), *f, BuildOptions{1, false});
    fuse(g);
    RefuseAttention gpu;
    AcceptAll cpu;
    const DeviceCaps* devices[] = {&gpu, &cpu};
    place(g, devices);
    for (const Node& n : g.nodes) {
        if (n.dead || n.op == Op::Weight) continue;
        EXPECT_EQ(n.device, n.op == Op::Attention ? 1 : 0) << n.name;
    }
    const DeviceCaps* only_gpu[] = {&gpu};
    EXPECT_THROW(place(g, only_gpu), Error);
}

TEST(GraphPasses, MemoryPlanNeverOverlapsLiveActivations) {
    auto f = tiny_file();
    Graph g = build_model_graph(read_model_config(*f), *f, BuildOptions{5, false});
    fuse(g);
    AcceptAll cpu;
    const DeviceCaps* devices[] = {&cpu};
    place(g, devices);
    const int64_t arena = plan_memory(g);
    // Live interval of each activation: from where it is written to its last reader.
    const auto n = static_cast<NodeId>(g.nodes.size());
    std::vector<NodeId> def(g.nodes.size()), last(g.nodes.size());
    int64_t total = 0;
    for (NodeId id = 0; id < n; ++id) {
        def[static_cast<size_t>(id)] = g[id].group_leader != kNoNode ? g[id].group_leader : id;
        last[static_cast<size_t>(id)] = id;
    }
    for (NodeId id = 0; id < n; ++id)
        if (!g[id].dead)
            for (NodeId in : g[id].inputs)
                last[static_cast<size_t>(in)] = std::max(last[static_cast<size_t>(in)], id);
    last[static_cast<size_t>(g.logits)] = n;
    // What kernels read beyond their formal inputs: the positions, all step long (Vulkan takes
    // each token's position and causal limit from them in kv_store and attention), and a
    // residual add's inputs until the norm of its sum (Vulkan runs the two as one kernel).
    last[static_cast<size_t>(g.positions)] = n;
    for (NodeId id = 0; id < n; ++id) {
        const Node& norm = g[id];
        if (norm.dead || (norm.op != Op::RmsNorm && norm.op != Op::RmsNormMul)) continue;
        if (g[norm.inputs[0]].op != Op::Add) continue;
        for (NodeId in : g[norm.inputs[0]].inputs)
            last[static_cast<size_t>(in)] = std::max(last[static_cast<size_t>(in)], id);
    }
    // And two consecutive ropes (queries, keys) run as one kernel: the first's input lives
    // until the second.
    for (NodeId id = 0, prev = kNoNode; id < n; ++id) {
        if (g[id].dead || g[id].op == Op::Weight || g[id].op == Op::Input) continue;
        if (g[id].op == Op::Rope && prev != kNoNode && g[prev].op == Op::Rope) {
            const auto in = static_cast<size_t>(g[prev].inputs[0]);
            last[in] = std::max(last[in], id);
        }
        prev = id;
    }
    std::vector<NodeId> acts;
    for (NodeId id = 0; id < n; ++id)
        if (g[id].is_activation() && g[id].bytes() > 0) {
            acts.push_back(id);
            total += static_cast<int64_t>(g[id].bytes());
            EXPECT_GE(g[id].offset, 0);
            EXPECT_LE(g[id].offset + static_cast<int64_t>(g[id].bytes()), arena);
        }
    for (NodeId a : acts)
        for (NodeId b : acts) {
            if (a >= b) continue;
            const auto ua = static_cast<size_t>(a), ub = static_cast<size_t>(b);
            const bool live_together = def[ua] <= last[ub] && def[ub] <= last[ua];
            const bool overlap = g[a].offset < g[b].offset + static_cast<int64_t>(g[b].bytes()) &&
                                 g[b].offset < g[a].offset + static_cast<int64_t>(g[a].bytes());
            EXPECT_FALSE(live_together && overlap) << g[a].name << " and " << g[b].name;
        }
    EXPECT_LT(arena, total / 2);  // reuse really happens
}

TEST(GraphPasses, DotShowsDevicesAndGroups) {
    auto f = tiny_file();
    Graph g = build_model_graph(read_model_config(*f), *f, BuildOptions{1, false});
    fuse(g);
    AcceptAll cpu;
    const DeviceCaps* devices[] = {&cpu};
    place(g, devices);
    plan_memory(g);
    std::ostringstream out;
    const std::string names[] = {"cpu"};
    write_dot(g, names, out);
    const std::string dot = out.str();
    EXPECT_EQ(dot.rfind("digraph mllm {", 0), 0u);
    EXPECT_NE(dot.find("on cpu"), std::string::npos);
    EXPECT_NE(dot.find("group of n"), std::string::npos);
    EXPECT_NE(dot.find("rms_norm_mul"), std::string::npos);
}

TEST(GraphBuilder, RejectsBadModels) {
    auto f = tiny_file();
    ModelConfig c = read_model_config(*f);
    c.n_embd = 64;  // shapes in the file no longer match
    try {
        build_model_graph(c, *f, BuildOptions{1, false});
        FAIL() << "expected a shape error";
    } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find("has shape"), std::string::npos) << e.what();
    }
}

}  // namespace
}  // namespace mllm::graph
