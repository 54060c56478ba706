#include "backends/vulkan/vk_program.h"

#include <algorithm>
#include <cstdio>
#include <map>

#include "backends/vulkan/ops/vk_argmax.h"
#include "backends/vulkan/ops/vk_attention.h"
#include "backends/vulkan/ops/vk_elementwise.h"
#include "backends/vulkan/ops/vk_embed.h"
#include "backends/vulkan/ops/vk_kv_store.h"
#include "backends/vulkan/ops/vk_op_util.h"
#include "backends/vulkan/ops/vk_rms_norm.h"
#include "backends/vulkan/ops/vk_rope.h"
#include "core/error.h"

namespace mllm::vk {

using graph::kNoNode;
using graph::Node;
using graph::NodeId;
using graph::Op;

VkProgram::VkProgram(Context& ctx, const graph::Graph& g, int device, WeightStore& weights,
                     const KvCache& kv, bool profile)
    : ctx_(ctx), g_(g), device_(device), weights_(weights), kv_(kv), profile_(profile) {
    // The scratch after the activations, in the same allocation: a gated matmul's two
    // projections can then be one dispatch with both outputs in one binding.
    int64_t scratch = 16;
    for (const Node& n : g.nodes)
        if (!n.dead && n.device == device && n.op == Op::GatedMatMul)
            scratch = std::max<int64_t>(scratch, static_cast<int64_t>(n.bytes()));
    scratch_offset_ = (g.arena_bytes + 255) / 256 * 256;
    arena_ = ctx_.memory().allocate(static_cast<VkDeviceSize>(scratch_offset_ + scratch));
    for (const Node& n : g.nodes)
        if (!n.dead && n.device == device && (n.op == Op::MatMul || n.op == Op::GatedMatMul))
            rounded_slot_ = std::max(rounded_slot_, static_cast<int64_t>(g[n.inputs[0]].bytes()));
    rounded_slot_ = (rounded_slot_ + 255) / 256 * 256;
    // Room for what a matmul folding a residual add and its norm leaves the matmuls after it.
    int64_t weighted = 16, partials = 16;
    for (const Node& n : g.nodes)
        if (!n.dead && n.device == device && n.op == Op::Add) {
            weighted = std::max<int64_t>(weighted, 4 * n.rows * matmul_norm_input_words(n.cols));
            partials = std::max<int64_t>(partials, 4 * n.rows * matmul_norm_partials(n.cols));
        }
    fold_partials_offset_ = (weighted + 255) / 256 * 256;
    fold_ = ctx_.memory().allocate(static_cast<VkDeviceSize>(fold_partials_offset_ + partials));
    rounded_ =
        ctx_.memory().allocate(static_cast<VkDeviceSize>(std::max<int64_t>(3 * rounded_slot_, 16)));
    if (!ctx_.memory().host_visible(MemoryUse::Device)) {
        upload_ = ctx_.memory().allocate(positions_upload_offset() + g[g.positions].bytes(),
                                         MemoryUse::Upload);
        readback_ = ctx_.memory().allocate(g[g.output()].bytes(), MemoryUse::Readback);
    }
    record();
}

VkProgram::~VkProgram() {
    if (profile_) print_profile();
}

void VkProgram::print_profile() const {
    std::map<std::string, double> by_label;
    std::map<std::string, size_t> count;
    double total = 0;
    size_t runs = 0;
    for (const Segment& s : segments_) {
        const std::vector<double> ms = s.seq->dispatch_ms();
        for (size_t i = 0; i < ms.size() && i < s.labels.size(); ++i) {
            by_label[s.labels[i]] += ms[i];
            ++count[s.labels[i]];
            total += ms[i];
        }
        runs = std::max(runs, ms.empty() ? size_t{0} : size_t{1});
    }
    if (runs == 0 || total <= 0) return;
    std::vector<std::pair<double, std::string>> rows;
    for (const auto& [label, ms] : by_label) rows.emplace_back(ms, label);
    std::sort(rows.rbegin(), rows.rend());
    std::fprintf(stderr,
                 "[mllm] vulkan profile, %lld-token step: %.3f ms of dispatches per step (%zu "
                 "dispatches)\n",
                 static_cast<long long>(g_.n_tokens), total, dispatches_per_step());
    for (const auto& [ms, label] : rows)
        std::fprintf(stderr, "[mllm]   %-24s %8.3f ms  %5.1f%%  %4zu dispatches\n", label.c_str(),
                     ms, 100.0 * ms / total, count.at(label));
}

size_t VkProgram::dispatches_per_step() const {
    size_t total = 0;
    for (const Segment& s : segments_) total += s.seq->dispatches();
    return total;
}

VkProgram::Bound VkProgram::bind(const Allocation& a, int64_t byte_offset, int64_t bytes) const {
    const DeviceProps& props = ctx_.props();
    uint64_t skip = 0;
    const BufferRange r = binding::part(props, a.range(), static_cast<uint64_t>(byte_offset),
                                        static_cast<uint64_t>(bytes), skip);
    if (r.size > props.max_storage_buffer_range)
        fail("a tensor of ", bytes, " bytes exceeds the ", props.max_storage_buffer_range,
             "-byte storage buffer range of ", props.name);
    return {r, static_cast<int64_t>(skip / 4)};
}

VkProgram::Bound VkProgram::node(NodeId id) const {
    const Node& n = g_[id];
    if (n.op == Op::Weight) {
        const Allocation& w = weights_.get(*n.weight);
        return bind(w, 0, static_cast<int64_t>(n.weight->nbytes));
    }
    return bind(arena_, n.offset, static_cast<int64_t>(n.bytes()));
}

VkProgram::Access VkProgram::arena_access(NodeId id) const {
    const Node& n = g_[id];
    return {kArena, n.offset, n.offset + static_cast<int64_t>(n.bytes())};
}

void VkProgram::sync(std::span<const Access> reads, std::span<const Access> writes) {
    auto hits = [](const Access& a, const std::vector<Access>& list) {
        return std::any_of(list.begin(), list.end(), [&](const Access& b) {
            return a.resource == b.resource && a.begin < b.end && b.begin < a.end;
        });
    };
    bool hazard = false;
    for (const Access& r : reads) hazard = hazard || hits(r, pending_writes_);
    for (const Access& w : writes)
        hazard = hazard || hits(w, pending_writes_) || hits(w, pending_reads_);
    if (hazard) {
        seq_->barrier();
        pending_reads_.clear();
        pending_writes_.clear();
    }
    pending_reads_.insert(pending_reads_.end(), reads.begin(), reads.end());
    pending_writes_.insert(pending_writes_.end(), writes.begin(), writes.end());
}

void VkProgram::record() {
    for (NodeId id = 0; id < static_cast<NodeId>(g_.nodes.size()); ++id) {
        const Node& n = g_[id];
        if (n.dead || n.op == Op::Weight || n.op == Op::Input) continue;
        if (n.device != device_) {
            // Another device runs this node: what follows goes in the next command buffer.
            if (seq_ != nullptr) seq_->end();
            seq_ = nullptr;
            continue;
        }
        if (n.op == Op::MatMul && n.group_leader != kNoNode && n.group_leader != id) continue;
        if (seq_ == nullptr) begin_segment(id);
        // A matmul with the residual add after it, the norm after that left to its readers.
        if (const FoldedAdd folded = folded_add_after(id); folded.add != kNoNode) {
            record_matmul_add(id, folded);
            label_dispatches(str_cat("matmul ", dtype_name(g_[n.inputs[1]].dtype), "+add"));
            segments_.back().last = folded.norm + 1;
            id = folded.norm;
            continue;
        }
        // A group matmul of queries, keys and values with the ropes and the store after it.
        if (const FoldedRope folded = folded_rope_after(id);
            folded.store != kNoNode && record_matmul_rope(id, folded)) {
            label_dispatches(
                str_cat("matmul ", dtype_name(g_[n.inputs[1]].dtype), "+rope+kv_store"));
            segments_.back().last = folded.store + 1;
            id = folded.store;
            continue;
        }
        // Nodes that run as one dispatch: the keys' rope with the queries' (and the store of
        // the keys and values into the caches after them), a norm with the residual add before
        // it.
        const NodeId keys = rope_after_rope(id);
        const NodeId store = keys != kNoNode ? store_after_keys(keys) : kNoNode;
        const NodeId norm = keys == kNoNode ? norm_after_add(id) : kNoNode;
        const NodeId last = store != kNoNode ? store : keys != kNoNode ? keys : norm;
        if (last != kNoNode) {
            if (keys != kNoNode) {
                record_rope_pair(id, keys, store);
            } else {
                record_add_norm(id, norm);
            }
            label_dispatches(store != kNoNode  ? "rope+kv_store"
                             : keys != kNoNode ? "rope"
                                               : "add+rms_norm");
            segments_.back().last = last + 1;
            id = last;
            continue;
        }
        record_node(id);
        std::string label(graph::op_name(n.op));
        if (n.op == Op::MatMul || n.op == Op::GatedMatMul || n.op == Op::Embed)
            label += str_cat(" ", dtype_name(g_[n.inputs[n.op == Op::Embed ? 0 : 1]].dtype));
        label_dispatches(label);
        segments_.back().last = id + 1;
    }
    if (seq_ == nullptr) return;
    if (staged() && g_[g_.output()].device == device_) {
        const Node& out = g_[g_.output()];
        seq_->barrier();
        seq_->copy(arena_.range(static_cast<VkDeviceSize>(out.offset), out.bytes()),
                   readback_.range(0, out.bytes()));
    }
    seq_->end();
    seq_ = nullptr;
}

void VkProgram::label_dispatches(const std::string& label) {
    if (profile_) segments_.back().labels.resize(seq_->dispatches(), label);
}

void VkProgram::begin_segment(NodeId first) {
    segments_.push_back({first, first + 1, std::make_unique<Sequence>(ctx_.device())});
    seq_ = segments_.back().seq.get();
    if (profile_) seq_->enable_profiling();
    seq_->begin();
    pending_reads_.clear();
    pending_writes_.clear();
    if (staged() && segments_.size() == 1) {
        // Step inputs: host -> upload buffer (write()) -> arena, inside the step's submit.
        const Node& tokens = g_[g_.tokens];
        const Node& positions = g_[g_.positions];
        seq_->copy(upload_.range(0, tokens.bytes()),
                   arena_.range(static_cast<VkDeviceSize>(tokens.offset), tokens.bytes()));
        seq_->copy(upload_.range(positions_upload_offset(), positions.bytes()),
                   arena_.range(static_cast<VkDeviceSize>(positions.offset), positions.bytes()));
        seq_->barrier();
    }
}

VkDeviceSize VkProgram::positions_upload_offset() const {
    return (g_[g_.tokens].bytes() + 255) / 256 * 256;
}

NodeId VkProgram::next_live(NodeId id) const {
    for (++id; id < static_cast<NodeId>(g_.nodes.size()); ++id) {
        const Node& n = g_[id];
        if (!n.dead && n.op != Op::Weight && n.op != Op::Input) return id;
    }
    return kNoNode;
}

bool VkProgram::arena_overlap(NodeId a, NodeId b) const {
    const Access x = arena_access(a), y = arena_access(b);
    return x.begin < y.end && y.begin < x.end;
}

NodeId VkProgram::norm_after_add(NodeId add) const {
    const Node& a = g_[add];
    if (a.op != Op::Add) return kNoNode;
    for (NodeId in : a.inputs)
        if (g_[in].op == Op::Weight || g_[in].rows != a.rows) return kNoNode;  // no broadcast
    const NodeId id = next_live(add);
    if (id == kNoNode) return kNoNode;
    const Node& n = g_[id];
    if ((n.op != Op::RmsNorm && n.op != Op::RmsNormMul) || n.device != device_ ||
        n.inputs[0] != add)
        return kNoNode;
    // The fused kernel still reads the add's inputs while other workgroups write the norm:
    // plan_memory keeps them alive until the norm; a plan that did not is run unfused.
    for (NodeId in : a.inputs)
        if (arena_overlap(in, id)) return kNoNode;
    return id;
}

RopeArgs VkProgram::rope_args(NodeId id) const {
    const Node& n = g_[id];
    const Bound x = node(n.inputs[0]), pos = node(n.inputs[1]), y = node(id);
    RopeArgs a;
    a.rows = n.rows;
    a.n_head = n.attrs.n_head;
    a.head_dim = n.attrs.head_dim;
    a.mode = n.attrs.rope_mode;
    a.base = n.attrs.rope_base;
    a.freq_scale = n.attrs.rope_freq_scale;
    a.x = x.range;
    a.x_offset = x.offset;
    a.positions = pos.range;
    a.positions_offset = pos.offset;
    a.y = y.range;
    a.y_offset = y.offset;
    return a;
}

NodeId VkProgram::rope_after_rope(NodeId first) const {
    const Node& q = g_[first];
    if (q.op != Op::Rope) return kNoNode;
    const NodeId id = next_live(first);
    if (id == kNoNode) return kNoNode;
    const Node& k = g_[id];
    if (k.op != Op::Rope || k.device != device_ || k.inputs[1] != q.inputs[1] || k.rows != q.rows ||
        k.inputs[0] == first || k.attrs.head_dim != q.attrs.head_dim ||
        k.attrs.rope_mode != q.attrs.rope_mode || k.attrs.rope_base != q.attrs.rope_base ||
        k.attrs.rope_freq_scale != q.attrs.rope_freq_scale)
        return kNoNode;
    // One kernel reads both inputs while writing both outputs: neither output may overlap the
    // other's input (plan_memory keeps the first input alive until the second rope).
    if (arena_overlap(q.inputs[0], id) || arena_overlap(k.inputs[0], first)) return kNoNode;
    return id;
}

NodeId VkProgram::store_after_keys(NodeId keys) const {
    const NodeId id = next_live(keys);
    if (id == kNoNode) return kNoNode;
    const Node& s = g_[id];
    if (s.op != Op::KvStore || s.device != device_ || s.inputs[0] != keys ||
        g_[s.inputs[1]].op == Op::Weight || s.attrs.layer < 0 ||
        static_cast<size_t>(s.attrs.layer) >= kv_.layers.size() ||
        kv_.width != static_cast<int64_t>(g_[keys].attrs.n_head) * g_[keys].attrs.head_dim)
        return kNoNode;
    return id;
}

void VkProgram::record_rope_pair(NodeId queries, NodeId keys, NodeId store) {
    const Node& k = g_[keys];
    std::vector<Access> reads = {arena_access(g_[queries].inputs[0]), arena_access(k.inputs[0]),
                                 arena_access(k.inputs[1])};
    std::vector<Access> writes = {arena_access(queries), arena_access(keys)};
    if (store != kNoNode) {
        const int layer = g_[store].attrs.layer;
        reads.push_back(arena_access(g_[store].inputs[1]));
        writes.push_back({kKvBase + 2 * layer, 0, 1});
        writes.push_back({kKvBase + 2 * layer + 1, 0, 1});
    }
    sync(reads, writes);
    RopeArgs a = rope_args(queries);
    const Bound x2 = node(k.inputs[0]), y2 = node(keys);
    a.n_head2 = k.attrs.n_head;
    a.x2 = x2.range;
    a.x2_offset = x2.offset;
    a.y2 = y2.range;
    a.y2_offset = y2.offset;
    if (store != kNoNode) {
        const Bound v = node(g_[store].inputs[1]);
        const KvBuffers& cache = kv_.layers[static_cast<size_t>(g_[store].attrs.layer)];
        a.v = v.range;
        a.v_offset = v.offset;
        a.k_cache = cache.k.range();
        a.v_cache = cache.v.range();
        a.n_ctx = kv_.n_ctx;
    }
    record_rope(ctx_, *seq_, a);
}

void VkProgram::record_add_norm(NodeId add, NodeId norm) {
    const Node& a = g_[add];
    RmsNormArgs r = norm_args(norm, a.inputs[0]);
    const Bound b = node(a.inputs[1]), sum = node(add);
    r.b = b.range;
    r.b_offset = b.offset;
    r.sum = sum.range;
    r.sum_offset = sum.offset;
    const std::optional<Rounding> rounding = round_norm_output(norm, r);
    const Access reads[] = {arena_access(a.inputs[0]), arena_access(a.inputs[1])};
    std::vector<Access> writes = {arena_access(add), arena_access(norm)};
    if (rounding) writes.push_back(rounded_access(*rounding, g_[norm]));
    sync(reads, writes);
    record_rms_norm(ctx_, *seq_, r);
    if (rounding) rounded_from_[rounding->slot()] = norm;
}

RmsNormArgs VkProgram::norm_args(NodeId norm, NodeId x_id) const {
    const Node& n = g_[norm];
    const Bound x = node(x_id), y = node(norm);
    RmsNormArgs a;
    a.rows = n.rows;
    a.cols = n.cols;
    a.eps = n.attrs.eps;
    a.x = x.range;
    a.x_offset = x.offset;
    a.y = y.range;
    a.y_offset = y.offset;
    if (n.op == Op::RmsNormMul) {
        const Bound w = node(n.inputs[1]);
        a.w = w.range;
        a.w_offset = w.offset;
    }
    return a;
}

void VkProgram::record_node(NodeId id) {
    const Node& n = g_[id];
    // Activation inputs are read; the output is written.
    std::vector<Access> reads;
    for (NodeId in : n.inputs)
        if (g_[in].op != Op::Weight) reads.push_back(arena_access(in));
    std::vector<Access> writes;
    if (n.offset >= 0 && n.op != Op::KvStore) writes.push_back(arena_access(id));
    const int layer = n.attrs.layer;
    const Access k_cache{kKvBase + 2 * layer, 0, 1}, v_cache{kKvBase + 2 * layer + 1, 0, 1};

    switch (n.op) {
        case Op::Embed: {
            sync(reads, writes);
            const Node& table = g_[n.inputs[0]];
            const Bound ids = node(n.inputs[1]);
            const Bound y = node(id);
            EmbedArgs a;
            a.table_type = table.dtype;
            a.cols = n.cols;
            a.rows = n.rows;
            a.table = weights_.get(*table.weight).range();
            a.table_rows = table.rows;
            a.ids = ids.range;
            a.ids_offset = ids.offset;
            a.y = y.range;
            a.y_offset = y.offset;
            record_embed(ctx_, *seq_, a);
            return;
        }
        case Op::RmsNorm:
        case Op::RmsNormMul: {
            RmsNormArgs a = norm_args(id, n.inputs[0]);
            const std::optional<Rounding> r = round_norm_output(id, a);
            if (r) writes.push_back(rounded_access(*r, n));
            sync(reads, writes);
            record_rms_norm(ctx_, *seq_, a);
            if (r) rounded_from_[r->slot()] = id;
            return;
        }
        case Op::Add:
        case Op::Mul:
        case Op::Silu:
        case Op::SwiGlu:
        case Op::TakeLast: {
            sync(reads, writes);
            const Bound a_in = node(n.inputs[0]);
            const Bound y = node(id);
            ElementwiseArgs e;
            e.n = n.rows * n.cols;
            e.cols = n.cols;
            e.a = a_in.range;
            e.a_offset = a_in.offset;
            e.y = y.range;
            e.y_offset = y.offset;
            if (n.op == Op::TakeLast) {
                e.op = Elementwise::Copy;
                e.a_offset += (g_[n.inputs[0]].rows - 1) * n.cols;
            } else if (n.op == Op::Silu) {
                e.op = Elementwise::Silu;
            } else {
                const Bound b = node(n.inputs[1]);
                e.op = n.op == Op::Add   ? Elementwise::Add
                       : n.op == Op::Mul ? Elementwise::Mul
                                         : Elementwise::SwiGlu;
                e.b = b.range;
                e.b_offset = b.offset;
                e.b_broadcast = g_[n.inputs[1]].rows == 1 && n.rows > 1;
            }
            record_elementwise(ctx_, *seq_, e);
            return;
        }
        case Op::Argmax: {
            sync(reads, writes);
            const Bound x = node(n.inputs[0]);
            const Bound y = node(id);
            ArgmaxArgs a;
            a.rows = n.rows;
            a.cols = g_[n.inputs[0]].cols;
            a.x = x.range;
            a.x_offset = x.offset;
            a.y = y.range;
            a.y_offset = y.offset;
            record_argmax(ctx_, *seq_, a);
            return;
        }
        case Op::Rope:
            sync(reads, writes);
            record_rope(ctx_, *seq_, rope_args(id));
            return;
        case Op::KvStore: {
            reads.push_back(arena_access(g_.positions));
            writes.push_back(k_cache);
            writes.push_back(v_cache);
            sync(reads, writes);
            const Bound k = node(n.inputs[0]);
            const Bound v = node(n.inputs[1]);
            const Bound pos = node(g_.positions);
            const KvBuffers& cache = kv_.layers[static_cast<size_t>(layer)];
            KvStoreArgs a;
            a.rows = g_[n.inputs[0]].rows;
            a.width = kv_.width;
            a.n_ctx = kv_.n_ctx;
            a.k = k.range;
            a.k_offset = k.offset;
            a.v = v.range;
            a.v_offset = v.offset;
            a.positions = pos.range;
            a.positions_offset = pos.offset;
            a.k_cache = cache.k.range();
            a.v_cache = cache.v.range();
            record_kv_store(ctx_, *seq_, a);
            return;
        }
        case Op::Attention: {
            reads.push_back(arena_access(g_.positions));
            reads.push_back(k_cache);
            reads.push_back(v_cache);
            const Bound q = node(n.inputs[0]);
            const Bound pos = node(g_.positions);
            const Bound y = node(id);
            const KvBuffers& cache = kv_.layers[static_cast<size_t>(layer)];
            AttentionArgs a;
            a.rows = n.rows;
            a.n_head = n.attrs.n_head;
            a.n_head_kv = n.attrs.n_head_kv;
            a.head_dim = n.attrs.head_dim;
            a.n_ctx = kv_.n_ctx;
            a.scale = n.attrs.attn_scale;
            a.q = q.range;
            a.q_offset = q.offset;
            a.positions = pos.range;
            a.positions_offset = pos.offset;
            a.k_cache = cache.k.range();
            a.v_cache = cache.v.range();
            a.out = y.range;
            a.out_offset = y.offset;
            // The matmul after attention takes its input rounded: written here too where the
            // kernel can (Q8_0 blocks within heads), sparing a rounding dispatch.
            const std::optional<Rounding> rounding = common_rounding(id);
            const bool round = rounding && rounding->format == DType::Q8_0 &&
                               attention_rounds(ctx_.props(), n.attrs.head_dim, rounding->packed);
            if (round) {
                const Access where = rounded_access(*rounding, n);
                writes.push_back(where);
                const Bound out = bind(rounded_, where.begin, where.end - where.begin);
                a.rounded = out.range;
                a.rounded_offset = out.offset;
                a.round_packed = rounding->packed;
            }
            sync(reads, writes);
            record_attention(ctx_, *seq_, a);
            if (round) rounded_from_[rounding->slot()] = id;
            return;
        }
        case Op::MatMul:
            record_matmul_group(id);
            return;
        case Op::GatedMatMul:
            record_gated_matmul(id);
            return;
        case Op::Input:
        case Op::Weight:
            return;
    }
    fail("internal: the Vulkan backend cannot record ", graph::op_name(n.op));
}

void VkProgram::write(NodeId id, const void* src, size_t bytes) {
    const Node& n = g_[id];
    if (bytes != n.bytes())
        fail("internal: input '", n.name, "' takes ", n.bytes(), " bytes, got ", bytes);
    if (staged() && (id == g_.tokens || id == g_.positions)) {
        ctx_.write(upload_, id == g_.tokens ? 0 : positions_upload_offset(), src, bytes);
        return;
    }
    ctx_.write(arena_, static_cast<VkDeviceSize>(n.offset), src, bytes);
}

void VkProgram::read(NodeId id, void* dst, size_t bytes) {
    const Node& n = g_[id];
    if (bytes > n.bytes())
        fail("internal: output '", n.name, "' has ", n.bytes(), " bytes, asked ", bytes);
    if (staged() && id == g_.output()) {
        ctx_.read(readback_, 0, dst, bytes);
        return;
    }
    ctx_.read(arena_, static_cast<VkDeviceSize>(n.offset), dst, bytes);
}

void VkProgram::run(const StepParams& step) {
    if (!kv_.layers.empty() && (step.n_past < 0 || step.n_past + g_.n_tokens > kv_.n_ctx))
        fail("context full: ", step.n_past, " + ", g_.n_tokens, " tokens exceed the context of ",
             kv_.n_ctx);
    for (Segment& s : segments_)
        if (s.first >= step.first && s.first < step.last) s.seq->run();
}

}  // namespace mllm::vk
