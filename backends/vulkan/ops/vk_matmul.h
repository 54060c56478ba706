#pragma once
// GEMV/GEMM against weights in their GGUF layout (shaders/matmul.comp): y[n, m] = x[n, k] W^T
// (+ bias), W [m, k] of type F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q4_K, Q5_K or Q6_K,
// dequantized in registers inside the shader; x, y and the bias f32. For F16/BF16 weights the
// activations are rounded to the weights' precision first, as the CPU backend does.
#include <cstdint>
#include <span>
#include <vector>

#include "backends/vulkan/vk_context.h"
#include "core/dtype.h"

namespace mllm::vk {

struct MatMulArgs {
    DType weight_type = DType::F32;
    int64_t m = 0;  // weight rows: output features
    int64_t k = 0;  // input features (a multiple of the type's block: 32, or 256 for K-quants)
    int64_t n = 0;  // tokens
    // The ranges may exceed the device's storage-buffer range (a large output matrix): only
    // the parts bound per dispatch must fit, and record_matmul splits rows (and tokens) so they
    // do.
    BufferRange w, x, y;
    BufferRange bias;  // optional: buffer == VK_NULL_HANDLE means none
    // Where the tensors start inside their ranges, and the distance between token rows.
    int64_t w_offset = 0;   // bytes, even (blocks are 2-byte aligned)
    int64_t x_offset = 0;   // floats
    int64_t x_stride = -1;  // floats; -1: k
    int64_t y_offset = 0;
    int64_t y_stride = -1;    // -1: m
    int64_t bias_offset = 0;  // floats
    // x holds activations quantized to Q8_0 blocks in round_activations' packed layout (int8
    // quants, then f32 scales; x_offset and x_stride count 32-bit words): the integer
    // dot-product kernel (shaders/matmul_dot.comp) multiplies them, Q8_0 and Q4_0 weights only.
    bool x_packed = false;
    // The weights are in the layout repack_for_matmul writes (w_offset and w.offset then a
    // multiple of 16), not GGUF's; only for types matmul_repacks accepts.
    bool repacked = false;
    // The rows are (gate, up) pairs, gate row r and up row r of a SwiGLU block interleaved
    // (repacked Q4_0 only, see matmul_gates_pairs): y gets silu(gate r) * (up r), m / 2 values
    // per token (y_offset, y_stride and the output's size count those); no bias, one output.
    bool gated = false;
    // The repacked Q4_0 kernel only (matmul_folds_norm): a residual [n, m] laid out as y, from
    // residual_offset (floats) with y's stride, added to the product, so the residual add needs
    // no dispatch (no bias, one output; y may be the residual itself).
    BufferRange residual;
    int64_t residual_offset = 0;
    // A residual add and the RMSNorm after it folded into the matmuls around them (the repacked
    // Q4_0 kernel, matmul_folds_norm). norm_out, with a residual: the kernel also writes its
    // output (the sum) times norm_out.weight (f32 [m]) quantized to Q8_0 blocks to
    // norm_out.weighted, from weighted_offset, matmul_norm_input_words(m) words a token (the
    // layout of quantize_norm_input), and per workgroup and token the sum of squares of its rows
    // to norm_out.partials: matmul_norm_partials(m) floats a token from partials_offset.
    // norm_in: x is such a quantized weighted sum (x_offset and x_stride whole texels), and the
    // kernel multiplies it scaled by 1 / sqrt(mean of squares + eps), the norm's output, taking
    // the mean from norm_in.partials (count a token from partials_offset). So neither the add
    // nor the norm needs a dispatch, and the matmuls after them need not quantize their input.
    struct NormOut {
        BufferRange weight, weighted, partials;
        int64_t weighted_offset = 0, partials_offset = 0;
    } norm_out;
    struct NormIn {
        BufferRange partials;
        int64_t partials_offset = 0, count = 0;
        float eps = 0;
    } norm_in;
    // llama's rotary embedding and the KV-cache store folded into the queries', keys' and
    // values' matmul (the repacked Q4_0 kernel, matmul_ropes_pairs; positions.buffer set): the
    // three weights concatenated (two more_outputs, each output's rows and head_dim even, as
    // many key rows as value rows). The kernel rotates the queries and keys it computes,
    // neighbouring rows (2i, 2i + 1) of each head, by positions[token] (i32, from positions_offset)
    // as record_rope does, writes them and the values to its three outputs, and appends the keys
    // and values to the layer's f16 caches (n_ctx rows of key-rows halfs) at row positions[token]
    // as record_kv_store does; so neither the rope nor the store needs a dispatch.
    struct Rope {
        BufferRange positions, k_cache, v_cache;
        int64_t positions_offset = 0;
        int head_dim = 0;
        int64_t n_ctx = 0;
        float base = 10000, freq_scale = 1;
    } rope;
    // Weights of a group sharing this input (queries, keys and values), concatenated: rows from
    // first_row on go to another output in y, each with its own offset and stride (floats).
    // At most two, in increasing first_row; only where one dispatch covers the rows and y fits
    // one binding (record_matmul throws otherwise).
    struct Output {
        int64_t first_row = 0;
        int64_t y_offset = 0;
        int64_t y_stride = 0;
    };
    std::vector<Output> more_outputs;
};

// The arguments of y = x W^T over whole ranges (no offsets, dense strides, no bias); callers set
// the rest.
inline MatMulArgs matmul_args(DType weight_type, int64_t m, int64_t k, int64_t n,
                              const BufferRange& w, const BufferRange& x, const BufferRange& y) {
    MatMulArgs a;
    a.weight_type = weight_type;
    a.m = m;
    a.k = k;
    a.n = n;
    a.w = w;
    a.x = x;
    a.y = y;
    return a;
}

// How a dispatch is shaped; 0 picks the device's default.
struct MatMulConfig {
    uint32_t workgroup = 0;  // threads per workgroup
    uint32_t rows = 0;       // weight rows per workgroup
    uint32_t tokens = 0;     // tokens per workgroup
    // Each invocation computes whole rows (rows = workgroup); the default on CPU devices.
    // -1: the device's default, 0: off, 1: on.
    int row_per_invocation = -1;
    // The largest binding in bytes, below the device's storage-buffer range (tests use a small
    // one to exercise the splitting).
    uint64_t max_binding = 0;
    // The most row groups in a dispatch's x dimension, below the device's limit (tests use a
    // small one to exercise the continuation in z; a GPU's 2^31 - 1 is beyond any test).
    uint32_t max_groups_x = 0;
    // The shared-memory GEMM (shaders/matmul_tiled.comp): -1 where the device would use it
    // (GPUs, prefills of kTiledMinTokens tokens or more), 0 off, 1 on where matmul_tiles allows.
    int tiled = -1;
    // The CPU-device kernels' input from a uniform buffer (-1: where the weights have no texel
    // buffer and a token's row fits one, 1: wherever a row fits, 0: never) and weights through a
    // texel buffer (-1: where texel_reads says, 0: never); tests force them to reach every path.
    int uniform_input = -1;
    int texel_weights = -1;
};

// Prefills at least this long use the tiled GEMM on GPUs: it reads each weight once per 32
// tokens, the plain kernel once per 4.
constexpr int64_t kTiledMinTokens = 16;

// Whether the device and shape allow the tiled GEMM: 256 threads and 32 KiB of shared memory per
// workgroup, and whole 8-element chunks per row (every quantized k; float rows of k % 8 == 0).
bool matmul_tiles(const DeviceProps& device, int64_t k);

// Weight types with an integer dot-product kernel (activations quantized to Q8_0 blocks).
bool matmul_dot_type(DType weight_type);
// Whether matmuls with these weights take the integer dot-product kernel on this device: it has
// VK_KHR_shader_integer_dot_product (not turned off by a workaround), subgroup reductions, and
// takes the GPU layouts.
bool matmul_int_dot(const DeviceProps& device, DType weight_type);

bool matmul_supports(DType weight_type);

// Whether weights of this type are repacked for matmuls on this device. On CPU devices
// (lavapipe) every storage-buffer load costs about the same (a loop over the SIMD lanes) whatever
// its width, so the GGUF blocks, only 2-byte aligned, cost several loads per 8 weights; the
// repacked rows are read with one 16-byte load per 16 bytes of quants and one per block scale.
bool matmul_repacks(const DeviceProps& device, DType weight_type);
// The repacked layouts. Q8_0: per row, the blocks' quants back to back (32 bytes a block), then
// their scales as f32, padded to a multiple of 16 bytes. Q4_0: rows in pairs (an odd last row
// pairs with zeros), per pair and block two 16-byte texels of quants, columns 0-15 then 16-31,
// each 32-bit word four columns of both rows (row 0's nibbles in bits 0-15, four bits a column,
// row 1's in bits 16-31), so one integer multiply takes a column of both rows; then the
// scales, one 16-byte texel per two blocks (row 0, row 1 of block 2i, then of block 2i + 1);
// pairs are interleaved in groups of 8, texel t of pair 8 g + l at texel (g T + t) 8 + l (T
// texels a pair), so lavapipe's 8 SIMD lanes, on consecutive pairs, fetch 128 contiguous bytes.
// Rows per repacked unit (16 for Q4_0's groups of pairs, else 1) and the bytes of one unit.
int64_t repacked_unit_rows(DType weight_type);
size_t repacked_unit_bytes(DType weight_type, int64_t k);
// Bytes of `rows` repacked rows of k elements (whole units).
size_t repacked_bytes(DType weight_type, int64_t rows, int64_t k);
// Rewrites `rows` GGUF rows of k elements at src into dst (repacked_bytes bytes).
void repack_for_matmul(DType weight_type, const uint8_t* src, int64_t rows, int64_t k,
                       uint8_t* dst);
// Whether the kernel multiplies its input quantized to Q8_0 blocks, as the CPU backend does for
// these weights (the repacked Q4_0 kernel's integer products): inputs the CPU's rounding left
// unchanged (round_activations' output) give the CPU's products; others are rounded as the CPU
// would, save that ties round to even.
bool matmul_quantizes_input(DType weight_type, bool repacked);
// Whether this device's matmul for these weights computes a SwiGLU block's gate and up rows in
// one invocation and writes silu(gate) * up (MatMulArgs::gated; the repacked Q4_0 kernel, whose
// row pairs take a gate row and its up row), saving the separate SwiGLU dispatch.
bool matmul_gates_pairs(const DeviceProps& device, DType weight_type);
// Whether this device's matmul for these weights adds a residual to its output and folds the
// RMSNorm after it (MatMulArgs::residual, norm_out, norm_in: the repacked Q4_0 kernel with
// texel-buffer input, one subgroup a workgroup), so a residual add and its norm need no dispatch.
bool matmul_folds_norm(const DeviceProps& device, DType weight_type);
// Whether this device's matmul for these weights rotates llama's queries and keys and stores keys
// and values in the caches (MatMulArgs::rope: the repacked Q4_0 kernel, whose row pairs are the
// rotation's pairs, with texel-buffer input), so the rope and the store need no dispatch.
bool matmul_ropes_pairs(const DeviceProps& device, DType weight_type);
// Words a token of a folded norm's quantized input takes (MatMulArgs::norm_out, norm_in): k int32
// quants, then the k / 32 blocks' f32 scales, padded to whole 16-byte texels.
int64_t matmul_norm_input_words(int64_t k);
// That layout from n rows of k floats (the host side of what a norm_out matmul writes; tests
// and the self-test): per block of 32, amax / 127 rounded to fp16 as the scale and the quants
// x * 127 / amax rounded to nearest even. out holds n * matmul_norm_input_words(k) words.
void quantize_norm_input(const float* x, int64_t n, int64_t k, uint32_t* out);
// The floats n tokens of that layout stand for, as the kernel reading them multiplies them: each
// quant times its block's scale times its token's norm scale (norm_scale[t]).
std::vector<float> dequantize_norm_input(const uint32_t* words, int64_t n, int64_t k,
                                         std::span<const float> norm_scale);
// Partial sums of squares a token that a norm_out matmul of m rows writes.
int64_t matmul_norm_partials(int64_t m);
// A SwiGLU block's gate and up GGUF rows interleaved (gate row 0, up row 0, gate row 1, ...):
// repacked, the rows a gated matmul reads (MatMulArgs::gated).
std::vector<uint8_t> interleave_gate_up(DType weight_type, const uint8_t* gate, const uint8_t* up,
                                        int64_t rows, int64_t k);
// The repacked copy of `rows` GGUF rows in device memory, 16-byte aligned as the shaders'
// uvec4 loads need.
Allocation upload_repacked(Context& ctx, DType weight_type, const uint8_t* src, int64_t rows,
                           int64_t k);
// The same for several tensors of one type and row length, one after another (a group's
// concatenated weights).
struct RepackRows {
    const uint8_t* src;
    int64_t rows;
};
Allocation upload_repacked(Context& ctx, DType weight_type, std::span<const RepackRows> parts,
                           int64_t k);
// The configuration record_matmul uses for this device, weight type and token count.
MatMulConfig matmul_config(const DeviceProps& device, DType weight_type, int64_t n,
                           MatMulConfig overrides = {});
// Records the product into `seq` (one dispatch, or several when a binding would exceed the
// limit; they write disjoint parts of y). Throws mllm::Error for unsupported types or shapes,
// or ranges too small for the shape.
void record_matmul(Context& ctx, Sequence& seq, const MatMulArgs& args,
                   MatMulConfig overrides = {});

}  // namespace mllm::vk
