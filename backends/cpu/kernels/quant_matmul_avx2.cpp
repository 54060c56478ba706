// AVX2 kernels (with FMA and F16C). This file is compiled for AVX2 alone and only entered after
// a run-time CPU check, so it defines nothing that other files could pick up by accident: all
// helpers are in an anonymous namespace, and it calls no inline function from shared headers.
//
// Integer dot products use vpmaddubsw (u8 x s8 -> pairs summed to s16) and vpmaddwd (s16 pairs
// -> s32), so one operand must be unsigned: weights are decoded to unsigned quants q and their
// zero point is removed afterwards with the activation sums (sum (q - z) a = sum q a - z sum a).
// Only Q8_0 weights are signed; they use the abs/sign pair instead.
//
// Formats with 32-element blocks (Q4_0, Q4_1, Q5_0, Q8_0) carry one fp16 scale per block, so the
// float work per block (convert, scale, accumulate) would dominate a naive loop. They work on
// groups of 8 blocks: the 8 per-block integer dot products are reduced into the 8 lanes of one
// vector, which is then scaled by the 8 weight scales x 8 activation scales in one multiply.
// The K formats apply their small integer sub-block scales inside the integer dot product and
// need float work once per 256 elements.
//
// Decode (one token) streams each weight row once, 4 rows at a time so the activation stays in
// registers and L1. Prefill tiles rows x tokens: a group of weight blocks is decoded once into
// an L1 scratch and reused by every token of a chunk sized to keep its activations in L2.
#include <immintrin.h>

#include <cstddef>
#include <cstdint>
#include <cstring>

#include "backends/cpu/kernels/quant_matmul.h"
#include "core/quant/blocks.h"

namespace mllm::cpu::detail {
namespace {

// Activations of a chunk of tokens are sized to stay in L2 (512 KiB per core on Zen 3, 1-2 MiB
// on recent Intel) next to the weights being decoded.
constexpr size_t kActChunkBytes = 192 * 1024;
constexpr int kRowTile = 4;
// Decode reads each weight row once, one row after the other, so a thread's rows are a single
// sequential stream. Hardware prefetchers alone leave the core waiting on DRAM for about as
// long as it computes; asking for the lines this far ahead, into L2, overlaps the two (measured
// on Zen 3: 1-2 KiB too close, 8 KiB and more no better).
constexpr size_t kPrefetchBytes = 2048;

// Prefetches into L2 the cache lines that hold [p, p + bytes) kPrefetchBytes ahead.
inline void prefetch_ahead(const uint8_t* p, size_t bytes) {
    for (size_t off = 0; off < bytes; off += 64)
        _mm_prefetch(reinterpret_cast<const char*>(p + kPrefetchBytes + off), _MM_HINT_T1);
}
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
    return _cvtsh_ss(h);
}

inline __m256i load256(const void* p) {
    return _mm256_loadu_si256(static_cast<const __m256i*>(p));
}

inline int64_t min64(int64_t a, int64_t b) {
    return a < b ? a : b;
}

inline float hsum(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

// Lane i of the result is the sum of the 8 lanes of v[i].
inline __m128 hsum4(const __m256 v[4]) {
    const __m256 ab = _mm256_hadd_ps(v[0], v[1]);
    const __m256 cd = _mm256_hadd_ps(v[2], v[3]);
    const __m256 abcd = _mm256_hadd_ps(ab, cd);
    return _mm_add_ps(_mm256_castps256_ps128(abcd), _mm256_extractf128_ps(abcd, 1));
}

// Writes the sums of NR accumulators to y[0..NR).
template <int NR>
inline void store_sums(const __m256* acc, float* y) {
    if constexpr (NR == 4) {
        _mm_storeu_ps(y, hsum4(acc));
    } else {
        for (int r = 0; r < NR; ++r) y[r] = hsum(acc[r]);
    }
}

// Lane order of the per-block vectors (scales, sums, dot products) of a group of 8 blocks.
// Natural: lane i is block i. Paired: the 4-bit formats hold two blocks per vector (see
// below), and their reduction ends with blocks 0 2 4 6 in the low half, 1 3 5 7 in the high.
template <bool kPaired>
constexpr int lane_block(int lane) {
    if constexpr (kPaired) return lane < 4 ? 2 * lane : 2 * (lane - 4) + 1;
    return lane;
}

// The fp16 fields at p + lane_block(i) * stride for lanes i = 0..7, as floats. The gather is
// done in general registers (the empty asm keeps GCC from vectorizing it), which are idle in
// these loops, while vector ports are the bottleneck.
template <bool kPaired>
inline __m256 load_halves8(const uint8_t* p, size_t stride) {
    uint64_t lo = 0;
    uint64_t hi = 0;
    for (int lane = 0; lane < 4; ++lane) {
        uint64_t a = load_u16(p + lane_block<kPaired>(lane) * stride);
        uint64_t b = load_u16(p + lane_block<kPaired>(lane + 4) * stride);
        __asm__("" : "+r"(a), "+r"(b));
        lo |= a << (16 * lane);
        hi |= b << (16 * lane);
    }
    return _mm256_cvtph_ps(_mm_set_epi64x(static_cast<long long>(hi), static_cast<long long>(lo)));
}

// Eight vectors of 8 int32 lanes -> one vector whose lane b is the sum of the lanes of p[b].
// hadd works within 128-bit halves, so two rounds leave each sum split between the halves.
inline __m256i reduce8(const __m256i p[8]) {
    const __m256i h01 = _mm256_hadd_epi32(p[0], p[1]);
    const __m256i h23 = _mm256_hadd_epi32(p[2], p[3]);
    const __m256i h45 = _mm256_hadd_epi32(p[4], p[5]);
    const __m256i h67 = _mm256_hadd_epi32(p[6], p[7]);
    const __m256i lo = _mm256_hadd_epi32(h01, h23);  // [b0 b1 b2 b3 | b0 b1 b2 b3] halves
    const __m256i hi = _mm256_hadd_epi32(h45, h67);  // [b4 b5 b6 b7 | b4 b5 b6 b7] halves
    return _mm256_add_epi32(_mm256_permute2x128_si256(lo, hi, 0x20),
                            _mm256_permute2x128_si256(lo, hi, 0x31));
}

// sum over pairs of u8 x s8 products, widened to 8 int32 lanes of 4 products each.
inline __m256i dot_u8s8(__m256i u, __m256i s) {
    return _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), _mm256_set1_epi16(1));
}

