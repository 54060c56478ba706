#pragma once
// Small helpers the op families share when they fill push constants and size dispatches.
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

// Checks that a binding holds `bytes` (shaders index past no binding's end).
inline void need_bytes(const BufferRange& r, int64_t bytes, const char* op, const char* what) {
    if (r.buffer == VK_NULL_HANDLE || static_cast<int64_t>(r.size) < bytes)
        fail("internal: Vulkan ", op, " ", what, " binding holds ", r.size, " bytes, needs ",
             bytes);
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

}  // namespace mllm::vk
