#pragma once
// A graph prepared for a Vulkan device: the nodes placed here recorded once into command buffers
// (one per run of consecutive nodes on this device: one for a graph wholly on the GPU), with
// barriers only where a node reads (or overwrites) memory an earlier unsynchronised
// node writes (or reads). run() submits and waits: one submit per step on a whole-GPU graph. Step
// inputs (token ids, positions) and the output (logits, or greedy token ids) go through
// host-mapped memory; on devices without unified memory the command buffer itself copies them
// from and to small staging buffers.
// n_past reaches the shaders through the positions buffer (KV rows are written at positions[t],
// token t attends to rows 0 ..= positions[t]), so nothing is re-recorded per step.
#include <cstdint>
#include <memory>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <vector>

#include "backends/backend.h"
#include "backends/vulkan/ops/vk_matmul.h"
#include "backends/vulkan/ops/vk_rms_norm.h"
#include "backends/vulkan/ops/vk_rope.h"
#include "backends/vulkan/vk_context.h"
#include "backends/vulkan/vk_weights.h"

namespace mllm::vk {

// One layer's f16 cache: rows of n_head_kv * head_dim halfs, one row per position.
struct KvBuffers {
    Allocation k, v;
};

struct KvCache {
    std::vector<KvBuffers> layers;
    int64_t n_ctx = 0;
    int64_t width = 0;
};

class VkProgram final : public Executable {
  public:
    // `profile`: time every dispatch (MLLM_VK_PROFILE=1) and print each op family's mean time
    // per step to stderr when the program is destroyed.
    VkProgram(Context& ctx, const graph::Graph& g, int device, WeightStore& weights,
              const KvCache& kv, bool profile = false);
    ~VkProgram() override;

    void write(graph::NodeId node, const void* src, size_t bytes) override;
    void read(graph::NodeId node, void* dst, size_t bytes) override;
    void run(const StepParams& step) override;

    size_t dispatches_per_step() const override;
    size_t submits_per_step() const override { return segments_.size(); }

  private:
    // The resources the hazard tracker (sync) tells apart: the activations' arena, the gated
    // matmuls' scratch after it, the rounded matmul inputs, each layer's key and value caches.
    static constexpr int kArena = 0;
    static constexpr int kScratch = 1;
    static constexpr int kRounded = 2;
    static constexpr int kKvBase = 3;
    static constexpr int kFold = -1;  // fold_: weighted sums and partial sums of squares

    // A range of one of the memories the program writes, for hazard tracking.
    struct Access {
        int resource;  // kArena, kScratch, or kKvBase + 2 * layer (+1 for V)
        int64_t begin, end;
    };
    // A tensor as a shader binds it: a range within the device's storage-buffer limits, and
    // where the tensor starts inside it, in 4-byte elements.
    struct Bound {
        BufferRange range;
        int64_t offset = 0;
    };

