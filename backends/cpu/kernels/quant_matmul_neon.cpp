// NEON kernels for Armv8.2-A with the dot product extension (SDOT) and fp16 conversions. This
// file is compiled for that level alone and only entered after a run-time CPU check
// (cpu_features.h), so everything here is in an anonymous namespace and it calls no inline
// function from shared headers: the linker could otherwise keep this file's copy for callers
// that run on a plain Armv8.0 core.
//
// SDOT multiplies signed bytes by signed bytes, four products summed into each int32 lane, so
// weights are decoded straight to signed quants with their zero point removed (q - 8 for Q4_0,
// q - 16 for Q5_0, q - 32 for Q6_K): the integer block sums are exactly the scalar kernels'
// (sum (q - z) a = sum q a - z sum a). Q4_1, Q4_K and Q5_K keep unsigned quants (< 32, so they
// fit a signed byte) and apply their mins through the activation sums.
//
// Formats with 32-element blocks (Q4_0, Q4_1, Q5_0, Q8_0) go by groups of 4 blocks: the 4
// integer block dots are folded into the 4 lanes of one vector (two pairwise adds), converted
// once and scaled by 4 weight scales x 4 activation scales. The K formats apply their small
// integer sub-block scales inside the integer sum, 4 sub-blocks per multiply-add, and do float
// work once per 256 elements, in the scalar kernels' order.
//
// Decode (one token) streams a thread's rows one after the other, decoding weights in
// registers. Prefill decodes each group (or super-block) of a tile of 4 rows once into an L1
// scratch and reuses it for every token of a chunk sized to keep its activations in L2.
//
// Speed on real Arm cores is unmeasured: the kernels were written for and tested under
// emulation (scripts/test-neon.sh), where only correctness means anything.
#include <arm_neon.h>

#include <cstddef>
#include <cstdint>
#include <cstring>

#include "backends/cpu/kernels/quant_matmul.h"
#include "core/quant/blocks.h"

namespace mllm::cpu::detail {

namespace {

// Activations of one chunk of tokens: small enough to stay in L2 (256 KiB to 1 MiB per core on
// current Arm designs) next to the weights being decoded.
constexpr size_t kActChunkBytes = 128 * 1024;
// Prefill decodes this many rows together.
constexpr int kRowTile = 4;

// ---- small helpers --------------------------------------------------------------------------

inline uint16_t load_u16(const uint8_t* p) {
    uint16_t v;
    std::memcpy(&v, p, sizeof(v));
    return v;
}

inline uint32_t load_u32(const uint8_t* p) {
    uint32_t v;
    std::memcpy(&v, p, sizeof(v));
    return v;
}

inline float half_to_float(uint16_t h) {
    __fp16 v;
    std::memcpy(&v, &h, sizeof(v));
    return static_cast<float>(v);
}

inline int64_t min64(int64_t a, int64_t b) {
    return a < b ? a : b;
}

inline int8x16_t load_s8(const void* p) {
    return vld1q_s8(static_cast<const int8_t*>(p));
}

// The fp16 fields at p + b * stride for b < count as 4 float lanes, zero past count.
inline float32x4_t load_halves4(const uint8_t* p, size_t stride, int count) {
    uint16_t h[4] = {0, 0, 0, 0};
    for (int b = 0; b < count; ++b) h[b] = load_u16(p + b * stride);
    return vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16(h)));
}

// Lane i of the result is the sum of the 4 lanes of the i-th argument.
inline int32x4_t reduce4(int32x4_t a, int32x4_t b, int32x4_t c, int32x4_t d) {
    return vpaddq_s32(vpaddq_s32(a, b), vpaddq_s32(c, d));
}

// ---- formats with 32-element blocks and Q8_0 activations ------------------------------------
// Each format decodes one block into its 32 quants as two vectors (elements 0..15, 16..31),
// zero point removed. The fp16 scale is at byte 0; Q4_1's fp16 min at byte 2.

// The 32 nibbles of a Q4_0/Q4_1 block: low nibbles are elements 0..15, high ones 16..31.
inline void nibbles(const uint8_t* qs, uint8x16_t& lo, uint8x16_t& hi) {
    const uint8x16_t bytes = vld1q_u8(qs);
    lo = vandq_u8(bytes, vdupq_n_u8(0x0f));
    hi = vshrq_n_u8(bytes, 4);
}

struct Q4_0 {
    static constexpr size_t kBytes = sizeof(BlockQ4_0);
    static constexpr bool kHasMin = false;
    static void decode(const uint8_t* b, int8x16_t& lo, int8x16_t& hi) {
        uint8x16_t l, h;
        nibbles(b + 2, l, h);
        const int8x16_t eight = vdupq_n_s8(8);
        lo = vsubq_s8(vreinterpretq_s8_u8(l), eight);
        hi = vsubq_s8(vreinterpretq_s8_u8(h), eight);
    }
};

