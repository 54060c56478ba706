#version 450
// Fused attention over one layer's f16 KV cache: scores, online softmax and the weighted sum of
// values in one pass, causal, with grouped-query heads. One workgroup per (query head, token):
// keys are taken TILE at a time; each thread scores some keys of the tile into shared memory,
// the workgroup rescales its running maximum and sum, and each thread accumulates its own
// output dimensions. Token t sees cache rows 0 ..= positions[t], so the same recorded command
// buffer serves every step. (Masks beyond causal — window, sinks, block-sparse — are the next
// parameters of this kernel.)
// ROUND: the output also rounded to Q8_0 blocks (a head is whole blocks) for the output
// projection, as round_activations.comp rounds it: floats (FORMAT 0) or packed (FORMAT 2, the
// integer dot-product matmul's input), saving its rounding dispatch.
#extension GL_GOOGLE_include_directive : require
#extension GL_KHR_shader_subgroup_basic : require
#extension GL_KHR_shader_subgroup_arithmetic : require

layout(local_size_x_id = 0) in;
layout(constant_id = 1) const uint HEAD_DIM = 64;
layout(constant_id = 2) const uint TILE = 128;

layout(std430, set = 0, binding = 0) readonly buffer Q { float q[]; };
layout(std430, set = 0, binding = 1) readonly buffer Positions { int pos[]; };
layout(std430, set = 0, binding = 2) readonly buffer KCache { uint kc[]; };
layout(std430, set = 0, binding = 3) readonly buffer VCache { uint vc[]; };
layout(std430, set = 0, binding = 4) writeonly buffer Out { float o[]; };
#if defined(ROUND)
layout(constant_id = 3) const uint FORMAT = 0;
#include "quant8.glsl"
layout(std430, set = 0, binding = 5) writeonly buffer Rounded { float r[]; };
layout(std430, set = 0, binding = 5) writeonly buffer RoundedPacked { uint rq[]; };
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
#if defined(ROUND)
    uint r_offset;  // floats (words when packed) into binding 5
#endif
} p;

const uint DIMS_PER_THREAD = (HEAD_DIM + gl_WorkGroupSize.x - 1) / gl_WorkGroupSize.x;
const float NEG_HUGE = -3.0e38;

shared float qs[HEAD_DIM];
shared float ps[TILE];
shared float red[gl_WorkGroupSize.x];
#if defined(ROUND)
shared float outv[HEAD_DIM];  // the head's output, for rounding whole blocks
#endif

float workgroup_max(float v) {
    v = subgroupMax(v);
    if (subgroupElect()) red[gl_SubgroupID] = v;
    barrier();
    v = red[0];
    for (uint i = 1; i < gl_NumSubgroups; ++i) v = max(v, red[i]);
    barrier();
    return v;
}

float workgroup_sum(float v) {
    v = subgroupAdd(v);
    if (subgroupElect()) red[gl_SubgroupID] = v;
    barrier();
    v = 0.0;
    for (uint i = 0; i < gl_NumSubgroups; ++i) v += red[i];
    barrier();
    return v;
}

