#pragma once
// Vulkan instance, physical device discovery and selection, and the opened logical device with
// its one compute queue. Nothing here touches the driver until a function is called.
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "backends/vulkan/vk_api.h"
#include "backends/vulkan/vk_workarounds.h"

namespace mllm::vk {

enum class DeviceType { Discrete, Integrated, Virtual, Cpu, Other };
std::string_view device_type_name(DeviceType t);  // "discrete GPU", "cpu", ...

// What one physical device is and can do: everything the placement and the kernels' tuning need.
struct DeviceProps {
    uint32_t index = 0;  // position in the driver's enumeration (MLLM_VK_DEVICE=<index>)
    std::string name;    // "llvmpipe (LLVM 15.0.6, 256 bits)"
    DeviceType type = DeviceType::Other;
    uint32_t vendor_id = 0;
    uint32_t device_id = 0;
    uint32_t api_version = 0;     // the device's Vulkan version
    uint32_t driver_version = 0;  // raw, vendor-encoded
    std::string driver_version_string;
    std::string driver_name;  // "llvmpipe" (from VK_KHR_driver_properties when present)
    std::string driver_info;  // "Mesa 22.3.6 (LLVM 15.0.6)"

    // Subgroups: the compute subgroup size, and its range when the size can vary
    // (VK_EXT_subgroup_size_control); kernels size their workgroups from these.
    uint32_t subgroup_size = 0;
    uint32_t min_subgroup_size = 0;
    uint32_t max_subgroup_size = 0;
    bool subgroup_arithmetic = false;  // subgroupAdd & co. in compute shaders

    // Memory: unified when device-local memory is also host-visible and shared with the host
    // (iGPUs, CPU devices): weights are then written in place, without staging copies.
    bool unified_memory = false;
    uint64_t device_local_bytes = 0;  // the largest device-local heap

    // Optional shader features (each enabled on the device when supported).
    bool fp16 = false;           // shaderFloat16
    bool int8 = false;           // shaderInt8
    bool int8_dot = false;       // shaderIntegerDotProduct (VK_KHR_shader_integer_dot_product)
    bool storage_8bit = false;   // storageBuffer8BitAccess
    bool storage_16bit = false;  // storageBuffer16BitAccess

    // Limits the kernels and the memory manager respect.
    uint32_t max_workgroup_invocations = 0;
    uint32_t max_workgroup_count[3] = {0, 0, 0};
    uint32_t max_shared_memory_bytes = 0;
    uint32_t max_push_constants_bytes = 0;
    uint64_t max_storage_buffer_range = 0;
    uint64_t max_uniform_buffer_range = 0;
    uint64_t min_uniform_buffer_offset_alignment = 0;
    uint64_t max_allocation_bytes = 0;
    uint64_t min_storage_buffer_offset_alignment = 0;
    // Uniform texel buffers of R32G32B32A32_UINT texels (the CPU-device kernels' weights): their
    // offset alignment, and 0 texels when the format cannot be read that way.
    uint64_t min_texel_buffer_offset_alignment = 0;
    uint64_t max_texel_buffer_elements = 0;
    uint64_t non_coherent_atom_size = 0;
    float timestamp_period_ns = 0;  // 0: the compute queue has no timestamps

    // Whether kernels take their CPU-device layouts (a row per invocation, repacked weights,
    // barrier-free attention; never the tiled GEMM): on CPU devices such as lavapipe. Set
    // MLLM_VK_LAYOUT=gpu or =cpu to choose (tests run the GPU layouts end to end on lavapipe).
    bool cpu_kernels = false;

    // Features turned off on this device (Feature bits; vk_workarounds.h) and why, one line each.
    uint32_t features_off = 0;
    std::vector<std::string> workarounds;
    bool off(Feature f) const { return (features_off & bit(f)) != 0; }
    // Whether kernels may use subgroup reductions (else they take their barrier-free layouts).
    bool subgroup_reductions() const {
        return subgroup_arithmetic && !off(Feature::SubgroupArithmetic);
    }

