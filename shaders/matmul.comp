#version 450
// Matrix times weights, for one weight type per compiled variant (dequant.glsl lists them):
// y[t, r] = sum_i W[r, i] * x[t, i] (+ bias[r]), with W [m, k] in its GGUF layout and x, y f32
// rows. GEMV when n = 1; a small GEMM for a few tokens.
//
// A workgroup computes ROWS weight rows for TOKENS tokens. Its threads stride over each row in
// chunks of 8 elements, dequantize a chunk in registers once and use it for every token; partial
// sums reduce per subgroup (subgroupAdd), then across the workgroup's subgroups in shared memory.
// Nothing assumes a subgroup size: the workgroup size, ROWS and TOKENS are specialization
// constants chosen by the host. The host binds sub-ranges of large buffers (several dispatches
// when a weight exceeds the device's binding limit), so every offset here is into its binding.
#extension GL_KHR_shader_subgroup_basic : require
#extension GL_KHR_shader_subgroup_arithmetic : require
#extension GL_GOOGLE_include_directive : require

layout(local_size_x_id = 0) in;
layout(constant_id = 1) const uint ROWS = 1;
layout(constant_id = 2) const uint TOKENS = 1;
// 1: each invocation computes a whole row (ROWS is then 1 and a workgroup covers
// gl_WorkGroupSize.x rows): no subgroup reductions, no barriers. For CPU devices (lavapipe), which
// run a workgroup's invocations as SIMD lanes over rows and pay for every barrier; on GPUs the
// threads of a workgroup share rows so their loads coalesce.
layout(constant_id = 3) const uint ROW_PER_INVOCATION = 0;
// The row-per-invocation kernels: 1 when every token's input starts at a multiple of 4 floats
// (the host knows at recording), so x is read 4 elements per load. A constant, not a branch on
// the push constants: llvmpipe would evaluate both sides for every lane.
layout(constant_id = 4) const uint X_ALIGNED = 0;
// The repacked Q4_0 kernel's row pairs are a SwiGLU block's gate and up rows: it writes
// silu(gate) * up, one value per pair (vk_matmul.h, MatMulArgs::gated).
layout(constant_id = 5) const uint GATED = 0;
// The repacked Q4_0 kernel adds a residual to its output: binding 3 (no bias then) holds it laid
// out as y, from bias_offset (MatMulArgs::residual), so the residual add needs no dispatch.
layout(constant_id = 6) const uint RESIDUAL = 0;

// Binding 0, the weights: declared by weights.glsl (the repacked layout of vk_matmul.h reads
// 16 bytes per load instruction).
#if defined(X_UNIFORM)
// The input from a uniform buffer (CPU devices without texel buffers, when a dispatch's input
// fits one): llvmpipe gathers uniform-buffer loads with straight-line code, one component at a
// time, where a storage-buffer load whose index differs per lane is a loop over the lanes
// through the stack.
layout(std140, set = 0, binding = 1) uniform InputU { vec4 xu[4096]; };
float x_load(uint i) { return xu[i >> 2][i & 3u]; }
vec4 x4_load(uint i4) { return xu[i4]; }
#elif defined(X_TEXEL)
// The input from a uniform texel buffer (CPU devices, beside texel weights): llvmpipe gathers a
// texel of 4 floats at once, in straight-line code, as for the weights (weights.glsl).
layout(set = 0, binding = 1) uniform usamplerBuffer x_texels;  // R32G32B32A32_UINT
vec4 x4_load(uint i4) { return uintBitsToFloat(texelFetch(x_texels, int(i4))); }
float x_load(uint i) { return x4_load(i >> 2)[i & 3u]; }
#else
layout(std430, set = 0, binding = 1) readonly buffer Input { float x[]; };
// The same input as vec4: llvmpipe (lavapipe) turns every load instruction into a loop over the
// SIMD lanes, so one vec4 load costs about what one float load does.
layout(std430, set = 0, binding = 1) readonly buffer Input4 { vec4 x4[]; };
float x_load(uint i) { return x[i]; }
vec4 x4_load(uint i4) { return x4[i4]; }
#endif
layout(std430, set = 0, binding = 2) writeonly buffer Output { float y[]; };
layout(std430, set = 0, binding = 3) readonly buffer Bias { float bias[]; };
#if defined(NORM_OUTPUT)
// The repacked Q4_0 kernel with a residual also prepares the RMSNorm of its output for the
// kernels that read it (MatMulArgs::norm_out): the sum times the norm's weight row quantized to
// Q8_0 blocks (one int a quant, then the blocks' scales), and per subgroup and token the sum of
// squares of the sum's rows it computed.
layout(std430, set = 0, binding = 4) readonly buffer NormWeight { float norm_w[]; };
layout(std430, set = 0, binding = 5) writeonly buffer Weighted { float weighted[]; };
layout(std430, set = 0, binding = 6) writeonly buffer PartialsOut { float partials_out[]; };
#endif
#if defined(NORM_INPUT)
// The repacked Q4_0 kernel's input is the sum times the norm's weight, quantized (NORM_OUTPUT's);
// its blocks' scales are multiplied here by 1 / sqrt(mean of squares + eps) from the partial sums
// of squares. The quants are taken as they are: quantizing x s gives x's quants (in exact
// arithmetic) with the scale times s, so the workgroups need not each quantize the input again
// (decode on lavapipe 5-9% faster).
layout(std430, set = 0, binding = 4) readonly buffer PartialsIn { float partials_in[]; };
#endif

