#pragma once
// Driver workarounds: a table keyed by vendor, device and driver version that turns off the
// features known to be broken there (mobile drivers especially: Adreno and Mali drivers that
// miscompile or compute garbage), plus MLLM_VK_DISABLE_FEATURES=<feature>[,...] to turn one off
// by hand. The kernels then take their plain paths. The self-test (vk_self_test.h) catches what
// no table knows yet; this table keeps a device from being slow or wrong on what is known.
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace mllm::vk {

struct DeviceProps;

// Features a workaround can turn off (bits of DeviceProps::features_off).
enum class Feature : uint32_t {
    Fp16Arithmetic = 1u << 0,       // shaderFloat16 math
    IntegerDot = 1u << 1,           // VK_KHR_shader_integer_dot_product
    SubgroupSizeControl = 1u << 2,  // choosing a subgroup size per pipeline
    SubgroupArithmetic = 1u << 3,   // subgroupAdd & co.: kernels use their barrier-free layouts
    PipelineCache = 1u << 4,        // the on-disk VkPipelineCache
    Device = 1u << 5,               // the whole device: the backend does not use it
    TexelBuffers = 1u << 6,         // weights read through uniform texel buffers (CPU devices)
};
inline constexpr uint32_t bit(Feature f) {
    return static_cast<uint32_t>(f);
}
std::string_view feature_name(Feature f);  // "subgroup_arithmetic", as MLLM_VK_DISABLE_FEATURES
// Throws mllm::Error naming the known features for an unknown name.
Feature feature_from_name(std::string_view name);

struct Workaround {
    uint32_t vendor_id = 0;            // PCI vendor (0x5143 Qualcomm, 0x13b5 ARM, ...)
    std::vector<uint32_t> device_ids;  // empty: every device of the vendor
    uint32_t api_below = 0;            // only when the device's Vulkan version is below (0: any)
    uint32_t driver_below = 0;         // only when the raw driverVersion is below (0: any)
    uint32_t features = 0;             // Feature bits turned off
    std::string why;
};

// The known-bad drivers.
const std::vector<Workaround>& workaround_table();

// Whether `w` applies to the device.
bool matches(const Workaround& w, const DeviceProps& d);

// Turns off in `d` what the matching entries of `table` and the names in `by_hand`
// (MLLM_VK_DISABLE_FEATURES) say: sets d.features_off, clears the flags of the features it
// turns off, marks the device unusable for Feature::Device, and adds one line per reason to
// d.workarounds.
void apply_workarounds(DeviceProps& d, const std::vector<Workaround>& table,
                       const std::vector<std::string>& by_hand);

}  // namespace mllm::vk
