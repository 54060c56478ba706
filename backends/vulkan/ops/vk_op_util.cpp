#include "backends/vulkan/ops/vk_op_util.h"

namespace mllm::vk {

namespace {
uint64_t alignment(const DeviceProps& d) {
    return std::max<uint64_t>(d.min_storage_buffer_offset_alignment, 4);
}

// The part of `whole` that holds [begin, begin + bytes): its offset aligned down to `align`
// (the bytes skipped in `skip`) and its size rounded up to whole `unit`s.
BufferRange aligned_part(const BufferRange& whole, uint64_t begin, uint64_t bytes, uint64_t align,
                         uint64_t unit, uint64_t& skip) {
    const uint64_t start = whole.offset + begin;
    const uint64_t offset = start / align * align;
    skip = start - offset;
    return {whole.buffer, offset, (skip + bytes + unit - 1) / unit * unit};
}
}  // namespace

namespace binding {

uint64_t limit(const DeviceProps& device, uint64_t override_bytes) {
    const uint64_t max = device.max_storage_buffer_range;
    return override_bytes != 0 ? std::min(max, override_bytes) : max;
}

BufferRange part(const DeviceProps& device, const BufferRange& whole, uint64_t begin,
                 uint64_t bytes, uint64_t& skip) {
    return aligned_part(whole, begin, bytes, alignment(device), 4, skip);
}

BufferRange texel_part(const DeviceProps& device, const BufferRange& whole, uint64_t begin,
                       uint64_t bytes, uint64_t& skip) {
    const BufferRange r = aligned_part(
        whole, begin, bytes, std::max(device.min_texel_buffer_offset_alignment, kTexelBytes),
        kTexelBytes, skip);
    if (r.offset + r.size > whole.offset + whole.size)
        fail("internal: Vulkan texel-buffer binding ends inside a texel");
    return r;
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