#if defined(ROPE_STORE)
// The repacked Q4_0 kernel over the concatenated queries, keys and values (outputs 0, 1, 2 of
// y_at) with llama's rotation, which turns neighbouring rows (2i, 2i + 1) of a head: exactly a
// row pair of the kernel. It rotates the queries and keys it computed, and stores the keys and
// values, a pair a 32-bit word of halfs, at cache row positions[token] (MatMulArgs::rope), so
// neither the rotation nor the store needs a dispatch.
layout(std430, set = 0, binding = 5) readonly buffer Positions { int pos[]; };
layout(std430, set = 0, binding = 6) writeonly buffer KCache { uint kc[]; };
layout(std430, set = 0, binding = 7) writeonly buffer VCache { uint vc[]; };
#endif

#include "matmul_params.glsl"
#include "rope.glsl"


#include "weights.glsl"
#include "dequant.glsl"

shared float partial[gl_WorkGroupSize.x];

vec4 load_x4(uint at) {
    return round_activation(vec4(x_load(at), x_load(at + 1u), x_load(at + 2u), x_load(at + 3u)));
}

// Elements at.. of x, rounded (at is a multiple of 4 when X_ALIGNED is set).
vec4 x_vec(uint at) {
    return X_ALIGNED != 0u ? round_activation(x4_load(at >> 2)) : load_x4(at);
}

void row_per_invocation() {
    // Invocation i of the workgroup computes rows base + i + j * gl_WorkGroupSize.x, j < ROWS:
    // each x vector loaded serves ROWS rows. Lanes past the last row compute the last row again
    // and store nothing, so every lane stays active.
    const uint group = gl_WorkGroupID.x + gl_WorkGroupID.z * gl_NumWorkGroups.x;
    const uint base = group * gl_WorkGroupSize.x * ROWS + gl_LocalInvocationID.x;
    const uint tok0 = gl_WorkGroupID.y * TOKENS;
    uint row_base[ROWS];
    for (uint j = 0; j < ROWS; ++j)
        row_base[j] = p.w_offset + min(base + j * gl_WorkGroupSize.x, p.m - 1u) * row_bytes(p.k);
    float acc[ROWS * TOKENS];
    for (uint i = 0; i < ROWS * TOKENS; ++i) acc[i] = 0.0;
    const uint chunks = p.k / 8u;
    for (uint c = 0; c < chunks; ++c) {
        uint i0, i1;
        chunk_index(c, i0, i1);
        vec4 x0[TOKENS], x1[TOKENS];
        for (uint t = 0; t < TOKENS; ++t) {
            const uint xb = p.x_offset + min(tok0 + t, p.n - 1u) * p.x_stride;
            x0[t] = x_vec(xb + i0);
            x1[t] = x_vec(xb + i1);
        }
        for (uint j = 0; j < ROWS; ++j) {
            vec4 w0, w1;
            dequant_chunk(row_base[j], c, w0, w1);
            for (uint t = 0; t < TOKENS; ++t)
                acc[j * TOKENS + t] += dot(w0, x0[t]) + dot(w1, x1[t]);
        }
    }
#if defined(FLOAT_WEIGHTS)
    for (uint i = chunks * 8u; i < p.k; ++i) {
        for (uint j = 0; j < ROWS; ++j) {
            const float wv = dequant_one(row_base[j], i);
            for (uint t = 0; t < TOKENS; ++t)
                acc[j * TOKENS + t] += wv * round_activation(
                                               x_load(p.x_offset + min(tok0 + t, p.n - 1u) * p.x_stride + i));
        }
    }
#endif
    for (uint j = 0; j < ROWS; ++j) {
        const uint row = base + j * gl_WorkGroupSize.x;
        if (row >= p.m) break;
        const float b = p.has_bias != 0u ? bias[p.bias_offset + row] : 0.0;
        for (uint t = 0; t < TOKENS; ++t)
            if (tok0 + t < p.n) y[y_at(row, tok0 + t)] = acc[j * TOKENS + t] + b;
    }
}