struct Q4_1 {
    static constexpr size_t kBytes = sizeof(BlockQ4_1);
    static constexpr bool kHasMin = true;
    static void decode(const uint8_t* b, int8x16_t& lo, int8x16_t& hi) {
        uint8x16_t l, h;
        nibbles(b + 4, l, h);
        lo = vreinterpretq_s8_u8(l);
        hi = vreinterpretq_s8_u8(h);
    }
};

struct Q5_0 {
    static constexpr size_t kBytes = sizeof(BlockQ5_0);
    static constexpr bool kHasMin = false;
    static void decode(const uint8_t* b, int8x16_t& lo, int8x16_t& hi) {
        // Bit j of the 32-bit qh is bit 4 of element j. Byte j of `spread` is qh byte j / 8
        // (a table lookup), tested against bit j % 8. q - 16 = nibble - 16 + 16 * bit, so 16 is
        // subtracted where the bit is clear.
        static constexpr uint8_t kByteOf[16] = {0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1};
        static constexpr uint8_t kBitOf[16] = {1, 2, 4, 8, 16, 32, 64, 128,
                                               1, 2, 4, 8, 16, 32, 64, 128};
        const uint8x16_t qh = vreinterpretq_u8_u32(vdupq_n_u32(load_u32(b + 2)));
        const uint8x16_t byte_of = vld1q_u8(kByteOf);
        const uint8x16_t bit_of = vld1q_u8(kBitOf);
        const uint8x16_t set_lo = vtstq_u8(vqtbl1q_u8(qh, byte_of), bit_of);
        const uint8x16_t set_hi =
            vtstq_u8(vqtbl1q_u8(qh, vaddq_u8(byte_of, vdupq_n_u8(2))), bit_of);
        const uint8x16_t sixteen = vdupq_n_u8(16);
        uint8x16_t l, h;
        nibbles(b + 6, l, h);
        lo = vreinterpretq_s8_u8(vsubq_u8(l, vbicq_u8(sixteen, set_lo)));
        hi = vreinterpretq_s8_u8(vsubq_u8(h, vbicq_u8(sixteen, set_hi)));
    }
};

struct Q8_0 {
    static constexpr size_t kBytes = sizeof(BlockQ8_0);
    static constexpr bool kHasMin = false;
    static void decode(const uint8_t* b, int8x16_t& lo, int8x16_t& hi) {
        lo = load_s8(b + 2);
        hi = load_s8(b + 18);
    }
};

// 4 blocks of quants, one after the other (block b at q[b]); the unit both sides of a group
// dot product are stored in.
using Quads = int8_t[4][kQK];

// One group of 4 activation blocks, prepared once per call; blocks past the row are zero.
struct alignas(16) ActGroup {
    Quads q;
    float d[4];
    float sum[4];  // sum of the block's quants (for Q4_1's min)
};

// One group of 4 weight blocks decoded for reuse across tokens (prefill); zero past the row.
struct alignas(16) WeightGroup {
    Quads q;
    float d[4];
    float m[4];
};

// The 4 integer block dots of a group: x holds one side in registers (block b in x[2b],
// x[2b + 1]), y the other in memory. SDOT is symmetric, so decode passes weights as x and
// prefill passes a token's activations.
inline int32x4_t group_dots(const int8x16_t x[8], const Quads& y) {
    int32x4_t p[4];
    for (int b = 0; b < 4; ++b) {
        p[b] = vdotq_s32(vdupq_n_s32(0), x[2 * b], load_s8(y[b]));
        p[b] = vdotq_s32(p[b], x[2 * b + 1], load_s8(y[b] + 16));
    }
    return reduce4(p[0], p[1], p[2], p[3]);
}

// acc += the float value of one group: each block's dot times weight scale x activation scale,
// plus (Q4_1) weight min x activation scale x activation sum.
template <class F>
inline float32x4_t group_accumulate(int32x4_t dots, float32x4_t wd, float32x4_t wm,
                                    const ActGroup& a, float32x4_t acc) {
    const float32x4_t ad = vld1q_f32(a.d);
    acc = vfmaq_f32(acc, vcvtq_f32_s32(dots), vmulq_f32(wd, ad));
    if constexpr (F::kHasMin) acc = vfmaq_f32(acc, vmulq_f32(wm, ad), vld1q_f32(a.sum));
    return acc;
}

