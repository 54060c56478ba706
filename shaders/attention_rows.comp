#version 450
// Fused attention for CPU Vulkan devices (lavapipe): the same causal GQA attention as
// attention.comp, but with no barriers and no shared memory, which llvmpipe emulates slowly.
// Each invocation takes TOKENS neighbouring tokens times HEADS query heads of one KV head, and
// walks their keys once with an online softmax per query: a running maximum, a running sum and
// an accumulator of HEAD_DIM floats rescaled as the maximum grows. llvmpipe turns every load
// whose index differs per lane into a loop over the lanes, so loads are what costs: each one
// fetches 16 bytes (8 halfs) where HEAD_DIM allows and serves TOKENS * HEADS queries. Tokens run
// along x, so the SIMD lanes of a batch read the same cache rows over almost the same number of
// keys. The fixed-count loops are unrolled so that the per-query arrays live in registers
// instead of memory indexed per lane.
// ROUND: the output also written rounded to Q8_0 blocks (quant8.glsl, FORMAT 0) for the matmul
// after attention, bit for bit as round_activations.comp rounds it, saving its dispatch; each
// invocation holds whole heads, so HEAD_DIM must be a multiple of the 32-element block.
#extension GL_EXT_control_flow_attributes : require
#extension GL_GOOGLE_include_directive : require

layout(local_size_x_id = 0) in;
layout(constant_id = 1) const uint HEAD_DIM = 64;
// Query heads per invocation, all of one KV head: each cache load serves all of them.
layout(constant_id = 2) const uint HEADS = 1;
// Tokens per invocation: neighbouring tokens see (almost) the same keys, so each load serves
// TOKENS * HEADS queries.
layout(constant_id = 3) const uint TOKENS = 1;
const uint QUERIES = TOKENS * HEADS;
// 1: invocations run along (token, head group), head groups fastest, instead of tokens along x
// and head groups along y. For decode: a single token's heads then fill the SIMD lanes (with
// tokens along x, one lane of each workgroup worked and the others idled).
layout(constant_id = 4) const uint HEAD_LANES = 0;

layout(std430, set = 0, binding = 0) readonly buffer Q { float q[]; };
layout(std430, set = 0, binding = 1) readonly buffer Positions { int pos[]; };
#if defined(TEXEL_CACHE)
// The caches as uniform texel buffers of 16-byte texels (R32G32B32A32_UINT): llvmpipe gathers
// texels in straight-line code, where a storage-buffer load loops over the lanes.
layout(set = 0, binding = 2) uniform usamplerBuffer k_texels;
layout(set = 0, binding = 3) uniform usamplerBuffer v_texels;
uvec4 k_quad(uint i) { return texelFetch(k_texels, int(i)); }
uvec4 v_quad(uint i) { return texelFetch(v_texels, int(i)); }
uint k_word(uint i) { return k_quad(i >> 2)[i & 3u]; }
uint v_word(uint i) { return v_quad(i >> 2)[i & 3u]; }
#else
// Each cache is bound once and read through two views: 8 halfs or 2 halfs per load.
layout(std430, set = 0, binding = 2) readonly buffer KCache { uint kc[]; };
layout(std430, set = 0, binding = 2) readonly buffer KCache4 { uvec4 kc4[]; };
layout(std430, set = 0, binding = 3) readonly buffer VCache { uint vc[]; };
layout(std430, set = 0, binding = 3) readonly buffer VCache4 { uvec4 vc4[]; };
uvec4 k_quad(uint i) { return kc4[i]; }
uvec4 v_quad(uint i) { return vc4[i]; }
uint k_word(uint i) { return kc[i]; }
uint v_word(uint i) { return vc[i]; }
#endif
layout(std430, set = 0, binding = 4) writeonly buffer Out { float o[]; };
#if defined(ROUND)
const uint FORMAT = 0u;
#include "quant8.glsl"
layout(std430, set = 0, binding = 5) writeonly buffer Rounded { float r[]; };
#endif