void main() {
    const uint head = gl_WorkGroupID.x;
    const uint token = gl_WorkGroupID.y;
    const uint tid = gl_LocalInvocationID.x;
    const uint kv_head = head / (p.n_head / p.n_head_kv);
    const uint q_base = p.q_offset + (token * p.n_head + head) * HEAD_DIM;
    const uint n_keys = min(uint(max(pos[p.pos_offset + token], 0)) + 1u, p.n_ctx);
    const uint words = p.width / 2u;  // per cache row
    const uint k_head = kv_head * (HEAD_DIM / 2u);  // words into a row
    const uint v_head = kv_head * HEAD_DIM;         // halfs into a row

    for (uint d = tid; d < HEAD_DIM; d += gl_WorkGroupSize.x) qs[d] = q[q_base + d];
    barrier();

    float running_max = NEG_HUGE;
    float running_sum = 0.0;
    float acc[DIMS_PER_THREAD];
    for (uint i = 0; i < DIMS_PER_THREAD; ++i) acc[i] = 0.0;

    for (uint t0 = 0; t0 < n_keys; t0 += TILE) {
        const uint count = min(TILE, n_keys - t0);
        float local_max = NEG_HUGE;
        for (uint j = tid; j < count; j += gl_WorkGroupSize.x) {
            const uint row = (t0 + j) * words + k_head;
            float s = 0.0;
            for (uint d2 = 0; d2 < HEAD_DIM / 2u; ++d2) {
                const vec2 kv = unpackHalf2x16(kc[row + d2]);
                s += qs[2u * d2] * kv.x + qs[2u * d2 + 1u] * kv.y;
            }
            s *= p.scale;
            ps[j] = s;
            local_max = max(local_max, s);
        }
        const float new_max = max(running_max, workgroup_max(local_max));
        const float correction = exp(running_max - new_max);
        float local_sum = 0.0;
        for (uint j = tid; j < count; j += gl_WorkGroupSize.x) {
            const float e = exp(ps[j] - new_max);
            ps[j] = e;
            local_sum += e;
        }
        // The reduction's barrier also publishes every thread's ps to the others.
        running_sum = running_sum * correction + workgroup_sum(local_sum);
        running_max = new_max;
        for (uint i = 0; i < DIMS_PER_THREAD; ++i) {
            const uint d = tid + i * gl_WorkGroupSize.x;
            if (d >= HEAD_DIM) break;
            float a = acc[i] * correction;
            const uint e0 = t0 * p.width + v_head + d;
            for (uint j = 0; j < count; ++j) {
                const uint e = e0 + j * p.width;
                a += ps[j] * unpackHalf2x16(vc[e >> 1])[e & 1u];
            }
            acc[i] = a;
        }
        barrier();  // ps is overwritten by the next tile
    }

    const float inv = 1.0 / running_sum;
    for (uint i = 0; i < DIMS_PER_THREAD; ++i) {
        const uint d = tid + i * gl_WorkGroupSize.x;
        if (d >= HEAD_DIM) break;
        o[p.o_offset + (token * p.n_head + head) * HEAD_DIM + d] = acc[i] * inv;
#if defined(ROUND)
        outv[d] = acc[i] * inv;
#endif
    }
#if defined(ROUND)
    barrier();
    // A thread per block of the head: its element of largest magnitude, then the quants.
    const uint cols = p.n_head * HEAD_DIM;  // the row the blocks belong to
    const uint rb = p.r_offset + token * (FORMAT == 2u ? cols / 4u + cols / Q8_BLOCK : cols);
    for (uint blk = tid; blk < HEAD_DIM / Q8_BLOCK; blk += gl_WorkGroupSize.x) {
        const uint i0 = blk * Q8_BLOCK;
        float largest = 0.0;
        for (uint j = 0; j < Q8_BLOCK; ++j)
            if (abs(outv[i0 + j]) > abs(largest)) largest = outv[i0 + j];
        float to_quant, d;
        q8_scales(largest, to_quant, d);
        const uint c0 = head * HEAD_DIM + i0;  // the block's first column
        if (FORMAT == 2u) {
            for (uint w4 = 0; w4 < Q8_BLOCK / 4u; ++w4) {
                uint word = 0u;
                for (uint e = 0; e < 4u; ++e)
                    word |= (uint(int(q8_quant(outv[i0 + 4u * w4 + e], to_quant))) & 0xffu)
                            << (8u * e);
                rq[rb + c0 / 4u + w4] = word;
            }
            rq[rb + cols / 4u + c0 / Q8_BLOCK] = floatBitsToUint(d);
        } else {
            for (uint j = 0; j < Q8_BLOCK; ++j)
                r[rb + c0 + j] = q8_quant(outv[i0 + j], to_quant) * d;
        }
    }
#endif
}