// Decodes blocks [0, count) of the group at `blocks` into q (zero past count).
template <class F>
inline void decode_blocks(const uint8_t* blocks, int count, int8x16_t q[8]) {
    for (int b = 0; b < 4; ++b) {
        if (b < count) {
            F::decode(blocks + b * F::kBytes, q[2 * b], q[2 * b + 1]);
        } else {
            q[2 * b] = vdupq_n_s8(0);
            q[2 * b + 1] = vdupq_n_s8(0);
        }
    }
}

// Groups for one Q8_0 activation row of nb blocks.
void prepare_act_groups(const uint8_t* row, int64_t nb, ActGroup* groups) {
    const auto* blocks = reinterpret_cast<const BlockQ8_0*>(row);
    for (int64_t g = 0; g < (nb + 3) / 4; ++g) {
        ActGroup& out = groups[g];
        for (int b = 0; b < 4; ++b) {
            const int64_t i = 4 * g + b;
            if (i >= nb) {
                std::memset(out.q[b], 0, kQK);
                out.d[b] = 0.0f;
                out.sum[b] = 0.0f;
                continue;
            }
            const int8x16_t lo = load_s8(blocks[i].qs);
            const int8x16_t hi = load_s8(blocks[i].qs + 16);
            vst1q_s8(out.q[b], lo);
            vst1q_s8(out.q[b] + 16, hi);
            out.d[b] = half_to_float(blocks[i].d);
            out.sum[b] = static_cast<float>(vaddlvq_s8(lo) + vaddlvq_s8(hi));
        }
    }
}

// Decode: one row of nb blocks against one prepared activation row.
template <class F>
float gemv_row(const uint8_t* w, int64_t nb, const ActGroup* act) {
    constexpr size_t kGroupBytes = 4 * F::kBytes;
    float32x4_t acc = vdupq_n_f32(0.0f);
    const float32x4_t zero = vdupq_n_f32(0.0f);
    for (int64_t g = 0; g < (nb + 3) / 4; ++g) {
        const uint8_t* blocks = w + g * kGroupBytes;
        const int count = static_cast<int>(min64(4, nb - 4 * g));
        int8x16_t q[8];
        float32x4_t wd, wm = zero;
        if (count == 4) {
            decode_blocks<F>(blocks, 4, q);
            wd = load_halves4(blocks, F::kBytes, 4);
            if constexpr (F::kHasMin) wm = load_halves4(blocks + 2, F::kBytes, 4);
        } else {
            decode_blocks<F>(blocks, count, q);
            wd = load_halves4(blocks, F::kBytes, count);
            if constexpr (F::kHasMin) wm = load_halves4(blocks + 2, F::kBytes, count);
        }
        acc = group_accumulate<F>(group_dots(q, act[g].q), wd, wm, act[g], acc);
    }
    return vaddvq_f32(acc);
}

template <class F>
void decode_group(const uint8_t* blocks, int count, WeightGroup& out) {
    int8x16_t q[8];
    decode_blocks<F>(blocks, count, q);
    for (int b = 0; b < 4; ++b) {
        vst1q_s8(out.q[b], q[2 * b]);
        vst1q_s8(out.q[b] + 16, q[2 * b + 1]);
    }
    vst1q_f32(out.d, load_halves4(blocks, F::kBytes, count));
    vst1q_f32(out.m, F::kHasMin ? load_halves4(blocks + 2, F::kBytes, count) : vdupq_n_f32(0.0f));
}

// Prefill: NR rows x tc tokens. Each group of a row is decoded once and reused by every token;
// acc holds NR * tc accumulators (row-major by token), act the tokens' groups (token-major).
template <class F, int NR>
void gemm_rows(const uint8_t* w, size_t w_stride, int64_t nb, const ActGroup* act, int64_t tc,
               float32x4_t* acc, float* y, int64_t ldy) {
    constexpr size_t kGroupBytes = 4 * F::kBytes;
    const int64_t ng = (nb + 3) / 4;
    for (int64_t i = 0; i < NR * tc; ++i) acc[i] = vdupq_n_f32(0.0f);
    WeightGroup wg[NR];
    for (int64_t g = 0; g < ng; ++g) {
        const int count = static_cast<int>(min64(4, nb - 4 * g));
        for (int r = 0; r < NR; ++r)
            decode_group<F>(w + r * w_stride + g * kGroupBytes, count, wg[r]);
        for (int64_t t = 0; t < tc; ++t) {
            const ActGroup& a = act[t * ng + g];
            int8x16_t x[8];
            for (int b = 0; b < 4; ++b) {
                x[2 * b] = load_s8(a.q[b]);
                x[2 * b + 1] = load_s8(a.q[b] + 16);
            }
            float32x4_t* acc_t = acc + t * NR;
            for (int r = 0; r < NR; ++r) {
                acc_t[r] = group_accumulate<F>(group_dots(x, wg[r].q), vld1q_f32(wg[r].d),
                                               vld1q_f32(wg[r].m), a, acc_t[r]);
            }
        }
    }
    for (int64_t t = 0; t < tc; ++t)
        for (int r = 0; r < NR; ++r) y[t * ldy + r] = vaddvq_f32(acc[t * NR + r]);
}

