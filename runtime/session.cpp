#include "runtime/session.h"

#include <algorithm>
#include <sstream>

#include "backends/registry.h"
#include "core/error.h"
#include "graph/models/builder.h"
#include "graph/passes/passes.h"

namespace mllm {

// A run of consecutive nodes on one device, and the tensors it reads that another device
// computed (copied in before it runs).
struct Session::Segment {
    int device = 0;
    graph::NodeId first = 0, last = 0;
    std::vector<graph::NodeId> imports;
};

struct Session::Plan {
    graph::Graph graph;
    std::vector<std::unique_ptr<Executable>> exes;  // per backend; null where no node runs
    std::vector<Segment> segments;
};

Session::Session(std::shared_ptr<const Model> model, const SessionOptions& options)
    : model_(std::move(model)) {
    const graph::ModelConfig& c = model_->config;
    if (options.n_ctx < 0) fail("context size must be positive, got ", options.n_ctx);
    if (options.n_ctx > c.n_ctx_train)
        fail("context size ", options.n_ctx, " is larger than the model allows (", c.n_ctx_train,
             " tokens)");
    if (options.n_batch < 1) fail("batch size must be at least 1");
    n_ctx_ = options.n_ctx > 0 ? options.n_ctx : std::min<int64_t>(c.n_ctx_train, 4096);
    n_batch_ = std::min(options.n_batch, n_ctx_);
    BackendOptions bo;
    bo.n_threads = options.n_threads;
    automatic_ = options.backend == "auto";
    backends_.push_back(create_backend(options.backend, bo, &backend_notice_));
    device_ = backends_[0]->info();
    if (backends_[0]->device_name() != "cpu") backends_.push_back(create_backend("cpu", bo));
}

Session::~Session() = default;

size_t Session::kv_cache_bytes() const {
    size_t total = 0;
    for (const auto& b : backends_) total += b->kv_cache_bytes();
    return total;
}

Session::StepWork Session::step_work(int64_t n_tokens, bool greedy) {
    StepWork w;
    for (const auto& exe : plan_for(n_tokens, greedy ? Output::Greedy : Output::LastLogits).exes) {
        if (!exe) continue;
        w.dispatches += exe->dispatches_per_step();
        w.submits += exe->submits_per_step();
    }
    return w;
}

size_t Session::device_memory_bytes() const {
    size_t total = 0;
    for (const auto& b : backends_) total += b->device_memory_bytes();
    return total;
}

int64_t Session::fallback_nodes(bool greedy) {
    const Plan& plan = plan_for(1, greedy ? Output::Greedy : Output::LastLogits);
    int64_t count = 0;
    for (const graph::Node& n : plan.graph.nodes)
        if (!n.dead && n.op != graph::Op::Weight && n.op != graph::Op::Input && n.device > 0)
            ++count;
    return count;
}

int64_t Session::arena_bytes() const {
    int64_t most = 0;
    for (const auto& [key, plan] : plans_) most = std::max(most, plan->graph.arena_bytes);
    return most;
}

Session::Plan& Session::plan_for(int64_t n_tokens, Output out) {
    if (n_tokens == 1 && out == Output::AllLogits) out = Output::LastLogits;  // the same graph
    const std::pair<int64_t, Output> key{n_tokens, out};
    if (auto it = plans_.find(key); it != plans_.end()) return *it->second;
    try {
        return *(plans_[key] = make_plan(n_tokens, out));
    } catch (const Error& e) {
        // --backend auto: a device that cannot hold the model (out of device memory, a driver
        // failure) gives way to the CPU, as long as no context lives on it yet.
        plans_.erase(key);
        if (!automatic_ || backends_.size() < 2 || n_past_ > 0) throw;
        backend_notice_ +=
            str_cat(backend_notice_.empty() ? "" : "; ", device_.name, ": ", e.what());
        plans_.clear();
        backends_.erase(backends_.begin());
        device_ = backends_[0]->info();
        return *(plans_[key] = make_plan(n_tokens, out));
    }
}

std::unique_ptr<Session::Plan> Session::make_plan(int64_t n_tokens, Output out) {
    auto plan = std::make_unique<Plan>();
    graph::BuildOptions bo;
    bo.n_tokens = n_tokens;
    bo.logits_all = out == Output::AllLogits;
    bo.argmax = out == Output::Greedy;
    graph::Graph& g = plan->graph;
    g = graph::build_model_graph(model_->config, *model_->file, bo);
    graph::fuse(g);
    std::vector<const graph::DeviceCaps*> devices;
    for (const auto& b : backends_) devices.push_back(b.get());
    graph::place(g, devices);
    graph::plan_memory(g);

    // Segments, and the tensors each imports from another device.
    for (graph::NodeId id = 0; id < static_cast<graph::NodeId>(g.nodes.size()); ++id) {
        const graph::Node& n = g[id];
        if (n.dead || n.op == graph::Op::Weight || n.op == graph::Op::Input) continue;
        if (plan->segments.empty() || plan->segments.back().device != n.device)
            plan->segments.push_back({n.device, id, id + 1, {}});
        Segment& seg = plan->segments.back();
        seg.last = id + 1;
        for (graph::NodeId in : n.inputs) {
            const graph::Node& src = g[in];
            if (src.op == graph::Op::Weight || src.op == graph::Op::Input || src.device == n.device)
                continue;
            if (std::find(seg.imports.begin(), seg.imports.end(), in) == seg.imports.end())
                seg.imports.push_back(in);
        }
    }
    // A backend holds a KV cache once a graph stores keys on it.
    const graph::ModelConfig& c = model_->config;
    for (const graph::Node& n : g.nodes) {
        if (n.dead || n.op != graph::Op::KvStore) continue;
        Backend& b = *backends_[static_cast<size_t>(n.device)];
        if (b.kv_cache_bytes() == 0)
            b.allocate_kv_cache(graph::KvSpec{c.n_layer, c.n_head_kv, c.head_dim}, n_ctx_);
    }
    plan->exes.resize(backends_.size());
    for (const Segment& seg : plan->segments) {
        auto& exe = plan->exes[static_cast<size_t>(seg.device)];
        if (!exe) exe = backends_[static_cast<size_t>(seg.device)]->prepare(g, seg.device);
    }
    return plan;
}

void Session::run_plan(Plan& plan) {
    const graph::Graph& g = plan.graph;
    for (const Segment& seg : plan.segments) {
        Executable& exe = *plan.exes[static_cast<size_t>(seg.device)];
        for (graph::NodeId id : seg.imports) {
            const size_t bytes = g[id].bytes();
            transfer_.resize(bytes);
            plan.exes[static_cast<size_t>(g[id].device)]->read(id, transfer_.data(), bytes);
            exe.write(id, transfer_.data(), bytes);
        }
        exe.run(StepParams{n_past_, seg.first, seg.last});
    }
}

std::span<const float> Session::eval(std::span<const int32_t> tokens, bool all_logits) {
    const size_t vocab = static_cast<size_t>(model_->config.n_vocab);
    logits_.resize(all_logits ? vocab * tokens.size() : vocab);
    eval_into(tokens, all_logits ? Output::AllLogits : Output::LastLogits, logits_.data());
    return logits_;
}

int32_t Session::eval_greedy(std::span<const int32_t> tokens) {
    int32_t id = 0;
    eval_into(tokens, Output::Greedy, &id);
    return id;
}

void Session::eval_into(std::span<const int32_t> tokens, Output out, void* dst) {
    const int64_t n = static_cast<int64_t>(tokens.size());
    if (n == 0) fail("eval needs at least one token");
    if (n_past_ + n > n_ctx_)
        fail("the context is full: ", n_past_, " tokens so far plus ", n,
             " new exceed the context size of ", n_ctx_, " (raise -c)");
    const int32_t n_vocab = model_->config.n_vocab;
    for (int32_t t : tokens)
        if (t < 0 || t >= n_vocab)
            fail("token id ", t, " is outside the vocabulary (0..", n_vocab - 1, ")");

    const size_t vocab = static_cast<size_t>(n_vocab);
    for (int64_t start = 0; start < n; start += n_batch_) {
        const int64_t len = std::min(n_batch_, n - start);
        const bool last_batch = start + len == n;
        Plan& plan = plan_for(len, out);
        positions_.resize(static_cast<size_t>(len));
        for (int64_t i = 0; i < len; ++i)
            positions_[static_cast<size_t>(i)] = static_cast<int32_t>(n_past_ + i);
        // Every device that runs part of the step gets its inputs.
        for (const auto& exe : plan.exes) {
            if (!exe) continue;
            exe->write(plan.graph.tokens, tokens.data() + start,
                       static_cast<size_t>(len) * sizeof(int32_t));
            exe->write(plan.graph.positions, positions_.data(),
                       positions_.size() * sizeof(int32_t));
        }
        run_plan(plan);
        n_past_ += len;
        const graph::NodeId output = plan.graph.output();
        Executable& exe = *plan.exes[static_cast<size_t>(plan.graph[output].device)];
        if (out == Output::AllLogits) {
            exe.read(output, static_cast<float*>(dst) + static_cast<size_t>(start) * vocab,
                     static_cast<size_t>(len) * vocab * sizeof(float));
        } else if (last_batch) {
            exe.read(output, dst, plan.graph[output].bytes());
        }
    }
}

std::string Session::dump_graph(int64_t n_tokens, bool all_logits, bool greedy) {
    Plan& plan = plan_for(n_tokens, greedy       ? Output::Greedy
                                    : all_logits ? Output::AllLogits
                                                 : Output::LastLogits);
    std::ostringstream out;
    std::vector<std::string> names;
    for (const auto& b : backends_) {
        const DeviceInfo info = b->info();
        names.push_back(info.name + ": " + info.device);
    }
    graph::write_dot(plan.graph, names, out);
    return out.str();
}

}  // namespace mllm
