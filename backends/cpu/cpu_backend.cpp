#include "backends/cpu/cpu_backend.h"

#include <cstdlib>
#include <thread>
#include <vector>

#include "backends/cpu/cpu_program.h"
#include "backends/cpu/kernels/float_ops.h"
#include "backends/cpu/kernels/quant_matmul.h"
#include "core/error.h"

namespace mllm {
namespace {

class CpuBackend final : public Backend {
  public:
    explicit CpuBackend(int n_threads) : Backend("cpu"), pool_(n_threads) {}

    DeviceInfo info() const override {
        DeviceInfo d;
        d.name = "cpu";
        d.device = str_cat("CPU (", cpu::quant_kernel_isa(), ", ", pool_.size(), " thread",
                           pool_.size() > 1 ? "s" : "", ")");
        d.kind = DeviceKind::Cpu;
        d.unified_memory = true;
        return d;
    }

    bool supports(const graph::Graph& g, const graph::Node& n) const override {
        using graph::Op;
        switch (n.op) {
            case Op::Rope:
            case Op::Attention:
                return n.attrs.head_dim <= cpu::kMaxHeadDim;
            default:
                // Every weight it reads must be of a type the kernels compute with.
                for (graph::NodeId in : n.inputs)
                    if (g[in].op == Op::Weight && !dtype_traits(g[in].dtype).weight_supported)
                        return false;
                return true;
        }
    }

    void allocate_kv_cache(const graph::KvSpec& spec, int64_t n_ctx) override {
        const int64_t width = static_cast<int64_t>(spec.n_head_kv) * spec.head_dim;
        const size_t layer_elems = static_cast<size_t>(n_ctx * width);
        kv_bytes_ = 2 * layer_elems * sizeof(uint16_t) * static_cast<size_t>(spec.n_layer);
        storage_ = cpu::aligned_buffer(kv_bytes_);
        layers_.clear();
        auto* base = reinterpret_cast<uint16_t*>(storage_.get());
        for (int l = 0; l < spec.n_layer; ++l) {
            cpu::KvLayer layer;
            layer.k = base + (2 * static_cast<size_t>(l)) * layer_elems;
            layer.v = layer.k + layer_elems;
            layer.n_ctx = n_ctx;
            layer.width = width;
            layer.head_dim = spec.head_dim;
            layers_.push_back(layer);
        }
    }

    size_t kv_cache_bytes() const override { return kv_bytes_; }

    std::unique_ptr<Executable> prepare(const graph::Graph& g, int device_index) override {
        return std::make_unique<cpu::CpuProgram>(g, device_index, pool_, layers_, profile_);
    }

  private:
    cpu::ThreadPool pool_;
    // Read when the backend is made, as MLLM_VK_PROFILE is.
    bool profile_ = std::getenv("MLLM_CPU_PROFILE") != nullptr;
    cpu::AlignedBuffer storage_;
    size_t kv_bytes_ = 0;
    std::vector<cpu::KvLayer> layers_;
};

}  // namespace

std::unique_ptr<Backend> make_cpu_backend(int n_threads) {
    if (n_threads <= 0)
        n_threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
    return std::make_unique<CpuBackend>(n_threads);
}

}  // namespace mllm
