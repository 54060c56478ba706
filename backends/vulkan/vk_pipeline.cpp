#include "backends/vulkan/vk_pipeline.h"

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <iterator>

#include "backends/vulkan/vk_shaders.h"
#include "core/error.h"

namespace mllm::vk {

const SpirvModule* find_shader(std::string_view name) {
    for (const SpirvModule& m : embedded_shaders())
        if (m.name == name) return &m;
    return nullptr;
}

VkDescriptorType descriptor_type(const PipelineDesc& desc, uint32_t binding) {
    if ((desc.texel_buffers >> binding) & 1u) return VK_DESCRIPTOR_TYPE_UNIFORM_TEXEL_BUFFER;
    if ((desc.uniform_buffers >> binding) & 1u) return VK_DESCRIPTOR_TYPE_UNIFORM_BUFFER;
    return VK_DESCRIPTOR_TYPE_STORAGE_BUFFER;
}

Pipeline::Pipeline(const Device& device, PipelineDesc desc, VkPipelineCache cache)
    : device_(device), desc_(std::move(desc)) {
    const DeviceProps& props = device.props();
    const SpirvModule* code = find_shader(desc_.shader);
    if (code == nullptr) fail("internal: no embedded shader named '", desc_.shader, "'");
    if (desc_.push_constant_bytes > props.max_push_constants_bytes)
        fail("shader ", desc_.shader, " needs ", desc_.push_constant_bytes,
             " bytes of push constants; ", props.name, " has ", props.max_push_constants_bytes);
    if (workgroup_size() == 0 || workgroup_size() > props.max_workgroup_invocations)
        fail("shader ", desc_.shader, ": workgroup size ", workgroup_size(), " (", props.name,
             " allows 1..", props.max_workgroup_invocations, ")");

    const DeviceFunctions& fn = device.fn();
    const VkDevice dev = device.handle();
    try {
        std::vector<VkDescriptorSetLayoutBinding> bindings(desc_.buffers);
        for (uint32_t i = 0; i < desc_.buffers; ++i) {
            bindings[i].binding = i;
            bindings[i].descriptorType = descriptor_type(desc_, i);
            bindings[i].descriptorCount = 1;
            bindings[i].stageFlags = VK_SHADER_STAGE_COMPUTE_BIT;
        }
        VkDescriptorSetLayoutCreateInfo set_info{
            VK_STRUCTURE_TYPE_DESCRIPTOR_SET_LAYOUT_CREATE_INFO};
        set_info.bindingCount = desc_.buffers;
        set_info.pBindings = bindings.data();
        check(fn.vkCreateDescriptorSetLayout(dev, &set_info, nullptr, &set_layout_),
              "vkCreateDescriptorSetLayout");

        VkPushConstantRange push{VK_SHADER_STAGE_COMPUTE_BIT, 0, desc_.push_constant_bytes};
        VkPipelineLayoutCreateInfo layout_info{VK_STRUCTURE_TYPE_PIPELINE_LAYOUT_CREATE_INFO};
        layout_info.setLayoutCount = 1;
        layout_info.pSetLayouts = &set_layout_;
        layout_info.pushConstantRangeCount = desc_.push_constant_bytes > 0 ? 1 : 0;
        layout_info.pPushConstantRanges = &push;
        check(fn.vkCreatePipelineLayout(dev, &layout_info, nullptr, &layout_),
              "vkCreatePipelineLayout");

        VkShaderModuleCreateInfo module_info{VK_STRUCTURE_TYPE_SHADER_MODULE_CREATE_INFO};
        module_info.codeSize = code->word_count * sizeof(uint32_t);
        module_info.pCode = code->words;
        VkShaderModule module = VK_NULL_HANDLE;
        check(fn.vkCreateShaderModule(dev, &module_info, nullptr, &module),
              str_cat("vkCreateShaderModule (", desc_.shader, ")"));

        std::vector<VkSpecializationMapEntry> entries(desc_.spec.size());
        for (uint32_t i = 0; i < entries.size(); ++i)
            entries[i] = {i, i * static_cast<uint32_t>(sizeof(uint32_t)), sizeof(uint32_t)};
        VkSpecializationInfo spec{};
        spec.mapEntryCount = static_cast<uint32_t>(entries.size());
        spec.pMapEntries = entries.data();
        spec.dataSize = desc_.spec.size() * sizeof(uint32_t);
        spec.pData = desc_.spec.data();

        VkComputePipelineCreateInfo info{VK_STRUCTURE_TYPE_COMPUTE_PIPELINE_CREATE_INFO};
        info.stage.sType = VK_STRUCTURE_TYPE_PIPELINE_SHADER_STAGE_CREATE_INFO;
        info.stage.stage = VK_SHADER_STAGE_COMPUTE_BIT;
        info.stage.module = module;
        info.stage.pName = "main";
        info.stage.pSpecializationInfo = entries.empty() ? nullptr : &spec;
        info.layout = layout_;
        const VkResult r = fn.vkCreateComputePipelines(dev, cache, 1, &info, nullptr, &pipeline_);
        fn.vkDestroyShaderModule(dev, module, nullptr);
        check(r, str_cat("vkCreateComputePipelines (", desc_.shader, ")"));
    } catch (...) {
        if (layout_ != VK_NULL_HANDLE) fn.vkDestroyPipelineLayout(dev, layout_, nullptr);
        if (set_layout_ != VK_NULL_HANDLE)
            fn.vkDestroyDescriptorSetLayout(dev, set_layout_, nullptr);
        throw;
    }
}

Pipeline::~Pipeline() {
    const DeviceFunctions& fn = device_.fn();
    const VkDevice dev = device_.handle();
    fn.vkDestroyPipeline(dev, pipeline_, nullptr);
    fn.vkDestroyPipelineLayout(dev, layout_, nullptr);
    fn.vkDestroyDescriptorSetLayout(dev, set_layout_, nullptr);
}

Pipelines::Pipelines(const Device& device) : device_(device) {
    // A driver known to corrupt cached pipelines (vk_workarounds.h) gets none: cache_ stays null.
    if (device.props().off(Feature::PipelineCache)) return;
    cache_path_ = device_cache_path(device.props(), "pipelines.bin");
    std::vector<char> data;
    if (!cache_path_.empty()) {
        std::ifstream in(cache_path_, std::ios::binary);
        data.assign(std::istreambuf_iterator<char>(in), {});
    }
    VkPipelineCacheCreateInfo info{VK_STRUCTURE_TYPE_PIPELINE_CACHE_CREATE_INFO};
    info.initialDataSize = data.size();
    info.pInitialData = data.empty() ? nullptr : data.data();
    const DeviceFunctions& fn = device.fn();
    if (fn.vkCreatePipelineCache(device.handle(), &info, nullptr, &cache_) != VK_SUCCESS) {
        // A file the driver rejects: start empty (and overwrite it on exit).
        info.initialDataSize = 0;
        info.pInitialData = nullptr;
        if (fn.vkCreatePipelineCache(device.handle(), &info, nullptr, &cache_) != VK_SUCCESS)
            cache_ = VK_NULL_HANDLE;  // pipelines are then created without one
    }
}

Pipelines::~Pipelines() {
    pipelines_.clear();
    if (cache_ == VK_NULL_HANDLE) return;
    const DeviceFunctions& fn = device_.fn();
    size_t size = 0;
    if (created_ && !cache_path_.empty() &&
        fn.vkGetPipelineCacheData(device_.handle(), cache_, &size, nullptr) == VK_SUCCESS &&
        size > 0) {
        std::vector<char> data(size);
        if (fn.vkGetPipelineCacheData(device_.handle(), cache_, &size, data.data()) == VK_SUCCESS) {
            // Written to a temporary file and renamed: concurrent processes never read half.
            std::error_code ec;
            std::filesystem::create_directories(std::filesystem::path(cache_path_).parent_path(),
                                                ec);
            const std::string tmp = str_cat(cache_path_, ".", ::getpid());
            std::ofstream out(tmp, std::ios::binary);
            out.write(data.data(), static_cast<std::streamsize>(size));
            out.close();
            if (out)
                std::filesystem::rename(tmp, cache_path_, ec);
            else
                std::filesystem::remove(tmp, ec);
        }
    }
    fn.vkDestroyPipelineCache(device_.handle(), cache_, nullptr);
}

const Pipeline& Pipelines::get(const PipelineDesc& desc) {
    std::lock_guard lock(mutex_);
    auto it = pipelines_.find(desc);
    if (it == pipelines_.end()) {
        it = pipelines_.emplace(desc, std::make_unique<Pipeline>(device_, desc, cache_)).first;
        created_ = true;
    }
    return *it->second;
}

size_t Pipelines::size() const {
    std::lock_guard lock(mutex_);
    return pipelines_.size();
}

}  // namespace mllm::vk
