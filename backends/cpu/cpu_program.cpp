#include "backends/cpu/cpu_program.h"

#include <algorithm>
#include <cstring>
#include <map>

#include "backends/cpu/kernels/float_ops.h"
#include "backends/cpu/kernels/matmul_f32.h"
#include "backends/cpu/kernels/quant_matmul.h"
#include "core/error.h"

namespace mllm::cpu {

using graph::kNoNode;
using graph::Node;
using graph::NodeId;
using graph::Op;

namespace {
// Row ranges handed to threads are multiples of this, so SIMD kernels that do several rows at
// once stay on their fast path.
constexpr int64_t kRowAlign = 16;
constexpr size_t kAlign = 64;
}  // namespace

AlignedBuffer aligned_buffer(size_t bytes) {
    const size_t rounded = std::max<size_t>(kAlign, (bytes + kAlign - 1) / kAlign * kAlign);
    void* p = std::aligned_alloc(kAlign, rounded);
    if (p == nullptr)
        fail("out of memory: cannot allocate ", rounded, " bytes for the CPU backend");
    return AlignedBuffer(static_cast<uint8_t*>(p));
}

CpuProgram::CpuProgram(const graph::Graph& g, int device, ThreadPool& pool,
                       const std::vector<KvLayer>& kv, bool profile)
    : g_(g),
      pool_(pool),
      kv_(kv),
      arena_(aligned_buffer(static_cast<size_t>(g.arena_bytes))),
      profile_(profile ? std::make_unique<StepProfile>() : nullptr) {
    n_ctx_ = kv.empty() ? 0 : kv.front().n_ctx;
    scores_per_thread_ = kAttentionHeadsPerPass * std::max<int64_t>(n_ctx_, 1);
    scores_.assign(static_cast<size_t>(pool.size() * scores_per_thread_), 0.0f);
    size_t scratch = 0;
    for (NodeId id = 0; id < static_cast<NodeId>(g.nodes.size()); ++id) {
        const Node& n = g[id];
        if (n.dead || n.op == Op::Weight || n.op == Op::Input || n.device != device) continue;
        if (n.op == Op::MatMul && n.group_leader != kNoNode && n.group_leader != id)
            continue;  // runs with its leader
        Step s{id};
        if (n.op == Op::MatMul || n.op == Op::GatedMatMul) {
            s.group = static_cast<int>(groups_.size());
            if (n.op == Op::MatMul) {
                prepare_matmul(id);
            } else {
                prepare_gated_matmul(id);
            }
            size_t bytes = 0;
            for (const MatMulMember& m : groups_.back().members)
                bytes += m.act_row_bytes * static_cast<size_t>(n.rows);
            scratch = std::max(scratch, bytes + kAlign * groups_.back().members.size());
        }
        steps_.push_back(s);
    }
    act_scratch_ = aligned_buffer(scratch);
    size_t up_bytes = 0;
    for (const MatMulGroup& group : groups_)
        if (group.gated)
            up_bytes = std::max(
                up_bytes, static_cast<size_t>(group.n * group.members[1].rows) * sizeof(float));
    gate_up_scratch_ = aligned_buffer(up_bytes);
    for (MatMulGroup& group : groups_)
        if (group.gated) group.members[1].y = reinterpret_cast<float*>(gate_up_scratch_.get());
    // Point each member at its converted input inside the scratch; members whose weights take
    // the same activation format share one conversion.
    for (MatMulGroup& group : groups_) {
        std::map<DType, const uint8_t*> by_format;
        size_t at = 0;
        for (MatMulMember& m : group.members) {
            if (m.type == DType::F32) {
                // F32 weights read the input rows as they are.
                m.act = reinterpret_cast<const uint8_t*>(group.x);
                continue;
            }
            // F16 and BF16 both take f32 rows but rounded differently: key them by weight type.
            const DType act = activation_type(m.type);
            const DType format = act == DType::F32 ? m.type : act;
            auto [it, added] = by_format.emplace(format, act_scratch_.get() + at);
            if (added)
                at +=
                    (m.act_row_bytes * static_cast<size_t>(group.n) + kAlign - 1) / kAlign * kAlign;
            m.act = it->second;
        }
    }
    if (profile_)
        for (Step& s : steps_) label_for_profile(s);
}

CpuProgram::~CpuProgram() {
    if (profile_) profile_->print(g_.n_tokens);
}

// A matmul is labelled by its weights (layer prefix and ".weight" dropped, so every layer's
// projection shares a label) and type; other ops by their name.
void CpuProgram::label_for_profile(Step& s) const {
    const Node& n = g_[s.id];
    std::string name(graph::op_name(n.op));
    int64_t bytes = 0;
    if (s.group >= 0) {
        const MatMulGroup& group = groups_[static_cast<size_t>(s.group)];
        std::string weights;
        for (const MatMulMember& m : group.members) {
            std::string w = g_[m.weight].name;
            if (w.rfind("blk.", 0) == 0) w = w.substr(w.find('.', 4) + 1);
            if (w.size() > 7 && w.ends_with(".weight")) w.resize(w.size() - 7);
            weights += (weights.empty() ? "" : "+") + w;
            bytes += static_cast<int64_t>(m.w_row_bytes) * m.rows;
        }
        name += str_cat(" ", weights, " ", dtype_name(group.members.front().type));
    }
    s.label = profile_->label(name, bytes);
}

float* CpuProgram::f32(NodeId id) const {
    const Node& n = g_[id];
    if (n.op == Op::Weight) return reinterpret_cast<float*>(const_cast<uint8_t*>(n.weight->data));
    return reinterpret_cast<float*>(arena_.get() + n.offset);
}

CpuProgram::MatMulMember CpuProgram::make_member(NodeId weight, int64_t rows, int64_t k,
                                                 float* y) const {
    const Node& w = g_[weight];
    MatMulMember m{};
    m.weight = weight;
    m.type = w.dtype;
    m.w = w.weight->data;
    m.w_row_bytes = row_bytes(w.dtype, w.cols);
    m.rows = rows;
    m.y = y;
    m.act_row_bytes = row_bytes(activation_type(w.dtype), k);
    return m;
}

void CpuProgram::prepare_matmul(NodeId leader) {
    MatMulGroup group;
    const Node& first = g_[leader];
    group.x = f32(first.inputs[0]);
    group.n = first.rows;
    group.k = g_[first.inputs[0]].cols;
    group.total_rows = 0;
    for (NodeId id = leader; id < static_cast<NodeId>(g_.nodes.size()); ++id) {
        const Node& n = g_[id];
        if (id != leader && (n.dead || n.op != Op::MatMul || n.group_leader != leader)) continue;
        MatMulMember m = make_member(n.inputs[1], n.cols, group.k, f32(id));
        m.bias = n.inputs.size() > 2 ? f32(n.inputs[2]) : nullptr;
        group.members.push_back(m);
        group.total_rows += m.rows;
        if (first.group_leader == kNoNode) break;
    }
    groups_.push_back(std::move(group));
}

void CpuProgram::prepare_gated_matmul(NodeId id) {
    const Node& n = g_[id];
    MatMulGroup group;
    group.x = f32(n.inputs[0]);
    group.n = n.rows;
    group.k = g_[n.inputs[0]].cols;
    group.total_rows = n.cols;
    group.gated = true;
    group.members.push_back(make_member(n.inputs[1], n.cols, group.k, f32(id)));  // gate
    // up: its buffer is set once the scratch exists
    group.members.push_back(make_member(n.inputs[2], n.cols, group.k, nullptr));
    groups_.push_back(std::move(group));
}

void CpuProgram::write(NodeId id, const void* src, size_t bytes) {
    const Node& n = g_[id];
    if (bytes != n.bytes())
        fail("internal: input '", n.name, "' takes ", n.bytes(), " bytes, got ", bytes);
    std::memcpy(arena_.get() + n.offset, src, bytes);
}

void CpuProgram::read(NodeId id, void* dst, size_t bytes) {
    const Node& n = g_[id];
    if (bytes > n.bytes())
        fail("internal: output '", n.name, "' has ", n.bytes(), " bytes, asked ", bytes);
    std::memcpy(dst, arena_.get() + n.offset, bytes);
}

void CpuProgram::run(const StepParams& step) {
    if (!kv_.empty() && (step.n_past < 0 || step.n_past + g_.n_tokens > n_ctx_))
        fail("context full: ", step.n_past, " + ", g_.n_tokens, " tokens exceed the context of ",
             n_ctx_);
    for (const Step& s : steps_) {
        if (s.id < step.first || s.id >= step.last) continue;
        if (!profile_) {
            run_step(s, step);
            continue;
        }
        const auto start = StepProfile::Clock::now();
        run_step(s, step);
        profile_->add(s.label, StepProfile::Clock::now() - start);
        // A step split between devices runs here in several parts: count it once.
        if (&s == &steps_.front()) profile_->end_step();
    }
}

void CpuProgram::convert_inputs(const MatMulGroup& group) {
    // Convert the input once per activation type, split by token rows.
    for (size_t i = 0; i < group.members.size(); ++i) {
        const MatMulMember& m = group.members[i];
        bool first_of_type = m.act != reinterpret_cast<const uint8_t*>(group.x);
        for (size_t j = 0; j < i && first_of_type; ++j)
            first_of_type = group.members[j].act != m.act;
        if (!first_of_type) continue;
        pool_.parallel_for(group.n, 1, [&](int64_t t0, int64_t t1, int) {
            for (int64_t t = t0; t < t1; ++t)
                quantize_activation_row(m.type, group.x + t * group.k,
                                        const_cast<uint8_t*>(m.act) + t * m.act_row_bytes, group.k);
        });
    }
}

// Rows [r0, r1) of one member: the product, then its bias.
void CpuProgram::member_rows(const MatMulGroup& group, const MatMulMember& m, int64_t r0,
                             int64_t r1) {
    if (m.type == DType::F32) {
        matmul_f32(group.x, group.n, group.k, reinterpret_cast<const float*>(m.w), r0, r1, m.y,
                   m.rows);
    } else {
        quant_matmul(m.type, group.k, m.w, m.w_row_bytes, r0, r1, m.act, m.act_row_bytes, group.n,
                     m.y, m.rows);
    }
    if (m.bias != nullptr)
        for (int64_t t = 0; t < group.n; ++t)
            for (int64_t r = r0; r < r1; ++r) m.y[t * m.rows + r] += m.bias[r];
}

void CpuProgram::run_matmul(const MatMulGroup& group) {
    convert_inputs(group);
    // Split the concatenated output rows of all members between threads.
    pool_.parallel_for(group.total_rows, kRowAlign, [&](int64_t begin, int64_t end, int) {
        int64_t base = 0;
        for (const MatMulMember& m : group.members) {
            const int64_t r0 = std::max(begin, base) - base;
            const int64_t r1 = std::min(end, base + m.rows) - base;
            base += m.rows;
            if (r0 < r1) member_rows(group, m, r0, r1);
        }
    });
}

void CpuProgram::run_gated_matmul(const MatMulGroup& group) {
    convert_inputs(group);
    const MatMulMember& gate = group.members[0];
    const MatMulMember& up = group.members[1];
    pool_.parallel_for(group.total_rows, kRowAlign, [&](int64_t r0, int64_t r1, int) {
        member_rows(group, gate, r0, r1);
        member_rows(group, up, r0, r1);
        for (int64_t t = 0; t < group.n; ++t) {
            float* g = gate.y + t * gate.rows + r0;
            swiglu(g, up.y + t * up.rows + r0, g, r1 - r0, 0, 1);
        }
    });
}

void CpuProgram::run_step(const Step& s, const StepParams& step) {
    const Node& n = g_[s.id];
    const int64_t rows = n.rows, cols = n.cols;
    float* y = n.offset >= 0 ? f32(s.id) : nullptr;
    auto rowwise = [&](auto&& fn) {
        pool_.parallel_for(rows, 1, [&](int64_t r0, int64_t r1, int) { fn(r0, r1); });
    };
    switch (n.op) {
        case Op::Embed: {
            const Node& table = g_[n.inputs[0]];
            const auto* ids = reinterpret_cast<const int32_t*>(f32(n.inputs[1]));
            rowwise([&](int64_t r0, int64_t r1) {
                embed(table.weight->data, table.dtype, cols, ids, y, r0, r1);
            });
            break;
        }
        case Op::RmsNormMul: {
            const float* x = f32(n.inputs[0]);
            const float* w = f32(n.inputs[1]);
            rowwise(
                [&](int64_t r0, int64_t r1) { rms_norm_mul(x, w, y, cols, n.attrs.eps, r0, r1); });
            break;
        }
        case Op::RmsNorm: {
            const float* x = f32(n.inputs[0]);
            rowwise([&](int64_t r0, int64_t r1) {
                rms_norm_mul(x, nullptr, y, cols, n.attrs.eps, r0, r1);
            });
            break;
        }
        case Op::Add:
        case Op::Mul: {
            const float* a = f32(n.inputs[0]);
            const float* b = f32(n.inputs[1]);
            const bool broadcast = g_[n.inputs[1]].rows == 1 && rows > 1;
            rowwise([&](int64_t r0, int64_t r1) {
                if (n.op == Op::Add) {
                    add(a, b, y, cols, broadcast, r0, r1);
                } else {
                    mul(a, b, y, cols, broadcast, r0, r1);
                }
            });
            break;
        }
        case Op::Silu: {
            const float* x = f32(n.inputs[0]);
            rowwise([&](int64_t r0, int64_t r1) { silu(x, y, cols, r0, r1); });
            break;
        }
        case Op::SwiGlu: {
            const float* gate = f32(n.inputs[0]);
            const float* up = f32(n.inputs[1]);
            rowwise([&](int64_t r0, int64_t r1) { swiglu(gate, up, y, cols, r0, r1); });
            break;
        }
        case Op::Rope: {
            const float* x = f32(n.inputs[0]);
            const auto* pos = reinterpret_cast<const int32_t*>(f32(n.inputs[1]));
            rowwise([&](int64_t r0, int64_t r1) { rope(x, pos, y, cols, n.attrs, r0, r1); });
            break;
        }
        case Op::KvStore: {
            const float* k = f32(n.inputs[0]);
            const float* v = f32(n.inputs[1]);
            const KvLayer& layer = kv_[static_cast<size_t>(n.attrs.layer)];
            pool_.parallel_for(g_[n.inputs[0]].rows, 1, [&](int64_t r0, int64_t r1, int) {
                kv_store(k, v, layer, step.n_past, r0, r1);
            });
            break;
        }
        case Op::Attention: {
            const float* q = f32(n.inputs[0]);
            const KvLayer& layer = kv_[static_cast<size_t>(n.attrs.layer)];
            const int64_t n_head = n.attrs.n_head;
            if (rows < pool_.size()) {
                // Decode: the heads of the token are split between threads.
                pool_.parallel_for(rows * n_head, 1, [&](int64_t b, int64_t e, int t) {
                    attention(q, layer, y, step.n_past, n.attrs, b, e,
                              scores_.data() + t * scores_per_thread_, /*kv_from_memory=*/true);
                });
                break;
            }
            // Prefill: whole tokens per thread. Token i attends to n_past + i + 1 keys, so
            // contiguous token ranges would give the last thread 3 times the first one's work
            // (512 tokens, 2 threads); the tokens are dealt from both ends instead: 0, n-1, 1,
            // n-2, ...
            pool_.parallel_for(rows, 1, [&](int64_t b, int64_t e, int t) {
                for (int64_t i = b; i < e; ++i) {
                    const int64_t token = i % 2 == 0 ? i / 2 : rows - 1 - i / 2;
                    attention(q, layer, y, step.n_past, n.attrs, token * n_head,
                              (token + 1) * n_head, scores_.data() + t * scores_per_thread_,
                              /*kv_from_memory=*/false);
                }
            });
            break;
        }
        case Op::Argmax: {
            auto* ids = reinterpret_cast<int32_t*>(y);
            rowwise([&](int64_t r0, int64_t r1) {
                argmax(f32(n.inputs[0]), ids, g_[n.inputs[0]].cols, r0, r1);
            });
            break;
        }
        case Op::TakeLast: {
            const Node& x = g_[n.inputs[0]];
            std::memcpy(y, f32(n.inputs[0]) + (x.rows - 1) * x.cols,
                        static_cast<size_t>(cols) * sizeof(float));
            break;
        }
        case Op::MatMul:
            run_matmul(groups_[static_cast<size_t>(s.group)]);
            break;
        case Op::GatedMatMul:
            run_gated_matmul(groups_[static_cast<size_t>(s.group)]);
            break;
        case Op::Input:
        case Op::Weight:
            break;
    }
}

}  // namespace mllm::cpu
