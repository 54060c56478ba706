#pragma once
// The Vulkan loader, opened with dlopen at first use so that a machine without Vulkan still
// runs the CPU path: nothing here (or anywhere in this backend) runs before a caller asks.
#include <cstdint>

#include "backends/vulkan/vk_api.h"

namespace mllm::vk {

class Loader {
  public:
    // The process-wide loader: opens libvulkan.so.1 on the first call (thread-safe). Throws
    // mllm::Error "no Vulkan loader (libvulkan.so.1) found: ..." when it is missing, on this and
    // every later call. It stays loaded until the process exits (drivers do not expect to be
    // unloaded while their objects may still be referenced by atexit handlers).
    static const Loader& get();

    // Opens the named library and resolves the global entry points; throws mllm::Error when the
    // library or vkGetInstanceProcAddr is missing. get() is the normal way in; tests use this to
    // check the messages.
    explicit Loader(const char* library);
    ~Loader();
    Loader(const Loader&) = delete;
    Loader& operator=(const Loader&) = delete;

    const GlobalFunctions& fn() const { return fn_; }
    // The instance-level API version the loader supports (VK_API_VERSION_1_0 when it predates
    // vkEnumerateInstanceVersion).
    uint32_t instance_version() const;

  private:
    void* handle_ = nullptr;
    GlobalFunctions fn_;
};

}  // namespace mllm::vk
