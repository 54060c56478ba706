#pragma once
// Compute pipelines from the embedded SPIR-V: each with its descriptor set layout (storage
// buffers at bindings 0..n-1 of set 0, some of them uniform or texel buffers), push-constant range
// and specialization constants. Created on first use and kept for the device's lifetime, through a
// VkPipelineCache loaded from and saved to the user's cache directory (drivers validate its header,
// so a stale or foreign file is ignored by them).
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "backends/vulkan/vk_api.h"
#include "backends/vulkan/vk_device.h"

namespace mllm::vk {

struct PipelineDesc {
    std::string shader;  // embedded module name, e.g. "matmul_q8_0"
    uint32_t buffers = 0;
    uint32_t push_constant_bytes = 0;
    // Specialization constants 0..n-1, all 32-bit; by convention constant 0 is the workgroup
    // size (layout(local_size_x_id = 0) in the shader).
    std::vector<uint32_t> spec;
    // Bit i set: binding i is a uniform buffer (std140) instead of a storage buffer.
    uint32_t uniform_buffers = 0;
    // Bit i set: binding i is a uniform texel buffer of R32G32B32A32_UINT texels (the Sequence
    // makes the buffer view).
    uint32_t texel_buffers = 0;

    auto operator<=>(const PipelineDesc&) const = default;
};

// The descriptor type of one binding.
VkDescriptorType descriptor_type(const PipelineDesc& desc, uint32_t binding);

class Pipeline {
  public:
    Pipeline(const Device& device, PipelineDesc desc, VkPipelineCache cache);
    ~Pipeline();
    Pipeline(const Pipeline&) = delete;
    Pipeline& operator=(const Pipeline&) = delete;

    const PipelineDesc& desc() const { return desc_; }
    VkPipeline handle() const { return pipeline_; }
    VkPipelineLayout layout() const { return layout_; }
    VkDescriptorSetLayout set_layout() const { return set_layout_; }
    uint32_t workgroup_size() const { return desc_.spec.empty() ? 1 : desc_.spec[0]; }

  private:
    const Device& device_;
    PipelineDesc desc_;
    VkDescriptorSetLayout set_layout_ = VK_NULL_HANDLE;
    VkPipelineLayout layout_ = VK_NULL_HANDLE;
    VkPipeline pipeline_ = VK_NULL_HANDLE;
};

// Every pipeline of one device, by description. Thread-safe; references stay valid until it is
// destroyed.
class Pipelines {
  public:
    explicit Pipelines(const Device& device);
    ~Pipelines();  // saves the pipeline cache when pipelines were created
    // Throws mllm::Error for an unknown shader, limits the device does not meet, or a driver
    // failure.
    const Pipeline& get(const PipelineDesc& desc);
    size_t size() const;

  private:
    const Device& device_;
    mutable std::mutex mutex_;
    std::map<PipelineDesc, std::unique_ptr<Pipeline>> pipelines_;
    VkPipelineCache cache_ = VK_NULL_HANDLE;
    std::string cache_path_;
    bool created_ = false;
};

}  // namespace mllm::vk
