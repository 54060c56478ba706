#pragma once
// Embedding lookup (shaders/embed.comp): y[t, :] = row ids[t] of a table in its GGUF layout,
// dequantized in the shader exactly as core/quant's dequantize_row, for the same weight types
// as the matmul. Ids outside [0, table_rows) give rows of zeros and never read the table.
#include <cstdint>

#include "backends/vulkan/vk_context.h"
#include "core/dtype.h"

namespace mllm::vk {

struct EmbedArgs {
    DType table_type = DType::F32;
    int64_t cols = 0;  // elements per row (a multiple of the type's block)
    int64_t rows = 0;  // tokens
    // The table may exceed the device's storage-buffer range: record_embed binds slices.
    BufferRange table;
    int64_t table_offset = 0;  // bytes, even
    int64_t table_rows = 0;
    BufferRange ids;         // int32
    int64_t ids_offset = 0;  // elements
    BufferRange y;
    int64_t y_offset = 0;   // floats
    int64_t y_stride = -1;  // floats; -1: cols
};

struct EmbedConfig {
    uint32_t workgroup = 0;    // threads per workgroup; 0: the device's default
    uint64_t max_binding = 0;  // bytes; 0: the device's storage-buffer range
};

bool embed_supports(DType table_type);
// Records the lookup into `seq` (one dispatch per slice of the table that fits a binding; they
// write disjoint rows of y). Throws mllm::Error for unsupported types or shapes, or ranges too
// small for them.
void record_embed(Context& ctx, Sequence& seq, const EmbedArgs& args, EmbedConfig overrides = {});

}  // namespace mllm::vk
