#pragma once
// The Vulkan backend behind the plug (backends/backend.h): opens a device on creation (nothing
// touches the driver before), keeps the weights and the f16 KV cache in device memory, and
// prepares graphs into recorded command buffers (VkProgram).
#include <memory>
#include <string>
#include <vector>

#include "backends/backend.h"

namespace mllm {

// Opens the device MLLM_VK_DEVICE (an index or name substring) selects, else the best one.
// Throws mllm::Error when there is no Vulkan loader, no usable device, or the device fails to
// open; when `automatic` (--backend auto), also when the device is a CPU device such as
// lavapipe, which is slower than the CPU backend on the same cores.
std::unique_ptr<Backend> make_vulkan_backend(bool automatic = false);

// One line per Vulkan device of this machine (`mllm-run --list-devices`), the one the backend
// would pick marked; or one line saying why there is none.
std::vector<std::string> describe_vulkan_devices();

}  // namespace mllm