inline __m128i load128(const uint8_t* p) {
    return _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
}

// Byte j of the result is 0x10 when bit (j % 8) of byte select[j] of `bits` is set, else 0:
// the fifth bit of Q5_0 quants, spread to their bytes.
inline __m256i spread_bits_to_0x10(uint64_t bits, __m256i select) {
    const __m256i bit = _mm256_set1_epi64x(static_cast<long long>(0x8040201008040201ull));
    const __m256i bytes =
        _mm256_shuffle_epi8(_mm256_set1_epi64x(static_cast<long long>(bits)), select);
    const __m256i set = _mm256_cmpeq_epi8(_mm256_and_si256(bytes, bit), bit);
    return _mm256_and_si256(set, _mm256_set1_epi8(0x10));
}

// ---- formats with 32-element blocks and Q8_0 activations --------------------------------------
// The 4-bit formats (Q4_0, Q4_1, Q5_0) are "paired": the 16 nibble bytes of two blocks fill
// one vector, so a single and / shift+and splits it into
//   lo = [elements 0..15 of block 2j | elements 0..15 of block 2j+1]  (low nibbles)
//   hi = [elements 16..31 of block 2j | elements 16..31 of block 2j+1] (high nibbles)
// and the activations are rearranged once per call to the same layout. The two vpmaddubsw
// results add in 16 bits (4 products of at most 15 (31) x 128 per lane), and two or three
// rounds of 16-bit hadd finish the sums for 8 blocks with little horizontal work.
// Q8_0 weights are signed bytes in element order ("natural"), multiplied with the abs/sign pair.
//
// Each format gives: block size, zero point as a shift (q - (1 << kZeroShift); none if < 0),
// an fp16 min at byte 2 (x = d q + m), the largest unsigned quant, and its quants: a pair of
// blocks as (lo, hi) for the paired formats, one block in element order for every format.
// The fp16 scale is at byte 0 in all of them.

inline void pair_nibbles(const uint8_t* qs0, const uint8_t* qs1, __m256i& lo, __m256i& hi) {
    const __m256i both =
        _mm256_inserti128_si256(_mm256_castsi128_si256(load128(qs0)), load128(qs1), 1);
    const __m256i low4 = _mm256_set1_epi8(0x0f);
    lo = _mm256_and_si256(both, low4);
    hi = _mm256_and_si256(_mm256_srli_epi16(both, 4), low4);
}

// One block's 32 nibbles in element order.
inline __m256i block_nibbles(const uint8_t* qs) {
    const __m128i bytes = load128(qs);
    const __m128i low4 = _mm_set1_epi8(0x0f);
    return _mm256_set_m128i(_mm_and_si128(_mm_srli_epi16(bytes, 4), low4),
                            _mm_and_si128(bytes, low4));
}

struct Q4_0 {
    static constexpr size_t kBytes = sizeof(BlockQ4_0);
    static constexpr bool kPaired = true;
    static constexpr int kZeroShift = 3;
    static constexpr bool kHasMin = false;
    static constexpr int kMaxQ = 15;
    static void pair(const uint8_t* b, __m256i& lo, __m256i& hi) {
        pair_nibbles(b + 2, b + kBytes + 2, lo, hi);
    }
    static __m256i block(const uint8_t* b) { return block_nibbles(b + 2); }
};

struct Q4_1 {
    static constexpr size_t kBytes = sizeof(BlockQ4_1);
    static constexpr bool kPaired = true;
    static constexpr int kZeroShift = -1;
    static constexpr bool kHasMin = true;
    static constexpr int kMaxQ = 15;
    static void pair(const uint8_t* b, __m256i& lo, __m256i& hi) {
        pair_nibbles(b + 4, b + kBytes + 4, lo, hi);
    }
    static __m256i block(const uint8_t* b) { return block_nibbles(b + 4); }
};