#if defined(REPACKED) && defined(WEIGHT_Q8_0)
// Row per invocation over repacked Q8_0 rows (vk_matmul.h): per row the blocks' quants (32 bytes
// each, 16-byte aligned), then one f32 scale per block. llvmpipe pays per load instruction, not
// per byte, so a block costs two 16-byte loads and a quarter of a scale load per row. It does
// not unroll loops either, and a local array indexed in a loop is memory it reaches through a
// loop over the lanes: so the 4 rows (ROWS is 4; 8, each x texel fetched then serving twice the
// rows, held twice the weight texels and ran slower) and up to 4 tokens are spelled out, every
// index a constant, rows in the components of one vec4 accumulator per token.
// Each row's block is summed in the order of its quants with the block's scale applied once,
// (sum of q x) d, in fused multiply-adds: fewer instructions per weight than dequantizing
// first. (Lanes loading a part of the block each and broadcasting it to the others costs more on
// llvmpipe: its subgroupBroadcast loops over the lanes.) llvmpipe's code is sensitive to the
// order of these fetches: a version that fetched each row's two texels together and held the
// block's texels across tokens made the decode GEMV 1.5 times slower.
float dot_fma(vec4 a, vec4 b, float acc) {
    return fma(a.w, b.w, fma(a.z, b.z, fma(a.y, b.y, fma(a.x, b.x, acc))));
}

// Quants q (elements 0..15) and r (16..31) against the block's input, 4 elements per xi.
float row_block(uvec4 q, uvec4 r, vec4 x0, vec4 x1, vec4 x2, vec4 x3, vec4 x4, vec4 x5, vec4 x6,
                vec4 x7) {
    float s = dot_fma(unpack_i8x4(q.x), x0, 0.0);
    s = dot_fma(unpack_i8x4(q.y), x1, s);
    s = dot_fma(unpack_i8x4(q.z), x2, s);
    s = dot_fma(unpack_i8x4(q.w), x3, s);
    s = dot_fma(unpack_i8x4(r.x), x4, s);
    s = dot_fma(unpack_i8x4(r.y), x5, s);
    s = dot_fma(unpack_i8x4(r.z), x6, s);
    return dot_fma(unpack_i8x4(r.w), x7, s);
}

// Block b of the four rows whose first texels are a0..a3 against one token's block of x (x0..x7,
// in the caller's scope, as are b and scales), scaled by the rows' block scales, into `out`.
#define MLLM_QUAD(out, a0, a1, a2, a3)                                                         \
    {                                                                                          \
        const uint si = scales + b / 4u, sc = b & 3u;                                          \
        const vec4 d = uintBitsToFloat(uvec4(weight_quad(a0 + si)[sc], weight_quad(a1 + si)[sc], \
                                             weight_quad(a2 + si)[sc], weight_quad(a3 + si)[sc])); \
        const uint qi = 2u * b;                                                                \
        const uvec4 q0 = weight_quad(a0 + qi), q1 = weight_quad(a1 + qi);                      \
        const uvec4 q2 = weight_quad(a2 + qi), q3 = weight_quad(a3 + qi);                      \
        const uvec4 r0 = weight_quad(a0 + qi + 1u);                                                \
        const uvec4 r1 = weight_quad(a1 + qi + 1u);                                                \
        const uvec4 r2 = weight_quad(a2 + qi + 1u);                                                \
        const uvec4 r3 = weight_quad(a3 + qi + 1u);                                                \
        out = d * vec4(row_block(q0, r0, x0, x1, x2, x3, x4, x5, x6, x7),                      \
                       row_block(q1, r1, x0, x1, x2, x3, x4, x5, x6, x7),                      \
                       row_block(q2, r2, x0, x1, x2, x3, x4, x5, x6, x7),                      \
                       row_block(q3, r3, x0, x1, x2, x3, x4, x5, x6, x7));                     \
    }

