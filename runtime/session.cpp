#include "runtime/session.h"

#include <algorithm>
#include <sstream>

#include "backends/registry.h"
#include "core/error.h"
#include "graph/models/builder.h"
#include "graph/passes/passes.h"

namespace mllm {

struct Session::Plan {
    graph::Graph graph;
    std::unique_ptr<Executable> exe;
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
    backend_ = create_backend(options.backend, bo);
    device_ = backend_->info();
    backend_->allocate_kv_cache(graph::KvSpec{c.n_layer, c.n_head_kv, c.head_dim}, n_ctx_);
}

Session::~Session() = default;

size_t Session::kv_cache_bytes() const {
    return backend_->kv_cache_bytes();
}

int64_t Session::arena_bytes() const {
    int64_t most = 0;
    for (const auto& [key, plan] : plans_) most = std::max(most, plan->graph.arena_bytes);
    return most;
}

Session::Plan& Session::plan_for(int64_t n_tokens, bool all_logits) {
    if (n_tokens == 1) all_logits = false;  // the same graph
    auto& slot = plans_[{n_tokens, all_logits}];
    if (!slot) {
        auto plan = std::make_unique<Plan>();
        graph::BuildOptions bo;
        bo.n_tokens = n_tokens;
        bo.logits_all = all_logits;
        plan->graph = graph::build_model_graph(model_->config, *model_->file, bo);
        graph::fuse(plan->graph);
        const graph::DeviceCaps* devices[] = {backend_.get()};
        graph::place(plan->graph, devices);
        graph::plan_memory(plan->graph);
        plan->exe = backend_->prepare(plan->graph, 0);
        slot = std::move(plan);
    }
    return *slot;
}

std::span<const float> Session::eval(std::span<const int32_t> tokens, bool all_logits) {
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
    logits_.resize(all_logits ? vocab * static_cast<size_t>(n) : vocab);
    for (int64_t start = 0; start < n; start += n_batch_) {
        const int64_t len = std::min(n_batch_, n - start);
        const bool last_batch = start + len == n;
        Plan& plan = plan_for(len, all_logits);
        positions_.resize(static_cast<size_t>(len));
        for (int64_t i = 0; i < len; ++i)
            positions_[static_cast<size_t>(i)] = static_cast<int32_t>(n_past_ + i);
        plan.exe->write(plan.graph.tokens, tokens.data() + start,
                        static_cast<size_t>(len) * sizeof(int32_t));
        plan.exe->write(plan.graph.positions, positions_.data(),
                        positions_.size() * sizeof(int32_t));
        plan.exe->run(StepParams{n_past_});
        n_past_ += len;
        if (all_logits) {
            plan.exe->read(plan.graph.logits, logits_.data() + static_cast<size_t>(start) * vocab,
                           static_cast<size_t>(len) * vocab * sizeof(float));
        } else if (last_batch) {
            plan.exe->read(plan.graph.logits, logits_.data(), vocab * sizeof(float));
        }
    }
    return logits_;
}

std::string Session::dump_graph(int64_t n_tokens, bool all_logits) {
    Plan& plan = plan_for(n_tokens, all_logits);
    std::ostringstream out;
    const std::string names[] = {device_.name + ": " + device_.device};
    graph::write_dot(plan.graph, names, out);
    return out.str();
}

}  // namespace mllm