struct Q5_0 {
    static constexpr size_t kBytes = sizeof(BlockQ5_0);
    static constexpr bool kPaired = true;
    static constexpr int kZeroShift = 4;
    static constexpr bool kHasMin = false;
    static constexpr int kMaxQ = 31;
    static void pair(const uint8_t* b, __m256i& lo, __m256i& hi) {
        pair_nibbles(b + 6, b + kBytes + 6, lo, hi);
        // Bits of both blocks in one word: bytes 0-1 and 4-5 hold the lo elements' bits,
        // bytes 2-3 and 6-7 the hi elements'.
        const uint64_t bits = load_u32(b + 2) | static_cast<uint64_t>(load_u32(b + kBytes + 2))
                                                    << 32;
        const __m256i lo_select =
            _mm256_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1,  //
                             4, 4, 4, 4, 4, 4, 4, 4, 5, 5, 5, 5, 5, 5, 5, 5);
        const __m256i hi_select =
            _mm256_setr_epi8(2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3,  //
                             6, 6, 6, 6, 6, 6, 6, 6, 7, 7, 7, 7, 7, 7, 7, 7);
        lo = _mm256_or_si256(lo, spread_bits_to_0x10(bits, lo_select));
        hi = _mm256_or_si256(hi, spread_bits_to_0x10(bits, hi_select));
    }
    static __m256i block(const uint8_t* b) {
        const __m256i select = _mm256_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1,  //
                                                2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3);
        return _mm256_or_si256(block_nibbles(b + 6), spread_bits_to_0x10(load_u32(b + 2), select));
    }
};

struct Q8_0 {
    static constexpr size_t kBytes = sizeof(BlockQ8_0);
    static constexpr bool kPaired = false;
    static constexpr int kZeroShift = -1;
    static constexpr bool kHasMin = false;
    static __m256i block(const uint8_t* b) { return load256(b + 2); }
};

// The activation side of one group of 8 blocks, reorganized once per call: quants (natural,
// or paired as the weights: qs[2j] = lo, qs[2j+1] = hi of blocks 2j, 2j+1), and per lane of
// the format's lane order the block's scale and sums (for zero points and mins).
struct alignas(32) ActGroup {
    int8_t qs[8][kQK];
    float d[8];
    int32_t sum[8];
    float dsum[8];  // d * sum
};

// One group of 8 weight blocks decoded for reuse across tokens (and for the ragged last group
// of a row, zero-padded), in the same layout as ActGroup. Q8_0 keeps |q| in q and q in sign.
struct alignas(32) WeightGroup {
    uint8_t q[8][kQK];
    int8_t sign[8][kQK];
    float d[8];
    float m[8];
};

inline void store256(void* p, __m256i v) {
    _mm256_store_si256(static_cast<__m256i*>(p), v);
}

// Fills groups for one Q8_0 activation row of nb blocks; blocks past nb are zero.
template <bool kPaired>
void prepare_act_groups(const uint8_t* row, int64_t nb, ActGroup* groups) {
    const auto* blocks = reinterpret_cast<const BlockQ8_0*>(row);
    const int64_t ng = (nb + 7) / 8;
    for (int64_t g = 0; g < ng; ++g) {
        ActGroup& out = groups[g];
        __m256i q[8];
        __m256i sums[8];
        float d[8];
        for (int b = 0; b < 8; ++b) {
            const int64_t i = g * 8 + b;
            q[b] = i < nb ? load256(blocks[i].qs) : _mm256_setzero_si256();
            d[b] = i < nb ? half_to_float(blocks[i].d) : 0.0f;
            sums[b] = dot_u8s8(_mm256_set1_epi8(1), q[b]);
        }
        for (int j = 0; j < 4; ++j) {
            if constexpr (kPaired) {
                store256(out.qs[2 * j], _mm256_permute2x128_si256(q[2 * j], q[2 * j + 1], 0x20));
                store256(out.qs[2 * j + 1],
                         _mm256_permute2x128_si256(q[2 * j], q[2 * j + 1], 0x31));
            } else {
                store256(out.qs[2 * j], q[2 * j]);
                store256(out.qs[2 * j + 1], q[2 * j + 1]);
            }
        }
        __m256i sum = reduce8(sums);
        if constexpr (kPaired)
            sum = _mm256_permutevar8x32_epi32(sum, _mm256_setr_epi32(0, 2, 4, 6, 1, 3, 5, 7));
        for (int lane = 0; lane < 8; ++lane) out.d[lane] = d[lane_block<kPaired>(lane)];
        store256(out.sum, sum);
        _mm256_store_ps(out.dsum, _mm256_mul_ps(_mm256_load_ps(out.d), _mm256_cvtepi32_ps(sum)));
    }
}

