#include "backends/vulkan/vk_context.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <string_view>

#include "core/error.h"

namespace mllm::vk {

namespace {
constexpr VkDeviceSize kStagingChunk = VkDeviceSize{16} << 20;

void check_range(const Allocation& a, VkDeviceSize offset, size_t bytes) {
    if (!a || offset + bytes > a.reserved())
        fail("internal: copy of ", bytes, " bytes at ", offset, " outside an allocation of ",
             a.reserved(), " bytes");
}
}  // namespace

std::unique_ptr<Context> Context::open(const ContextOptions& options) {
    std::unique_ptr<Context> ctx(new Context());
    ctx->device_ = options.device.empty() ? Device::open() : Device::open(options.device);
    const char* stage_all = std::getenv("MLLM_VK_STAGE_ALL");
    const bool always_stage =
        options.always_stage || (stage_all != nullptr && std::string_view(stage_all) == "1");
    ctx->memory_ =
        std::make_unique<MemoryManager>(*ctx->device_, options.block_bytes, !always_stage);
    ctx->pipelines_ = std::make_unique<Pipelines>(*ctx->device_);
    ctx->transfer_ = std::make_unique<Sequence>(*ctx->device_);
    return ctx;
}

Context::~Context() {
    // Users' objects (allocations, sequences) are gone by now; release ours before the device.
    transfer_.reset();
    pipelines_.reset();
    memory_.reset();
}

void Context::write(const Allocation& dst, VkDeviceSize offset, const void* src, size_t bytes) {
    check_range(dst, offset, bytes);
    if (bytes == 0) return;
    if (dst.mapped() != nullptr) {
        std::memcpy(dst.mapped() + offset, src, bytes);
        return;
    }
    std::lock_guard lock(transfer_mutex_);
    const VkDeviceSize chunk = std::min<VkDeviceSize>(kStagingChunk, bytes);
    Allocation staging = memory_->allocate(chunk, MemoryUse::Upload);
    if (staging.mapped() == nullptr) fail("internal: Vulkan upload memory is not host-visible");
    const auto* from = static_cast<const uint8_t*>(src);
    for (VkDeviceSize done = 0; done < bytes; done += chunk) {
        const VkDeviceSize n = std::min<VkDeviceSize>(chunk, bytes - done);
        std::memcpy(staging.mapped(), from + done, n);
        transfer_->begin();
        transfer_->copy(staging.range(0, n), dst.range(offset + done, n));
        transfer_->end();
        transfer_->run();
    }
}

void Context::read(const Allocation& src, VkDeviceSize offset, void* dst, size_t bytes) {
    check_range(src, offset, bytes);
    if (bytes == 0) return;
    if (src.mapped() != nullptr) {
        std::memcpy(dst, src.mapped() + offset, bytes);
        return;
    }
    std::lock_guard lock(transfer_mutex_);
    const VkDeviceSize chunk = std::min<VkDeviceSize>(kStagingChunk, bytes);
    Allocation staging = memory_->allocate(chunk, MemoryUse::Readback);
    if (staging.mapped() == nullptr) fail("internal: Vulkan readback memory is not host-visible");
    auto* to = static_cast<uint8_t*>(dst);
    for (VkDeviceSize done = 0; done < bytes; done += chunk) {
        const VkDeviceSize n = std::min<VkDeviceSize>(chunk, bytes - done);
        transfer_->begin();
        transfer_->copy(src.range(offset + done, n), staging.range(0, n));
        transfer_->end();
        transfer_->run();
        std::memcpy(to + done, staging.mapped(), n);
    }
}

}  // namespace mllm::vk
