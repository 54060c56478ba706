#pragma once
// One opened Vulkan device with everything that hangs off it: memory, pipelines, and copies
// between host memory and device allocations. The op families (ops/) record into Sequences
// against a Context; the backend proper (a later step) owns one.
#include <cstddef>
#include <memory>
#include <mutex>
#include <string>

#include "backends/vulkan/vk_device.h"
#include "backends/vulkan/vk_memory.h"
#include "backends/vulkan/vk_pipeline.h"
#include "backends/vulkan/vk_sequence.h"

namespace mllm::vk {

struct ContextOptions {
    // Device selector (index or name substring); empty: the MLLM_VK_DEVICE environment
    // variable, else the best device.
    std::string device;
    VkDeviceSize block_bytes = MemoryManager::kDefaultBlockBytes;
    // Never map device memory, so every copy goes through staging buffers as on a discrete GPU
    // (tests that path on unified-memory devices). MLLM_VK_STAGE_ALL=1 sets it for a whole run.
    bool always_stage = false;
};

class Context {
  public:
    // Throws mllm::Error when there is no loader, no (usable) device or the device fails to open.
    static std::unique_ptr<Context> open(const ContextOptions& options = {});
    ~Context();
    Context(const Context&) = delete;
    Context& operator=(const Context&) = delete;

    const Device& device() const { return *device_; }
    const DeviceProps& props() const { return device_->props(); }
    MemoryManager& memory() { return *memory_; }
    Pipelines& pipelines() { return *pipelines_; }

    // Host -> device and device -> host copies of `bytes` at `offset` into an allocation: a
    // memcpy when it is host-mapped, else through a staging buffer (submitted and waited for).
    // The device must not be using the range meanwhile.
    void write(const Allocation& dst, VkDeviceSize offset, const void* src, size_t bytes);
    void read(const Allocation& src, VkDeviceSize offset, void* dst, size_t bytes);

  private:
    Context() = default;
    std::unique_ptr<Device> device_;
    std::unique_ptr<MemoryManager> memory_;
    std::unique_ptr<Pipelines> pipelines_;
    std::unique_ptr<Sequence> transfer_;  // staging copies
    std::mutex transfer_mutex_;
};

}  // namespace mllm::vk