// Decodes the first `count` (<= 8) blocks at `blocks`; the rest of the group is zero.
template <class F>
void decode_group(const uint8_t* blocks, int count, WeightGroup& out) {
    __m256i q[8];
    for (int b = 0; b < 8; ++b) {
        const uint8_t* blk = blocks + b * F::kBytes;
        q[b] = b < count ? F::block(blk) : _mm256_setzero_si256();
        const int lane = F::kPaired ? (b % 2) * 4 + b / 2 : b;
        out.d[lane] = b < count ? half_to_float(load_u16(blk)) : 0.0f;
        out.m[lane] = F::kHasMin && b < count ? half_to_float(load_u16(blk + 2)) : 0.0f;
    }
    for (int j = 0; j < 4; ++j) {
        if constexpr (F::kPaired) {
            store256(out.q[2 * j], _mm256_permute2x128_si256(q[2 * j], q[2 * j + 1], 0x20));
            store256(out.q[2 * j + 1], _mm256_permute2x128_si256(q[2 * j], q[2 * j + 1], 0x31));
        } else {
            for (int b = 2 * j; b < 2 * j + 2; ++b) {
                store256(out.q[b], _mm256_abs_epi8(q[b]));
                store256(out.sign[b], q[b]);
            }
        }
    }
}

// Paired formats: 4 vectors of 16-bit pair sums (block 2j low half, 2j+1 high half) -> the 8
// block sums in paired lane order. 16 products of a 4-bit quant and an 8-bit activation fit in
// 16 bits (16 * 15 * 128 < 2^15); for 5-bit quants only 8 do.
template <class F>
inline __m256i reduce_pairs(const __m256i p[4]) {
    const __m256i ones = _mm256_set1_epi16(1);
    const __m256i s01 = _mm256_hadd_epi16(p[0], p[1]);  // [b0 x4, b2 x4 | b1 x4, b3 x4]
    const __m256i s23 = _mm256_hadd_epi16(p[2], p[3]);
    if constexpr (F::kMaxQ <= 15) {
        return _mm256_madd_epi16(_mm256_hadd_epi16(s01, s23), ones);
    } else {
        return _mm256_hadd_epi32(_mm256_madd_epi16(s01, ones), _mm256_madd_epi16(s23, ones));
    }
}

// The 8 integer block dot products of a group (in the format's lane order), straight from the
// weight blocks in memory.
template <class F>
inline __m256i group_dots(const uint8_t* blocks, const ActGroup& a) {
    if constexpr (F::kPaired) {
        __m256i p[4];
        for (int j = 0; j < 4; ++j) {
            __m256i lo, hi;
            F::pair(blocks + 2 * j * F::kBytes, lo, hi);
            p[j] = _mm256_add_epi16(_mm256_maddubs_epi16(lo, load256(a.qs[2 * j])),
                                    _mm256_maddubs_epi16(hi, load256(a.qs[2 * j + 1])));
        }
        return reduce_pairs<F>(p);
    } else {
        __m256i p[8];
        for (int b = 0; b < 8; ++b) {
            const __m256i q = F::block(blocks + b * F::kBytes);
            p[b] = dot_u8s8(_mm256_abs_epi8(q), _mm256_sign_epi8(load256(a.qs[b]), q));
        }
        return reduce8(p);
    }
}

// The same from a decoded group.
template <class F>
inline __m256i group_dots(const WeightGroup& w, const ActGroup& a) {
    if constexpr (F::kPaired) {
        __m256i p[4];
        for (int j = 0; j < 4; ++j) {
            p[j] = _mm256_add_epi16(
                _mm256_maddubs_epi16(load256(w.q[2 * j]), load256(a.qs[2 * j])),
                _mm256_maddubs_epi16(load256(w.q[2 * j + 1]), load256(a.qs[2 * j + 1])));
        }
        return reduce_pairs<F>(p);
    } else {
        __m256i p[8];
        for (int b = 0; b < 8; ++b) {
            const __m256i signed_a = _mm256_sign_epi8(load256(a.qs[b]), load256(w.sign[b]));
            p[b] = dot_u8s8(load256(w.q[b]), signed_a);
        }
        return reduce8(p);
    }
}

// acc += the float value of one group: dots (one lane per block) scaled per block, minus the
// zero point or plus the min, both through the activation sums.
template <class F>
inline __m256 group_accumulate(__m256i dots, __m256 wd, __m256 wm, const ActGroup& a, __m256 acc) {
    if constexpr (F::kZeroShift >= 0) {
        const __m256i sum = _mm256_load_si256(reinterpret_cast<const __m256i*>(a.sum));
        dots = _mm256_sub_epi32(dots, _mm256_slli_epi32(sum, F::kZeroShift));
    }
    const __m256 scale = _mm256_mul_ps(wd, _mm256_load_ps(a.d));
    acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(dots), scale, acc);
    if constexpr (F::kHasMin) acc = _mm256_fmadd_ps(wm, _mm256_load_ps(a.dsum), acc);
    return acc;
}

