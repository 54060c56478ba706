#version 450
// Appends this step's key and value rows to one layer's f16 cache: row r goes to cache row
// positions[r]. The cache rows are `width` halfs, stored as pairs in 32-bit words (width is
// even), so no 16-bit storage feature is needed. One invocation per pair of elements.
layout(local_size_x_id = 0) in;

layout(std430, set = 0, binding = 0) readonly buffer K { float k[]; };
layout(std430, set = 0, binding = 1) readonly buffer V { float v[]; };
layout(std430, set = 0, binding = 2) readonly buffer Positions { int pos[]; };
layout(std430, set = 0, binding = 3) writeonly buffer KCache { uint kc[]; };
layout(std430, set = 0, binding = 4) writeonly buffer VCache { uint vc[]; };

layout(push_constant) uniform Params {
    uint rows;
    uint width;  // n_head_kv * head_dim
    uint k_offset;  // floats
    uint v_offset;
    uint pos_offset;  // ints
    uint n_ctx;  // cache rows: positions outside are not written
} p;

void main() {
    const uint words = p.width / 2u;
    const uint id = gl_GlobalInvocationID.x + gl_GlobalInvocationID.y * gl_NumWorkGroups.x * gl_WorkGroupSize.x;
    if (id >= p.rows * words) return;
    const uint row = id / words;
    const uint w = id % words;
    const int position = pos[p.pos_offset + row];
    if (position < 0 || uint(position) >= p.n_ctx) return;
    const uint src = row * p.width + 2u * w;
    const uint dst = uint(position) * words + w;
    kc[dst] = packHalf2x16(vec2(k[p.k_offset + src], k[p.k_offset + src + 1u]));
    vc[dst] = packHalf2x16(vec2(v[p.v_offset + src], v[p.v_offset + src + 1u]));
}