template <class F>
void run_q8_0_act(const MatmulArgs& args) {
    const int64_t nb = args.k / kQK;
    const int64_t ng = (nb + 3) / 4;
    const size_t act_bytes = static_cast<size_t>(ng) * sizeof(ActGroup);
    if (args.n_tokens == 1) {
        auto* act = static_cast<ActGroup*>(kernel_scratch(act_bytes));
        prepare_act_groups(args.act, nb, act);
        for (int64_t r = args.row_begin; r < args.row_end; ++r)
            args.y[r] = gemv_row<F>(args.w + r * args.w_row_bytes, nb, act);
        return;
    }
    const int64_t tc_max =
        min64(args.n_tokens, static_cast<int64_t>(kActChunkBytes / act_bytes) + 1);
    const size_t acc_offset = (act_bytes * static_cast<size_t>(tc_max) + 63) / 64 * 64;
    auto* scratch = static_cast<uint8_t*>(
        kernel_scratch(acc_offset + sizeof(float32x4_t) * kRowTile * static_cast<size_t>(tc_max)));
    auto* act = reinterpret_cast<ActGroup*>(scratch);
    auto* acc = reinterpret_cast<float32x4_t*>(scratch + acc_offset);
    for (int64_t t0 = 0; t0 < args.n_tokens; t0 += tc_max) {
        const int64_t tc = min64(tc_max, args.n_tokens - t0);
        for (int64_t t = 0; t < tc; ++t)
            prepare_act_groups(args.act + (t0 + t) * args.act_row_bytes, nb, act + t * ng);
        float* y = args.y + t0 * args.ldy;
        int64_t r = args.row_begin;
        for (; r + kRowTile <= args.row_end; r += kRowTile) {
            gemm_rows<F, kRowTile>(args.w + r * args.w_row_bytes, args.w_row_bytes, nb, act, tc,
                                   acc, y + r, args.ldy);
        }
        for (; r < args.row_end; ++r) {
            gemm_rows<F, 1>(args.w + r * args.w_row_bytes, args.w_row_bytes, nb, act, tc, acc,
                            y + r, args.ldy);
        }
    }
}

// ---- K formats: 256-element super-blocks against Q8_K activations ----------------------------
// Each format decodes a super-block into its 256 quants as 16 vectors in element order and its
// integer scales. A "part" is the run of elements one scale covers: 32 for Q4_K / Q5_K (kParts
// = 8, part p in vectors 2p, 2p + 1), 16 for Q6_K (kParts = 16, part p in vector p). With
//   isum = sum_p scale_p * sum_part(q * a)   and (Q4_K, Q5_K) msum = sum_p min_p * sum_part(a),
// one super-block is worth  a.d * (d * isum - dmin * msum)  (Q6_K: a.d * d * isum).

struct KScales {
    int32_t sc[16];   // one per part (8 used by Q4_K / Q5_K)
    int16_t mins[8];  // Q4_K / Q5_K: one per 32-element part
    float d;
    float dmin;
};

// The packed 6-bit scales and mins of Q4_K / Q5_K (12 bytes): parts 0..3 keep the low 6 bits
// of bytes 0..3 (scales) and 4..7 (mins); parts 4..7 take 4 bits from bytes 8..11 and their
// top 2 bits from the top of bytes 0..3 / 4..7.
inline void k_scales_and_mins(const uint8_t* b, KScales& out) {
    out.d = half_to_float(load_u16(b));
    out.dmin = half_to_float(load_u16(b + 2));
    const uint32_t u0 = load_u32(b + 4);
    const uint32_t u1 = load_u32(b + 8);
    const uint32_t u2 = load_u32(b + 12);
    const uint64_t sc = (u0 & 0x3f3f3f3fu) |
                        static_cast<uint64_t>((u2 & 0x0f0f0f0fu) | ((u0 >> 2) & 0x30303030u)) << 32;
    const uint64_t mn = (u1 & 0x3f3f3f3fu) |
                        static_cast<uint64_t>(((u2 >> 4) & 0x0f0f0f0fu) | ((u1 >> 2) & 0x30303030u))
                            << 32;
    const uint16x8_t sc16 = vmovl_u8(vcreate_u8(sc));
    vst1q_s32(out.sc, vreinterpretq_s32_u32(vmovl_u16(vget_low_u16(sc16))));
    vst1q_s32(out.sc + 4, vreinterpretq_s32_u32(vmovl_high_u16(sc16)));
    vst1q_s16(out.mins, vreinterpretq_s16_u16(vmovl_u8(vcreate_u8(mn))));
}