void repacked_rows() {
    const uint group = gl_WorkGroupID.x + gl_WorkGroupID.z * gl_NumWorkGroups.x;
    const uint base = group * gl_WorkGroupSize.x * 4u + gl_LocalInvocationID.x;
    const uint tok0 = gl_WorkGroupID.y * TOKENS;
    const uint blocks = p.k / 32u;
    const uint rb = (blocks * 32u + (4u * blocks + 15u) / 16u * 16u) / 16u;
    const uint wg = gl_WorkGroupSize.x;
    const uint w0 = p.w_offset / 16u;
    // Each row's first texel; lanes past the last row compute the last row again.
    const uint at0 = w0 + min(base, p.m - 1u) * rb;
    const uint at1 = w0 + min(base + wg, p.m - 1u) * rb;
    const uint at2 = w0 + min(base + 2u * wg, p.m - 1u) * rb;
    const uint at3 = w0 + min(base + 3u * wg, p.m - 1u) * rb;
    const uint scales = blocks * 2u;  // texels of quants before a row's scales
    uvec4 xb;  // each token's first element; tokens past n repeat the last (TOKENS <= 4)
    for (uint t = 0; t < 4u; ++t) xb[t] = p.x_offset + min(tok0 + t, p.n - 1u) * p.x_stride;
    vec4 acc0 = vec4(0.0), acc1 = vec4(0.0), acc2 = vec4(0.0), acc3 = vec4(0.0);
    for (uint b = 0; b < blocks; ++b) {
#define MLLM_TOKEN(acc, t)                                                                     \
    {                                                                                          \
        const uint xi = xb[t] + 32u * b;                                                      \
        const vec4 x0 = x_vec(xi), x1 = x_vec(xi + 4u), x2 = x_vec(xi + 8u);                   \
        const vec4 x3 = x_vec(xi + 12u), x4 = x_vec(xi + 16u), x5 = x_vec(xi + 20u);           \
        const vec4 x6 = x_vec(xi + 24u), x7 = x_vec(xi + 28u);                                 \
        vec4 part;                                                                             \
        MLLM_QUAD(part, at0, at1, at2, at3)                                                    \
        acc += part;                                                                           \
    }
        MLLM_TOKEN(acc0, 0)
        if (TOKENS > 1u) MLLM_TOKEN(acc1, 1)
        if (TOKENS > 2u) MLLM_TOKEN(acc2, 2)
        if (TOKENS > 3u) MLLM_TOKEN(acc3, 3)
#undef MLLM_TOKEN
    }
    const mat4 acc = mat4(acc0, acc1, acc2, acc3);  // acc[t][j]: row j of token t
    for (uint j = 0; j < 4u; ++j) {
        const uint row = base + j * wg;
        if (row >= p.m) break;
        const float bv = p.has_bias != 0u ? bias[p.bias_offset + row] : 0.0;
        for (uint t = 0; t < TOKENS; ++t)
            if (tok0 + t < p.n) y[y_at(row, tok0 + t)] = acc[t][j] + bv;
    }
}
#undef MLLM_QUAD

#elif defined(REPACKED) && defined(WEIGHT_Q4_0)
// Q4_0 on CPU devices, in integer arithmetic. llvmpipe runs an invocation per SIMD lane, 32 bits
// each; dequantizing a weight to float costs a shift, a mask, a conversion, a subtraction and a
// multiply-add per lane. Here the input is quantized to the CPU backend's Q8_0 blocks and the
// rows come in pairs (vk_matmul.h), a 32-bit word holding four columns of both rows with their
// nibbles 16 bits apart: masking out one column of the pair (w >> 4j & 0x000f000f) and
// multiplying it by the column's input quant gives both rows' products in one multiply. 16
// columns add up in a word before a half could overflow (|sum| <= 16 * 15 * 127 < 2^15); the
// halves are then split, and sum (q - 8) x = sum q x - 8 sum x, in integers, exactly as the CPU's
// integer dot product. Each invocation computes four pairs (ROWS is 8), for up to 4 tokens,
// spelled out as in repacked_rows above.
const uint FORMAT = 0u;  // quant8.glsl: Q8_0
#include "quant8.glsl"

// Both rows' sums over one word's four columns against their input quants q.
int pair_word(uint w, ivec4 q) {
    const uint column = 0x000f000fu;
    return int(w & column) * q.x + int((w >> 4) & column) * q.y + int((w >> 8) & column) * q.z +
           int((w >> 12) & column) * q.w;
}

