#version 450
// Greedy sampling on the device: each row's largest value's column, the lowest on ties, NaN
// counted as -inf (the CPU sampler's rule), so only one int per row is read back instead of the
// logits. One workgroup per row (rows beyond the dispatch's x limit continue in z); each thread
// scans a strided part of the row, then a halving reduction in shared memory (no subgroup
// operations, so it also runs where a workaround turned those off).
layout(local_size_x_id = 0) in;

layout(std430, set = 0, binding = 0) readonly buffer Input { float x[]; };
layout(std430, set = 0, binding = 1) writeonly buffer Output { int y[]; };

layout(push_constant) uniform Params {
    uint rows;
    uint cols;
    uint x_offset;  // floats
    uint x_stride;
    uint y_offset;  // ints
} p;

shared float best_value[gl_WorkGroupSize.x];
shared uint best_index[gl_WorkGroupSize.x];

// Whether (v, i) beats (bv, bi): larger, or equal at a lower column.
bool beats(float v, uint i, float bv, uint bi) {
    return v > bv || (v == bv && i < bi);
}

void main() {
    const uint row = gl_WorkGroupID.x + gl_WorkGroupID.z * gl_NumWorkGroups.x;
    if (row >= p.rows) return;  // the whole workgroup
    const uint tid = gl_LocalInvocationID.x;
    const uint xb = p.x_offset + row * p.x_stride;

    // Threads past the row's end keep (-inf, cols), which loses to every column.
    float bv = uintBitsToFloat(0xff800000u);  // -inf
    uint bi = p.cols;
    for (uint i = tid; i < p.cols; i += gl_WorkGroupSize.x) {
        const float v = isnan(x[xb + i]) ? uintBitsToFloat(0xff800000u) : x[xb + i];
        if (beats(v, i, bv, bi)) {
            bv = v;
            bi = i;
        }
    }
    best_value[tid] = bv;
    best_index[tid] = bi;
    barrier();
    for (uint live = gl_WorkGroupSize.x; live > 1u;) {
        const uint half_live = (live + 1u) / 2u;
        if (tid + half_live < live &&
            beats(best_value[tid + half_live], best_index[tid + half_live], best_value[tid],
                  best_index[tid])) {
            best_value[tid] = best_value[tid + half_live];
            best_index[tid] = best_index[tid + half_live];
        }
        barrier();
        live = half_live;
    }
    // A row of -inf and NaN only: column 0, as the sampler picks.
    if (tid == 0u) y[p.y_offset + row] = int(best_index[0] < p.cols ? best_index[0] : 0u);
}