struct Q4_K {
    static constexpr size_t kBytes = sizeof(BlockQ4_K);
    static constexpr int kParts = 8;
    static void scales(const uint8_t* b, KScales& out) { k_scales_and_mins(b, out); }
    // 64 elements per 32 bytes of qs: low nibbles are part 2i, high nibbles part 2i + 1.
    static void quants(const uint8_t* b, int8x16_t q[16]) {
        const uint8_t* qs = b + 16;
        const uint8x16_t low4 = vdupq_n_u8(0x0f);
        for (int i = 0; i < 4; ++i) {
            const uint8x16_t b0 = vld1q_u8(qs + 32 * i);
            const uint8x16_t b1 = vld1q_u8(qs + 32 * i + 16);
            q[4 * i] = vreinterpretq_s8_u8(vandq_u8(b0, low4));
            q[4 * i + 1] = vreinterpretq_s8_u8(vandq_u8(b1, low4));
            q[4 * i + 2] = vreinterpretq_s8_u8(vshrq_n_u8(b0, 4));
            q[4 * i + 3] = vreinterpretq_s8_u8(vshrq_n_u8(b1, 4));
        }
    }
};

struct Q5_K {
    static constexpr size_t kBytes = sizeof(BlockQ5_K);
    static constexpr int kParts = 8;
    static void scales(const uint8_t* b, KScales& out) { k_scales_and_mins(b, out); }
    // Q4_K's nibbles plus bit p of qh[l] as bit 4 of element l of part p: qh is shifted right
    // once per part, its bit 0 inserted above the nibble.
    static void quants(const uint8_t* b, int8x16_t q[16]) {
        uint8x16_t h0 = vld1q_u8(b + 16);
        uint8x16_t h1 = vld1q_u8(b + 32);
        const uint8_t* qs = b + 48;
        const uint8x16_t one = vdupq_n_u8(1);
        const uint8x16_t low4 = vdupq_n_u8(0x0f);
        for (int i = 0; i < 4; ++i) {
            const uint8x16_t b0 = vld1q_u8(qs + 32 * i);
            const uint8x16_t b1 = vld1q_u8(qs + 32 * i + 16);
            q[4 * i] = vreinterpretq_s8_u8(vsliq_n_u8(vandq_u8(b0, low4), vandq_u8(h0, one), 4));
            q[4 * i + 1] =
                vreinterpretq_s8_u8(vsliq_n_u8(vandq_u8(b1, low4), vandq_u8(h1, one), 4));
            h0 = vshrq_n_u8(h0, 1);
            h1 = vshrq_n_u8(h1, 1);
            q[4 * i + 2] = vreinterpretq_s8_u8(vsliq_n_u8(vshrq_n_u8(b0, 4), vandq_u8(h0, one), 4));
            q[4 * i + 3] = vreinterpretq_s8_u8(vsliq_n_u8(vshrq_n_u8(b1, 4), vandq_u8(h1, one), 4));
            h0 = vshrq_n_u8(h0, 1);
            h1 = vshrq_n_u8(h1, 1);
        }
    }
};

struct Q6_K {
    static constexpr size_t kBytes = sizeof(BlockQ6_K);
    static constexpr int kParts = 16;
    static void scales(const uint8_t* b, KScales& out) {
        out.d = half_to_float(load_u16(b + 208));
        out.dmin = 0.0f;
        const int8x16_t s = load_s8(b + 192);
        const int16x8_t lo = vmovl_s8(vget_low_s8(s));
        const int16x8_t hi = vmovl_high_s8(s);
        vst1q_s32(out.sc, vmovl_s16(vget_low_s16(lo)));
        vst1q_s32(out.sc + 4, vmovl_high_s16(lo));
        vst1q_s32(out.sc + 8, vmovl_s16(vget_low_s16(hi)));
        vst1q_s32(out.sc + 12, vmovl_high_s16(hi));
        vst1q_s16(out.mins, vdupq_n_s16(0));
    }
    // Each 128-element half h: elements l and l + 64 (l < 32) take their low 4 bits from the
    // two nibbles of ql[l], elements l + 32 and l + 96 from those of ql[l + 32]; their top two
    // bits are bits 0-1, 4-5 (l, l + 64) and 2-3, 6-7 (l + 32, l + 96) of qh[l]. Then - 32.
    static void quants(const uint8_t* b, int8x16_t q[16]) {
        const uint8x16_t low4 = vdupq_n_u8(0x0f);
        const uint8x16_t top2 = vdupq_n_u8(0x30);
        const int8x16_t m32 = vdupq_n_s8(32);
        for (int h = 0; h < 2; ++h) {
            const uint8_t* ql = b + 64 * h;
            const uint8_t* qh = b + 128 + 32 * h;
            for (int v = 0; v < 2; ++v) {
                const uint8x16_t l0 = vld1q_u8(ql + 16 * v);       // ql[l], l = 16v..16v+15
                const uint8x16_t l1 = vld1q_u8(ql + 32 + 16 * v);  // ql[l + 32]
                const uint8x16_t hb = vld1q_u8(qh + 16 * v);
                const uint8x16_t e[4] = {
                    vorrq_u8(vandq_u8(l0, low4), vandq_u8(vshlq_n_u8(hb, 4), top2)),
                    vorrq_u8(vandq_u8(l1, low4), vandq_u8(vshlq_n_u8(hb, 2), top2)),
                    vorrq_u8(vshrq_n_u8(l0, 4), vandq_u8(hb, top2)),
                    vorrq_u8(vshrq_n_u8(l1, 4), vandq_u8(vshrq_n_u8(hb, 2), top2)),
                };
                // e[j] holds elements 128h + 32j + 16v + (0..15): vector 8h + 2j + v.
                for (int j = 0; j < 4; ++j)
                    q[8 * h + 2 * j + v] = vsubq_s8(vreinterpretq_s8_u8(e[j]), m32);
            }
        }
    }
};