// Decode: one row against one activation row.
template <class F>
float gemv_row(const uint8_t* w, int64_t nb, const ActGroup* act) {
    const int64_t full = nb / 8;
    const int tail = static_cast<int>(nb % 8);
    constexpr size_t kGroupBytes = 8 * F::kBytes;
    __m256 acc = _mm256_setzero_ps();
    for (int64_t g = 0; g < full; ++g) {
        const uint8_t* blocks = w + g * kGroupBytes;
        prefetch_ahead(blocks, kGroupBytes);
        const __m256 wd = load_halves8<F::kPaired>(blocks, F::kBytes);
        __m256 wm = _mm256_setzero_ps();
        if constexpr (F::kHasMin) wm = load_halves8<F::kPaired>(blocks + 2, F::kBytes);
        acc = group_accumulate<F>(group_dots<F>(blocks, act[g]), wd, wm, act[g], acc);
    }
    if (tail > 0) {
        WeightGroup wg;
        decode_group<F>(w + full * kGroupBytes, tail, wg);
        acc = group_accumulate<F>(group_dots<F>(wg, act[full]), _mm256_load_ps(wg.d),
                                  _mm256_load_ps(wg.m), act[full], acc);
    }
    return hsum(acc);
}

// Prefill: NR rows x tc tokens; groups are decoded once and reused by every token.
template <class F, int NR>
void gemm_rows(const uint8_t* w, size_t w_stride, int64_t nb, const ActGroup* act, int64_t ng,
               int64_t tc, __m256* acc, float* y, int64_t ldy) {
    constexpr size_t kGroupBytes = 8 * F::kBytes;
    for (int64_t i = 0; i < NR * tc; ++i) acc[i] = _mm256_setzero_ps();
    WeightGroup wg[NR];
    for (int64_t g = 0; g < ng; ++g) {
        const int count = static_cast<int>(min64(8, nb - g * 8));
        for (int r = 0; r < NR; ++r)
            decode_group<F>(w + r * w_stride + g * kGroupBytes, count, wg[r]);
        for (int64_t t = 0; t < tc; ++t) {
            const ActGroup& a = act[t * ng + g];
            __m256* acc_t = acc + t * NR;
            for (int r = 0; r < NR; ++r) {
                acc_t[r] = group_accumulate<F>(group_dots<F>(wg[r], a), _mm256_load_ps(wg[r].d),
                                               _mm256_load_ps(wg[r].m), a, acc_t[r]);
            }
        }
    }
    for (int64_t t = 0; t < tc; ++t) store_sums<NR>(acc + t * NR, y + t * ldy);
}

template <class F>
void run_q8_0_act(const MatmulArgs& args) {
    const int64_t nb = args.k / kQK;
    const int64_t ng = (nb + 7) / 8;
    const size_t act_bytes = static_cast<size_t>(ng) * sizeof(ActGroup);
    if (args.n_tokens == 1) {
        auto* act = static_cast<ActGroup*>(kernel_scratch(act_bytes));
        prepare_act_groups<F::kPaired>(args.act, nb, act);
        for (int64_t r = args.row_begin; r < args.row_end; ++r)
            args.y[r] = gemv_row<F>(args.w + r * args.w_row_bytes, nb, act);
        return;
    }
    const int64_t tc_max =
        min64(args.n_tokens, static_cast<int64_t>(kActChunkBytes / act_bytes) + 1);
    const size_t acc_offset = (act_bytes * static_cast<size_t>(tc_max) + 63) / 64 * 64;
    auto* scratch =
        static_cast<uint8_t*>(kernel_scratch(acc_offset + sizeof(__m256) * kRowTile * tc_max));
    auto* act = reinterpret_cast<ActGroup*>(scratch);
    auto* acc = reinterpret_cast<__m256*>(scratch + acc_offset);
    for (int64_t t0 = 0; t0 < args.n_tokens; t0 += tc_max) {
        const int64_t tc = min64(tc_max, args.n_tokens - t0);
        for (int64_t t = 0; t < tc; ++t)
            prepare_act_groups<F::kPaired>(args.act + (t0 + t) * args.act_row_bytes, nb,
                                           act + t * ng);
        float* y = args.y + t0 * args.ldy;
        int64_t r = args.row_begin;
        for (; r + kRowTile <= args.row_end; r += kRowTile) {
            gemm_rows<F, kRowTile>(args.w + r * args.w_row_bytes, args.w_row_bytes, nb, act, ng, tc,
                                   acc, y + r, args.ldy);
        }
        for (; r < args.row_end; ++r) {
            gemm_rows<F, 1>(args.w + r * args.w_row_bytes, args.w_row_bytes, nb, act, ng, tc, acc,
                            y + r, args.ldy);
        }
    }
}

// ---- K formats: 256-element super-blocks against Q8_K activations ----------------------------
// Each format's decode() walks one super-block and hands every 32-element chunk c to a callback
// as (unsigned quants, madd multipliers): int16 lane i of the multipliers scales the pair of
// elements (2i, 2i+1) of the chunk, so the low 8 lanes cover elements 0..15 and the high 8
// lanes 16..31. It fills a KHead with what applies to the whole super-block:
//   sum x * a = da * (d * sum_c madd(q * a, multipliers) - dmin * sum_g mins[g] * bsums[g]).

