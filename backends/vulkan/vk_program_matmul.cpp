// VkProgram's matmul nodes (alone, as one dispatch over a group's concatenated weights, gated)
// and the rounding of their inputs to the 8-bit blocks the CPU backend multiplies with.
#include <algorithm>

#include "backends/vulkan/ops/vk_elementwise.h"
#include "backends/vulkan/ops/vk_matmul.h"
#include "backends/vulkan/ops/vk_round_activations.h"
#include "backends/vulkan/vk_program.h"
#include "core/error.h"
#include "core/quant/quant.h"

namespace mllm::vk {

using graph::kNoNode;
using graph::Node;
using graph::NodeId;
using graph::Op;

const VkProgram::Bound& VkProgram::MatMulInputs::rounded(const std::optional<Rounding>& r) const {
    if (!r) return plain;
    switch (r->slot()) {
        case 0:
            return q8_0;
        case 1:
            return q8_k;
        default:
            return q8_0_packed;
    }
}

std::optional<VkProgram::Rounding> VkProgram::rounding_for(DType weight_type) const {
    const DType f = activation_type(weight_type);
    // The repacked Q4_0 kernel quantizes its input itself.
    if (f == DType::F32 ||
        matmul_quantizes_input(weight_type, matmul_repacks(ctx_.props(), weight_type)))
        return std::nullopt;
    return Rounding{f, matmul_int_dot(ctx_.props(), weight_type)};
}

std::optional<VkProgram::Rounding> VkProgram::common_rounding(NodeId x) const {
    std::optional<Rounding> common;
    bool any = false;
    for (const Node& n : g_.nodes) {
        if (n.dead || n.device != device_ ||
            std::find(n.inputs.begin(), n.inputs.end(), x) == n.inputs.end())
            continue;
        if ((n.op != Op::MatMul && n.op != Op::GatedMatMul) || n.inputs[0] != x)
            return std::nullopt;
        for (size_t w = 1; w < (n.op == Op::GatedMatMul ? 3u : 2u); ++w) {
            const std::optional<Rounding> r = rounding_for(g_[n.inputs[w]].dtype);
            if (!r || (any && !(common == r))) return std::nullopt;
            common = r;
            any = true;
        }
    }
    return common;
}

std::optional<VkProgram::Rounding> VkProgram::round_norm_output(NodeId norm, RmsNormArgs& a) {
    const std::optional<Rounding> r = common_rounding(norm);
    if (!r) return std::nullopt;
    const Node& n = g_[norm];
    const Bound out = bind(rounded_, r->slot() * rounded_slot_, rounding_bytes(*r, n));
    a.rounded = out.range;
    a.rounded_offset = out.offset;
    a.round_format = r->format;
    a.round_packed = r->packed;
    return r;
}

int64_t VkProgram::rounding_bytes(const Rounding& r, const Node& x) const {
    return r.packed ? 4 * x.rows * q8_0_packed_words(x.cols) : static_cast<int64_t>(x.bytes());
}

VkProgram::Access VkProgram::rounded_access(const Rounding& r, const Node& x) const {
    const int64_t begin = r.slot() * rounded_slot_;
    return {kRounded, begin, begin + rounding_bytes(r, x)};
}

VkProgram::MatMulInputs VkProgram::matmul_inputs(NodeId x_id, std::span<const DType> weights) {
    MatMulInputs in;
    const Node& x = g_[x_id];
    const bool folded = folded_norms_.count(x_id) != 0;
    in.plain = node(x_id);
    if (folded) {
        // The matmul before the add left the sum times the norm's weight and the partial sums
        // of squares: the kernel scales each token itself.
        in.plain = bind(fold_, 0, 4 * x.rows * matmul_norm_input_words(x.cols));
        in.norm_in.partials = fold_.range();
        in.norm_in.partials_offset = fold_partials_offset_ / 4;
        in.norm_in.count = matmul_norm_partials(x.cols);
        in.norm_in.eps = x.attrs.eps;
    }
    for (DType t : weights) {
        const std::optional<Rounding> rounding = rounding_for(t);
        if (!rounding) {
            in.reads.push_back(folded ? fold_access(x) : arena_access(x_id));
            continue;
        }
        if (folded) fail("internal: a folded norm's matmul wants its input rounded");
        const Rounding r = *rounding;
        const DType f = r.format;
        const bool packed = r.packed;
        const int slot = r.slot();
        const Access where = rounded_access(r, x);
        in.reads.push_back(where);
        Bound& out = packed ? in.q8_0_packed : slot == 0 ? in.q8_0 : in.q8_k;
        out = bind(rounded_, where.begin, where.end - where.begin);
        // Rounded already: for another weight of this input, or by the kernel that wrote x.
        if (rounded_from_[slot] == x_id) continue;
        rounded_from_[slot] = x_id;
        const Access reads[] = {arena_access(x_id)};
        const Access writes[] = {where};
        sync(reads, writes);
        RoundActivationsArgs a;
        a.format = f;
        a.rows = x.rows;
        a.cols = x.cols;
        a.x = in.plain.range;
        a.x_offset = in.plain.offset;
        a.y = out.range;
        a.y_offset = out.offset;
        a.packed = packed;
        record_round_activations(ctx_, *seq_, a);
        label_dispatches("round_activations");
    }
    return in;
}

std::vector<NodeId> VkProgram::group_members(NodeId leader) const {
    std::vector<NodeId> members;
    for (NodeId id = leader; id < static_cast<NodeId>(g_.nodes.size()); ++id) {
        const Node& n = g_[id];
        if (id != leader && (n.dead || n.op != Op::MatMul || n.group_leader != leader)) continue;
        members.push_back(id);
        if (g_[leader].group_leader == kNoNode) break;
    }
    return members;
}

void VkProgram::record_matmul_group(NodeId leader) {
    const std::vector<NodeId> members = group_members(leader);
    std::vector<DType> types;
    for (NodeId m : members) types.push_back(g_[g_[m].inputs[1]].dtype);
    const MatMulInputs in = matmul_inputs(g_[leader].inputs[0], types);
    std::vector<Access> writes;
    for (NodeId m : members) writes.push_back(arena_access(m));
    sync(in.reads, writes);
    if (members.size() > 1 && record_fused_group(in, members, members)) return;
    for (NodeId id : members) {
        const Node& n = g_[id];
        const Bound bias = n.inputs.size() > 2 ? node(n.inputs[2]) : Bound{};
        record_one_matmul(in, n.inputs[1], n.rows, node(id), bias);
    }
}

bool VkProgram::record_fused_group(const MatMulInputs& in, std::span<const NodeId> members,
                                   std::span<const NodeId> to, const MatMulArgs::Rope* rope) {
    std::vector<const GgufTensor*> weights, biases;
    std::vector<FusedOutput> outputs;
    for (size_t i = 0; i < members.size(); ++i) {
        const Node& n = g_[members[i]];
        weights.push_back(g_[n.inputs[1]].weight);
        outputs.push_back({g_[to[i]].offset, n.cols});
        if (n.inputs.size() > 2) {
            const Node& b = g_[n.inputs[2]];
            if (b.op != Op::Weight || b.dtype != DType::F32) return false;
            biases.push_back(b.weight);
        }
    }
    return record_fused(in, g_[members[0]].rows, weights, biases, outputs, rope);
}

bool VkProgram::record_fused(const MatMulInputs& in, int64_t tokens,
                             std::span<const GgufTensor* const> weights,
                             std::span<const GgufTensor* const> biases,
                             std::span<const FusedOutput> outputs, const MatMulArgs::Rope* rope) {
    if (weights.size() > 3 || (!biases.empty() && biases.size() != weights.size())) return false;
    const WeightStore::Group w = weights_.matmul_group(weights);
    const DeviceProps& props = ctx_.props();
    // One dispatch: the weights and the arena (all outputs) each fit a binding.
    if (w.allocation == nullptr || w.allocation->size() + 64 > props.max_storage_buffer_range ||
        arena_.size() + 64 > props.max_storage_buffer_range || (rope != nullptr && !w.repacked))
        return false;
    const DType type = weights[0]->type;
    const bool packed = matmul_int_dot(props, type) && !w.repacked;
    const Bound& x = in.rounded(rounding_for(type));
    const Bound y = bind(arena_, 0, static_cast<int64_t>(arena_.size()));
    MatMulArgs a;
    a.weight_type = type;
    a.k = weights[0]->ne[0];
    a.n = tokens;
    a.w = w.allocation->range();
    a.repacked = w.repacked;
    a.x_packed = packed;
    a.x = x.range;
    a.x_offset = x.offset;
    a.norm_in = in.norm_in;
    a.y = y.range;
    for (size_t i = 0; i < outputs.size(); ++i) {
        const int64_t y_offset = y.offset + outputs[i].offset / 4;
        if (i == 0) {
            a.y_offset = y_offset;
            a.y_stride = outputs[i].cols;
        } else {
            a.more_outputs.push_back({a.m, y_offset, outputs[i].cols});
        }
        a.m += outputs[i].cols;
    }
    if (!biases.empty()) a.bias = weights_.bias_group(biases).range();
    if (rope != nullptr) a.rope = *rope;
    record_matmul(ctx_, *seq_, a);
    return true;
}

void VkProgram::record_one_matmul(const MatMulInputs& in, NodeId weight_id, int64_t rows,
                                  const Bound& y, const Bound& bias) {
    record_matmul(ctx_, *seq_, one_matmul_args(in, weight_id, rows, y, bias));
}

MatMulArgs VkProgram::one_matmul_args(const MatMulInputs& in, NodeId weight_id, int64_t rows,
                                      const Bound& y, const Bound& bias) {
    const Node& w = g_[weight_id];
    const WeightStore::ForMatMul weight = weights_.for_matmul(*w.weight);
    const bool packed = matmul_int_dot(ctx_.props(), w.dtype) && !weight.repacked;
    const Bound& x = in.rounded(rounding_for(w.dtype));
    MatMulArgs a =
        matmul_args(w.dtype, w.rows, w.cols, rows, weight.allocation.range(), x.range, y.range);
    a.x_packed = packed;
    a.repacked = weight.repacked;
    a.x_offset = x.offset;
    a.y_offset = y.offset;
    a.bias = bias.range;
    a.bias_offset = bias.offset;
    a.norm_in = in.norm_in;
    return a;
}

VkProgram::FoldedAdd VkProgram::folded_add_after(NodeId m) const {
    const Node& mm = g_[m];
    if (mm.op != Op::MatMul || mm.inputs.size() != 2 || mm.group_leader != kNoNode ||
        !matmul_folds_norm(ctx_.props(), g_[mm.inputs[1]].dtype))
        return {};
    const NodeId add = next_live(m);
    if (add == kNoNode) return {};
    const Node& a = g_[add];
    if (a.op != Op::Add || a.device != device_ || a.inputs.size() != 2 || a.rows != mm.rows ||
        a.cols != mm.cols)
        return {};
    const NodeId residual = a.inputs[0] == m ? a.inputs[1] : a.inputs[0];
    const Node& r = g_[residual];
    if (residual == m || (a.inputs[0] != m && a.inputs[1] != m) || r.op == Op::Weight ||
        r.rows != a.rows || r.cols != a.cols)
        return {};
    // The matmul writes the sum while it still reads its input: they must not overlap
    // (plan_memory keeps the input alive until the add; a plan that did not runs unfused). The
    // residual may be the sum's own place (each element read and written by one invocation),
    // but not overlap it otherwise.
    const Access sum = arena_access(add), res = arena_access(residual);
    if (arena_overlap(add, mm.inputs[0]) ||
        (arena_overlap(add, residual) && (sum.begin != res.begin || sum.end != res.end)))
        return {};
    const NodeId norm = next_live(add);
    if (norm == kNoNode) return {};
    const Node& nn = g_[norm];
    if (nn.op != Op::RmsNormMul || nn.device != device_ || nn.inputs[0] != add ||
        g_[nn.inputs[1]].op != Op::Weight || g_[nn.inputs[1]].dtype != DType::F32)
        return {};
    // Only the add reads the matmul's output, and every reader of the norm takes it folded.
    if (!read_only_by(m, add)) return {};
    bool any = false;
    for (NodeId id = 0; id < static_cast<NodeId>(g_.nodes.size()); ++id) {
        const Node& n = g_[id];
        if (n.dead || std::find(n.inputs.begin(), n.inputs.end(), norm) == n.inputs.end()) continue;
        if (!takes_folded_norm(id, norm)) return {};
        any = true;
    }
    if (!any || g_.output() == norm) return {};
    return {add, residual, norm};
}

bool VkProgram::read_only_by(NodeId value, NodeId reader) const {
    if (g_.output() == value) return false;
    for (NodeId id = 0; id < static_cast<NodeId>(g_.nodes.size()); ++id) {
        const Node& n = g_[id];
        if (id != reader && !n.dead &&
            std::find(n.inputs.begin(), n.inputs.end(), value) != n.inputs.end())
            return false;
    }
    return true;
}

bool VkProgram::takes_folded_norm(NodeId consumer, NodeId norm) const {
    const Node& n = g_[consumer];
    if (n.device != device_ || n.inputs.empty() || n.inputs[0] != norm ||
        std::find(n.inputs.begin() + 1, n.inputs.end(), norm) != n.inputs.end())
        return false;
    const DType type = g_[n.inputs[1]].dtype;
    if (n.op == Op::MatMul) return matmul_folds_norm(ctx_.props(), type);
    // The gated matmul's paired kernel (record_gated_matmul's condition).
    return n.op == Op::GatedMatMul && g_[n.inputs[2]].dtype == type &&
           matmul_folds_norm(ctx_.props(), type) && !common_rounding(consumer);
}

VkProgram::Access VkProgram::fold_access(const Node& sum) const {
    return {kFold, 0, fold_partials_offset_ + 4 * sum.rows * matmul_norm_partials(sum.cols)};
}

void VkProgram::record_matmul_add(NodeId m, const FoldedAdd& folded) {
    const Node& mm = g_[m];
    const DType types[] = {g_[mm.inputs[1]].dtype};
    MatMulInputs in = matmul_inputs(mm.inputs[0], types);
    in.reads.push_back(arena_access(folded.residual));
    const Access writes[] = {arena_access(folded.add), fold_access(g_[folded.add])};
    sync(in.reads, writes);
    MatMulArgs args = one_matmul_args(in, mm.inputs[1], mm.rows, node(folded.add), Bound{});
    const Bound r = node(folded.residual);
    args.residual = r.range;
    args.residual_offset = r.offset;
    args.norm_out.weight = weights_.get(*g_[g_[folded.norm].inputs[1]].weight).range();
    args.norm_out.weighted = fold_.range();
    args.norm_out.partials = fold_.range();
    args.norm_out.partials_offset = fold_partials_offset_ / 4;
    record_matmul(ctx_, *seq_, args);
    folded_norms_.insert(folded.norm);
}

VkProgram::FoldedRope VkProgram::folded_rope_after(NodeId leader) const {
    const Node& first = g_[leader];
    if (first.op != Op::MatMul || first.group_leader != leader) return {};
    const std::vector<NodeId> members = group_members(leader);
    if (members.size() != 3) return {};
    const DType type = g_[first.inputs[1]].dtype;
    for (NodeId m : members)
        if (g_[g_[m].inputs[1]].dtype != type || g_[m].cols % 2 != 0) return {};
    if (!matmul_ropes_pairs(ctx_.props(), type)) return {};
    // The queries' rope right after the group, the keys' (rope_after_rope: the same positions
    // and rotation), the store of the keys and the values.
    const NodeId queries = next_live(members.back());
    if (queries == kNoNode) return {};
    const Node& q = g_[queries];
    // The kernel's row pairs are the rotation's: llama's neighbours, in heads of even size, and
    // a key row a value row (record_matmul's conditions).
    if (q.op != Op::Rope || q.device != device_ || q.inputs[0] != members[0] ||
        q.attrs.rope_mode != graph::RopeMode::Normal || q.attrs.head_dim % 2 != 0 ||
        g_[members[1]].cols != g_[members[2]].cols)
        return {};
    const NodeId keys = rope_after_rope(queries);
    if (keys == kNoNode || g_[keys].inputs[0] != members[1]) return {};
    const NodeId store = store_after_keys(keys);
    if (store == kNoNode || g_[store].inputs[1] != members[2]) return {};
    // Only the ropes read the queries' and keys' products, which are never written; the kernel
    // still reads the group's input while it writes the ropes' outputs (plan_memory keeps it
    // alive until the keys' rope; a plan that did not runs unfused).
    if (!read_only_by(members[0], queries) || !read_only_by(members[1], keys) ||
        (folded_norms_.count(first.inputs[0]) == 0 &&
         (arena_overlap(queries, first.inputs[0]) || arena_overlap(keys, first.inputs[0]))))
        return {};
    return {queries, keys, store};
}

bool VkProgram::record_matmul_rope(NodeId leader, const FoldedRope& folded) {
    // The group's queries, keys and values, as folded_rope_after found them.
    const NodeId members[] = {g_[folded.queries].inputs[0], g_[folded.keys].inputs[0],
                              g_[folded.store].inputs[1]};
    const DType types[] = {g_[g_[leader].inputs[1]].dtype};
    MatMulInputs in = matmul_inputs(g_[leader].inputs[0], types);
    const Node& q = g_[folded.queries];
    const int layer = g_[folded.store].attrs.layer;
    in.reads.push_back(arena_access(q.inputs[1]));
    const Access writes[] = {arena_access(folded.queries),
                             arena_access(folded.keys),
                             arena_access(members[2]),
                             {kKvBase + 2 * layer, 0, 1},
                             {kKvBase + 2 * layer + 1, 0, 1}};
    sync(in.reads, writes);
    const Bound positions = node(q.inputs[1]);
    const KvBuffers& cache = kv_.layers[static_cast<size_t>(layer)];
    MatMulArgs::Rope rope;
    rope.positions = positions.range;
    rope.positions_offset = positions.offset;
    rope.k_cache = cache.k.range();
    rope.v_cache = cache.v.range();
    rope.n_ctx = kv_.n_ctx;
    rope.head_dim = q.attrs.head_dim;
    rope.base = q.attrs.rope_base;
    rope.freq_scale = q.attrs.rope_freq_scale;
    const NodeId outputs[] = {folded.queries, folded.keys, members[2]};
    return record_fused_group(in, members, outputs, &rope);
}

void VkProgram::record_gated_matmul(NodeId id) {
    const Node& n = g_[id];
    const NodeId x_id = n.inputs[0];
    const Node& gate_w = g_[n.inputs[1]];
    const Node& up_w = g_[n.inputs[2]];
    // One kernel over gate and up rows paired, writing silu(gate) * up: where the device's
    // kernel pairs them and no consumer wants the output rounded (the SwiGLU dispatch below
    // writes that).
    if (gate_w.dtype == up_w.dtype && matmul_gates_pairs(ctx_.props(), gate_w.dtype) &&
        !common_rounding(id)) {
        const DType types[] = {gate_w.dtype};
        const MatMulInputs in = matmul_inputs(x_id, types);
        const Access writes[] = {arena_access(id)};
        sync(in.reads, writes);
        const Bound x = in.rounded(rounding_for(gate_w.dtype));
        const Bound y = node(id);
        MatMulArgs a = matmul_args(gate_w.dtype, 2 * gate_w.rows, gate_w.cols, n.rows,
                                   weights_.gated_pairs(*gate_w.weight, *up_w.weight).range(),
                                   x.range, y.range);
        a.repacked = true;
        a.gated = true;
        a.x_offset = x.offset;
        a.y_offset = y.offset;
        a.norm_in = in.norm_in;
        record_matmul(ctx_, *seq_, a);
        return;
    }
    // gate -> the output, up -> scratch, then silu(gate) * up in place.
    const int64_t bytes = static_cast<int64_t>(n.bytes());
    const DType types[] = {g_[n.inputs[1]].dtype, g_[n.inputs[2]].dtype};
    const MatMulInputs in = matmul_inputs(x_id, types);
    const Access writes[] = {arena_access(id), {kScratch, 0, bytes}};
    sync(in.reads, writes);
    const Bound y = node(id);
    const Bound up = bind(arena_, scratch_offset_, bytes);
    const GgufTensor* projections[] = {g_[n.inputs[1]].weight, g_[n.inputs[2]].weight};
    const FusedOutput outputs[] = {{n.offset, n.cols}, {scratch_offset_, n.cols}};
    if (!record_fused(in, n.rows, projections, {}, outputs)) {
        record_one_matmul(in, n.inputs[1], n.rows, y, Bound{});
        record_one_matmul(in, n.inputs[2], n.rows, up, Bound{});
    }
    const Access glu_reads[] = {arena_access(id), {kScratch, 0, bytes}};
    std::vector<Access> glu_writes = {arena_access(id)};
    // The matmul after it (the down projection) takes its input rounded: written here too.
    const std::optional<Rounding> rounding = common_rounding(id);
    if (rounding) glu_writes.push_back(rounded_access(*rounding, n));
    sync(glu_reads, glu_writes);
    ElementwiseArgs e;
    e.op = Elementwise::SwiGlu;
    e.n = n.rows * n.cols;
    e.cols = n.cols;
    e.a = y.range;
    e.a_offset = y.offset;
    e.b = up.range;
    e.b_offset = up.offset;
    e.y = y.range;
    e.y_offset = y.offset;
    if (rounding) {
        const Access where = rounded_access(*rounding, n);
        const Bound out = bind(rounded_, where.begin, where.end - where.begin);
        e.rounded = out.range;
        e.rounded_offset = out.offset;
        e.round_format = rounding->format;
        e.round_packed = rounding->packed;
    }
    record_elementwise(ctx_, *seq_, e);
    if (rounding) rounded_from_[rounding->slot()] = id;
}

}  // namespace mllm::vk
