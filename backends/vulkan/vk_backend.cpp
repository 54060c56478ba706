#include "backends/vulkan/vk_backend.h"

#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "backends/vulkan/ops/vk_attention.h"
#include "backends/vulkan/ops/vk_embed.h"
#include "backends/vulkan/ops/vk_matmul.h"
#include "backends/vulkan/ops/vk_round_activations.h"
#include "backends/vulkan/vk_context.h"
#include "backends/vulkan/vk_program.h"
#include "backends/vulkan/vk_self_test.h"
#include "backends/vulkan/vk_weights.h"
#include "core/error.h"
#include "core/quant/quant.h"

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
        for (const std::string& op : vk::env_list("MLLM_VK_DISABLE")) disabled_.insert(op);
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

    std::vector<SelfTestLine> self_test() override {
        std::vector<SelfTestLine> lines;
        for (const std::string& family : vk::self_test_families()) {
            const vk::SelfTestResult r = vk::run_self_test(*ctx_, family);
            lines.push_back({r.pipeline, r.ok, r.detail});
        }
        return lines;
    }

    bool supports(const graph::Graph& g, const graph::Node& n) const override {
        if (disabled_.count(std::string(graph::op_name(n.op))) != 0) return false;
        switch (n.op) {
            case Op::Input:
                return true;
            case Op::Silu:
            case Op::SwiGlu:
            case Op::TakeLast:
            case Op::Add:
            case Op::Mul:
                for (graph::NodeId in : n.inputs)
                    if (!is_f32_weight(g, in)) return false;
                return passes("elementwise");
            case Op::Argmax:
                return passes("argmax");
            case Op::Embed:
                return vk::embed_supports(g[n.inputs[0]].dtype) && n.cols % 8 == 0 &&
                       passes(vk::embed_family(g[n.inputs[0]].dtype));
            case Op::MatMul:
                // A group runs where its leader runs: the leader speaks for every member.
                if (n.group_leader != graph::kNoNode) {
                    for (const graph::Node& m : g.nodes)
                        if (!m.dead && m.group_leader == n.group_leader && !matmul_ok(g, m))
                            return false;
                    return true;
                }
                return matmul_ok(g, n);
            case Op::GatedMatMul:
                return matmul_ok(g, n) && passes("elementwise");
            case Op::RmsNorm:
            case Op::RmsNormMul:
                for (graph::NodeId in : n.inputs)
                    if (!is_f32_weight(g, in)) return false;
                return passes("rms_norm");
            case Op::Rope:
                return n.attrs.head_dim % 2 == 0 && passes("rope");
            case Op::KvStore:
                // The same condition as Attention: a layer's cache lives on one device.
                return g.kv.head_dim % 2 == 0 && g.kv.head_dim <= vk::kVkMaxHeadDim &&
                       passes("attention");
            case Op::Attention:
                return n.attrs.head_dim % 2 == 0 && n.attrs.head_dim <= vk::kVkMaxHeadDim &&
                       n.attrs.n_head_kv > 0 && n.attrs.n_head % n.attrs.n_head_kv == 0 &&
                       passes("attention");
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

    size_t device_memory_bytes() const override {
        return static_cast<size_t>(ctx_->memory().stats().reserved_bytes);
    }

    std::unique_ptr<Executable> prepare(const graph::Graph& g, int device_index) override {
        return std::make_unique<vk::VkProgram>(*ctx_, g, device_index, weights_, kv_, profile_);
    }

  private:
    // A MatMul or GatedMatMul: every weight of a type the shaders read, whose pipelines (and the
    // activation rounding they need) passed the self-test.
    bool matmul_ok(const graph::Graph& g, const graph::Node& n) const {
        const int64_t k = g[n.inputs[0]].cols;
        for (size_t i = 1; i < n.inputs.size(); ++i) {
            const graph::Node& w = g[n.inputs[i]];
            if (n.op == Op::MatMul && i == 2) {  // the bias
                if (w.dtype != DType::F32) return false;
                continue;
            }
            if (!vk::matmul_supports(w.dtype) || !matmul_shape_ok(w.dtype, k) ||
                !passes(vk::matmul_family(w.dtype)))
                return false;
            if (activation_type(w.dtype) != DType::F32 && !passes("round_activations"))
                return false;
        }
        return true;
    }

    // Whether a pipeline family passed its self-test on this device (run on first ask, cached on
    // disk); a failure is reported once and its nodes go to the CPU.
    bool passes(const std::string& family) const {
        std::lock_guard lock(self_test_mutex_);
        const vk::SelfTestResult& r = self_tests_.get(*ctx_, family);
        if (!r.ok && warned_.insert(family).second)
            std::fprintf(stderr,
                         "[mllm] vulkan: %s failed its self-test on %s (%s); its nodes run on "
                         "the CPU\n",
                         family.c_str(), ctx_->props().name.c_str(), r.detail.c_str());
        return r.ok;
    }

    std::unique_ptr<vk::Context> ctx_;
    vk::WeightStore weights_;
    vk::KvCache kv_;
    size_t kv_bytes_ = 0;
    bool profile_ = std::getenv("MLLM_VK_PROFILE") != nullptr;
    std::set<std::string> disabled_;
    mutable std::mutex self_test_mutex_;
    mutable vk::SelfTestCache self_tests_{ctx_->props()};
    mutable std::set<std::string> warned_;
};

}  // namespace

std::vector<std::string> describe_vulkan_devices() {
    std::vector<std::string> lines;
    try {
        const std::vector<vk::DeviceProps> devices = vk::list_devices();
        if (devices.empty()) return {"vulkan: the Vulkan driver lists no devices"};
        uint32_t chosen = UINT32_MAX;
        try {
            chosen = vk::select_device(devices, vk::device_selector());
        } catch (const Error&) {  // none usable: every line says why
        }
        for (const vk::DeviceProps& d : devices)
            lines.push_back(
                str_cat("vulkan ", vk::describe(d), d.index == chosen ? "  <- selected" : ""));
    } catch (const Error& e) {
        lines.push_back(str_cat("vulkan: ", e.what()));
    }
    return lines;
}

std::unique_ptr<Backend> make_vulkan_backend(bool automatic) {
    if (automatic) {
        const std::vector<vk::DeviceProps> devices = vk::list_devices();
        const vk::DeviceProps& d = devices[vk::select_device(devices, vk::device_selector())];
        if (d.type == vk::DeviceType::Cpu)
            fail("the only Vulkan device is ", d.name,
                 ", which runs on the CPU and is slower than the CPU backend (--backend vulkan "
                 "uses it anyway)");
    }
    return std::make_unique<VulkanBackend>();
}

}  // namespace mllm