struct KHead {
    __m256i mins;  // 16 int16 multipliers of the activation's 16-element group sums
    float d;
    float dmin;
};

// The 6-bit scales and mins of Q4_K / Q5_K (12 bytes) as 8 bytes each, via 32-bit words:
// sub-blocks 0..3 keep the low 6 bits of bytes 0..3 (scales) and 4..7 (mins); sub-blocks 4..7
// take 4 bits from bytes 8..11 and their top 2 bits from the top of bytes 0..3 / 4..7.
inline void unpack_k_scales(const uint8_t* s, uint64_t& scales, uint64_t& mins) {
    const uint32_t u0 = load_u32(s);
    const uint32_t u1 = load_u32(s + 4);
    const uint32_t u2 = load_u32(s + 8);
    const uint32_t sc_lo = u0 & 0x3f3f3f3fu;
    const uint32_t mn_lo = u1 & 0x3f3f3f3fu;
    const uint32_t sc_hi = (u2 & 0x0f0f0f0fu) | ((u0 >> 2) & 0x30303030u);
    const uint32_t mn_hi = ((u2 >> 4) & 0x0f0f0f0fu) | ((u1 >> 2) & 0x30303030u);
    scales = sc_lo | static_cast<uint64_t>(sc_hi) << 32;
    mins = mn_lo | static_cast<uint64_t>(mn_hi) << 32;
}

// Q4_K / Q5_K: one scale per 32-element chunk, one min per chunk (so per pair of bsums).
inline void k_scales_and_mins(const uint8_t* scales12, __m256i& sc_both, __m256i& mins16) {
    uint64_t sc = 0;
    uint64_t mn = 0;
    unpack_k_scales(scales12, sc, mn);
    // Scales as 8 int16 in both halves; chunk c picks lane c with a shuffle.
    sc_both = _mm256_broadcastsi128_si256(
        _mm_cvtepu8_epi16(_mm_cvtsi64_si128(static_cast<long long>(sc))));
    const __m128i m = _mm_cvtepu8_epi16(_mm_cvtsi64_si128(static_cast<long long>(mn)));
    mins16 = _mm256_set_m128i(_mm_unpackhi_epi16(m, m), _mm_unpacklo_epi16(m, m));
}

// All 16 lanes = int16 lane c of v (c is a compile-time chunk index, v holds 8 lanes per half).
inline __m256i broadcast_lane16(__m256i v, int c) {
    return _mm256_shuffle_epi8(v, _mm256_set1_epi16(static_cast<short>((2 * c + 1) << 8 | 2 * c)));
}

// Moves bit `bit` of every byte to bit 4 (the other bits of v must be clear).
inline __m256i bit_to_0x10(__m256i v, int bit) {
    if (bit < 4) return _mm256_slli_epi16(v, 4 - bit);
    if (bit > 4) return _mm256_srli_epi16(v, bit - 4);
    return v;
}

struct Q4_K {
    static constexpr size_t kBytes = sizeof(BlockQ4_K);
    template <class Fn>
    static inline void decode(const uint8_t* b, KHead& head, Fn&& chunk) {
        head.d = half_to_float(load_u16(b));
        head.dmin = half_to_float(load_u16(b + 2));
        __m256i sc;
        k_scales_and_mins(b + 4, sc, head.mins);
        const uint8_t* qs = b + 16;
        const __m256i low4 = _mm256_set1_epi8(0x0f);
        for (int i = 0; i < 4; ++i) {
            const __m256i bytes = load256(qs + 32 * i);
            chunk(2 * i, _mm256_and_si256(bytes, low4), broadcast_lane16(sc, 2 * i));
            chunk(2 * i + 1, _mm256_and_si256(_mm256_srli_epi16(bytes, 4), low4),
                  broadcast_lane16(sc, 2 * i + 1));
        }
    }
};

struct Q5_K {
    static constexpr size_t kBytes = sizeof(BlockQ5_K);
    template <class Fn>
    static inline void decode(const uint8_t* b, KHead& head, Fn&& chunk) {
        head.d = half_to_float(load_u16(b));
        head.dmin = half_to_float(load_u16(b + 2));
        __m256i sc;
        k_scales_and_mins(b + 4, sc, head.mins);
        const __m256i high = load256(b + 16);  // bit c of byte l: bit 4 of element l of chunk c
        const uint8_t* qs = b + 48;
        const __m256i low4 = _mm256_set1_epi8(0x0f);
        for (int i = 0; i < 4; ++i) {
            const __m256i bytes = load256(qs + 32 * i);
            for (int h = 0; h < 2; ++h) {
                const int c = 2 * i + h;
                const __m256i nib = _mm256_and_si256(h ? _mm256_srli_epi16(bytes, 4) : bytes, low4);
                const __m256i hb = bit_to_0x10(
                    _mm256_and_si256(high, _mm256_set1_epi8(static_cast<char>(1 << c))), c);
                chunk(c, _mm256_or_si256(nib, hb), broadcast_lane16(sc, c));
            }
        }
    }
};

