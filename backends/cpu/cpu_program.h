#pragma once
// A graph prepared for the CPU: every pointer resolved and every scratch buffer sized once, so a
// step allocates nothing.
#include <cstdlib>
#include <memory>
#include <vector>

#include "backends/backend.h"
#include "backends/cpu/kernels/attention.h"
#include "backends/cpu/step_profile.h"
#include "backends/cpu/thread_pool.h"

namespace mllm::cpu {

struct AlignedFree {
    void operator()(void* p) const { std::free(p); }
};
using AlignedBuffer = std::unique_ptr<uint8_t[], AlignedFree>;
AlignedBuffer aligned_buffer(size_t bytes);

class CpuProgram final : public Executable {
  public:
    // `profile`: time every op (MLLM_CPU_PROFILE=1) and print each op's mean time per step when
    // the program ends.
    CpuProgram(const graph::Graph& g, int device, ThreadPool& pool, const std::vector<KvLayer>& kv,
               bool profile = false);
    ~CpuProgram() override;

    void write(graph::NodeId node, const void* src, size_t bytes) override;
    void read(graph::NodeId node, void* dst, size_t bytes) override;
    void run(const StepParams& step) override;

  private:
    // One weight of a (possibly single-member) MatMul group.
    struct MatMulMember {
        graph::NodeId weight;  // the weight's node (names the member in the profile)
        DType type;
        const uint8_t* w;
        size_t w_row_bytes;
        int64_t rows;       // output width m
        const float* bias;  // or nullptr
        float* y;
        const uint8_t* act;  // the input converted to this weight's activation type
        size_t act_row_bytes;
    };
    struct MatMulGroup {
        const float* x;
        int64_t n, k;
        std::vector<MatMulMember> members;
        int64_t total_rows;
        // GatedMatMul: members are gate (written to the output) and up (to gate_up_scratch_);
        // threads split the rows once and apply silu(gate) * up to their own rows.
        bool gated = false;
    };
    struct Step {
        graph::NodeId id;
        int group = -1;  // index into groups_ for MatMul leaders
        int label = -1;  // profile_'s label
    };

    float* f32(graph::NodeId id) const;
    void label_for_profile(Step& s) const;
    MatMulMember make_member(graph::NodeId weight, int64_t rows, int64_t k, float* y) const;
    void prepare_matmul(graph::NodeId leader);
    void prepare_gated_matmul(graph::NodeId id);
    void run_step(const Step& s, const StepParams& step);
    void run_matmul(const MatMulGroup& group);
    void run_gated_matmul(const MatMulGroup& group);
    void member_rows(const MatMulGroup& group, const MatMulMember& m, int64_t r0, int64_t r1);
    void convert_inputs(const MatMulGroup& group);

    const graph::Graph& g_;
    ThreadPool& pool_;
    const std::vector<KvLayer>& kv_;
    AlignedBuffer arena_;
    AlignedBuffer act_scratch_;
    AlignedBuffer gate_up_scratch_;
    std::vector<float> scores_;  // attention scratch, one slice per thread
    int64_t scores_per_thread_ = 0;
    int64_t n_ctx_ = 0;
    std::vector<Step> steps_;
    std::vector<MatMulGroup> groups_;
    std::unique_ptr<StepProfile> profile_;
};

}  // namespace mllm::cpu
