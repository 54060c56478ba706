#include "backends/vulkan/ops/vk_op_util.h"

namespace mllm::vk {

namespace {
uint64_t alignment(const DeviceProps& d) {
    return std::max<uint64_t>(d.min_storage_buffer_offset_alignment, 4);
}
}  // namespace

namespace binding {

uint64_t limit(const DeviceProps& device, uint64_t override_bytes) {
    const uint64_t max = device.max_storage_buffer_range;
    return override_bytes != 0 ? std::min(max, override_bytes) : max;
}

BufferRange part(const DeviceProps& device, const BufferRange& whole, uint64_t begin,
                 uint64_t bytes, uint64_t& skip) {
    const uint64_t align = alignment(device);
    const uint64_t start = whole.offset + begin;
    const uint64_t offset = start / align * align;
    skip = start - offset;
    return {whole.buffer, offset, (skip + bytes + 3) / 4 * 4};
}

bool whole_texels(const DeviceProps& device, const BufferRange& range) {
    const uint64_t align = std::max<uint64_t>(device.min_texel_buffer_offset_alignment, 1);
    return range.offset % align == 0 && range.size % kTexelBytes == 0 &&
           range.size / kTexelBytes <= device.max_texel_buffer_elements;
}

BufferRange texel_part(const DeviceProps& device, const BufferRange& whole, uint64_t begin,
                       uint64_t bytes, uint64_t& skip) {
    const uint64_t align = std::max(device.min_texel_buffer_offset_alignment, kTexelBytes);
    const uint64_t start = whole.offset + begin;
    const uint64_t offset = start / align * align;
    skip = start - offset;
    const uint64_t size = (skip + bytes + kTexelBytes - 1) / kTexelBytes * kTexelBytes;
    if (offset + size > whole.offset + whole.size)
        fail("internal: Vulkan texel-buffer binding ends inside a texel");
    return {whole.buffer, offset, size};
}

int64_t items_per_binding(const DeviceProps& device, uint64_t limit, uint64_t first, uint64_t bytes,
                          const char* what) {
    // Room for the skipped alignment and the rounding to words, wherever the part starts.
    const uint64_t slack = alignment(device) + 4;
    if (limit < slack + first)
        fail("Vulkan: one ", what, " of ", first, " bytes does not fit a ", limit,
             "-byte storage buffer binding");
    if (bytes == 0) return std::numeric_limits<int64_t>::max();
    const uint64_t items = 1 + (limit - slack - first) / bytes;
    return static_cast<int64_t>(std::min<uint64_t>(items, std::numeric_limits<int64_t>::max()));
}

}  // namespace binding

}  // namespace mllm::vk
