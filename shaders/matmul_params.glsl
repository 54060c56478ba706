// The push constants of the matmul kernels (vk_matmul.cpp's MatMulPush), and where each output
// element goes.
#ifndef MLLM_MATMUL_PARAMS_GLSL
#define MLLM_MATMUL_PARAMS_GLSL

layout(push_constant) uniform Params {
    uint m;            // weight rows (output features)
    uint k;            // elements per row (input features)
    uint n;            // tokens
    uint w_offset;     // bytes into the weight binding (even)
    uint x_offset;     // into the input binding: floats, or words of packed Q8_0 blocks
    uint x_stride;     // the same between tokens
    uint y_offset;     // floats into the output binding
    uint y_stride;
    uint bias_offset;  // floats into the bias binding
    uint has_bias;     // 0: no bias (binding 3 is not read)
    // A group of weights sharing the input (queries, keys and values; gate and up),
    // concatenated: rows from row1 on go to a second output, from row2 on to a third (both ~0u:
    // none), in the same binding as the first.
    uint row1, y_offset1, y_stride1;
    uint row2, y_offset2, y_stride2;
    // A residual add and the RMSNorm after it folded into the repacked Q4_0 kernels
    // (MatMulArgs::norm_out, norm_in): the norm's epsilon, and where the sums of squares of the
    // sum's rows are, partial_count per token partial_stride apart.
    float eps;
    uint partial_offset, partial_stride, partial_count;
    // Where the sum times the norm's weight goes, quantized (MatMulArgs::norm_out), and the words
    // between its tokens.
    uint weighted_offset, weighted_stride;
    // The queries', keys' and values' matmul rotating the queries and keys and storing the keys
    // and values in the caches (MatMulArgs::rope): the heads' size, the positions' offset (ints)
    // and the caches' rows, and the rotation's frequencies.
    uint head_dim, pos_offset, n_ctx;
    float freq_scale, theta_scale;
} p;

// Where row `row` (of this dispatch's rows) of token `tok` goes.
uint y_at(uint row, uint tok) {
    if (row >= p.row2) return p.y_offset2 + tok * p.y_stride2 + (row - p.row2);
    if (row >= p.row1) return p.y_offset1 + tok * p.y_stride1 + (row - p.row1);
    return p.y_offset + tok * p.y_stride + row;
}

#endif