// isum of one super-block: x is one side in registers (16 vectors in element order), y the
// other in memory (256 bytes); as with group_dots, either side may be the weights.
template <int kParts>
inline int32_t k_isum(const int8x16_t x[16], const int8_t* y, const int32_t* sc) {
    int32x4_t acc = vdupq_n_s32(0);
    for (int p0 = 0; p0 < kParts; p0 += 4) {
        int32x4_t p[4];
        for (int i = 0; i < 4; ++i) {
            const int part = p0 + i;
            if constexpr (kParts == 8) {
                p[i] = vdotq_s32(vdupq_n_s32(0), x[2 * part], load_s8(y + 32 * part));
                p[i] = vdotq_s32(p[i], x[2 * part + 1], load_s8(y + 32 * part + 16));
            } else {
                p[i] = vdotq_s32(vdupq_n_s32(0), x[part], load_s8(y + 16 * part));
            }
        }
        acc = vmlaq_s32(acc, reduce4(p[0], p[1], p[2], p[3]), vld1q_s32(sc + p0));
    }
    return vaddvq_s32(acc);
}

// The float value of one super-block from its isum, as the scalar kernels compute it.
template <class F>
inline float k_value(int32_t isum, const KScales& s, const BlockQ8_K& a) {
    if constexpr (F::kParts == 16) {
        return a.d * s.d * static_cast<float>(isum);
    } else {
        // Activation sums per 32 elements (pairs of bsums) times the mins.
        const int16x8_t pairs = vpaddq_s16(vld1q_s16(a.bsums), vld1q_s16(a.bsums + 8));
        const int16x8_t mins = vld1q_s16(s.mins);
        int32x4_t m = vmull_s16(vget_low_s16(mins), vget_low_s16(pairs));
        m = vmlal_high_s16(m, mins, pairs);
        const int32_t msum = vaddvq_s32(m);
        return a.d * (s.d * static_cast<float>(isum) - s.dmin * static_cast<float>(msum));
    }
}

template <class F>
float gemv_k_row(const uint8_t* w, int64_t nsb, const BlockQ8_K* act) {
    float sum = 0.0f;
    for (int64_t s = 0; s < nsb; ++s) {
        const uint8_t* block = w + s * F::kBytes;
        KScales ks;
        F::scales(block, ks);
        int8x16_t q[16];
        F::quants(block, q);
        sum += k_value<F>(k_isum<F::kParts>(q, act[s].qs, ks.sc), ks, act[s]);
    }
    return sum;
}

// One super-block of one row decoded for reuse across tokens.
struct alignas(16) KDecoded {
    int8_t q[kQK_K];
    KScales s;
};

template <class F>
inline void decode_k(const uint8_t* b, KDecoded& out) {
    int8x16_t q[16];
    F::quants(b, q);
    for (int v = 0; v < 16; ++v) vst1q_s8(out.q + 16 * v, q[v]);
    F::scales(b, out.s);
}

