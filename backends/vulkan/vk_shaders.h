#pragma once
// The compute shaders of shaders/*.comp, compiled to SPIR-V at build time and embedded in the
// binary (backends/vulkan/CMakeLists.txt lists them; embed_spirv.cmake generates the table).
#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

namespace mllm::vk {

struct SpirvModule {
    std::string_view name;  // "matmul_q8_0": the source's name plus its variant
    const uint32_t* words;
    size_t word_count;
};

std::span<const SpirvModule> embedded_shaders();
// nullptr when no shader has that name.
const SpirvModule* find_shader(std::string_view name);

}  // namespace mllm::vk
