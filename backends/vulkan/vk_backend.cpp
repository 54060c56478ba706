#include "backends/vulkan/vk_backend.h"

#include <cstdlib>
#include <set>
#include <string>
#include <vector>

#include "backends/vulkan/ops/vk_attention.h"
#include "backends/vulkan/ops/vk_embed.h"
#include "backends/vulkan/ops/vk_matmul.h"
#include "backends/vulkan/vk_context.h"
#include "backends/vulkan/vk_program.h"
#include "backends/vulkan/vk_weights.h"
#include "core/error.h"

namespace mllm {
namespace {

using graph::Op;

DeviceKind device_kind(vk::DeviceType t) {
    switch (t) {
        case vk::DeviceType::Discrete:
            return DeviceKind::DiscreteGpu;
        case vk::DeviceType::Integrated:
            return DeviceKind::IntegratedGpu;
        default:
            // Virtual and CPU devices (lavapipe) share the host's memory like an iGPU.
            return DeviceKind::IntegratedGpu;
    }
}

// Weight rows are read in chunks of 8 elements, quantized ones in whole blocks.
bool matmul_shape_ok(DType type, int64_t k) {
    const int64_t block = dtype_traits(type).block_size;
    return k % std::max<int64_t>(block, 8) == 0;
}

bool is_f32_weight(const graph::Graph& g, graph::NodeId id) {
    return g[id].op != Op::Weight || g[id].dtype == DType::F32;
}

class VulkanBackend final : public Backend {
  public:
    VulkanBackend() : Backend("vulkan"), ctx_(vk::Context::open()), weights_(*ctx_) {
        // MLLM_VK_DISABLE=op[,op...]: op families this backend refuses, so placement runs them
        // on the CPU (a manual workaround for a driver that computes one wrong; tests use it).
        if (const char* list = std::getenv("MLLM_VK_DISABLE")) {
            std::string item;
            for (const char* c = list;; ++c) {
                if (*c == ',' || *c == '\0') {
                    if (!item.empty()) disabled_.insert(item);
                    item.clear();
                    if (*c == '\0') break;
                } else {
                    item += *c;
                }
            }
        }
        // A layer's cache is written and read on one device.
        if (disabled_.count("attention") != 0 || disabled_.count("kv_store") != 0)
            disabled_.insert({"attention", "kv_store"});
    }

    DeviceInfo info() const override {
        const vk::DeviceProps& p = ctx_->props();
        DeviceInfo d;
        d.name = "vulkan";
        d.device = p.name + (p.driver_info.empty() ? "" : " (" + p.driver_info + ")");
        d.kind = device_kind(p.type);
        d.unified_memory = p.unified_memory;
        return d;
    }

    bool supports(const graph::Graph& g, const graph::Node& n) const override {
        if (disabled_.count(std::string(graph::op_name(n.op))) != 0) return false;
        switch (n.op) {
            case Op::Input:
            case Op::Silu:
            case Op::SwiGlu:
            case Op::TakeLast:
                return true;
            case Op::Embed:
                return vk::embed_supports(g[n.inputs[0]].dtype) && n.cols % 8 == 0;
            case Op::MatMul:
            case Op::GatedMatMul: {
                const int64_t k = g[n.inputs[0]].cols;
                for (size_t i = 1; i < n.inputs.size(); ++i) {
                    const graph::Node& w = g[n.inputs[i]];
                    const bool bias = n.op == Op::MatMul && i == 2;
                    if (bias ? w.dtype != DType::F32
                             : !vk::matmul_supports(w.dtype) || !matmul_shape_ok(w.dtype, k))
                        return false;
                }
                return true;
            }
            case Op::RmsNorm:
            case Op::RmsNormMul:
            case Op::Add:
            case Op::Mul:
                for (graph::NodeId in : n.inputs)
                    if (!is_f32_weight(g, in)) return false;
                return true;
            case Op::Rope:
                return n.attrs.head_dim % 2 == 0;
            case Op::KvStore:
                // The same condition as Attention: a layer's cache lives on one device.
                return g.kv.head_dim % 2 == 0 && g.kv.head_dim <= vk::kVkMaxHeadDim;
            case Op::Attention:
                return n.attrs.head_dim % 2 == 0 && n.attrs.head_dim <= vk::kVkMaxHeadDim &&
                       n.attrs.n_head_kv > 0 && n.attrs.n_head % n.attrs.n_head_kv == 0;
            case Op::Weight:
                return false;
        }
        return false;
    }

    void allocate_kv_cache(const graph::KvSpec& spec, int64_t n_ctx) override {
        kv_.layers.clear();
        kv_.n_ctx = n_ctx;
        kv_.width = static_cast<int64_t>(spec.n_head_kv) * spec.head_dim;
        const auto bytes = static_cast<VkDeviceSize>(2 * n_ctx * kv_.width);
        for (int l = 0; l < spec.n_layer; ++l)
            kv_.layers.push_back({ctx_->memory().allocate(bytes), ctx_->memory().allocate(bytes)});
        kv_bytes_ = 2 * static_cast<size_t>(bytes) * static_cast<size_t>(spec.n_layer);
    }

    size_t kv_cache_bytes() const override { return kv_bytes_; }

    std::unique_ptr<Executable> prepare(const graph::Graph& g, int device_index) override {
        return std::make_unique<vk::VkProgram>(*ctx_, g, device_index, weights_, kv_, profile_);
    }

  private:
    std::unique_ptr<vk::Context> ctx_;
    vk::WeightStore weights_;
    vk::KvCache kv_;
    size_t kv_bytes_ = 0;
    bool profile_ = std::getenv("MLLM_VK_PROFILE") != nullptr;
    std::set<std::string> disabled_;
};

}  // namespace

std::unique_ptr<Backend> make_vulkan_backend(bool automatic) {
    if (automatic) {
        const std::vector<vk::DeviceProps> devices = vk::list_devices();
        const char* selector = std::getenv("MLLM_VK_DEVICE");
        const vk::DeviceProps& d =
            devices[vk::select_device(devices, selector != nullptr ? selector : "")];
        if (d.type == vk::DeviceType::Cpu)
            fail("the only Vulkan device is ", d.name,
                 ", which runs on the CPU and is slower than the CPU backend (--backend vulkan "
                 "uses it anyway)");
    }
    return std::make_unique<VulkanBackend>();
}

}  // namespace mllm
