#include "backends/vulkan/vk_sequence.h"

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "core/error.h"

namespace mllm::vk {

namespace {
constexpr uint32_t kSetsPerPool = 256;

// MLLM_VK_CORRUPT=<shader>[,<shader>...]: dispatches of those shaders (name prefixes, e.g.
// "matmul_q8_0") get zeroed push constants, so they compute nothing useful: how tests play a
// driver that computes garbage, to check that the self-test catches it and the nodes fall back.
bool corrupted(std::string_view shader) {
    static const std::vector<std::string> list = env_list("MLLM_VK_CORRUPT");
    for (const std::string& name : list)
        if (shader.substr(0, name.size()) == name) return true;
    return false;
}
constexpr uint32_t kBuffersPerSet = 8;  // on average; a pool that runs out is followed by another
}  // namespace

Sequence::Sequence(const Device& device) : device_(device) {
    const DeviceFunctions& fn = device.fn();
    const VkDevice dev = device.handle();
    VkCommandPoolCreateInfo pool_info{VK_STRUCTURE_TYPE_COMMAND_POOL_CREATE_INFO};
    pool_info.flags = VK_COMMAND_POOL_CREATE_RESET_COMMAND_BUFFER_BIT;
    pool_info.queueFamilyIndex = device.props().compute_queue_family;
    check(fn.vkCreateCommandPool(dev, &pool_info, nullptr, &pool_), "vkCreateCommandPool");
    VkCommandBufferAllocateInfo alloc{VK_STRUCTURE_TYPE_COMMAND_BUFFER_ALLOCATE_INFO};
    alloc.commandPool = pool_;
    alloc.level = VK_COMMAND_BUFFER_LEVEL_PRIMARY;
    alloc.commandBufferCount = 1;
    VkFenceCreateInfo fence_info{VK_STRUCTURE_TYPE_FENCE_CREATE_INFO};
    try {
        check(fn.vkAllocateCommandBuffers(dev, &alloc, &cmd_), "vkAllocateCommandBuffers");
        check(fn.vkCreateFence(dev, &fence_info, nullptr, &fence_), "vkCreateFence");
    } catch (...) {
        fn.vkDestroyCommandPool(dev, pool_, nullptr);
        throw;
    }
}

Sequence::~Sequence() {
    const DeviceFunctions& fn = device_.fn();
    const VkDevice dev = device_.handle();
    if (pending_) fn.vkWaitForFences(dev, 1, &fence_, VK_TRUE, UINT64_MAX);
    if (queries_ != VK_NULL_HANDLE) fn.vkDestroyQueryPool(dev, queries_, nullptr);
    destroy_views();
    for (VkDescriptorPool p : descriptor_pools_) fn.vkDestroyDescriptorPool(dev, p, nullptr);
    fn.vkDestroyFence(dev, fence_, nullptr);
    fn.vkDestroyCommandPool(dev, pool_, nullptr);  // frees cmd_
}

void Sequence::begin() {
    if (pending_) wait();
    const DeviceFunctions& fn = device_.fn();
    check(fn.vkResetCommandBuffer(cmd_, 0), "vkResetCommandBuffer");
    destroy_views();
    for (VkDescriptorPool p : descriptor_pools_)
        check(fn.vkResetDescriptorPool(device_.handle(), p, 0), "vkResetDescriptorPool");
    // Keep one pool for the next recording, release the rest.
    while (descriptor_pools_.size() > 1) {
        fn.vkDestroyDescriptorPool(device_.handle(), descriptor_pools_.back(), nullptr);
        descriptor_pools_.pop_back();
    }
    VkCommandBufferBeginInfo info{VK_STRUCTURE_TYPE_COMMAND_BUFFER_BEGIN_INFO};
    check(fn.vkBeginCommandBuffer(cmd_, &info), "vkBeginCommandBuffer");
    recording_ = true;
    recorded_ = false;
    dispatches_ = 0;
    dispatch_ns_.clear();
    profiled_runs_ = 0;
    if (queries_ != VK_NULL_HANDLE) {
        fn.vkCmdResetQueryPool(cmd_, queries_, 0, query_capacity_);
        fn.vkCmdWriteTimestamp(cmd_, VK_PIPELINE_STAGE_BOTTOM_OF_PIPE_BIT, queries_, 0);
    }
}

void Sequence::enable_profiling() {
    if (recording_) fail("internal: Sequence::enable_profiling while recording");
    if (device_.props().timestamp_period_ns <= 0 || queries_ != VK_NULL_HANDLE) return;
    query_capacity_ = 4096;  // dispatches beyond this are not timed
    VkQueryPoolCreateInfo info{VK_STRUCTURE_TYPE_QUERY_POOL_CREATE_INFO};
    info.queryType = VK_QUERY_TYPE_TIMESTAMP;
    info.queryCount = query_capacity_;
    check(device_.fn().vkCreateQueryPool(device_.handle(), &info, nullptr, &queries_),
          "vkCreateQueryPool");
    profiling_ = true;
}

std::vector<double> Sequence::dispatch_ms() const {
    std::vector<double> ms;
    if (profiled_runs_ == 0) return ms;
    for (double ns : dispatch_ns_) ms.push_back(ns / 1e6 / static_cast<double>(profiled_runs_));
    return ms;
}

VkDescriptorSet Sequence::allocate_set(VkDescriptorSetLayout layout) {
    const DeviceFunctions& fn = device_.fn();
    const VkDevice dev = device_.handle();
    VkDescriptorSetAllocateInfo info{VK_STRUCTURE_TYPE_DESCRIPTOR_SET_ALLOCATE_INFO};
    info.descriptorSetCount = 1;
    info.pSetLayouts = &layout;
    VkDescriptorSet set = VK_NULL_HANDLE;
    if (!descriptor_pools_.empty()) {
        info.descriptorPool = descriptor_pools_.back();
        const VkResult r = fn.vkAllocateDescriptorSets(dev, &info, &set);
        if (r == VK_SUCCESS) return set;
        if (r != VK_ERROR_OUT_OF_POOL_MEMORY && r != VK_ERROR_FRAGMENTED_POOL)
            check(r, "vkAllocateDescriptorSets");
    }
    const VkDescriptorPoolSize sizes[] = {
        {VK_DESCRIPTOR_TYPE_STORAGE_BUFFER, kSetsPerPool * kBuffersPerSet},
        {VK_DESCRIPTOR_TYPE_UNIFORM_BUFFER, kSetsPerPool},
        {VK_DESCRIPTOR_TYPE_UNIFORM_TEXEL_BUFFER, kSetsPerPool}};
    VkDescriptorPoolCreateInfo pool_info{VK_STRUCTURE_TYPE_DESCRIPTOR_POOL_CREATE_INFO};
    pool_info.maxSets = kSetsPerPool;
    pool_info.poolSizeCount = 3;
    pool_info.pPoolSizes = sizes;
    VkDescriptorPool pool = VK_NULL_HANDLE;
    check(fn.vkCreateDescriptorPool(dev, &pool_info, nullptr, &pool), "vkCreateDescriptorPool");
    descriptor_pools_.push_back(pool);
    info.descriptorPool = pool;
    check(fn.vkAllocateDescriptorSets(dev, &info, &set), "vkAllocateDescriptorSets");
    return set;
}

std::string texel_binding_problem(const DeviceProps& props, const BufferRange& range) {
    if (props.max_texel_buffer_elements == 0)
        return str_cat(props.name, " has no R32G32B32A32_UINT uniform texel buffers");
    if (range.offset % std::max<uint64_t>(props.min_texel_buffer_offset_alignment, 1) != 0 ||
        range.size % kTexelBytes != 0)
        return str_cat("a texel-buffer binding at ", range.offset, " of ", range.size,
                       " bytes is not aligned to whole texels");
    if (range.size / kTexelBytes > props.max_texel_buffer_elements)
        return str_cat("a texel-buffer binding of ", range.size / kTexelBytes,
                       " texels exceeds the ", props.max_texel_buffer_elements, " texels of ",
                       props.name);
    return "";
}

VkBufferView Sequence::texel_view(const std::string& shader, const BufferRange& range) {
    // The kernels choose texel bindings only where they fit (texel_reads, texel_part): a
    // problem here is ours.
    if (const std::string problem = texel_binding_problem(device_.props(), range); !problem.empty())
        fail("internal: ", shader, ": ", problem);
    VkBufferViewCreateInfo info{VK_STRUCTURE_TYPE_BUFFER_VIEW_CREATE_INFO};
    info.buffer = range.buffer;
    info.format = VK_FORMAT_R32G32B32A32_UINT;
    info.offset = range.offset;
    info.range = range.size;
    VkBufferView view = VK_NULL_HANDLE;
    check(device_.fn().vkCreateBufferView(device_.handle(), &info, nullptr, &view),
          "vkCreateBufferView");
    views_.push_back(view);
    return view;
}

void Sequence::destroy_views() {
    for (VkBufferView v : views_) device_.fn().vkDestroyBufferView(device_.handle(), v, nullptr);
    views_.clear();
}

void Sequence::dispatch(const Pipeline& pipeline, std::span<const BufferRange> buffers,
                        const void* push, uint32_t push_bytes, Groups groups) {
    if (!recording_) fail("internal: Sequence::dispatch outside begin()/end()");
    const PipelineDesc& desc = pipeline.desc();
    if (buffers.size() != desc.buffers || push_bytes != desc.push_constant_bytes)
        fail("internal: ", desc.shader, " takes ", desc.buffers, " buffers and ",
             desc.push_constant_bytes, " bytes of push constants, got ", buffers.size(), " and ",
             push_bytes);
    const DeviceProps& props = device_.props();
    if (groups.x == 0 || groups.y == 0 || groups.z == 0 ||
        groups.x > props.max_workgroup_count[0] || groups.y > props.max_workgroup_count[1] ||
        groups.z > props.max_workgroup_count[2])
        fail("internal: ", desc.shader, " dispatch of ", groups.x, "x", groups.y, "x", groups.z,
             " workgroups is outside the device's limits");

    const DeviceFunctions& fn = device_.fn();
    const VkDescriptorSet set = allocate_set(pipeline.set_layout());
    std::vector<VkDescriptorBufferInfo> infos(buffers.size());
    std::vector<VkBufferView> views(buffers.size(), VK_NULL_HANDLE);
    std::vector<VkWriteDescriptorSet> writes(buffers.size());
    for (size_t i = 0; i < buffers.size(); ++i) {
        if (buffers[i].buffer == VK_NULL_HANDLE || buffers[i].size == 0)
            fail("internal: ", desc.shader, " binding ", i, " is empty");
        const VkDescriptorType type = descriptor_type(desc, static_cast<uint32_t>(i));
        writes[i].sType = VK_STRUCTURE_TYPE_WRITE_DESCRIPTOR_SET;
        writes[i].dstSet = set;
        writes[i].dstBinding = static_cast<uint32_t>(i);
        writes[i].descriptorCount = 1;
        writes[i].descriptorType = type;
        if (type == VK_DESCRIPTOR_TYPE_UNIFORM_TEXEL_BUFFER) {
            views[i] = texel_view(desc.shader, buffers[i]);
            writes[i].pTexelBufferView = &views[i];
            continue;
        }
        const bool uniform = type == VK_DESCRIPTOR_TYPE_UNIFORM_BUFFER;
        const uint64_t range =
            uniform ? props.max_uniform_buffer_range : props.max_storage_buffer_range;
        if (buffers[i].size > range)
            fail(desc.shader, ": a binding of ", buffers[i].size, " bytes exceeds the ", range,
                 uniform ? "-byte uniform buffer range of " : "-byte storage buffer range of ",
                 props.name);
        infos[i] = {buffers[i].buffer, buffers[i].offset, buffers[i].size};
        writes[i].pBufferInfo = &infos[i];
    }
    fn.vkUpdateDescriptorSets(device_.handle(), static_cast<uint32_t>(writes.size()), writes.data(),
                              0, nullptr);
    fn.vkCmdBindPipeline(cmd_, VK_PIPELINE_BIND_POINT_COMPUTE, pipeline.handle());
    fn.vkCmdBindDescriptorSets(cmd_, VK_PIPELINE_BIND_POINT_COMPUTE, pipeline.layout(), 0, 1, &set,
                               0, nullptr);
    if (push_bytes > 0) {
        const std::vector<uint8_t> zeros(corrupted(desc.shader) ? push_bytes : 0, 0);
        fn.vkCmdPushConstants(cmd_, pipeline.layout(), VK_SHADER_STAGE_COMPUTE_BIT, 0, push_bytes,
                              zeros.empty() ? push : zeros.data());
    }
    fn.vkCmdDispatch(cmd_, groups.x, groups.y, groups.z);
    ++dispatches_;
    if (profiling_ && dispatches_ < query_capacity_) {
        barrier();
        fn.vkCmdWriteTimestamp(cmd_, VK_PIPELINE_STAGE_BOTTOM_OF_PIPE_BIT, queries_,
                               static_cast<uint32_t>(dispatches_));
    }
}

void Sequence::barrier() {
    if (!recording_) fail("internal: Sequence::barrier outside begin()/end()");
    VkMemoryBarrier b{VK_STRUCTURE_TYPE_MEMORY_BARRIER};
    b.srcAccessMask = VK_ACCESS_SHADER_WRITE_BIT | VK_ACCESS_TRANSFER_WRITE_BIT;
    b.dstAccessMask = VK_ACCESS_SHADER_READ_BIT | VK_ACCESS_SHADER_WRITE_BIT |
                      VK_ACCESS_TRANSFER_READ_BIT | VK_ACCESS_TRANSFER_WRITE_BIT;
    const VkPipelineStageFlags stages =
        VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT | VK_PIPELINE_STAGE_TRANSFER_BIT;
    device_.fn().vkCmdPipelineBarrier(cmd_, stages, stages, 0, 1, &b, 0, nullptr, 0, nullptr);
}

void Sequence::copy(const BufferRange& src, const BufferRange& dst) {
    if (!recording_) fail("internal: Sequence::copy outside begin()/end()");
    if (src.size != dst.size) fail("internal: Sequence::copy of unequal ranges");
    const VkBufferCopy region{src.offset, dst.offset, src.size};
    device_.fn().vkCmdCopyBuffer(cmd_, src.buffer, dst.buffer, 1, &region);
}

void Sequence::end() {
    if (!recording_) fail("internal: Sequence::end without begin()");
    // Make every write visible to the host once the fence signals.
    VkMemoryBarrier b{VK_STRUCTURE_TYPE_MEMORY_BARRIER};
    b.srcAccessMask = VK_ACCESS_SHADER_WRITE_BIT | VK_ACCESS_TRANSFER_WRITE_BIT;
    b.dstAccessMask = VK_ACCESS_HOST_READ_BIT;
    device_.fn().vkCmdPipelineBarrier(
        cmd_, VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT | VK_PIPELINE_STAGE_TRANSFER_BIT,
        VK_PIPELINE_STAGE_HOST_BIT, 0, 1, &b, 0, nullptr, 0, nullptr);
    check(device_.fn().vkEndCommandBuffer(cmd_), "vkEndCommandBuffer");
    recording_ = false;
    recorded_ = true;
}

void Sequence::submit() {
    if (!recorded_) fail("internal: Sequence::submit before end()");
    if (pending_) wait();
    check(device_.fn().vkResetFences(device_.handle(), 1, &fence_), "vkResetFences");
    // Host writes made before this call are visible to the device (vkQueueSubmit guarantees it).
    device_.submit(cmd_, fence_);
    pending_ = true;
}

void Sequence::wait() {
    if (!pending_) return;
    const VkResult r =
        device_.fn().vkWaitForFences(device_.handle(), 1, &fence_, VK_TRUE, UINT64_MAX);
    pending_ = false;
    if (r == VK_ERROR_DEVICE_LOST) fail("Vulkan device lost (", device_.props().name, ")");
    check(r, "vkWaitForFences");
    if (profiling_) {
        const auto n = static_cast<uint32_t>(std::min<size_t>(dispatches_ + 1, query_capacity_));
        std::vector<uint64_t> stamps(n);
        check(device_.fn().vkGetQueryPoolResults(
                  device_.handle(), queries_, 0, n, n * sizeof(uint64_t), stamps.data(),
                  sizeof(uint64_t), VK_QUERY_RESULT_64_BIT | VK_QUERY_RESULT_WAIT_BIT),
              "vkGetQueryPoolResults");
        dispatch_ns_.resize(n - 1, 0.0);
        const double period = device_.props().timestamp_period_ns;
        for (uint32_t i = 1; i < n; ++i)
            dispatch_ns_[i - 1] += static_cast<double>(stamps[i] - stamps[i - 1]) * period;
        ++profiled_runs_;
    }
}

}  // namespace mllm::vk