struct Q6_K {
    static constexpr size_t kBytes = sizeof(BlockQ6_K);
    template <class Fn>
    static inline void decode(const uint8_t* b, KHead& head, Fn&& chunk) {
        const float d = half_to_float(load_u16(b + 208));
        head.d = d;
        head.dmin = 32.0f * d;  // q - 32 with the scales themselves as the "mins"
        const __m256i sc16 =
            _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(b + 192)));
        head.mins = sc16;
        const __m256i low4 = _mm256_set1_epi8(0x0f);
        const __m256i top2 = _mm256_set1_epi8(0x30);
        for (int h = 0; h < 2; ++h) {
            const __m256i ql0 = load256(b + 64 * h);
            const __m256i ql1 = load256(b + 64 * h + 32);
            const __m256i qh = load256(b + 128 + 32 * h);
            // This half's 8 scales in both vector halves; chunk j needs scale 2j in the low
            // half (elements 0..15) and 2j+1 in the high half.
            const __m256i sc = h ? _mm256_permute2x128_si256(sc16, sc16, 0x11)
                                 : _mm256_permute2x128_si256(sc16, sc16, 0x00);
            const __m256i q[4] = {
                _mm256_or_si256(_mm256_and_si256(ql0, low4),
                                _mm256_and_si256(_mm256_slli_epi16(qh, 4), top2)),
                _mm256_or_si256(_mm256_and_si256(ql1, low4),
                                _mm256_and_si256(_mm256_slli_epi16(qh, 2), top2)),
                _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql0, 4), low4),
                                _mm256_and_si256(qh, top2)),
                _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql1, 4), low4),
                                _mm256_and_si256(_mm256_srli_epi16(qh, 2), top2)),
            };
            for (int j = 0; j < 4; ++j) {
                const short lo = static_cast<short>((4 * j + 1) << 8 | 4 * j);
                const short hi = static_cast<short>((4 * j + 3) << 8 | (4 * j + 2));
                const __m256i pick = _mm256_setr_epi16(lo, lo, lo, lo, lo, lo, lo, lo,  //
                                                       hi, hi, hi, hi, hi, hi, hi, hi);
                chunk(4 * h + j, q[j], _mm256_shuffle_epi8(sc, pick));
            }
        }
    }
};

// One super-block of a K format decoded for reuse across tokens.
struct alignas(32) KWeights {
    uint8_t q[8][kQK];
    int16_t scale[8][16];
    int16_t mins[16];
    float d;
    float dmin;
};

template <class F>
inline void decode_k(const uint8_t* b, KWeights& out) {
    KHead head;
    F::decode(b, head, [&](int c, __m256i q, __m256i sc) {
        _mm256_store_si256(reinterpret_cast<__m256i*>(out.q[c]), q);
        _mm256_store_si256(reinterpret_cast<__m256i*>(out.scale[c]), sc);
    });
    _mm256_store_si256(reinterpret_cast<__m256i*>(out.mins), head.mins);
    out.d = head.d;
    out.dmin = head.dmin;
}

// acc += the float value of one super-block from its integer sums.
inline __m256 k_accumulate(__m256i isum, __m256i mins, float d, float dmin, const BlockQ8_K& a,
                           __m256 acc) {
    const __m256i msum = _mm256_madd_epi16(mins, load256(a.bsums));
    acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum), _mm256_set1_ps(d * a.d), acc);
    return _mm256_fnmadd_ps(_mm256_cvtepi32_ps(msum), _mm256_set1_ps(dmin * a.d), acc);
}

template <class F>
float gemv_k_row(const uint8_t* w, int64_t nsb, const BlockQ8_K* act) {
    __m256 acc = _mm256_setzero_ps();
    for (int64_t s = 0; s < nsb; ++s) {
        const BlockQ8_K& a = act[s];
        const uint8_t* block = w + s * F::kBytes;
        prefetch_ahead(block, F::kBytes);
        __m256i isum = _mm256_setzero_si256();
        KHead head;
        F::decode(block, head, [&](int c, __m256i q, __m256i sc) {
            const __m256i p = _mm256_maddubs_epi16(q, load256(a.qs + 32 * c));
            isum = _mm256_add_epi32(isum, _mm256_madd_epi16(p, sc));
        });
        acc = k_accumulate(isum, head.mins, head.d, head.dmin, a, acc);
    }
    return hsum(acc);
}

