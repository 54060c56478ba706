#pragma once
// Fused causal GQA attention over one layer's f16 KV cache: token t attends to cache rows
// 0 ..= positions[t]. GPUs run shaders/attention.comp (a workgroup per query); CPU devices run
// shaders/attention_rows.comp (no barriers or shared memory, which lavapipe emulates slowly).
#include <cstdint>

#include "backends/vulkan/vk_context.h"

namespace mllm::vk {

struct AttentionArgs {
    int64_t rows = 0;  // query tokens
    int n_head = 0, n_head_kv = 0, head_dim = 0;
    int64_t n_ctx = 0;
    float scale = 1;
    BufferRange q, positions, k_cache, v_cache, out;
    int64_t q_offset = 0, positions_offset = 0, out_offset = 0;  // elements
    // Which kernel: -1 the device's (the barrier-free one on CPU devices), 0 the workgroup one
    // (GPUs), 1 the barrier-free one. Tests use it to check both on one device.
    int cpu_layout = -1;
    // The barrier-free kernel reads the caches through uniform texel buffers where the device
    // has them (-1; see texel_reads) or through storage buffers (0; tests reach both).
    int texel_cache = -1;
    // The output also rounded to Q8_0 blocks into `rounded` (floats laid out as out, or with
    // round_packed the packed layout of round_activations), as record_round_activations would
    // write it: only where attention_rounds says so. rounded_offset counts floats (words when
    // packed).
    BufferRange rounded;
    int64_t rounded_offset = 0;
    bool round_packed = false;
};

// Whether this device's attention kernel takes the barrier-free CPU-device layout by default.
bool attention_rows_kernel(const DeviceProps& device);
// Whether the kernel the device runs by default can write its output rounded to Q8_0 blocks,
// as floats or `packed` (heads of whole blocks; the barrier-free kernel writes floats only).
bool attention_rounds(const DeviceProps& device, int head_dim, bool packed);

// Head sizes the shader is built for (a specialization constant; even, at most this).
constexpr int kVkMaxHeadDim = 256;

void record_attention(Context& ctx, Sequence& seq, const AttentionArgs& args);

}  // namespace mllm::vk
