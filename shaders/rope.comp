#version 450
#extension GL_GOOGLE_include_directive : require
// Rotary position embedding over the heads of x [rows, n_head * head_dim]: one invocation per
// rotated pair. MODE 0 (llama) rotates neighbours (2i, 2i+1); MODE 1 (NeoX: qwen2, phi)
// rotates (i, i + head_dim/2). theta_i = position * freq_scale * theta_scale^i, built by
// repeated multiplication as the CPU backend and ggml do, so the angles round the same way.
// PAIR: a second tensor x2 -> y2 (the keys, n_head2 heads) in the same dispatch, its pairs
// after the first's.
// STORE (with PAIR): the dispatch also appends this step's keys and values to the layer's f16
// caches, as kv_store.comp does (row r at cache row positions[r]): the keys part then runs one
// invocation per cache word (two neighbouring elements, each rotated with its partner), and
// the values part, after it, one per value word.
layout(local_size_x_id = 0) in;
layout(constant_id = 1) const uint MODE = 0;

layout(std430, set = 0, binding = 0) readonly buffer X { float x[]; };
layout(std430, set = 0, binding = 1) readonly buffer Positions { int pos[]; };
layout(std430, set = 0, binding = 2) writeonly buffer Y { float y[]; };
#if defined(PAIR)
layout(std430, set = 0, binding = 3) readonly buffer X2 { float x2[]; };
layout(std430, set = 0, binding = 4) writeonly buffer Y2 { float y2[]; };
#endif
#if defined(STORE)
layout(std430, set = 0, binding = 5) readonly buffer V { float v[]; };
layout(std430, set = 0, binding = 6) writeonly buffer KCache { uint kc[]; };
layout(std430, set = 0, binding = 7) writeonly buffer VCache { uint vc[]; };
#endif

layout(push_constant) uniform Params {
    uint rows;
    uint n_head;
    uint head_dim;
    uint x_offset;  // floats
    uint y_offset;
    uint pos_offset;  // ints
    float freq_scale;
    float theta_scale;
    uint n_head2;  // PAIR: the second tensor's heads and offsets (floats)
    uint x2_offset;
    uint y2_offset;
    uint v_offset;  // STORE: the values (floats), and the caches' rows
    uint n_ctx;
} p;

#include "rope.glsl"

// theta_i for the token in `row`; reduced before sin and cos.
float angle(uint row, uint i) {
    return rope_angle(pos[p.pos_offset + row], p.freq_scale, p.theta_scale, i);
}

#if defined(STORE)
// Element e (of the keys' row `row`) rotated: with its partner, by its pair's angle.
float rotated_key(uint row, uint e, uint base) {
    const uint half_dim = p.head_dim / 2u;
    const uint l = e % p.head_dim;
    const bool first = MODE == 0u ? (l & 1u) == 0u : l < half_dim;
    const uint i = MODE == 0u ? l / 2u : l % half_dim;
    const uint partner = MODE == 0u ? (l ^ 1u) : (first ? l + half_dim : l - half_dim);
    const uint head = base + e - l;  // the head's first element
    const float a = x2[p.x2_offset + head + (first ? l : partner)];
    const float b = x2[p.x2_offset + head + (first ? partner : l)];
    const vec2 rotated = rope_rotate(vec2(a, b), rope_cos_sin(angle(row, i)));
    return first ? rotated.x : rotated.y;
}

// The keys' and values' part: invocation id (counted from the first part's end) handles word
// w of a row, elements 2w and 2w + 1.
void store(uint id) {
    const uint words = p.n_head2 * p.head_dim / 2u;
    const bool value = id >= p.rows * words;
    if (value) id -= p.rows * words;
    if (id >= p.rows * words) return;
    const uint row = id / words;
    const uint w = id % words;
    const uint base = row * words * 2u;
    const int position = pos[p.pos_offset + row];
    const bool cached = position >= 0 && uint(position) < p.n_ctx;
    const uint dst = uint(position) * words + w;
    if (value) {
        const vec2 pair = vec2(v[p.v_offset + base + 2u * w], v[p.v_offset + base + 2u * w + 1u]);
        if (cached) vc[dst] = packHalf2x16(pair);
        return;
    }
    const vec2 pair = vec2(rotated_key(row, 2u * w, base), rotated_key(row, 2u * w + 1u, base));
    y2[p.y2_offset + base + 2u * w] = pair.x;
    y2[p.y2_offset + base + 2u * w + 1u] = pair.y;
    if (cached) kc[dst] = packHalf2x16(pair);
}
#endif

void main() {
    const uint half_dim = p.head_dim / 2u;
    uint n_head = p.n_head;
    uint id = gl_GlobalInvocationID.x + gl_GlobalInvocationID.y * gl_NumWorkGroups.x * gl_WorkGroupSize.x;
    bool second = false;
#if defined(STORE)
    if (id >= p.rows * p.n_head * half_dim) {
        store(id - p.rows * p.n_head * half_dim);
        return;
    }
#elif defined(PAIR)
    if (id >= p.rows * p.n_head * half_dim) {
        id -= p.rows * p.n_head * half_dim;
        n_head = p.n_head2;
        second = true;
    }
#endif
    const uint pairs_per_row = n_head * half_dim;
    if (id >= p.rows * pairs_per_row) return;
    const uint row = id / pairs_per_row;
    const uint head = (id % pairs_per_row) / half_dim;
    const uint i = id % half_dim;

    const vec2 cs = rope_cos_sin(angle(row, i));
    const uint base = row * n_head * p.head_dim + head * p.head_dim;
    const uint ia = base + (MODE == 0u ? 2u * i : i);
    const uint ib = base + (MODE == 0u ? 2u * i + 1u : i + half_dim);
    if (!second) {
        const vec2 r = rope_rotate(vec2(x[p.x_offset + ia], x[p.x_offset + ib]), cs);
        y[p.y_offset + ia] = r.x;
        y[p.y_offset + ib] = r.y;
    }
#if defined(PAIR)
    else {
        const vec2 r = rope_rotate(vec2(x2[p.x2_offset + ia], x2[p.x2_offset + ib]), cs);
        y2[p.y2_offset + ia] = r.x;
        y2[p.y2_offset + ib] = r.y;
    }
#endif
}
