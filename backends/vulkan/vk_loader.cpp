#include "backends/vulkan/vk_loader.h"

#include <dlfcn.h>

#include <mutex>
#include <string>

#include "core/error.h"

namespace mllm::vk {

namespace {
constexpr const char* kLoaderLibrary = "libvulkan.so.1";
}  // namespace

const Loader& Loader::get() {
    static std::once_flag once;
    static const Loader* loader = nullptr;
    static std::string error;
    std::call_once(once, [] {
        try {
            loader = new Loader(kLoaderLibrary);  // never freed: see the header
        } catch (const Error& e) {
            error = e.what();
        }
    });
    if (loader == nullptr) throw Error(error);
    return *loader;
}

Loader::Loader(const char* library) {
    handle_ = dlopen(library, RTLD_NOW | RTLD_LOCAL);
    if (handle_ == nullptr) {
        const char* why = dlerror();
        fail("no Vulkan loader (", library, ") found", why != nullptr ? ": " : "",
             why != nullptr ? why : "");
    }
    fn_.vkGetInstanceProcAddr =
        reinterpret_cast<PFN_vkGetInstanceProcAddr>(dlsym(handle_, "vkGetInstanceProcAddr"));
    if (fn_.vkGetInstanceProcAddr == nullptr) {
        dlclose(handle_);
        fail("the Vulkan loader (", library, ") has no vkGetInstanceProcAddr");
    }
    fn_.vkEnumerateInstanceVersion = reinterpret_cast<PFN_vkEnumerateInstanceVersion>(
        fn_.vkGetInstanceProcAddr(nullptr, "vkEnumerateInstanceVersion"));
#define MLLM_VK_RESOLVE(f)                                                     \
    fn_.f = reinterpret_cast<PFN_##f>(fn_.vkGetInstanceProcAddr(nullptr, #f)); \
    if (fn_.f == nullptr) {                                                    \
        dlclose(handle_);                                                      \
        fail("the Vulkan loader (", library, ") has no " #f);                  \
    }
    MLLM_VK_GLOBAL_FUNCTIONS(MLLM_VK_RESOLVE)
#undef MLLM_VK_RESOLVE
}

Loader::~Loader() {
    if (handle_ != nullptr) dlclose(handle_);
}

uint32_t Loader::instance_version() const {
    uint32_t version = VK_API_VERSION_1_0;
    if (fn_.vkEnumerateInstanceVersion != nullptr &&
        fn_.vkEnumerateInstanceVersion(&version) != VK_SUCCESS)
        version = VK_API_VERSION_1_0;
    return version;
}

}  // namespace mllm::vk
