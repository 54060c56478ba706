#pragma once
// The Vulkan API as this backend sees it: the official headers for types only (no prototypes:
// nothing links libvulkan), and the tables of entry points it resolves itself at run time from
// the loader opened with dlopen (see vk_loader.h). Each table is an X-macro list, so adding a
// function is one line here.
#ifndef VK_NO_PROTOTYPES
#define VK_NO_PROTOTYPES
#endif
#include <vulkan/vulkan_core.h>

#include <string_view>

// Exported by the loader itself, resolved with vkGetInstanceProcAddr(nullptr, ...).
#define MLLM_VK_GLOBAL_FUNCTIONS(X)           \
    X(vkCreateInstance)                       \
    X(vkEnumerateInstanceExtensionProperties) \
    X(vkEnumerateInstanceLayerProperties)

// Resolved with vkGetInstanceProcAddr(instance, ...).
#define MLLM_VK_INSTANCE_FUNCTIONS(X)           \
    X(vkDestroyInstance)                        \
    X(vkEnumeratePhysicalDevices)               \
    X(vkGetPhysicalDeviceProperties)            \
    X(vkGetPhysicalDeviceProperties2)           \
    X(vkGetPhysicalDeviceFeatures2)             \
    X(vkGetPhysicalDeviceMemoryProperties)      \
    X(vkGetPhysicalDeviceFormatProperties)      \
    X(vkGetPhysicalDeviceQueueFamilyProperties) \
    X(vkEnumerateDeviceExtensionProperties)     \
    X(vkCreateDevice)                           \
    X(vkGetDeviceProcAddr)

// Resolved with vkGetDeviceProcAddr(device, ...).
#define MLLM_VK_DEVICE_FUNCTIONS(X)  \
    X(vkDestroyDevice)               \
    X(vkGetDeviceQueue)              \
    X(vkDeviceWaitIdle)              \
    X(vkQueueSubmit)                 \
    X(vkAllocateMemory)              \
    X(vkFreeMemory)                  \
    X(vkMapMemory)                   \
    X(vkUnmapMemory)                 \
    X(vkCreateBuffer)                \
    X(vkDestroyBuffer)               \
    X(vkGetBufferMemoryRequirements) \
    X(vkBindBufferMemory)            \
    X(vkCreateBufferView)            \
    X(vkDestroyBufferView)           \
    X(vkCreateShaderModule)          \
    X(vkDestroyShaderModule)         \
    X(vkCreateDescriptorSetLayout)   \
    X(vkDestroyDescriptorSetLayout)  \
    X(vkCreatePipelineLayout)        \
    X(vkDestroyPipelineLayout)       \
    X(vkCreateComputePipelines)      \
    X(vkDestroyPipeline)             \
    X(vkCreateDescriptorPool)        \
    X(vkDestroyDescriptorPool)       \
    X(vkResetDescriptorPool)         \
    X(vkAllocateDescriptorSets)      \
    X(vkUpdateDescriptorSets)        \
    X(vkCreateCommandPool)           \
    X(vkDestroyCommandPool)          \
    X(vkAllocateCommandBuffers)      \
    X(vkFreeCommandBuffers)          \
    X(vkResetCommandBuffer)          \
    X(vkBeginCommandBuffer)          \
    X(vkEndCommandBuffer)            \
    X(vkCmdBindPipeline)             \
    X(vkCmdBindDescriptorSets)       \
    X(vkCmdPushConstants)            \
    X(vkCmdDispatch)                 \
    X(vkCmdPipelineBarrier)          \
    X(vkCmdCopyBuffer)               \
    X(vkCmdFillBuffer)               \
    X(vkCreateFence)                 \
    X(vkDestroyFence)                \
    X(vkResetFences)                 \
    X(vkWaitForFences)               \
    X(vkCreateQueryPool)             \
    X(vkDestroyQueryPool)            \
    X(vkCmdResetQueryPool)           \
    X(vkCmdWriteTimestamp)           \
    X(vkGetQueryPoolResults)         \
    X(vkCreatePipelineCache)         \
    X(vkGetPipelineCacheData)        \
    X(vkDestroyPipelineCache)

namespace mllm::vk {

#define MLLM_VK_DECLARE(name) PFN_##name name = nullptr;
struct GlobalFunctions {
    PFN_vkGetInstanceProcAddr vkGetInstanceProcAddr = nullptr;
    // Null on a Vulkan 1.0 loader.
    PFN_vkEnumerateInstanceVersion vkEnumerateInstanceVersion = nullptr;
    MLLM_VK_GLOBAL_FUNCTIONS(MLLM_VK_DECLARE)
};
struct InstanceFunctions {
    MLLM_VK_INSTANCE_FUNCTIONS(MLLM_VK_DECLARE)
};
struct DeviceFunctions {
    MLLM_VK_DEVICE_FUNCTIONS(MLLM_VK_DECLARE)
};
#undef MLLM_VK_DECLARE

// "VK_ERROR_OUT_OF_DEVICE_MEMORY" etc.
std::string_view result_name(VkResult r);
// Throws mllm::Error "Vulkan: <what> failed (<result>)" unless r is VK_SUCCESS.
void check(VkResult r, std::string_view what);

}  // namespace mllm::vk