    uint32_t compute_queue_family = 0;
    bool usable = false;  // meets the backend's minimum (Vulkan 1.1, compute subgroup arithmetic)
    std::string unusable_reason;
};

// The comma-separated items of an environment variable (MLLM_VK_DISABLE, MLLM_VK_CORRUPT);
// empty when it is unset.
std::vector<std::string> env_list(const char* name);

// Where the backend keeps what it learns about a device across runs (self-test results, the
// pipeline cache): $MLLM_CACHE_DIR, else $XDG_CACHE_HOME/mllm, else ~/.cache/mllm; empty if
// none of them is set.
std::string user_cache_dir();
// A file name for `what` on this device and driver, under user_cache_dir(); empty without one.
std::string device_cache_path(const DeviceProps& d, const std::string& what);

// One line per device, for `mllm-run --list-devices`.
std::string describe(const DeviceProps& d);

// The Vulkan instance (API 1.1 or newer) on the process-wide loader.
class Instance {
  public:
    // The process-wide instance, created on the first call (thread-safe) and, like the loader,
    // kept until the process exits: destroying the last instance unloads the drivers, and some
    // leave global state behind that leak checkers then report. Throws mllm::Error "no Vulkan
    // loader (libvulkan.so.1) found", "no Vulkan device: the loader found no driver ...", on
    // this and every later call.
    static const Instance& get();
    ~Instance();
    Instance(const Instance&) = delete;
    Instance& operator=(const Instance&) = delete;

    VkInstance handle() const { return instance_; }
    const InstanceFunctions& fn() const { return fn_; }
    uint32_t api_version() const { return api_version_; }
    std::vector<VkPhysicalDevice> physical_devices() const;
    // Properties of every physical device, in enumeration order.
    std::vector<DeviceProps> devices() const;

  private:
    Instance() = default;
    static std::unique_ptr<Instance> create();
    VkInstance instance_ = VK_NULL_HANDLE;
    InstanceFunctions fn_;
    uint32_t api_version_ = 0;
};

// Every Vulkan device of this machine (usable or not). Throws mllm::Error when there is no loader
// or driver; an empty list means a driver without devices.
std::vector<DeviceProps> list_devices();

// The device to open: `selector` is an index or a case-insensitive name substring (the value of
// MLLM_VK_DEVICE); empty means the best usable one: discrete, then integrated, then virtual, then
// CPU devices such as lavapipe, larger device-local memory first. Throws mllm::Error "no Vulkan
// device", "no usable Vulkan device: ...", or when the selector matches nothing usable.
uint32_t select_device(const std::vector<DeviceProps>& devices, std::string_view selector);

// The user's device selector: MLLM_VK_DEVICE, or empty (the best device).
std::string_view device_selector();

// An opened logical device with one compute queue.
class Device {
  public:
    // Opens the device select_device() picks for the MLLM_VK_DEVICE environment variable.
    static std::unique_ptr<Device> open();
    static std::unique_ptr<Device> open(std::string_view selector);
    ~Device();
    Device(const Device&) = delete;
    Device& operator=(const Device&) = delete;

    const DeviceProps& props() const { return props_; }
    VkDevice handle() const { return device_; }
    const DeviceFunctions& fn() const { return fn_; }
    VkPhysicalDevice physical() const { return physical_; }
    const VkPhysicalDeviceMemoryProperties& memory_properties() const { return memory_; }

    // Submits one command buffer to the compute queue, signalling `fence` (thread-safe).
    void submit(VkCommandBuffer cb, VkFence fence) const;
    void wait_idle() const;

  private:
    Device() = default;
    const Instance* instance_ = nullptr;
    VkPhysicalDevice physical_ = VK_NULL_HANDLE;
    VkDevice device_ = VK_NULL_HANDLE;
    VkQueue queue_ = VK_NULL_HANDLE;
    DeviceFunctions fn_;
    DeviceProps props_;
    VkPhysicalDeviceMemoryProperties memory_{};
    mutable std::mutex queue_mutex_;
};

}  // namespace mllm::vk
