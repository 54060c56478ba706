#pragma once
// The model's weights on the device: each tensor copied once, on first use by any prepared
// graph (the prefill and decode plans share them), into its own sub-allocation. On
// unified-memory devices the copy is a memcpy into host-mapped device memory; otherwise it goes
// through staging.
#include <cstdint>
#include <map>
#include <span>
#include <utility>
#include <vector>

#include "backends/vulkan/vk_context.h"
#include "core/gguf/gguf_reader.h"

namespace mllm::vk {

class WeightStore {
  public:
    explicit WeightStore(Context& ctx) : ctx_(ctx) {}
    // The tensor's device copy in its GGUF layout (padded to a multiple of 4 bytes: shaders read
    // 32-bit words).
    const Allocation& get(const GgufTensor& tensor);
    // The copy a matmul reads: repacked where matmul_repacks says so for this device (a second
    // copy only when the tensor is also read in its GGUF layout, as tied embeddings are),
    // otherwise get()'s.
    struct ForMatMul {
        const Allocation& allocation;
        bool repacked;
    };
    ForMatMul for_matmul(const GgufTensor& tensor);
    // Tensors of one type and row length one after another, for one matmul over a group sharing
    // its input (queries, keys and values; gate and up): repacked where matmul_repacks says so,
    // else in their GGUF layout. Null when their types or row lengths differ.
    struct Group {
        const Allocation* allocation;
        bool repacked;
    };
    Group matmul_group(std::span<const GgufTensor* const> tensors);
    // A SwiGLU block's gate and up weights (one type, one shape) with their rows interleaved,
    // gate row 0, up row 0, gate row 1, ..., repacked for the matmul that writes
    // silu(gate) * up (matmul_gates_pairs).
    const Allocation& gated_pairs(const GgufTensor& gate, const GgufTensor& up);
    // Their f32 biases, one after another.
    const Allocation& bias_group(std::span<const GgufTensor* const> biases);

  private:
    Context& ctx_;
    std::map<const GgufTensor*, Allocation> tensors_;
    std::map<const GgufTensor*, Allocation> repacked_;
    std::map<std::vector<const GgufTensor*>, Allocation> groups_;
    std::map<std::pair<const GgufTensor*, const GgufTensor*>, Allocation> gated_;
};

}  // namespace mllm::vk