    Bound bind(const Allocation& a, int64_t byte_offset, int64_t bytes) const;
    Bound node(graph::NodeId id) const;  // an activation in the arena, or a weight
    Access arena_access(graph::NodeId id) const;
    void sync(std::span<const Access> reads, std::span<const Access> writes);
    void record();
    void begin_segment(graph::NodeId first);
    VkDeviceSize positions_upload_offset() const;
    void record_node(graph::NodeId id);
    // The RmsNorm right after residual add `add` that normalizes its sum, on this device, so both
    // run as one dispatch; kNoNode if there is none.
    graph::NodeId norm_after_add(graph::NodeId add) const;
    // The next node after `id` that runs (not dead, not a weight or input); kNoNode at the end.
    graph::NodeId next_live(graph::NodeId id) const;
    // Whether two nodes' arena ranges overlap.
    bool arena_overlap(graph::NodeId a, graph::NodeId b) const;
    void record_add_norm(graph::NodeId add, graph::NodeId norm);
    // The Rope right after Rope `first` with the same positions and rotation (the keys after
    // the queries), on this device, so both run as one dispatch; kNoNode if there is none.
    graph::NodeId rope_after_rope(graph::NodeId first) const;
    // The KvStore right after the keys' rope that stores them (kNoNode if none): the pair's
    // dispatch then also fills the caches.
    graph::NodeId store_after_keys(graph::NodeId keys) const;
    void record_rope_pair(graph::NodeId queries, graph::NodeId keys, graph::NodeId store);
    RopeArgs rope_args(graph::NodeId rope) const;
    // How matmuls take their input: rounded to Q8_0 or Q8_K blocks multiplied out, or Q8_0
    // blocks packed for the integer dot-product kernels; one slot of rounded_ each.
    struct Rounding {
        DType format = DType::Q8_0;
        bool packed = false;
        int slot() const { return packed ? 2 : format == DType::Q8_0 ? 0 : 1; }
        bool operator==(const Rounding&) const = default;
    };
    std::optional<Rounding> rounding_for(DType weight_type) const;  // none: float activations
    // The rounding every consumer of x on this device takes, when all are matmuls taking one.
    std::optional<Rounding> common_rounding(graph::NodeId x) const;
    // Makes the norm's dispatch also write its output rounded as its matmuls take it (when they
    // agree on one rounding), so they need no rounding dispatch; returns that rounding.
    std::optional<Rounding> round_norm_output(graph::NodeId norm, RmsNormArgs& args);
    int64_t rounding_bytes(const Rounding& r, const graph::Node& x) const;
    Access rounded_access(const Rounding& r, const graph::Node& x) const;
    // The arguments of RmsNorm(Mul) node `norm` reading its input from `x`.
    RmsNormArgs norm_args(graph::NodeId norm, graph::NodeId x) const;
    void print_profile() const;
    // Names the dispatches recorded since the last call (profiling).
    void label_dispatches(const std::string& label);
    // The matmuls' input: x itself, or x rounded to each activation format `weights` need; for
    // a folded norm (folded_norms_), the weighted sum in fold_ and its partial sums of squares.
    struct MatMulInputs {
        Bound plain, q8_0, q8_k, q8_0_packed;
        MatMulArgs::NormIn norm_in;
        std::vector<Access> reads;
        // x as a weight whose rounding_for is r takes it.
        const Bound& rounded(const std::optional<Rounding>& r) const;
    };
    MatMulInputs matmul_inputs(graph::NodeId x, std::span<const DType> weights);
    void record_matmul_group(graph::NodeId leader);
    // Matmuls of one input as one dispatch over their weights concatenated, each into its
    // output in the arena (byte offset, width), with their biases if all have one: where the
    // device repacks the weights and one dispatch covers them; false when they must run one by
    // one.
    struct FusedOutput {
        int64_t offset;
        int64_t cols;
    };
    bool record_fused(const MatMulInputs& in, int64_t tokens,
                      std::span<const GgufTensor* const> weights,
                      std::span<const GgufTensor* const> biases,
                      std::span<const FusedOutput> outputs, const MatMulArgs::Rope* rope = nullptr);
    // record_fused for a group's members (bias inputs that are not f32 weights: false), into
    // their outputs or those given.
    bool record_fused_group(const MatMulInputs& in, std::span<const graph::NodeId> members,
                            std::span<const graph::NodeId> outputs,
                            const MatMulArgs::Rope* rope = nullptr);
    // x (as `in` has it for this weight's type) times the weight, into y (+ bias if bound).
    void record_one_matmul(const MatMulInputs& in, graph::NodeId weight, int64_t rows,
                           const Bound& y, const Bound& bias);
    // record_one_matmul's arguments, for callers that add to them.
    MatMulArgs one_matmul_args(const MatMulInputs& in, graph::NodeId weight, int64_t rows,
                               const Bound& y, const Bound& bias);
    void record_gated_matmul(graph::NodeId id);
    // A residual add and the RMSNorm after it, folded into the matmuls around them where the
    // device's kernel does that (matmul_folds_norm): the matmul before the add writes the sum,
    // every matmul reading the norm normalizes its input itself; two dispatches fewer a layer.
    // The add and the norm after matmul `m` when they fold, else kNoNode.
    struct FoldedAdd {
        graph::NodeId add = graph::kNoNode, residual = graph::kNoNode, norm = graph::kNoNode;
    };
    FoldedAdd folded_add_after(graph::NodeId m) const;
    // Whether `reader` is the only live node reading `value`, which is not the step's output.
    bool read_only_by(graph::NodeId value, graph::NodeId reader) const;
    // Whether node `consumer` can take norm node `norm` folded.
    bool takes_folded_norm(graph::NodeId consumer, graph::NodeId norm) const;
    void record_matmul_add(graph::NodeId m, const FoldedAdd& folded);
    // llama's rope of the queries and keys and the store of keys and values after a group
    // matmul of queries, keys and values, folded into it where the device's kernel does that
    // (matmul_ropes_pairs): the three nodes when they fold (all kNoNode otherwise).
    struct FoldedRope {
        graph::NodeId queries = graph::kNoNode, keys = graph::kNoNode, store = graph::kNoNode;
    };
    FoldedRope folded_rope_after(graph::NodeId leader) const;
    // Records the group with the rope and store folded; false (nothing recorded) where its
    // weights do not run as one dispatch.
    bool record_matmul_rope(graph::NodeId leader, const FoldedRope& folded);
    // A group's matmuls in node order (a lone matmul: itself).
    std::vector<graph::NodeId> group_members(graph::NodeId leader) const;
    // What fold_ holds for the sum `sum` (an add's node): its weighted copy and partial sums.
    Access fold_access(const graph::Node& sum) const;
    bool staged() const { return upload_ ? true : false; }

    Context& ctx_;
    const graph::Graph& g_;
    int device_;
    WeightStore& weights_;
    const KvCache& kv_;
    Allocation arena_;
    int64_t scratch_offset_ = 0;  // in arena_, after the planned activations: the up
                                  // projection of gated matmuls
    Allocation rounded_;          // matmul inputs rounded to Q8_0 and to Q8_K, one slot each
    int64_t rounded_slot_ = 0;    // bytes
    // The node whose rounding each slot of rounded_ holds at this point of the recording.
    graph::NodeId rounded_from_[3] = {graph::kNoNode, graph::kNoNode, graph::kNoNode};
    Allocation upload_;    // staged step inputs (devices without unified memory)
    Allocation readback_;  // the staged output (logits, or the greedy token ids)
    struct Segment {
        graph::NodeId first, last;  // node ids, last exclusive
        std::unique_ptr<Sequence> seq;
        std::vector<std::string> labels;  // per dispatch, when profiling
    };
    bool profile_ = false;
    std::vector<Segment> segments_;
    Sequence* seq_ = nullptr;  // the segment being recorded
    std::vector<Access> pending_reads_, pending_writes_;
    // Norms folded into the matmuls reading them (their nodes), and what the matmul before
    // the add leaves them in fold_: the sum times the norm's weight, then from
    // fold_partials_offset_ the partial sums of squares.
    std::set<graph::NodeId> folded_norms_;
    Allocation fold_;
    int64_t fold_partials_offset_ = 0;  // bytes
};

}  // namespace mllm::vk
