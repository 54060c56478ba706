#pragma once
// One conversation with a model: the KV cache and the prepared step plans. The chosen backend
// runs every node it supports; when it is not the CPU, the CPU backend runs the rest (placement
// picks per node), and the session copies the tensors that cross between them.
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
    // The chosen backend (the one that runs everything it can).
    const DeviceInfo& device() const { return device_; }
    // Why `auto` passed over better backends ("vulkan: no Vulkan device ...", or the error that
    // made it give up a device before the first step); empty if it did not.
    const std::string& backend_notice() const { return backend_notice_; }
    // Live nodes of the decode graph (eval_greedy's if greedy) that the chosen backend refused,
    // run by the CPU instead.
    int64_t fallback_nodes(bool greedy = false);
    // Device work of one step of n tokens (eval_greedy's if greedy; GPU backends, zeros on the
    // CPU): kernel dispatches and queue submits, summed over the devices the step runs on.
    struct StepWork {
        size_t dispatches = 0, submits = 0;
    };
    StepWork step_work(int64_t n_tokens, bool greedy = false);
    int64_t n_ctx() const { return n_ctx_; }
    int64_t n_past() const { return n_past_; }
    size_t kv_cache_bytes() const;
    // Memory the GPU backend holds on its device (weights, KV cache, activations); 0 on the CPU.
    size_t device_memory_bytes() const;
    int64_t arena_bytes() const;  // the largest activation arena of the plans made so far

    // Appends `tokens` to the context and returns logits: one row of n_vocab for the last token,
    // or one row per token when all_logits. Throws mllm::Error if the context would overflow or a
    // token id is out of range.
    std::span<const float> eval(std::span<const int32_t> tokens, bool all_logits = false);
    // Appends `tokens` and returns the greedy next token: the id of the last token's highest
    // logit (the lowest id on ties, NaN as -inf; the sampler's pick at temperature 0 without a
    // repetition penalty). The device picks it, so one int is read back instead of the logits.
    int32_t eval_greedy(std::span<const int32_t> tokens);
    // Forgets the context (the KV cache is overwritten from position 0).
    void reset() { n_past_ = 0; }

    // The planned graph of a step of n tokens as Graphviz DOT (of eval_greedy's step if greedy).
    std::string dump_graph(int64_t n_tokens, bool all_logits = false, bool greedy = false);

  private:
    struct Plan;
    struct Segment;
    // What a step hands back.
    enum class Output : uint8_t { LastLogits, AllLogits, Greedy };
    Plan& plan_for(int64_t n_tokens, Output out);
    std::unique_ptr<Plan> make_plan(int64_t n_tokens, Output out);
    void run_plan(Plan& plan);
    // Runs `tokens` in steps of at most n_batch_ and reads the output into dst: every token's
    // logits, the last token's, or its greedy id.
    void eval_into(std::span<const int32_t> tokens, Output out, void* dst);

    std::shared_ptr<const Model> model_;
    // [0] the chosen backend, then the CPU backend as its fallback (unless [0] is the CPU).
    std::vector<std::unique_ptr<Backend>> backends_;
    DeviceInfo device_;
    std::string backend_notice_;
    bool automatic_ = false;  // --backend auto: may still give way to the CPU
    int64_t n_ctx_ = 0;
    int64_t n_batch_ = 0;
    int64_t n_past_ = 0;
    std::map<std::pair<int64_t, Output>, std::unique_ptr<Plan>> plans_;
    std::vector<float> logits_;
    std::vector<int32_t> positions_;
    std::vector<uint8_t> transfer_;  // a tensor crossing between devices
};

}  // namespace mllm