// Both rows' sums of q x over a block, from its texels a (columns 0-15) and b (16-31).
ivec2 pair_block(uvec4 a, uvec4 b, ivec4 q0, ivec4 q1, ivec4 q2, ivec4 q3, ivec4 q4, ivec4 q5,
                 ivec4 q6, ivec4 q7) {
    const int sa = pair_word(a.x, q0) + pair_word(a.y, q1) + pair_word(a.z, q2) + pair_word(a.w, q3);
    const int sb = pair_word(b.x, q4) + pair_word(b.y, q5) + pair_word(b.z, q6) + pair_word(b.w, q7);
    const int la = bitfieldExtract(sa, 0, 16), lb = bitfieldExtract(sb, 0, 16);
    return ivec2(la + lb, ((sa - la) >> 16) + ((sb - lb) >> 16));
}

#if defined(NORM_INPUT)
// 1 / sqrt(mean(x^2) + eps) of token `tok`'s row, as rms_norm.comp computes it, from the
// partial sums of squares the kernel that wrote the row left.
float norm_scale(uint tok) {
    float sum = 0.0;
    const uint at = p.partial_offset + tok * p.partial_stride;
    for (uint i = 0; i < p.partial_count; ++i) sum += partials_in[at + i];
    return 1.0 / sqrt(sum / float(p.k) + p.eps);
}
#endif

