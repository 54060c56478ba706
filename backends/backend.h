#pragma once
// The plug every backend implements (see ../shared/DESIGN.md, "The backend interface"):
// what it is, which nodes it can run (graph::DeviceCaps), prepare a placed graph once, run it
// per step. Backends never include each other, model builders or the runtime.
#include <cstddef>
#include <cstdint>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "graph/device_caps.h"
#include "graph/ir.h"

namespace mllm {

enum class DeviceKind { Cpu, IntegratedGpu, DiscreteGpu, Npu };

struct DeviceInfo {
    std::string name;    // "cpu", "vulkan"
    std::string device;  // e.g. "AMD EPYC (avx2, 2 threads)"
    DeviceKind kind = DeviceKind::Cpu;
    bool unified_memory = true;  // weights can be used in place from the file mapping
};

struct StepParams {
    int64_t n_past = 0;  // tokens already in the KV cache before this step
    // Which of the executable's nodes to run: those with ids in [first, last). A graph split
    // across devices runs one segment at a time, with the runtime copying the tensors that
    // cross between them.
    graph::NodeId first = 0;
    graph::NodeId last = std::numeric_limits<graph::NodeId>::max();
};

// A graph prepared for one backend: the nodes placed on it, ready to run step after step.
class Executable {
  public:
    virtual ~Executable() = default;
    // Copies a node's data in (a step input, or a tensor another device computed) or out.
    virtual void write(graph::NodeId node, const void* src, size_t bytes) = 0;
    virtual void read(graph::NodeId node, void* dst, size_t bytes) = 0;
    virtual void run(const StepParams& step) = 0;
    // Device work one step records (GPU backends): kernel dispatches and queue submits.
    virtual size_t dispatches_per_step() const { return 0; }
    virtual size_t submits_per_step() const { return 0; }
};

// One pipeline family's self-test on a device (see backends/vulkan/vk_self_test.h).
struct SelfTestLine {
    std::string name;
    bool ok = false;
    std::string detail;
};

class Backend : public graph::DeviceCaps {
  public:
    virtual DeviceInfo info() const = 0;
    // Checks every kernel on a small problem against a reference now (for --self-test); empty
    // for backends without a self-test.
    virtual std::vector<SelfTestLine> self_test() { return {}; }
    std::string_view device_name() const override { return name_; }

    // (Re)creates the KV cache for `n_ctx` positions; the runtime calls it before prepare().
    virtual void allocate_kv_cache(const graph::KvSpec& spec, int64_t n_ctx) = 0;
    virtual size_t kv_cache_bytes() const = 0;
    // Device memory held (GPU backends: weights, KV cache, activations, staging); 0 for the CPU,
    // whose weights stay in the file mapping.
    virtual size_t device_memory_bytes() const { return 0; }

    // Prepares the nodes of `g` placed on `device_index` (their device field); the graph must
    // outlive the executable.
    virtual std::unique_ptr<Executable> prepare(const graph::Graph& g, int device_index) = 0;

  protected:
    explicit Backend(std::string name) : name_(std::move(name)) {}

  private:
    std::string name_;
};

}  // namespace mllm
