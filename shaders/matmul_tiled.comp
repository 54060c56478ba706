#version 450
// Prefill GEMM on GPUs: y[t, r] = sum_i W[r, i] * x[t, i] (+ bias[r]) for many tokens, with W
// [m, k] in its GGUF layout (one weight type per compiled variant, as matmul.comp) and x, y f32.
//
// A workgroup of 256 threads computes a tile of BM = 32 weight rows by BN = 32 tokens. For each
// step of BK = 128 elements it dequantizes the weight tile once into shared memory (each thread
// two chunks of 8 elements) and copies the activation tile beside it, so a weight is read from
// memory once per 32 tokens instead of once per 4; then every thread accumulates a 2 x 2 block
// of outputs from shared memory. 16 consecutive chunks cover 128 consecutive elements in every
// GGUF layout (dequant.glsl's chunk_index): whole blocks for the 32-element types, two 64-element
// runs of a K-quant super-block, half a Q6_K super-block. Rows, tokens and a last partial k step
// (k = 576 is 4.5 steps) are guarded, so any shape works. The host uses the same push constants
// and bindings as matmul.comp, and picks this kernel for long prefills on GPUs (vk_matmul.cpp).
#extension GL_GOOGLE_include_directive : require

layout(local_size_x_id = 0) in;  // 256: the host checks the device allows it

// Binding 0, the weights: declared by weights.glsl.
layout(std430, set = 0, binding = 1) readonly buffer Input { float x[]; };
layout(std430, set = 0, binding = 1) readonly buffer Input4 { vec4 x4[]; };
layout(std430, set = 0, binding = 2) writeonly buffer Output { float y[]; };
layout(std430, set = 0, binding = 3) readonly buffer Bias { float bias[]; };

#include "matmul_params.glsl"

#include "weights.glsl"
#include "dequant.glsl"

const uint BM = 32u;
const uint BN = 32u;
const uint BK = 128u;
const uint THREADS = 256u;

shared float ws[BK * BM];  // ws[i * BM + r]: element i of the step, row r of the tile
shared float xs[BK * BN];  // xs[i * BN + t]

void main() {
    // Row tiles beyond the dispatch's x limit continue in z.
    const uint row0 = (gl_WorkGroupID.x + gl_WorkGroupID.z * gl_NumWorkGroups.x) * BM;
    if (row0 >= p.m) return;  // the whole workgroup
    const uint tok0 = gl_WorkGroupID.y * BN;
    const uint tid = gl_LocalInvocationID.x;
    const uint tr = tid % 16u;  // this thread's rows tr and tr + 16, tokens tt and tt + 16
    const uint tt = tid / 16u;
    const uint chunks = p.k / 8u;
    const bool aligned_x = ((p.x_offset | p.x_stride) & 3u) == 0u;

    float acc00 = 0.0, acc01 = 0.0, acc10 = 0.0, acc11 = 0.0;
    for (uint k0 = 0u; k0 < p.k; k0 += BK) {
        // The weight tile: 32 rows x 16 chunks, two per thread; chunks past the row are zeros.
        for (uint q = tid; q < BM * (BK / 8u); q += THREADS) {
            const uint r = q / (BK / 8u);
            const uint c = k0 / 8u + q % (BK / 8u);
            uint i0, i1;
            chunk_index(c, i0, i1);
            vec4 w0 = vec4(0.0), w1 = vec4(0.0);
            if (row0 + r < p.m && c < chunks)
                dequant_chunk(p.w_offset + (row0 + r) * row_bytes(p.k), c, w0, w1);
            for (uint e = 0u; e < 4u; ++e) {
                ws[(i0 - k0 + e) * BM + r] = w0[e];
                ws[(i1 - k0 + e) * BM + r] = w1[e];
            }
        }
        // The activation tile: 32 tokens x 128 elements, 4 consecutive per load.
        for (uint q = tid; q < BN * (BK / 4u); q += THREADS) {
            const uint t = q / (BK / 4u);
            const uint i = 4u * (q % (BK / 4u));
            vec4 v = vec4(0.0);
            if (tok0 + t < p.n && k0 + i < p.k) {
                const uint at = p.x_offset + (tok0 + t) * p.x_stride + k0 + i;
                v = round_activation(aligned_x ? x4[at >> 2]
                                               : vec4(x[at], x[at + 1u], x[at + 2u], x[at + 3u]));
            }
            for (uint e = 0u; e < 4u; ++e) xs[(i + e) * BN + t] = v[e];
        }
        barrier();
        // Each step sums into its own partials, added to the totals once: rounding error grows
        // with 128 + k / 128 terms instead of k.
        float s00 = 0.0, s01 = 0.0, s10 = 0.0, s11 = 0.0;
        for (uint i = 0u; i < BK; ++i) {
            const float a0 = ws[i * BM + tr], a1 = ws[i * BM + tr + 16u];
            const float b0 = xs[i * BN + tt], b1 = xs[i * BN + tt + 16u];
            s00 += a0 * b0;
            s01 += a0 * b1;
            s10 += a1 * b0;
            s11 += a1 * b1;
        }
        acc00 += s00;
        acc01 += s01;
        acc10 += s10;
        acc11 += s11;
        barrier();  // the tiles are overwritten next step
    }

    const float accs[4] = float[4](acc00, acc01, acc10, acc11);
    for (uint j = 0u; j < 4u; ++j) {
        const uint row = row0 + tr + 16u * (j / 2u);
        const uint tok = tok0 + tt + 16u * (j % 2u);
        if (row >= p.m || tok >= p.n) continue;
        const float b = p.has_bias != 0u ? bias[p.bias_offset + row] : 0.0;
        y[y_at(row, tok)] = accs[j] + b;
    }
}