void paired_rows() {
    const uint group = gl_WorkGroupID.x + gl_WorkGroupID.z * gl_NumWorkGroups.x;
    const uint wg = gl_WorkGroupSize.x;
    const uint base = group * wg * 4u + gl_LocalInvocationID.x;  // this lane's first pair
    const uint tok0 = gl_WorkGroupID.y * TOKENS;
    const uint blocks = p.k / 32u;
    // Pairs come in groups of 8 (the last one padded), their texels interleaved: texel t of
    // pair 8 g + l is texel (g pt + t) 8 + l, so 8 lanes on consecutive pairs read 128
    // contiguous bytes per fetch.
    const uint last = (p.m + 15u) / 16u * 8u - 1u;
    const uint pt = 2u * blocks + (blocks + 1u) / 2u;  // texels per pair
    const uint w0 = p.w_offset / 16u;
    // Each pair's first texel; lanes past the last group compute its last pair again.
#define MLLM_PAIR_AT(pair) (w0 + ((pair) >> 3) * pt * 8u + ((pair) & 7u))
    const uint at0 = MLLM_PAIR_AT(min(base, last));
    const uint at1 = MLLM_PAIR_AT(min(base + wg, last));
    const uint at2 = MLLM_PAIR_AT(min(base + 2u * wg, last));
    const uint at3 = MLLM_PAIR_AT(min(base + 3u * wg, last));
#undef MLLM_PAIR_AT
    const uint scales = 16u * blocks;  // texels of quants before a pair's scales, interleaved
    uvec4 xb;  // each token's first element; tokens past n repeat the last (TOKENS <= 4)
    for (uint t = 0; t < 4u; ++t) xb[t] = p.x_offset + min(tok0 + t, p.n - 1u) * p.x_stride;
#if defined(NORM_INPUT)
    const float ns0 = norm_scale(min(tok0, p.n - 1u));
    const float ns1 = TOKENS > 1u ? norm_scale(min(tok0 + 1u, p.n - 1u)) : 0.0;
    const float ns2 = TOKENS > 2u ? norm_scale(min(tok0 + 2u, p.n - 1u)) : 0.0;
    const float ns3 = TOKENS > 3u ? norm_scale(min(tok0 + 3u, p.n - 1u)) : 0.0;
#endif
    // Per token, pairs 0-1 (rows 0-3 of the four) and pairs 2-3.
    vec4 lo0 = vec4(0.0), lo1 = vec4(0.0), lo2 = vec4(0.0), lo3 = vec4(0.0);
    vec4 hi0 = vec4(0.0), hi1 = vec4(0.0), hi2 = vec4(0.0), hi3 = vec4(0.0);
    for (uint b = 0; b < blocks; ++b) {
        const uint qi = 16u * b, si = scales + 8u * (b / 2u);
        const uvec4 a0 = weight_quad(at0 + qi), b0 = weight_quad(at0 + qi + 8u);
        const uvec4 a1 = weight_quad(at1 + qi), b1 = weight_quad(at1 + qi + 8u);
        const uvec4 a2 = weight_quad(at2 + qi), b2 = weight_quad(at2 + qi + 8u);
        const uvec4 a3 = weight_quad(at3 + qi), b3 = weight_quad(at3 + qi + 8u);
        const vec4 s0 = uintBitsToFloat(weight_quad(at0 + si));
        const vec4 s1 = uintBitsToFloat(weight_quad(at1 + si));
        const vec4 s2 = uintBitsToFloat(weight_quad(at2 + si));
        const vec4 s3 = uintBitsToFloat(weight_quad(at3 + si));
        // The pairs' row scales of this block: the first two components of a scale texel, or
        // the last two for odd blocks.
        const bool odd = (b & 1u) != 0u;
        const vec4 d01 = odd ? vec4(s0.zw, s1.zw) : vec4(s0.xy, s1.xy);
        const vec4 d23 = odd ? vec4(s2.zw, s3.zw) : vec4(s2.xy, s3.xy);
#if defined(NORM_INPUT)
        // A token's block of input: its quants q0..q7 (4 columns each), and its scale dx times
        // the token's norm scale ns.
#define MLLM_BLOCK_QUANTS(t, ns)                                                               \
    const uint xt = (xb[t] + 32u * b) >> 2; /* the block's first texel */                      \
    const ivec4 q0 = floatBitsToInt(x4_load(xt)), q1 = floatBitsToInt(x4_load(xt + 1u));       \
    const ivec4 q2 = floatBitsToInt(x4_load(xt + 2u)), q3 = floatBitsToInt(x4_load(xt + 3u));  \
    const ivec4 q4 = floatBitsToInt(x4_load(xt + 4u)), q5 = floatBitsToInt(x4_load(xt + 5u));  \
    const ivec4 q6 = floatBitsToInt(x4_load(xt + 6u)), q7 = floatBitsToInt(x4_load(xt + 7u));  \
    const float dx = x_load(xb[t] + p.k + b) * ns;
#else
        // A token's block of input, quantized here to Q8_0 as the CPU backend does (ties to
        // even): its quants q0..q7 (4 columns each) and scale dx.
#define MLLM_BLOCK_QUANTS(t, ns)                                                               \
    const uint xi = xb[t] + 32u * b;                                                          \
    const vec4 x0 = x_vec(xi), x1 = x_vec(xi + 4u), x2 = x_vec(xi + 8u);                       \
    const vec4 x3 = x_vec(xi + 12u), x4 = x_vec(xi + 16u), x5 = x_vec(xi + 20u);               \
    const vec4 x6 = x_vec(xi + 24u), x7 = x_vec(xi + 28u);                                     \
    const vec4 m4 = max(max(max(abs(x0), abs(x1)), max(abs(x2), abs(x3))),                     \
                        max(max(abs(x4), abs(x5)), max(abs(x6), abs(x7))));                    \
    float to_quant, dx;                                                                        \
    q8_scales(max(max(m4.x, m4.y), max(m4.z, m4.w)), to_quant, dx);                            \
    const ivec4 q0 = ivec4(roundEven(x0 * to_quant)), q1 = ivec4(roundEven(x1 * to_quant));     \
    const ivec4 q2 = ivec4(roundEven(x2 * to_quant)), q3 = ivec4(roundEven(x3 * to_quant));     \
    const ivec4 q4 = ivec4(roundEven(x4 * to_quant)), q5 = ivec4(roundEven(x5 * to_quant));     \
    const ivec4 q6 = ivec4(roundEven(x6 * to_quant)), q7 = ivec4(roundEven(x7 * to_quant));
#endif
#define MLLM_TOKEN(lo, hi, t, ns)                                                              \
    {                                                                                          \
        MLLM_BLOCK_QUANTS(t, ns)                                                               \
        const ivec4 qs = ((q0 + q1) + (q2 + q3)) + ((q4 + q5) + (q6 + q7));                    \
        const int offset = 8 * ((qs.x + qs.y) + (qs.z + qs.w));                                \
        const ivec2 p0 = pair_block(a0, b0, q0, q1, q2, q3, q4, q5, q6, q7) - offset;          \
        const ivec2 p1 = pair_block(a1, b1, q0, q1, q2, q3, q4, q5, q6, q7) - offset;          \
        const ivec2 p2 = pair_block(a2, b2, q0, q1, q2, q3, q4, q5, q6, q7) - offset;          \
        const ivec2 p3 = pair_block(a3, b3, q0, q1, q2, q3, q4, q5, q6, q7) - offset;          \
        lo += vec4(p0, p1) * (d01 * dx);                                                       \
        hi += vec4(p2, p3) * (d23 * dx);                                                       \
    }
        MLLM_TOKEN(lo0, hi0, 0, ns0)
        if (TOKENS > 1u) MLLM_TOKEN(lo1, hi1, 1, ns1)
        if (TOKENS > 2u) MLLM_TOKEN(lo2, hi2, 2, ns2)
        if (TOKENS > 3u) MLLM_TOKEN(lo3, hi3, 3, ns3)
#undef MLLM_TOKEN
#undef MLLM_BLOCK_QUANTS
    }
    // Row r of pair j (rows 2 (base + j wg) + r): component 2j + r of lo (j < 2) or hi.
    const mat4 lo = mat4(lo0, lo1, lo2, lo3), hi = mat4(hi0, hi1, hi2, hi3);
#if defined(NORM_OUTPUT)
    vec4 squares = vec4(0.0);  // per token
#endif
#if defined(ROPE_STORE)
    // Pair j: rows 2 (base + j wg) and the next, a query pair, a key pair or a value pair (the
    // host keeps the three outputs' boundaries and the heads' size even).
    const uint kv_words = (p.m - p.row2) / 2u;  // a cache row's words
    for (uint j = 0; j < 4u; ++j) {
        const uint row = 2u * (base + j * wg);
        if (row >= p.m) break;
        const vec2 bv = p.has_bias != 0u
                            ? vec2(bias[p.bias_offset + row], bias[p.bias_offset + row + 1u])
                            : vec2(0.0);
        const bool value = row >= p.row2;
        const uint first = value ? p.row2 : row >= p.row1 ? p.row1 : 0u;  // the output's row 0
        for (uint t = 0; t < TOKENS; ++t) {
            if (tok0 + t >= p.n) break;
            const vec4 rows = j < 2u ? lo[t] : hi[t];
            const vec2 v = ((j & 1u) == 0u ? rows.xy : rows.zw) + bv;
            const int position = pos[p.pos_offset + tok0 + t];
            const uint i = (row - first) % p.head_dim / 2u;  // the pair's index in its head
            const vec2 out_v =
                value ? v
                      : rope_rotate(v, rope_cos_sin(rope_angle(position, p.freq_scale,
                                                               p.theta_scale, i)));
            y[y_at(row, tok0 + t)] = out_v.x;
            y[y_at(row + 1u, tok0 + t)] = out_v.y;
            if (row >= p.row1 && position >= 0 && uint(position) < p.n_ctx) {
                const uint word = uint(position) * kv_words + (row - first) / 2u;
                if (value)
                    vc[word] = packHalf2x16(out_v);
                else
                    kc[word] = packHalf2x16(out_v);
            }
        }
    }
    return;
#endif
    if (GATED != 0u) {
        // Pair j's output: silu(gate) * up, as elementwise.comp's SWIGLU computes it.
        for (uint j = 0; j < 4u; ++j) {
            const uint pair = base + j * wg;
            if (2u * pair >= p.m) break;
            for (uint t = 0; t < TOKENS; ++t) {
                if (tok0 + t >= p.n) break;
                const vec4 rows = j < 2u ? lo[t] : hi[t];
                const vec2 gate_up = (j & 1u) == 0u ? rows.xy : rows.zw;
                y[y_at(pair, tok0 + t)] = gate_up.x / (1.0 + exp(-gate_up.x)) * gate_up.y;
            }
        }
        return;
    }
#if defined(NORM_OUTPUT)
    // Per token, the sum times the norm's weight of this lane's 8 rows (0 past the last row).
    mat4 w_lo = mat4(0.0), w_hi = mat4(0.0);
#endif
    for (uint i = 0; i < 8u; ++i) {
        const uint j = i / 2u;
        const uint row = 2u * (base + j * wg) + (i & 1u);
        if (row >= p.m) continue;
        const float bv = p.has_bias != 0u ? bias[p.bias_offset + row] : 0.0;
        for (uint t = 0; t < TOKENS; ++t) {
            if (tok0 + t >= p.n) break;
            const float v = (i < 4u ? lo[t][i] : hi[t][i & 3u]) + bv;
            // With a residual (binding 3 laid out as y), each element is read and written by
            // this invocation alone, so y may be the residual itself.
            const float out_v =
                RESIDUAL != 0u ? bias[p.bias_offset + (tok0 + t) * p.y_stride + row] + v : v;
            y[y_at(row, tok0 + t)] = out_v;
#if defined(NORM_OUTPUT)
            if (i < 4u)
                w_lo[t][i] = out_v * norm_w[row];
            else
                w_hi[t][i & 3u] = out_v * norm_w[row];
            squares[t] += out_v * out_v;
#endif
        }
    }
#if defined(NORM_OUTPUT)
    // The workgroup's 64 rows are two Q8_0 blocks: pairs 0-1 of every lane (w_lo) make the
    // first, pairs 2-3 (w_hi) the second. Each token's blocks are quantized as the kernel
    // reading them would (quant8.glsl's scales, ties to even), one int a quant, the scales after
    // the token's m quants. And each token's sum of squares over the subgroup's rows: the host
    // runs one subgroup a workgroup, so workgroup `group` owns partial `group` of each token.
    const uint block0 = 2u * group;  // this workgroup's first block
    for (uint t = 0; t < TOKENS; ++t) {
        if (tok0 + t >= p.n) break;  // the same for the whole workgroup
        const uint at = p.weighted_offset + (tok0 + t) * p.weighted_stride;
        for (uint h = 0; h < 2u; ++h) {
            const vec4 v = h == 0u ? w_lo[t] : w_hi[t];
            const vec4 a = abs(v);
            const float amax = subgroupMax(max(max(a.x, a.y), max(a.z, a.w)));
            float to_quant, d;
            q8_scales(amax, to_quant, d);
            const ivec4 q = ivec4(roundEven(v * to_quant));
            for (uint c = 0; c < 4u; ++c) {
                const uint row = 2u * (base + (2u * h + c / 2u) * wg) + (c & 1u);
                if (row < p.m) weighted[at + row] = intBitsToFloat(q[c]);
            }
            if (subgroupElect() && 32u * (block0 + h) < p.m) weighted[at + p.m + block0 + h] = d;
        }
        const float total = subgroupAdd(squares[t]);
        if (subgroupElect())
            partials_out[p.partial_offset + (tok0 + t) * p.partial_stride + group] = total;
    }
#endif
}
#endif