// Prefill: NR rows x tc tokens (Q8_K rows act_stride bytes apart). Each super-block of a row is
// decoded once and reused by every token; acc holds NR * tc sums (row-major by token).
template <class F, int NR>
void gemm_k_rows(const uint8_t* w, size_t w_stride, int64_t nsb, const uint8_t* act,
                 size_t act_stride, int64_t tc, float* acc, float* y, int64_t ldy) {
    for (int64_t i = 0; i < NR * tc; ++i) acc[i] = 0.0f;
    KDecoded kd[NR];
    for (int64_t s = 0; s < nsb; ++s) {
        for (int r = 0; r < NR; ++r) decode_k<F>(w + r * w_stride + s * F::kBytes, kd[r]);
        for (int64_t t = 0; t < tc; ++t) {
            const auto& a = reinterpret_cast<const BlockQ8_K*>(act + t * act_stride)[s];
            int8x16_t x[16];
            for (int v = 0; v < 16; ++v) x[v] = load_s8(a.qs + 16 * v);
            for (int r = 0; r < NR; ++r)
                acc[t * NR + r] +=
                    k_value<F>(k_isum<F::kParts>(x, kd[r].q, kd[r].s.sc), kd[r].s, a);
        }
    }
    for (int64_t t = 0; t < tc; ++t)
        for (int r = 0; r < NR; ++r) y[t * ldy + r] = acc[t * NR + r];
}

template <class F>
void run_q8_k_act(const MatmulArgs& args) {
    const int64_t nsb = args.k / kQK_K;
    if (args.n_tokens == 1) {
        const auto* act = reinterpret_cast<const BlockQ8_K*>(args.act);
        for (int64_t r = args.row_begin; r < args.row_end; ++r)
            args.y[r] = gemv_k_row<F>(args.w + r * args.w_row_bytes, nsb, act);
        return;
    }
    const size_t act_bytes = static_cast<size_t>(nsb) * sizeof(BlockQ8_K);
    const int64_t tc_max =
        min64(args.n_tokens, static_cast<int64_t>(kActChunkBytes / act_bytes) + 1);
    auto* acc =
        static_cast<float*>(kernel_scratch(sizeof(float) * kRowTile * static_cast<size_t>(tc_max)));
    for (int64_t t0 = 0; t0 < args.n_tokens; t0 += tc_max) {
        const int64_t tc = min64(tc_max, args.n_tokens - t0);
        const uint8_t* act = args.act + t0 * args.act_row_bytes;
        float* y = args.y + t0 * args.ldy;
        int64_t r = args.row_begin;
        for (; r + kRowTile <= args.row_end; r += kRowTile) {
            gemm_k_rows<F, kRowTile>(args.w + r * args.w_row_bytes, args.w_row_bytes, nsb, act,
                                     args.act_row_bytes, tc, acc, y + r, args.ldy);
        }
        for (; r < args.row_end; ++r) {
            gemm_k_rows<F, 1>(args.w + r * args.w_row_bytes, args.w_row_bytes, nsb, act,
                              args.act_row_bytes, tc, acc, y + r, args.ldy);
        }
    }
}

// ---- float weights against f32 activations ---------------------------------------------------

struct F32W {
    static constexpr size_t kElem = 4;
    static float32x4_t load4(const uint8_t* p) { return vreinterpretq_f32_u8(vld1q_u8(p)); }
    static float load1(const uint8_t* p) {
        float v;
        std::memcpy(&v, p, sizeof(v));
        return v;
    }
};

struct F16W {
    static constexpr size_t kElem = 2;
    static float32x4_t load4(const uint8_t* p) {
        return vcvt_f32_f16(vreinterpret_f16_u8(vld1_u8(p)));
    }
    static float load1(const uint8_t* p) { return half_to_float(load_u16(p)); }
};

struct BF16W {
    static constexpr size_t kElem = 2;
    // bf16 is the top half of an f32.
    static float32x4_t load4(const uint8_t* p) {
        return vreinterpretq_f32_u32(vshll_n_u16(vreinterpret_u16_u8(vld1_u8(p)), 16));
    }
    static float load1(const uint8_t* p) {
        const uint32_t bits = static_cast<uint32_t>(load_u16(p)) << 16;
        float v;
        std::memcpy(&v, &bits, sizeof(v));
        return v;
    }
};

// Decode: one row, four accumulators to cover the FMA latency.
template <class F>
float float_gemv_row(const uint8_t* w, int64_t k, const float* x) {
    float32x4_t acc[4];
    for (auto& a : acc) a = vdupq_n_f32(0.0f);
    int64_t i = 0;
    for (; i + 16 <= k; i += 16)
        for (int j = 0; j < 4; ++j)
            acc[j] =
                vfmaq_f32(acc[j], F::load4(w + (i + 4 * j) * F::kElem), vld1q_f32(x + i + 4 * j));
    for (; i + 4 <= k; i += 4)
        acc[0] = vfmaq_f32(acc[0], F::load4(w + i * F::kElem), vld1q_f32(x + i));
    float sum = vaddvq_f32(vaddq_f32(vaddq_f32(acc[0], acc[1]), vaddq_f32(acc[2], acc[3])));
    for (; i < k; ++i) sum += F::load1(w + i * F::kElem) * x[i];
    return sum;
}