layout(push_constant) uniform Params {
    uint n_head;
    uint n_head_kv;
    uint width;  // cache row: n_head_kv * HEAD_DIM halfs
    uint n_ctx;
    uint q_offset;  // floats
    uint o_offset;
    uint pos_offset;  // ints
    float scale;
    uint rows;  // query tokens
    uint r_offset;  // ROUND: the rounded copy (floats), laid out as the output
} p;

// A head of a multiple of 8 halfs starts every cache row's slice on a 16-byte boundary.
const bool WIDE = HEAD_DIM % 8u == 0u;
const float NEG_HUGE = -3.0e38;

void main() {
    const uint groups = p.n_head / HEADS;  // head groups
    const uint id = gl_GlobalInvocationID.x;
    const uint token0 = (HEAD_LANES != 0u ? id / groups : id) * TOKENS;
    const uint head0 = (HEAD_LANES != 0u ? id % groups : gl_WorkGroupID.y) * HEADS;
    if (token0 >= p.rows) return;
    const uint kv_head = head0 / (p.n_head / p.n_head_kv);
    const uint words = p.width / 2u;                // per cache row
    const uint first = kv_head * (HEAD_DIM / 2u);  // this head's words into a row

    // Query k is head head0 + k % HEADS of token token0 + k / HEADS. The scale is folded into
    // the query once instead of into every score.
    float qv[QUERIES * HEAD_DIM];
    float acc[QUERIES * HEAD_DIM];
    float running_max[QUERIES];
    float running_sum[QUERIES];
    uint n_keys[QUERIES];
    uint most_keys = 0;
    [[unroll]] for (uint t = 0; t < TOKENS; ++t) {
        // Tokens past the last row see no keys and write nothing.
        const uint token = min(token0 + t, p.rows - 1u);
        const uint n = token0 + t < p.rows
            ? min(uint(max(pos[p.pos_offset + token], 0)) + 1u, p.n_ctx) : 0u;
        most_keys = max(most_keys, n);
        [[unroll]] for (uint h = 0; h < HEADS; ++h) {
            const uint k = t * HEADS + h;
            const uint q_base = p.q_offset + (token * p.n_head + head0 + h) * HEAD_DIM;
            [[unroll]] for (uint d = 0; d < HEAD_DIM; ++d) {
                qv[k * HEAD_DIM + d] = q[q_base + d] * p.scale;
                acc[k * HEAD_DIM + d] = 0.0;
            }
            n_keys[k] = n;
            running_max[k] = NEG_HUGE;
            running_sum[k] = 0.0;
        }
    }

    for (uint j = 0, row = first; j < most_keys; ++j, row += words) {
        float s[QUERIES];
        [[unroll]] for (uint k = 0; k < QUERIES; ++k) s[k] = 0.0;
        if (WIDE) {
            [[unroll]] for (uint i = 0; i < HEAD_DIM / 8u; ++i) {
                const uvec4 w = k_quad(row / 4u + i);
                const vec2 a = unpackHalf2x16(w.x), b = unpackHalf2x16(w.y);
                const vec2 c = unpackHalf2x16(w.z), d = unpackHalf2x16(w.w);
                [[unroll]] for (uint k = 0; k < QUERIES; ++k) {
                    const uint at = k * HEAD_DIM + 8u * i;
                    s[k] += qv[at] * a.x + qv[at + 1u] * a.y + qv[at + 2u] * b.x +
                            qv[at + 3u] * b.y + qv[at + 4u] * c.x + qv[at + 5u] * c.y +
                            qv[at + 6u] * d.x + qv[at + 7u] * d.y;
                }
            }
        } else {
            [[unroll]] for (uint i = 0; i < HEAD_DIM / 2u; ++i) {
                const vec2 a = unpackHalf2x16(k_word(row + i));
                [[unroll]] for (uint k = 0; k < QUERIES; ++k)
                    s[k] += qv[k * HEAD_DIM + 2u * i] * a.x + qv[k * HEAD_DIM + 2u * i + 1u] * a.y;
            }
        }
        // Branch-free rescaling: SIMD lanes would take both sides of a branch anyway. A key
        // past a query's causal limit leaves it unchanged.
        float correction[QUERIES], e[QUERIES];
        [[unroll]] for (uint k = 0; k < QUERIES; ++k) {
            const bool seen = j < n_keys[k];
            const float new_max = seen ? max(running_max[k], s[k]) : running_max[k];
            correction[k] = exp(running_max[k] - new_max);
            e[k] = seen ? exp(s[k] - new_max) : 0.0;
            running_sum[k] = running_sum[k] * correction[k] + e[k];
            running_max[k] = new_max;
        }
        if (WIDE) {
            [[unroll]] for (uint i = 0; i < HEAD_DIM / 8u; ++i) {
                const uvec4 w = v_quad(row / 4u + i);
                const vec2 a = unpackHalf2x16(w.x), b = unpackHalf2x16(w.y);
                const vec2 c = unpackHalf2x16(w.z), d = unpackHalf2x16(w.w);
                [[unroll]] for (uint k = 0; k < QUERIES; ++k) {
                    const uint at = k * HEAD_DIM + 8u * i;
                    acc[at] = acc[at] * correction[k] + e[k] * a.x;
                    acc[at + 1u] = acc[at + 1u] * correction[k] + e[k] * a.y;
                    acc[at + 2u] = acc[at + 2u] * correction[k] + e[k] * b.x;
                    acc[at + 3u] = acc[at + 3u] * correction[k] + e[k] * b.y;
                    acc[at + 4u] = acc[at + 4u] * correction[k] + e[k] * c.x;
                    acc[at + 5u] = acc[at + 5u] * correction[k] + e[k] * c.y;
                    acc[at + 6u] = acc[at + 6u] * correction[k] + e[k] * d.x;
                    acc[at + 7u] = acc[at + 7u] * correction[k] + e[k] * d.y;
                }
            }
        } else {
            [[unroll]] for (uint i = 0; i < HEAD_DIM / 2u; ++i) {
                const vec2 a = unpackHalf2x16(v_word(row + i));
                [[unroll]] for (uint k = 0; k < QUERIES; ++k) {
                    const uint at = k * HEAD_DIM + 2u * i;
                    acc[at] = acc[at] * correction[k] + e[k] * a.x;
                    acc[at + 1u] = acc[at + 1u] * correction[k] + e[k] * a.y;
                }
            }
        }
    }

    [[unroll]] for (uint k = 0; k < QUERIES; ++k) {
        const uint token = token0 + k / HEADS;
        if (token >= p.rows) break;
        const uint o_base = p.o_offset + (token * p.n_head + head0 + k % HEADS) * HEAD_DIM;
        const float inv = 1.0 / running_sum[k];
        [[unroll]] for (uint d = 0; d < HEAD_DIM; ++d) o[o_base + d] = acc[k * HEAD_DIM + d] * inv;
#if defined(ROUND)
        const uint r_base = o_base - p.o_offset + p.r_offset;
        [[unroll]] for (uint blk = 0; blk < HEAD_DIM / Q8_BLOCK; ++blk) {
            const uint at = k * HEAD_DIM + blk * Q8_BLOCK;
            float largest = 0.0;
            [[unroll]] for (uint j = 0; j < Q8_BLOCK; ++j) {
                const float v = acc[at + j] * inv;
                if (abs(v) > abs(largest)) largest = v;
            }
            float to_quant, d;
            q8_scales(largest, to_quant, d);
            [[unroll]] for (uint j = 0; j < Q8_BLOCK; ++j)
                r[r_base + blk * Q8_BLOCK + j] = q8_quant(acc[at + j] * inv, to_quant) * d;
        }
#endif
    }
}
