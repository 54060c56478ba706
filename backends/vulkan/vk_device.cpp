#include "backends/vulkan/vk_device.h"
#include <cstdio>

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <sstream>

#include "backends/vulkan/vk_loader.h"
#include "core/error.h"

namespace mllm::vk {

namespace {

constexpr uint32_t kNvidiaVendor = 0x10de;

// What we learn about a physical device beyond its DeviceProps: the extensions and feature
// structs to enable when opening it.
struct Probe {
    DeviceProps props;
    std::vector<const char*> extensions;  // to enable
    VkPhysicalDevice16BitStorageFeatures storage16{};
    VkPhysicalDevice8BitStorageFeatures storage8{};
    VkPhysicalDeviceShaderFloat16Int8Features float16_int8{};
    VkPhysicalDeviceShaderIntegerDotProductFeatures int_dot{};
    bool has_storage8 = false;
    bool has_float16_int8 = false;
    bool has_int_dot = false;
};

std::vector<VkExtensionProperties> device_extensions(const InstanceFunctions& fn,
                                                     VkPhysicalDevice pd) {
    uint32_t count = 0;
    check(fn.vkEnumerateDeviceExtensionProperties(pd, nullptr, &count, nullptr),
          "vkEnumerateDeviceExtensionProperties");
    std::vector<VkExtensionProperties> list(count);
    check(fn.vkEnumerateDeviceExtensionProperties(pd, nullptr, &count, list.data()),
          "vkEnumerateDeviceExtensionProperties");
    list.resize(count);
    return list;
}

bool has_extension(const std::vector<VkExtensionProperties>& list, const char* name) {
    return std::any_of(list.begin(), list.end(), [&](const VkExtensionProperties& e) {
        return std::strcmp(e.extensionName, name) == 0;
    });
}

std::string version_string(uint32_t v) {
    return str_cat(VK_API_VERSION_MAJOR(v), ".", VK_API_VERSION_MINOR(v), ".",
                   VK_API_VERSION_PATCH(v));
}

std::string driver_version_string(uint32_t vendor, uint32_t v) {
    if (vendor == kNvidiaVendor)  // 10.8.8.6 bits
        return str_cat(v >> 22, ".", (v >> 14) & 0xffu, ".", (v >> 6) & 0xffu);
    return version_string(v);
}

DeviceType device_type(VkPhysicalDeviceType t) {
    switch (t) {
        case VK_PHYSICAL_DEVICE_TYPE_DISCRETE_GPU:
            return DeviceType::Discrete;
        case VK_PHYSICAL_DEVICE_TYPE_INTEGRATED_GPU:
            return DeviceType::Integrated;
        case VK_PHYSICAL_DEVICE_TYPE_VIRTUAL_GPU:
            return DeviceType::Virtual;
        case VK_PHYSICAL_DEVICE_TYPE_CPU:
            return DeviceType::Cpu;
        default:
            return DeviceType::Other;
    }
}

// Appends `s` to a pNext chain whose last element is `*tail`.
template <typename T>
void chain(void**& tail, T& s) {
    *tail = &s;
    tail = &s.pNext;
}

Probe probe(const Instance& instance, VkPhysicalDevice pd, uint32_t index) {
    const InstanceFunctions& fn = instance.fn();
    Probe p;
    DeviceProps& d = p.props;
    d.index = index;

    VkPhysicalDeviceProperties base{};
    fn.vkGetPhysicalDeviceProperties(pd, &base);
    d.name = base.deviceName;
    d.type = device_type(base.deviceType);
    d.vendor_id = base.vendorID;
    d.device_id = base.deviceID;
    d.api_version = base.apiVersion;
    // What we may use: the device's version, capped by the instance's.
    const uint32_t api = std::min(base.apiVersion, instance.api_version());
    d.driver_version = base.driverVersion;
    d.driver_version_string = driver_version_string(base.vendorID, base.driverVersion);
    d.max_workgroup_invocations = base.limits.maxComputeWorkGroupInvocations;
    for (int i = 0; i < 3; ++i) d.max_workgroup_count[i] = base.limits.maxComputeWorkGroupCount[i];
    d.max_shared_memory_bytes = base.limits.maxComputeSharedMemorySize;
    d.max_push_constants_bytes = base.limits.maxPushConstantsSize;
    d.max_storage_buffer_range = base.limits.maxStorageBufferRange;
    d.max_uniform_buffer_range = base.limits.maxUniformBufferRange;
    d.min_uniform_buffer_offset_alignment = base.limits.minUniformBufferOffsetAlignment;
    d.min_storage_buffer_offset_alignment = base.limits.minStorageBufferOffsetAlignment;
    d.non_coherent_atom_size = base.limits.nonCoherentAtomSize;
    VkFormatProperties texel{};
    fn.vkGetPhysicalDeviceFormatProperties(pd, VK_FORMAT_R32G32B32A32_UINT, &texel);
    if ((texel.bufferFeatures & VK_FORMAT_FEATURE_UNIFORM_TEXEL_BUFFER_BIT) != 0) {
        d.min_texel_buffer_offset_alignment = base.limits.minTexelBufferOffsetAlignment;
        d.max_texel_buffer_elements = base.limits.maxTexelBufferElements;
    }
    d.timestamp_period_ns =
        base.limits.timestampComputeAndGraphics ? base.limits.timestampPeriod : 0;

    if (api < VK_API_VERSION_1_1) {
        d.unusable_reason = str_cat("Vulkan ", version_string(api), " (the backend needs 1.1)");
        return p;
    }

    const auto exts = device_extensions(fn, pd);
    const bool v12 = api >= VK_API_VERSION_1_2;
    const bool v13 = api >= VK_API_VERSION_1_3;
    // Each extension-or-core feature: usable when core in our version or the extension exists.
    auto want = [&](bool core, const char* ext) {
        if (core) return true;
        if (!has_extension(exts, ext)) return false;
        p.extensions.push_back(ext);
        return true;
    };
    if (has_extension(exts, "VK_KHR_portability_subset"))  // must be enabled when present
        p.extensions.push_back("VK_KHR_portability_subset");

    // Properties: subgroups (core 1.1), driver (1.2 or VK_KHR_driver_properties), subgroup size
    // range (1.3 or VK_EXT_subgroup_size_control).
    VkPhysicalDeviceProperties2 props2{VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_PROPERTIES_2};
    void** tail = &props2.pNext;
    VkPhysicalDeviceSubgroupProperties subgroup{
        VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SUBGROUP_PROPERTIES};
    chain(tail, subgroup);
    VkPhysicalDeviceDriverProperties driver{VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_DRIVER_PROPERTIES};
    const bool has_driver = v12 || has_extension(exts, "VK_KHR_driver_properties");
    if (has_driver) chain(tail, driver);
    VkPhysicalDeviceSubgroupSizeControlProperties size_control{
        VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SUBGROUP_SIZE_CONTROL_PROPERTIES};
    const bool has_size_control = v13 || has_extension(exts, "VK_EXT_subgroup_size_control");
    if (has_size_control) chain(tail, size_control);
    fn.vkGetPhysicalDeviceProperties2(pd, &props2);

    d.subgroup_size = subgroup.subgroupSize;
    d.min_subgroup_size = has_size_control ? size_control.minSubgroupSize : subgroup.subgroupSize;
    d.max_subgroup_size = has_size_control ? size_control.maxSubgroupSize : subgroup.subgroupSize;
    const VkSubgroupFeatureFlags needed =
        VK_SUBGROUP_FEATURE_BASIC_BIT | VK_SUBGROUP_FEATURE_ARITHMETIC_BIT;
    d.subgroup_arithmetic = (subgroup.supportedStages & VK_SHADER_STAGE_COMPUTE_BIT) != 0 &&
                            (subgroup.supportedOperations & needed) == needed;
    if (has_driver) {
        d.driver_name = driver.driverName;
        d.driver_info = driver.driverInfo;
    }

    // Features.
    VkPhysicalDeviceFeatures2 features2{VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_FEATURES_2};
    tail = &features2.pNext;
    p.storage16.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_16BIT_STORAGE_FEATURES;
    chain(tail, p.storage16);
    p.has_storage8 = want(v12, "VK_KHR_8bit_storage");
    p.storage8.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_8BIT_STORAGE_FEATURES;
    if (p.has_storage8) chain(tail, p.storage8);
    p.has_float16_int8 = want(v12, "VK_KHR_shader_float16_int8");
    p.float16_int8.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SHADER_FLOAT16_INT8_FEATURES;
    if (p.has_float16_int8) chain(tail, p.float16_int8);
    p.has_int_dot = want(v13, "VK_KHR_shader_integer_dot_product");
    p.int_dot.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SHADER_INTEGER_DOT_PRODUCT_FEATURES;
    if (p.has_int_dot) chain(tail, p.int_dot);
    fn.vkGetPhysicalDeviceFeatures2(pd, &features2);
    d.storage_16bit = p.storage16.storageBuffer16BitAccess == VK_TRUE;
    d.storage_8bit = p.has_storage8 && p.storage8.storageBuffer8BitAccess == VK_TRUE;
    d.fp16 = p.has_float16_int8 && p.float16_int8.shaderFloat16 == VK_TRUE;
    d.int8 = p.has_float16_int8 && p.float16_int8.shaderInt8 == VK_TRUE;
    d.int8_dot = p.has_int_dot && p.int_dot.shaderIntegerDotProduct == VK_TRUE;
    // The chained structs are copied into Probe; their pNext pointers are re-linked on open.

    // Memory.
    VkPhysicalDeviceMemoryProperties mem{};
    fn.vkGetPhysicalDeviceMemoryProperties(pd, &mem);
    for (uint32_t h = 0; h < mem.memoryHeapCount; ++h)
        if (mem.memoryHeaps[h].flags & VK_MEMORY_HEAP_DEVICE_LOCAL_BIT)
            d.device_local_bytes =
                std::max<uint64_t>(d.device_local_bytes, mem.memoryHeaps[h].size);
    const VkMemoryPropertyFlags shared = VK_MEMORY_PROPERTY_DEVICE_LOCAL_BIT |
                                         VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT |
                                         VK_MEMORY_PROPERTY_HOST_COHERENT_BIT;
    bool host_visible_device_local = false;
    for (uint32_t t = 0; t < mem.memoryTypeCount; ++t)
        if ((mem.memoryTypes[t].propertyFlags & shared) == shared &&
            mem.memoryHeaps[mem.memoryTypes[t].heapIndex].size == d.device_local_bytes)
            host_visible_device_local = true;
    // A discrete GPU's host-visible VRAM (resizable BAR) is still across PCIe: not unified.
    d.unified_memory = host_visible_device_local &&
                       (d.type == DeviceType::Integrated || d.type == DeviceType::Cpu);
    // The largest single allocation (VK_KHR_maintenance3 is core in 1.1).
    VkPhysicalDeviceMaintenance3Properties m3{
        VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_MAINTENANCE_3_PROPERTIES};
    VkPhysicalDeviceProperties2 props_m3{VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_PROPERTIES_2, &m3};
    fn.vkGetPhysicalDeviceProperties2(pd, &props_m3);
    d.max_allocation_bytes = m3.maxMemoryAllocationSize;

    // Queue: the first family that computes.
    uint32_t n_families = 0;
    fn.vkGetPhysicalDeviceQueueFamilyProperties(pd, &n_families, nullptr);
    std::vector<VkQueueFamilyProperties> families(n_families);
    fn.vkGetPhysicalDeviceQueueFamilyProperties(pd, &n_families, families.data());
    bool has_compute = false;
    for (uint32_t f = 0; f < n_families && !has_compute; ++f) {
        if (families[f].queueFlags & VK_QUEUE_COMPUTE_BIT) {
            d.compute_queue_family = f;
            has_compute = true;
        }
    }

    if (!has_compute) {
        d.unusable_reason = "no compute queue";
    } else if (!d.subgroup_arithmetic) {
        d.unusable_reason = "no subgroup arithmetic in compute shaders";
    } else if (d.subgroup_size == 0) {
        d.unusable_reason = "subgroup size unknown";
    } else {
        d.usable = true;
    }
    apply_workarounds(d, workaround_table(), env_list("MLLM_VK_DISABLE_FEATURES"));
    d.cpu_kernels = d.type == DeviceType::Cpu;
    if (const char* layout = std::getenv("MLLM_VK_LAYOUT"); layout != nullptr && *layout != '\0') {
        const std::string_view l(layout);
        if (l != "gpu" && l != "cpu") fail("MLLM_VK_LAYOUT must be gpu or cpu, not '", l, "'");
        d.cpu_kernels = l == "cpu";
    }
    return p;
}

std::string lower(std::string_view s) {
    std::string out(s);
    for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return out;
}

int type_rank(DeviceType t) {
    switch (t) {
        case DeviceType::Discrete:
            return 4;
        case DeviceType::Integrated:
            return 3;
        case DeviceType::Virtual:
            return 2;
        case DeviceType::Cpu:
            return 1;
        default:
            return 0;
    }
}

std::string format_bytes(uint64_t b) {
    const double gib = static_cast<double>(b) / (1024.0 * 1024.0 * 1024.0);
    std::ostringstream os;
    os.precision(gib < 10 ? 2 : 3);
    os << gib << " GiB";
    return os.str();
}

}  // namespace

std::string_view device_type_name(DeviceType t) {
    switch (t) {
        case DeviceType::Discrete:
            return "discrete GPU";
        case DeviceType::Integrated:
            return "integrated GPU";
        case DeviceType::Virtual:
            return "virtual GPU";
        case DeviceType::Cpu:
            return "cpu";
        default:
            return "other";
    }
}

std::vector<std::string> env_list(const char* name) {
    std::vector<std::string> items;
    const char* value = std::getenv(name);
    std::string item;
    for (const char* c = value != nullptr ? value : "";; ++c) {
        if (*c == ',' || *c == '\0') {
            if (!item.empty()) items.push_back(item);
            item.clear();
            if (*c == '\0') break;
        } else {
            item += *c;
        }
    }
    return items;
}

std::string user_cache_dir() {
    if (const char* d = std::getenv("MLLM_CACHE_DIR"); d != nullptr && *d != '\0') return d;
    if (const char* d = std::getenv("XDG_CACHE_HOME"); d != nullptr && *d != '\0')
        return std::string(d) + "/mllm";
    if (const char* d = std::getenv("HOME"); d != nullptr && *d != '\0')
        return std::string(d) + "/.cache/mllm";
    return "";
}

std::string device_cache_path(const DeviceProps& d, const std::string& what) {
    const std::string dir = user_cache_dir();
    if (dir.empty()) return "";
    char ids[64];
    std::snprintf(ids, sizeof ids, "%x-%x-%x", d.vendor_id, d.device_id, d.driver_version);
    return str_cat(dir, "/vulkan-", ids, "-", what);
}

std::string describe(const DeviceProps& d) {
    std::string s = str_cat(d.index, ": ", d.name, " [", device_type_name(d.type), ", Vulkan ",
                            version_string(d.api_version), ", driver ");
    if (!d.driver_name.empty()) s += d.driver_name + " ";
    s += d.driver_info.empty() ? d.driver_version_string : d.driver_info;
    s += str_cat(", ", format_bytes(d.device_local_bytes),
                 d.unified_memory ? " unified memory" : " device memory");
    if (d.subgroup_size != 0) {
        s += str_cat(", subgroup ", d.subgroup_size);
        if (d.min_subgroup_size != d.max_subgroup_size)
            s += str_cat(" (", d.min_subgroup_size, "-", d.max_subgroup_size, ")");
    }
    if (d.fp16) s += ", fp16";
    if (d.int8_dot) s += ", int8 dot";
    s += "]";
    if (!d.usable) s += " unusable: " + d.unusable_reason;
    for (const std::string& w : d.workarounds) s += "\n    workaround: " + w;
    return s;
}

const Instance& Instance::get() {
    static std::once_flag once;
    static const Instance* instance = nullptr;
    static std::string error;
    std::call_once(once, [] {
        try {
            instance = create().release();  // never destroyed: see the header
        } catch (const Error& e) {
            error = e.what();
        }
    });
    if (instance == nullptr) throw Error(error);
    return *instance;
}

std::unique_ptr<Instance> Instance::create() {
    const Loader& loader = Loader::get();
    const GlobalFunctions& g = loader.fn();
    const uint32_t loader_version = loader.instance_version();
    if (loader_version < VK_API_VERSION_1_1)
        fail("the Vulkan loader supports only Vulkan ", version_string(loader_version),
             " (the backend needs 1.1)");

    uint32_t n_ext = 0;
    check(g.vkEnumerateInstanceExtensionProperties(nullptr, &n_ext, nullptr),
          "vkEnumerateInstanceExtensionProperties");
    std::vector<VkExtensionProperties> exts(n_ext);
    check(g.vkEnumerateInstanceExtensionProperties(nullptr, &n_ext, exts.data()),
          "vkEnumerateInstanceExtensionProperties");
    exts.resize(n_ext);
    std::vector<const char*> enabled;
    VkInstanceCreateFlags flags = 0;
    // Lists portability (e.g. MoltenVK) devices too.
    if (has_extension(exts, VK_KHR_PORTABILITY_ENUMERATION_EXTENSION_NAME)) {
        enabled.push_back(VK_KHR_PORTABILITY_ENUMERATION_EXTENSION_NAME);
        flags |= VK_INSTANCE_CREATE_ENUMERATE_PORTABILITY_BIT_KHR;
    }

    std::unique_ptr<Instance> inst(new Instance());
    inst->api_version_ = std::min(loader_version, VK_API_VERSION_1_3);
    VkApplicationInfo app{VK_STRUCTURE_TYPE_APPLICATION_INFO};
    app.pApplicationName = "mllm";
    app.pEngineName = "mllm";
    app.apiVersion = inst->api_version_;
    VkInstanceCreateInfo info{VK_STRUCTURE_TYPE_INSTANCE_CREATE_INFO};
    info.flags = flags;
    info.pApplicationInfo = &app;
    info.enabledExtensionCount = static_cast<uint32_t>(enabled.size());
    info.ppEnabledExtensionNames = enabled.data();
    const VkResult r = g.vkCreateInstance(&info, nullptr, &inst->instance_);
    if (r == VK_ERROR_INCOMPATIBLE_DRIVER)
        fail("no Vulkan device: the loader found no driver (vkCreateInstance: ", result_name(r),
             ")");
    check(r, "vkCreateInstance");

#define MLLM_VK_RESOLVE(f)                                                                 \
    inst->fn_.f = reinterpret_cast<PFN_##f>(g.vkGetInstanceProcAddr(inst->instance_, #f)); \
    if (inst->fn_.f == nullptr) fail("the Vulkan loader has no " #f);
    MLLM_VK_INSTANCE_FUNCTIONS(MLLM_VK_RESOLVE)
#undef MLLM_VK_RESOLVE
    return inst;
}

Instance::~Instance() {
    if (instance_ != VK_NULL_HANDLE && fn_.vkDestroyInstance != nullptr)
        fn_.vkDestroyInstance(instance_, nullptr);
}

std::vector<VkPhysicalDevice> Instance::physical_devices() const {
    uint32_t count = 0;
    check(fn_.vkEnumeratePhysicalDevices(instance_, &count, nullptr), "vkEnumeratePhysicalDevices");
    std::vector<VkPhysicalDevice> list(count);
    const VkResult r = fn_.vkEnumeratePhysicalDevices(instance_, &count, list.data());
    if (r != VK_INCOMPLETE) check(r, "vkEnumeratePhysicalDevices");
    list.resize(count);
    return list;
}

std::vector<DeviceProps> Instance::devices() const {
    std::vector<DeviceProps> out;
    const auto list = physical_devices();
    for (uint32_t i = 0; i < list.size(); ++i) out.push_back(probe(*this, list[i], i).props);
    return out;
}

std::vector<DeviceProps> list_devices() {
    return Instance::get().devices();
}

uint32_t select_device(const std::vector<DeviceProps>& devices, std::string_view selector) {
    if (devices.empty()) fail("no Vulkan device");
    std::string names;
    for (const DeviceProps& d : devices)
        names += str_cat(names.empty() ? "" : ", ", d.index, ": ", d.name);

    if (!selector.empty()) {
        const bool numeric = std::all_of(selector.begin(), selector.end(), [](char c) {
            return std::isdigit(static_cast<unsigned char>(c)) != 0;
        });
        const DeviceProps* match = nullptr;
        if (numeric) {
            const unsigned long i = std::strtoul(std::string(selector).c_str(), nullptr, 10);
            for (const DeviceProps& d : devices)
                if (d.index == i) match = &d;
        } else {
            // The first usable device whose name contains the selector, else the first at all.
            const std::string want = lower(selector);
            for (const DeviceProps& d : devices)
                if (lower(d.name).find(want) != std::string::npos &&
                    (match == nullptr || (!match->usable && d.usable)))
                    match = &d;
        }
        if (match == nullptr)
            fail("MLLM_VK_DEVICE=", selector, " matches no Vulkan device (devices: ", names, ")");
        if (!match->usable)
            fail("Vulkan device ", match->index, " (", match->name,
                 ") cannot run the backend: ", match->unusable_reason);
        return match->index;
    }

    const DeviceProps* best = nullptr;
    for (const DeviceProps& d : devices) {
        if (!d.usable) continue;
        if (best == nullptr || type_rank(d.type) > type_rank(best->type) ||
            (type_rank(d.type) == type_rank(best->type) &&
             d.device_local_bytes > best->device_local_bytes))
            best = &d;
    }
    if (best == nullptr) {
        std::string why;
        for (const DeviceProps& d : devices)
            why += str_cat(why.empty() ? "" : "; ", d.name, ": ", d.unusable_reason);
        fail("no usable Vulkan device: ", why);
    }
    return best->index;
}

std::string_view device_selector() {
    const char* env = std::getenv("MLLM_VK_DEVICE");
    return env != nullptr ? std::string_view(env) : std::string_view();
}

std::unique_ptr<Device> Device::open() {
    return open(device_selector());
}

std::unique_ptr<Device> Device::open(std::string_view selector) {
    const Instance& instance = Instance::get();
    const auto physical = instance.physical_devices();
    if (physical.empty()) fail("no Vulkan device");
    std::vector<Probe> probes;
    std::vector<DeviceProps> props;
    for (uint32_t i = 0; i < physical.size(); ++i) {
        probes.push_back(probe(instance, physical[i], i));
        props.push_back(probes.back().props);
    }
    const uint32_t chosen = select_device(props, selector);
    Probe& p = probes[chosen];

    std::unique_ptr<Device> dev(new Device());
    dev->instance_ = &instance;
    dev->physical_ = physical[chosen];
    dev->props_ = p.props;
    const InstanceFunctions& ifn = instance.fn();
    ifn.vkGetPhysicalDeviceMemoryProperties(dev->physical_, &dev->memory_);

    // Enable exactly the optional features the device has (the probe filled these structs).
    VkPhysicalDeviceFeatures2 features2{VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_FEATURES_2};
    void** tail = &features2.pNext;
    p.storage16.pNext = nullptr;
    p.storage16.uniformAndStorageBuffer16BitAccess = VK_FALSE;
    p.storage16.storagePushConstant16 = VK_FALSE;
    p.storage16.storageInputOutput16 = VK_FALSE;
    chain(tail, p.storage16);
    if (p.has_storage8) {
        p.storage8.pNext = nullptr;
        p.storage8.uniformAndStorageBuffer8BitAccess = VK_FALSE;
        p.storage8.storagePushConstant8 = VK_FALSE;
        chain(tail, p.storage8);
    }
    if (p.has_float16_int8) {
        p.float16_int8.pNext = nullptr;
        chain(tail, p.float16_int8);
    }
    if (p.has_int_dot) {
        p.int_dot.pNext = nullptr;
        chain(tail, p.int_dot);
    }
    const float priority = 1.0f;
    VkDeviceQueueCreateInfo queue{VK_STRUCTURE_TYPE_DEVICE_QUEUE_CREATE_INFO};
    queue.queueFamilyIndex = p.props.compute_queue_family;
    queue.queueCount = 1;
    queue.pQueuePriorities = &priority;
    VkDeviceCreateInfo info{VK_STRUCTURE_TYPE_DEVICE_CREATE_INFO};
    info.pNext = &features2;
    info.queueCreateInfoCount = 1;
    info.pQueueCreateInfos = &queue;
    info.enabledExtensionCount = static_cast<uint32_t>(p.extensions.size());
    info.ppEnabledExtensionNames = p.extensions.data();
    check(ifn.vkCreateDevice(dev->physical_, &info, nullptr, &dev->device_),
          str_cat("vkCreateDevice (", p.props.name, ")"));

    // Resolve the device's own entry points: they skip the loader's dispatch.
    dev->fn_.vkDestroyDevice = reinterpret_cast<PFN_vkDestroyDevice>(
        ifn.vkGetDeviceProcAddr(dev->device_, "vkDestroyDevice"));
#define MLLM_VK_RESOLVE(f)                                                             \
    dev->fn_.f = reinterpret_cast<PFN_##f>(ifn.vkGetDeviceProcAddr(dev->device_, #f)); \
    if (dev->fn_.f == nullptr) fail("the Vulkan driver of ", p.props.name, " has no " #f);
    MLLM_VK_DEVICE_FUNCTIONS(MLLM_VK_RESOLVE)
#undef MLLM_VK_RESOLVE
    dev->fn_.vkGetDeviceQueue(dev->device_, p.props.compute_queue_family, 0, &dev->queue_);
    return dev;
}

Device::~Device() {
    if (device_ == VK_NULL_HANDLE || fn_.vkDestroyDevice == nullptr) return;
    if (fn_.vkDeviceWaitIdle != nullptr) fn_.vkDeviceWaitIdle(device_);
    fn_.vkDestroyDevice(device_, nullptr);
}

void Device::submit(VkCommandBuffer cb, VkFence fence) const {
    VkSubmitInfo info{VK_STRUCTURE_TYPE_SUBMIT_INFO};
    info.commandBufferCount = 1;
    info.pCommandBuffers = &cb;
    std::lock_guard lock(queue_mutex_);
    check(fn_.vkQueueSubmit(queue_, 1, &info, fence), "vkQueueSubmit");
}

void Device::wait_idle() const {
    std::lock_guard lock(queue_mutex_);
    check(fn_.vkDeviceWaitIdle(device_), "vkDeviceWaitIdle");
}

}  // namespace mllm::vk