void main() {
#if defined(REPACKED) && defined(WEIGHT_Q8_0)
    repacked_rows();
    return;
#elif defined(REPACKED) && defined(WEIGHT_Q4_0)
    paired_rows();
    return;
#endif
    if (ROW_PER_INVOCATION != 0u) {
        row_per_invocation();
        return;
    }
    // Row groups beyond the dispatch's x limit continue in z.
    const uint group = gl_WorkGroupID.x + gl_WorkGroupID.z * gl_NumWorkGroups.x;
    const uint row0 = group * ROWS;
    if (row0 >= p.m) return;  // the whole workgroup
    const uint tok0 = gl_WorkGroupID.y * TOKENS;
    const uint tid = gl_LocalInvocationID.x;

    float acc[ROWS * TOKENS];
    for (uint i = 0; i < ROWS * TOKENS; ++i) acc[i] = 0.0;

    const uint chunks = p.k / 8u;
    for (uint r = 0; r < ROWS; ++r) {
        const uint row = row0 + r;
        if (row >= p.m) break;
        const uint row_base = p.w_offset + row * row_bytes(p.k);
        for (uint c = tid; c < chunks; c += gl_WorkGroupSize.x) {
            vec4 w0, w1;
            uint i0, i1;
            dequant_chunk(row_base, c, w0, w1);
            chunk_index(c, i0, i1);
            for (uint t = 0; t < TOKENS; ++t) {
                if (tok0 + t >= p.n) break;
                const uint xb = p.x_offset + (tok0 + t) * p.x_stride;
                acc[r * TOKENS + t] += dot(w0, load_x4(xb + i0)) + dot(w1, load_x4(xb + i1));
            }
        }
#if defined(FLOAT_WEIGHTS)
        // Float rows need not be whole chunks: the last k % 8 elements one by one.
        for (uint i = chunks * 8u + tid; i < p.k; i += gl_WorkGroupSize.x) {
            const float wv = dequant_one(row_base, i);
            for (uint t = 0; t < TOKENS; ++t) {
                if (tok0 + t >= p.n) break;
                acc[r * TOKENS + t] +=
                    wv * round_activation(x_load(p.x_offset + (tok0 + t) * p.x_stride + i));
            }
        }
#endif
    }

    for (uint r = 0; r < ROWS; ++r) {
        const uint row = row0 + r;
        const float b = (p.has_bias != 0u && row < p.m) ? bias[p.bias_offset + row] : 0.0;
        for (uint t = 0; t < TOKENS; ++t) {
            const uint tok = tok0 + t;
            float sum = subgroupAdd(acc[r * TOKENS + t]);
            if (gl_NumSubgroups > 1u) {
                if (subgroupElect()) partial[gl_SubgroupID] = sum;
                barrier();
                sum = 0.0;
                for (uint i = 0; i < gl_NumSubgroups; ++i) sum += partial[i];
                barrier();  // partial is reused for the next output
            }
            if (tid == 0u && row < p.m && tok < p.n)
                y[y_at(row, tok)] = sum + b;
        }
    }
}
