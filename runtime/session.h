#pragma once
// One conversation with a model on one backend: the KV cache and the prepared step plans.
// eval() runs a batch of tokens through the graph (prefill) or a single one (decode).
#include <map>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "backends/backend.h"
#include "graph/ir.h"
#include "runtime/model.h"

namespace mllm {

struct SessionOptions {
    std::string backend = "cpu";  // cpu | vulkan | auto
    int n_threads = 0;            // 0: one per core
    int64_t n_ctx = 0;            // 0: the model's training context, capped at 4096
    int64_t n_batch = 512;        // longest prefill step; longer prompts go in several steps
};

class Session {
  public:
    Session(std::shared_ptr<const Model> model, const SessionOptions& options);
    ~Session();

    const Model& model() const { return *model_; }
    const DeviceInfo& device() const { return device_; }
    int64_t n_ctx() const { return n_ctx_; }
    int64_t n_past() const { return n_past_; }
    size_t kv_cache_bytes() const;
    int64_t arena_bytes() const;  // the largest activation arena of the plans made so far

    // Appends `tokens` to the context and returns logits: one row of n_vocab for the last token,
    // or one row per token when all_logits. Throws mllm::Error if the context would overflow or a
    // token id is out of range.
    std::span<const float> eval(std::span<const int32_t> tokens, bool all_logits = false);
    // Forgets the context (the KV cache is overwritten from position 0).
    void reset() { n_past_ = 0; }

    // The planned graph of a step of n tokens as Graphviz DOT.
    std::string dump_graph(int64_t n_tokens, bool all_logits = false);

  private:
    struct Plan;
    Plan& plan_for(int64_t n_tokens, bool all_logits);

    std::shared_ptr<const Model> model_;
    std::unique_ptr<Backend> backend_;
    DeviceInfo device_;
    int64_t n_ctx_ = 0;
    int64_t n_batch_ = 0;
    int64_t n_past_ = 0;
    std::map<std::pair<int64_t, bool>, std::unique_ptr<Plan>> plans_;
    std::vector<float> logits_;
    std::vector<int32_t> positions_;
};

}  // namespace mllm
