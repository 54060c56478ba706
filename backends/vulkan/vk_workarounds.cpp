#include "backends/vulkan/vk_workarounds.h"

#include <algorithm>
#include <array>

#include "backends/vulkan/vk_device.h"
#include "core/error.h"

namespace mllm::vk {
namespace {

struct Named {
    Feature feature;
    std::string_view name;
};
constexpr std::array<Named, 7> kFeatures = {{
    {Feature::Fp16Arithmetic, "fp16_arithmetic"},
    {Feature::IntegerDot, "integer_dot"},
    {Feature::SubgroupSizeControl, "subgroup_size_control"},
    {Feature::SubgroupArithmetic, "subgroup_arithmetic"},
    {Feature::PipelineCache, "pipeline_cache"},
    {Feature::Device, "device"},
    {Feature::TexelBuffers, "texel_buffers"},
}};

constexpr uint32_t kQualcomm = 0x5143;
constexpr uint32_t kArm = 0x13b5;

constexpr uint32_t api(uint32_t major, uint32_t minor, uint32_t patch) {
    return (major << 22) | (minor << 12) | patch;
}

std::string names_of(uint32_t features) {
    std::string s;
    for (const Named& n : kFeatures) {
        if ((features & bit(n.feature)) == 0) continue;
        if (!s.empty()) s += ", ";
        s += n.name;
    }
    return s;
}

}  // namespace

std::string_view feature_name(Feature f) {
    for (const Named& n : kFeatures)
        if (n.feature == f) return n.name;
    return "unknown";
}

Feature feature_from_name(std::string_view name) {
    for (const Named& n : kFeatures)
        if (n.name == name) return n.feature;
    std::string known;
    for (const Named& n : kFeatures) known += (known.empty() ? "" : ", ") + std::string(n.name);
    fail("MLLM_VK_DISABLE_FEATURES: unknown feature '", name, "' (known: ", known, ")");
}

// Entries come from other runtimes' records of these drivers (ncnn's gpu.cpp keeps the longest
// list) and name the symptom; a driver update that fixes one narrows its version bound.
const std::vector<Workaround>& workaround_table() {
    static const std::vector<Workaround> table = {
        {kQualcomm,
         {},
         api(1, 0, 49),
         0,
         bit(Feature::Device),
         "old Adreno drivers ignore a workgroup size given by specialization constant, which "
         "every mllm kernel uses"},
        {kArm,
         {},
         api(1, 0, 66),
         0,
         bit(Feature::Device),
         "old Mali drivers ignore a workgroup size given by specialization constant, which every "
         "mllm kernel uses"},
        {kQualcomm,
         {},
         api(1, 0, 66),
         0,
         bit(Feature::PipelineCache),
         "old Adreno drivers corrupt pipelines shared through a pipeline cache"},
        // Mali T760/T860/T880, G31, G51, G52, G71, G72: fp16 arithmetic that the driver accepts
        // in SPIR-V without exposing it as a feature, with large errors.
        {kArm,
         {0x7500001, 0x7501000, 0x8602000, 0x8800020, 0x70930000, 0x70901010, 0x72120000,
          0x74021000, 0x60a00002, 0x62210001},
         0,
         0,
         bit(Feature::Fp16Arithmetic),
         "Midgard and early Bifrost Mali drivers evaluate fp16 arithmetic with large errors"},
        // Adreno 630, 640, 650.
        {kQualcomm,
         {0x6030001, 0x6040001, 0x6050002},
         0,
         0,
         bit(Feature::Fp16Arithmetic),
         "Adreno 6xx drivers evaluate fp16 arithmetic with large errors"},
    };
    return table;
}

bool matches(const Workaround& w, const DeviceProps& d) {
    if (w.vendor_id != d.vendor_id) return false;
    if (!w.device_ids.empty() &&
        std::find(w.device_ids.begin(), w.device_ids.end(), d.device_id) == w.device_ids.end())
        return false;
    if (w.api_below != 0 && d.api_version >= w.api_below) return false;
    if (w.driver_below != 0 && d.driver_version >= w.driver_below) return false;
    return true;
}

void apply_workarounds(DeviceProps& d, const std::vector<Workaround>& table,
                       const std::vector<std::string>& by_hand) {
    for (const Workaround& w : table) {
        if (!matches(w, d)) continue;
        d.features_off |= w.features;
        d.workarounds.push_back(names_of(w.features) + " off: " + w.why);
    }
    uint32_t manual = 0;
    for (const std::string& name : by_hand) manual |= bit(feature_from_name(name));
    if (manual != 0) {
        d.features_off |= manual;
        d.workarounds.push_back(names_of(manual) + " off: MLLM_VK_DISABLE_FEATURES");
    }

    const uint32_t off = d.features_off;
    if (off & bit(Feature::Fp16Arithmetic)) d.fp16 = false;
    if (off & bit(Feature::IntegerDot)) d.int8_dot = false;
    if (off & bit(Feature::TexelBuffers)) d.max_texel_buffer_elements = 0;
    if (off & bit(Feature::SubgroupSizeControl)) {
        d.min_subgroup_size = d.subgroup_size;
        d.max_subgroup_size = d.subgroup_size;
    }
    if ((off & bit(Feature::Device)) && d.usable) {
        d.usable = false;
        const auto line =
            std::find_if(d.workarounds.begin(), d.workarounds.end(),
                         [](const std::string& l) { return l.starts_with("device"); });
        d.unusable_reason = "turned off by a workaround: " + *line;
    }
}

}  // namespace mllm::vk
