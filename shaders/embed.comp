#version 450
// Embedding lookup for one table type per compiled variant (dequant.glsl lists them):
// y[t, :] = row ids[t] of the table, dequantized exactly as core/quant's dequantize_row.
//
// Invocation x handles chunk x of a row (8 elements; for float tables one more invocation takes
// the last cols % 8), workgroup y is the token. The binding may hold only a slice of the table's
// rows (the host records one dispatch per slice when the table exceeds the device's binding
// limit): tokens whose id lies outside the slice are left to another dispatch. Ids outside the
// whole table write zeros, in the dispatch of the first slice only, and never read the table.
#extension GL_GOOGLE_include_directive : require

layout(local_size_x_id = 0) in;

// Binding 0, the table/weights: declared by weights.glsl.
layout(std430, set = 0, binding = 1) readonly buffer Ids { int ids[]; };
layout(std430, set = 0, binding = 2) writeonly buffer Output { float y[]; };

layout(push_constant) uniform Params {
    uint cols;          // elements per row
    uint tokens;
    uint table_offset;  // bytes into the table binding to the slice's first row (even)
    uint table_rows;    // rows of the whole table
    uint slice_begin;   // the first row in the binding
    uint slice_rows;
    uint ids_offset;  // elements into the ids binding
    uint y_offset;    // floats into the output binding
    uint y_stride;
} p;

#include "weights.glsl"
#include "dequant.glsl"

void main() {
    const uint t = gl_WorkGroupID.y;
    const uint unit = gl_GlobalInvocationID.x;
    const uint chunks = p.cols / 8u;
#if defined(FLOAT_WEIGHTS)
    const uint units = chunks + ((p.cols & 7u) != 0u ? 1u : 0u);
#else
    const uint units = chunks;
#endif
    if (t >= p.tokens || unit >= units) return;

    const int id = ids[p.ids_offset + t];
    const bool valid = id >= 0 && uint(id) < p.table_rows;
    if (valid && (uint(id) < p.slice_begin || uint(id) - p.slice_begin >= p.slice_rows)) return;
    if (!valid && p.slice_begin != 0u) return;

    const uint yb = p.y_offset + t * p.y_stride;
    const uint row_base = valid ? p.table_offset + (uint(id) - p.slice_begin) * row_bytes(p.cols)
                                : 0u;
    if (unit < chunks) {
        vec4 w0 = vec4(0.0), w1 = vec4(0.0);
        uint i0, i1;
        if (valid) dequant_chunk(row_base, unit, w0, w1);
        chunk_index(unit, i0, i1);
        for (uint i = 0; i < 4u; ++i) {
            y[yb + i0 + i] = w0[i];
            y[yb + i1 + i] = w1[i];
        }
        return;
    }
#if defined(FLOAT_WEIGHTS)
    for (uint i = chunks * 8u; i < p.cols; ++i) y[yb + i] = valid ? dequant_one(row_base, i) : 0.0;
#endif
}