template <class F, int NR>
void gemm_k_rows(const uint8_t* w, size_t w_stride, int64_t nsb, const uint8_t* act,
                 size_t act_stride, int64_t tc, __m256* acc, float* y, int64_t ldy) {
    for (int64_t i = 0; i < NR * tc; ++i) acc[i] = _mm256_setzero_ps();
    KWeights kw[NR];
    for (int64_t s = 0; s < nsb; ++s) {
        for (int r = 0; r < NR; ++r) decode_k<F>(w + r * w_stride + s * F::kBytes, kw[r]);
        for (int64_t t = 0; t < tc; ++t) {
            const BlockQ8_K& a = reinterpret_cast<const BlockQ8_K*>(act + t * act_stride)[s];
            __m256* acc_t = acc + t * NR;
            for (int r = 0; r < NR; ++r) {
                __m256i isum = _mm256_setzero_si256();
                for (int c = 0; c < 8; ++c) {
                    const __m256i p =
                        _mm256_maddubs_epi16(load256(kw[r].q[c]), load256(a.qs + 32 * c));
                    isum = _mm256_add_epi32(isum, _mm256_madd_epi16(p, load256(kw[r].scale[c])));
                }
                acc_t[r] =
                    k_accumulate(isum, load256(kw[r].mins), kw[r].d, kw[r].dmin, a, acc_t[r]);
            }
        }
    }
    for (int64_t t = 0; t < tc; ++t) store_sums<NR>(acc + t * NR, y + t * ldy);
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
    auto* acc = static_cast<__m256*>(kernel_scratch(sizeof(__m256) * kRowTile * tc_max));
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
    static __m256 load8(const uint8_t* p) {
        return _mm256_loadu_ps(reinterpret_cast<const float*>(p));
    }
    static float load1(const uint8_t* p) {
        float v;
        std::memcpy(&v, p, sizeof(v));
        return v;
    }
};

struct F16W {
    static constexpr size_t kElem = 2;
    static __m256 load8(const uint8_t* p) {
        return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
    }
    static float load1(const uint8_t* p) { return half_to_float(load_u16(p)); }
};

struct BF16W {
    static constexpr size_t kElem = 2;
    // bf16 is the top half of an f32.
    static __m256 load8(const uint8_t* p) {
        const __m256i wide =
            _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
        return _mm256_castsi256_ps(_mm256_slli_epi32(wide, 16));
    }
    static float load1(const uint8_t* p) {
        const uint32_t bits = static_cast<uint32_t>(load_u16(p)) << 16;
        float v;
        std::memcpy(&v, &bits, sizeof(v));
        return v;
    }
};

// NR rows x NT tokens of float dot products over k elements; x rows are x_stride floats apart.
template <class F, int NR, int NT>
void float_tile(const uint8_t* w, size_t w_stride, int64_t k, const float* x, size_t x_stride,
                float* y, int64_t ldy) {
    __m256 acc[NR][NT];
    for (int r = 0; r < NR; ++r)
        for (int t = 0; t < NT; ++t) acc[r][t] = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 8 <= k; i += 8) {
        __m256 wv[NR];
        for (int r = 0; r < NR; ++r) wv[r] = F::load8(w + r * w_stride + i * F::kElem);
        for (int t = 0; t < NT; ++t) {
            const __m256 xv = _mm256_loadu_ps(x + t * x_stride + i);
            for (int r = 0; r < NR; ++r) acc[r][t] = _mm256_fmadd_ps(wv[r], xv, acc[r][t]);
        }
    }
    for (int t = 0; t < NT; ++t) {
        __m256 col[NR];
        for (int r = 0; r < NR; ++r) col[r] = acc[r][t];
        float sums[NR];
        store_sums<NR>(col, sums);
        for (int r = 0; r < NR; ++r) {
            for (int64_t j = i; j < k; ++j)
                sums[r] += F::load1(w + r * w_stride + j * F::kElem) * x[t * x_stride + j];
            y[t * ldy + r] = sums[r];
        }
    }
}

// Decode: one row, two accumulators to cover the FMA latency.
template <class F>
float float_gemv_row(const uint8_t* w, int64_t k, const float* x) {
    __m256 acc0 = _mm256_setzero_ps();
    __m256 acc1 = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 16 <= k; i += 16) {
        prefetch_ahead(w + i * F::kElem, 16 * F::kElem);
        acc0 = _mm256_fmadd_ps(F::load8(w + i * F::kElem), _mm256_loadu_ps(x + i), acc0);
        acc1 = _mm256_fmadd_ps(F::load8(w + (i + 8) * F::kElem), _mm256_loadu_ps(x + i + 8), acc1);
    }
    for (; i + 8 <= k; i += 8)
        acc0 = _mm256_fmadd_ps(F::load8(w + i * F::kElem), _mm256_loadu_ps(x + i), acc0);
    float sum = hsum(_mm256_add_ps(acc0, acc1));
    for (; i < k; ++i) sum += F::load1(w + i * F::kElem) * x[i];
    return sum;
}

template <class F, int NR>
void float_rows(const uint8_t* w, size_t w_stride, int64_t k, const float* x, size_t x_stride,
                int64_t tc, float* y, int64_t ldy) {
    constexpr int kTokenTile = 3;  // 4 x 3 accumulators + 4 weight vectors fill the 16 registers
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

bool has_avx2_kernel(DType weight) {
    switch (weight) {
        case DType::F32:
        case DType::F16:
        case DType::BF16:
        case DType::Q4_0:
        case DType::Q4_1:
        case DType::Q5_0:
        case DType::Q8_0:
        case DType::Q4_K:
        case DType::Q5_K:
        case DType::Q6_K:
            return true;
        default:
            return false;
    }
}

void run_avx2_kernel(const MatmulArgs& args) {
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
