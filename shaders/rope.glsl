// The rotary embedding's angles, shared by rope.comp and the matmul that rotates its own output
// (matmul.comp's ROPE_STORE).
#ifndef MLLM_ROPE_GLSL
#define MLLM_ROPE_GLSL

// theta_i = position * freq_scale * theta_scale^i, by repeated multiplication as the CPU backend
// and ggml compute it, so the angles round the same way.
float rope_angle(int position, float freq_scale, float theta_scale, uint i) {
    float theta = float(position) * freq_scale;
    for (uint j = 0; j < i; ++j) theta *= theta_scale;
    return theta;
}

// (cos, sin) of theta. Vulkan bounds sin and cos only on [-pi, pi]: reduce first (Cody-Waite:
// 2 pi split in a short head, so k * head is exact for k below 2^15, and a tail), to about float
// rounding.
vec2 rope_cos_sin(float theta) {
    const float k = floor(theta * 0.15915494 + 0.5);
    const float reduced = (theta - k * 6.28125) - k * 1.9353071795864769e-3;
    return vec2(cos(reduced), sin(reduced));
}

// The pair (v.x, v.y) rotated by the angle whose (cos, sin) is cs. precise: no fused
// multiply-adds, as the CPU backend computes it, and the same rounding in every kernel that
// rotates (rope.comp and the matmul that folds the rope), whatever a compiler would fuse.
vec2 rope_rotate(vec2 v, vec2 cs) {
    precise float a = v.x * cs.x - v.y * cs.y;
    precise float b = v.x * cs.y + v.y * cs.x;
    return vec2(a, b);
}

#endif
