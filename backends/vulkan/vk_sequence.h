#pragma once
// Command recording: a Sequence is one command buffer of dispatches (each with its pipeline,
// buffer bindings and push constants), recorded once and submitted as often as needed, e.g.
// once per decode step. Buffer contents may change between submits; what is recorded may not.
#include <cstdint>
#include <initializer_list>
#include <span>
#include <string>
#include <vector>

#include "backends/vulkan/vk_api.h"
#include "backends/vulkan/vk_device.h"
#include "backends/vulkan/vk_memory.h"
#include "backends/vulkan/vk_pipeline.h"

namespace mllm::vk {

// Texel-buffer bindings are R32G32B32A32_UINT: 16-byte texels.
constexpr uint64_t kTexelBytes = 16;
// Why `range` cannot be bound as a texel buffer on this device as it is (no texel buffers,
// not at the offset alignment, not whole texels, too many texels); empty when it can.
std::string texel_binding_problem(const DeviceProps& device, const BufferRange& range);

struct Groups {
    uint32_t x = 1, y = 1, z = 1;
};

class Sequence {
  public:
    explicit Sequence(const Device& device);
    ~Sequence();  // waits for a pending submit
    Sequence(const Sequence&) = delete;
    Sequence& operator=(const Sequence&) = delete;

    // Starts recording, dropping whatever was recorded before.
    void begin();
    // Records one dispatch: `buffers` bind to 0..n-1 (as many as the pipeline declares), `push`
    // holds the pipeline's push constants. Dispatches are not ordered against each other unless
    // a barrier() separates them.
    void dispatch(const Pipeline& pipeline, std::span<const BufferRange> buffers, const void* push,
                  uint32_t push_bytes, Groups groups);
    template <typename Push>
    void dispatch(const Pipeline& pipeline, std::initializer_list<BufferRange> buffers,
                  const Push& push, Groups groups) {
        dispatch(pipeline, std::span<const BufferRange>(buffers.begin(), buffers.size()), &push,
                 sizeof(Push), groups);
    }
    // Everything recorded before (dispatches, copies) completes and is visible to everything
    // recorded after.
    void barrier();
    // Device-side copy; src and dst have the same size.
    void copy(const BufferRange& src, const BufferRange& dst);
    // Ends recording; results are visible to the host once wait() returns.
    void end();

    // Submits the recorded commands (waiting first if the previous submit is still running).
    void submit();
    // Waits until the last submit has finished; throws mllm::Error on device loss.
    void wait();
    void run() {
        submit();
        wait();
    }

    bool recording() const { return recording_; }
    size_t dispatches() const { return dispatches_; }

    // Profiling (call before begin()): every dispatch is followed by a full barrier and a
    // timestamp, so each one's device time is measured alone. dispatch_ms() is each dispatch's
    // mean over the submits waited for since begin(); empty when the queue has no timestamps.
    void enable_profiling();
    std::vector<double> dispatch_ms() const;

  private:
    VkDescriptorSet allocate_set(VkDescriptorSetLayout layout);
    // A view of `range` as R32G32B32A32_UINT texels, kept until the next begin().
    VkBufferView texel_view(const std::string& shader, const BufferRange& range);
    void destroy_views();

    const Device& device_;
    VkCommandPool pool_ = VK_NULL_HANDLE;
    VkCommandBuffer cmd_ = VK_NULL_HANDLE;
    VkFence fence_ = VK_NULL_HANDLE;
    std::vector<VkDescriptorPool> descriptor_pools_;  // the last one takes new sets
    std::vector<VkBufferView> views_;                 // of the texel-buffer bindings recorded
    bool recording_ = false;
    bool recorded_ = false;
    bool pending_ = false;
    size_t dispatches_ = 0;

    bool profiling_ = false;
    VkQueryPool queries_ = VK_NULL_HANDLE;
    uint32_t query_capacity_ = 0;
    std::vector<double> dispatch_ns_;  // summed over profiled_runs_
    size_t profiled_runs_ = 0;
};

}  // namespace mllm::vk