// NR rows x NT tokens of float dot products over k elements; x rows are x_stride floats apart.
template <class F, int NR, int NT>
void float_tile(const uint8_t* w, size_t w_stride, int64_t k, const float* x, size_t x_stride,
                float* y, int64_t ldy) {
    float32x4_t acc[NR][NT];
    for (int r = 0; r < NR; ++r)
        for (int t = 0; t < NT; ++t) acc[r][t] = vdupq_n_f32(0.0f);
    int64_t i = 0;
    for (; i + 4 <= k; i += 4) {
        float32x4_t wv[NR];
        for (int r = 0; r < NR; ++r) wv[r] = F::load4(w + r * w_stride + i * F::kElem);
        for (int t = 0; t < NT; ++t) {
            const float32x4_t xv = vld1q_f32(x + t * x_stride + i);
            for (int r = 0; r < NR; ++r) acc[r][t] = vfmaq_f32(acc[r][t], wv[r], xv);
        }
    }
    for (int t = 0; t < NT; ++t) {
        for (int r = 0; r < NR; ++r) {
            float sum = vaddvq_f32(acc[r][t]);
            for (int64_t j = i; j < k; ++j)
                sum += F::load1(w + r * w_stride + j * F::kElem) * x[t * x_stride + j];
            y[t * ldy + r] = sum;
        }
    }
}

template <class F, int NR>
void float_rows(const uint8_t* w, size_t w_stride, int64_t k, const float* x, size_t x_stride,
                int64_t tc, float* y, int64_t ldy) {
    // 4 x 4 accumulators, 4 weight vectors and an activation vector: 21 of the 32 registers.
    constexpr int kTokenTile = 4;
    int64_t t = 0;
    for (; t + kTokenTile <= tc; t += kTokenTile)
        float_tile<F, NR, kTokenTile>(w, w_stride, k, x + t * x_stride, x_stride, y + t * ldy, ldy);
    for (; t < tc; ++t)
        float_tile<F, NR, 1>(w, w_stride, k, x + t * x_stride, x_stride, y + t * ldy, ldy);
}

template <class F>
void run_float(const MatmulArgs& args) {
    if (args.n_tokens == 1) {
        const auto* x = reinterpret_cast<const float*>(args.act);
        for (int64_t r = args.row_begin; r < args.row_end; ++r)
            args.y[r] = float_gemv_row<F>(args.w + r * args.w_row_bytes, args.k, x);
        return;
    }
    const size_t x_stride = args.act_row_bytes / sizeof(float);
    const size_t act_bytes = static_cast<size_t>(args.k) * sizeof(float);
    const int64_t tc_max =
        min64(args.n_tokens, static_cast<int64_t>(kActChunkBytes / act_bytes) + 1);
    for (int64_t t0 = 0; t0 < args.n_tokens; t0 += tc_max) {
        const int64_t tc = min64(tc_max, args.n_tokens - t0);
        const auto* x = reinterpret_cast<const float*>(args.act + t0 * args.act_row_bytes);
        float* y = args.y + t0 * args.ldy;
        int64_t r = args.row_begin;
        for (; r + kRowTile <= args.row_end; r += kRowTile) {
            float_rows<F, kRowTile>(args.w + r * args.w_row_bytes, args.w_row_bytes, args.k, x,
                                    x_stride, tc, y + r, args.ldy);
        }
        for (; r < args.row_end; ++r) {
            float_rows<F, 1>(args.w + r * args.w_row_bytes, args.w_row_bytes, args.k, x, x_stride,
                             tc, y + r, args.ldy);
        }
    }
}

}  // namespace

void run_neon_kernel(const MatmulArgs& args) {
    switch (args.weight) {
        case DType::F32:
            return run_float<F32W>(args);
        case DType::F16:
            return run_float<F16W>(args);
        case DType::BF16:
            return run_float<BF16W>(args);
        case DType::Q4_0:
            return run_q8_0_act<Q4_0>(args);
        case DType::Q4_1:
            return run_q8_0_act<Q4_1>(args);
        case DType::Q5_0:
            return run_q8_0_act<Q5_0>(args);
        case DType::Q8_0:
            return run_q8_0_act<Q8_0>(args);
        case DType::Q4_K:
            return run_q8_k_act<Q4_K>(args);
        case DType::Q5_K:
            return run_q8_k_act<Q5_K>(args);
        case DType::Q6_K:
            return run_q8_k_act<Q6_K>(args);
        default:
            break;
    }
}

}  // namespace mllm::cpu::detail
