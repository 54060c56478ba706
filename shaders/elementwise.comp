#version 450
// Elementwise ops over f32 tensors, one variant per op (specialization constant OP):
//   0 ADD     y = a + b   (b broadcast over rows when b_cols_only != 0)
//   1 MUL     y = a * b   (same broadcast)
//   2 SILU    y = a * sigmoid(a)
//   3 SWIGLU  y = silu(a) * b
//   4 COPY    y = a
// One invocation per element; y may be a or b (each invocation reads and writes only its own
// element). Elements beyond the x dispatch limit continue in y.
layout(local_size_x_id = 0) in;
layout(constant_id = 1) const uint OP = 0;

layout(std430, set = 0, binding = 0) readonly buffer A { float a[]; };
layout(std430, set = 0, binding = 1) readonly buffer B { float b[]; };
layout(std430, set = 0, binding = 2) buffer Y { float y[]; };

layout(push_constant) uniform Params {
    uint n;     // elements
    uint cols;  // row width, for broadcasting b
    uint a_offset;
    uint b_offset;
    uint y_offset;
    uint b_broadcast;  // b is one row, repeated for every row of a
} p;

float silu(float v) {
    return v / (1.0 + exp(-v));
}

void main() {
    const uint i = gl_GlobalInvocationID.x + gl_GlobalInvocationID.y * gl_NumWorkGroups.x * gl_WorkGroupSize.x;
    if (i >= p.n) return;
    const float av = a[p.a_offset + i];
    const uint bi = p.b_offset + (p.b_broadcast != 0u ? i % p.cols : i);
    float r;
    if (OP == 0u) {
        r = av + b[bi];
    } else if (OP == 1u) {
        r = av * b[bi];
    } else if (OP == 2u) {
        r = silu(av);
    } else if (OP == 3u) {
        r = silu(av) * b[bi];
    } else {
        r = av;
    }
    y[p.y_offset + i] = r;
}
