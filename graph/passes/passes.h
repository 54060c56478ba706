#pragma once
// Passes over a built graph, run in this order: fuse, place, plan_memory.
#include <cstdint>
#include <ostream>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "graph/device_caps.h"
#include "graph/ir.h"

namespace mllm::graph {

// Folds op chains into the fused ops backends implement: RmsNorm·Mul(weight) -> RmsNormMul,
// Silu·Mul -> SwiGlu, SwiGlu of two MatMuls of one input -> GatedMatMul, MatMul·Add(bias) ->
// MatMul with a bias input, and groups MatMuls that
// share one input (Q/K/V; gate/up) so the input is converted once and the group runs as one
// parallel dispatch. Folded nodes are marked dead.
void fuse(Graph& g);

// Gives every live node a device: the first of `devices` (in preference order) whose
// supports() accepts it. Throws mllm::Error if none does.
void place(Graph& g, std::span<const DeviceCaps* const> devices);

// Assigns every live activation an offset in one arena, reusing the memory of activations whose
// last reader has run. Sets g.arena_bytes and returns it.
int64_t plan_memory(Graph& g);

// Graphviz DOT of the planned graph: ops, shapes, fused groups, the device each node runs on.
void write_dot(const Graph& g, std::span<const std::string> device_names, std::ostream& out);

}  // namespace mllm::graph
