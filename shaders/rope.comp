#version 450
// Rotary position embedding over the heads of x [rows, n_head * head_dim]: one invocation per
// rotated pair. MODE 0 (llama) rotates neighbours (2i, 2i+1); MODE 1 (NeoX: qwen2, phi)
// rotates (i, i + head_dim/2). theta_i = position * freq_scale * theta_scale^i, built by
// repeated multiplication as the CPU backend and ggml do, so the angles round the same way.
// PAIR: a second tensor x2 -> y2 (the keys, n_head2 heads) in the same dispatch, its pairs
// after the first's.
layout(local_size_x_id = 0) in;
layout(constant_id = 1) const uint MODE = 0;

layout(std430, set = 0, binding = 0) readonly buffer X { float x[]; };
layout(std430, set = 0, binding = 1) readonly buffer Positions { int pos[]; };
layout(std430, set = 0, binding = 2) writeonly buffer Y { float y[]; };
#if defined(PAIR)
layout(std430, set = 0, binding = 3) readonly buffer X2 { float x2[]; };
layout(std430, set = 0, binding = 4) writeonly buffer Y2 { float y2[]; };
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
} p;

void main() {
    const uint half_dim = p.head_dim / 2u;
    uint n_head = p.n_head;
    uint id = gl_GlobalInvocationID.x + gl_GlobalInvocationID.y * gl_NumWorkGroups.x * gl_WorkGroupSize.x;
    bool second = false;
#if defined(PAIR)
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

    float theta = float(pos[p.pos_offset + row]) * p.freq_scale;
    for (uint j = 0; j < i; ++j) theta *= p.theta_scale;
    // Vulkan bounds sin and cos only on [-pi, pi]: reduce first (Cody-Waite: 2 pi split in a
    // short head, so k * head is exact for k below 2^15, and a tail), to about float rounding.
    const float k = floor(theta * 0.15915494 + 0.5);
    const float reduced = (theta - k * 6.28125) - k * 1.9353071795864769e-3;
    const float c = cos(reduced);
    const float s = sin(reduced);

    const uint base = row * n_head * p.head_dim + head * p.head_dim;
    const uint ia = base + (MODE == 0u ? 2u * i : i);
    const uint ib = base + (MODE == 0u ? 2u * i + 1u : i + half_dim);
    if (!second) {
        const float x0 = x[p.x_offset + ia];
        const float x1 = x[p.x_offset + ib];
        y[p.y_offset + ia] = x0 * c - x1 * s;
        y[p.y_offset + ib] = x0 * s + x1 * c;
    }
#if defined(PAIR)
    else {
        const float x0 = x2[p.x2_offset + ia];
        const float x1 = x2[p.x2_offset + ib];
        y2[p.y2_offset + ia] = x0 * c - x1 * s;
        y2[p.y2_offset + ib] = x0 * s + x1 * c;
    }
#endif
}
