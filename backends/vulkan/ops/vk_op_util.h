#pragma once
// Small helpers the op families share when they fill push constants, check and bind buffer
// ranges, and size dispatches.
#include <algorithm>
#include <cstdint>
#include <limits>

#include "backends/vulkan/vk_device.h"
#include "backends/vulkan/vk_sequence.h"
#include "core/error.h"

namespace mllm::vk {

// A push-constant field: shaders index with 32-bit integers.
inline uint32_t push_u32(int64_t v, const char* op, const char* what) {
    if (v < 0 || v > std::numeric_limits<uint32_t>::max())
        fail("Vulkan ", op, ": ", what, " = ", v, " is out of range");
    return static_cast<uint32_t>(v);
}

// Checks that a binding holds `bytes` (shaders index past no binding's end) and starts at a
// multiple of `align` bytes (the shaders' word loads).
inline void need_bytes(const BufferRange& r, int64_t bytes, const char* op, const char* what,
                       int64_t align = 4) {
    if (r.buffer == VK_NULL_HANDLE || static_cast<int64_t>(r.size) < bytes)
        fail("internal: Vulkan ", op, " ", what, " binding holds ", r.size, " bytes, needs ",
             bytes);
    if (static_cast<int64_t>(r.offset) % align != 0)
        fail("internal: Vulkan ", op, " ", what, " range not ", align, "-byte aligned");
}

// The workgroup size of the one-invocation-per-item shaders: a few subgroups.
inline uint32_t flat_workgroup(const DeviceProps& props) {
    return std::min(std::max<uint32_t>(64, props.subgroup_size), props.max_workgroup_invocations);
}

// Workgroups for `items` invocations of `workgroup` threads each: x up to the device's limit,
// the rest in y (the shaders fold y back into a flat index with gl_NumWorkGroups.x).
inline Groups flat_groups(const DeviceProps& props, int64_t items, uint32_t workgroup) {
    const int64_t groups = std::max<int64_t>(1, (items + workgroup - 1) / workgroup);
    Groups g;
    g.x = static_cast<uint32_t>(std::min<int64_t>(groups, props.max_workgroup_count[0]));
    g.y = static_cast<uint32_t>((groups + g.x - 1) / g.x);
    if (g.y > props.max_workgroup_count[1])
        fail("Vulkan dispatch of ", items, " items exceeds the device's workgroup limits");
    return g;
}

// Whether kernels read their large inputs through uniform texel buffers of R32G32B32A32_UINT
// texels: on CPU devices that have them (not turned off by a workaround), since llvmpipe gathers
// texels in straight-line code where a storage-buffer load whose address differs per lane is a
// loop over the lanes (shaders/weights.glsl).
inline bool texel_reads(const DeviceProps& device) {
    return device.cpu_kernels && device.max_texel_buffer_elements > 0;
}

// Binding parts of buffers larger than the device lets one descriptor cover (large weights,
// long prefills), shared by every op family and the step programs.
namespace binding {

// part() for a texel-buffer binding: its offset at the texel-buffer alignment, whole texels.
// Throws when the last texel would end past `whole` (allocations are whole texels:
// MemoryManager::alignment()).
BufferRange texel_part(const DeviceProps& device, const BufferRange& whole, uint64_t begin,
                       uint64_t bytes, uint64_t& skip);

// The largest binding: the device's storage-buffer range, or `override` when smaller (0: none).
uint64_t limit(const DeviceProps& device, uint64_t override_bytes);
// A binding of `bytes` bytes starting `begin` bytes into `whole`: its offset aligned down to the
// device's storage-buffer offset alignment (at least 4), the bytes skipped returned in `skip`
// for the shader to add, and its size rounded up to whole 32-bit words.
BufferRange part(const DeviceProps& device, const BufferRange& whole, uint64_t begin,
                 uint64_t bytes, uint64_t& skip);
// The most `bytes`-sized items (rows, tokens) one binding of at most `limit` bytes holds at any
// offset, where the first item takes `first` bytes; throws when not even one fits.
int64_t items_per_binding(const DeviceProps& device, uint64_t limit, uint64_t first, uint64_t bytes,
                          const char* what);

}  // namespace binding

}  // namespace mllm::vk
