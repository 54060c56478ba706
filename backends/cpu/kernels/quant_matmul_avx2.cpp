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
// groups of 8 blocks whose 8 integer dot products end up in the 8 lanes of one vector, scaled
// by 8 weight scales x 8 activation scales at once (see Layout below). The K formats apply
// their small integer sub-block scales inside the integer dot product and need float work
// once per 256 elements.
//
// Decode (one token, memory-bound) streams a thread's rows one after the other as a single
// sequential stream, with software prefetch into L2; for the 32-element formats the stream goes
// by groups of 8 blocks whatever the row length, a group that straddles two rows being split
// between them (gemv_stream), so short and ragged rows (k = 576: 18 blocks) cost no more per
// byte than long ones. Prefill (compute-bound) tiles rows x
// tokens: weights are decoded once per group (or super-block) of 4 rows into an L1 scratch and
// reused by every token of a chunk sized to keep its activations in L2.
#include <immintrin.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <numeric>

#include "backends/cpu/kernels/quant_matmul.h"
#include "core/quant/blocks.h"

namespace mllm::cpu::detail {
namespace {

// Activations of a chunk of tokens are sized to stay in L2 (512 KiB per core on Zen 3, 1-2 MiB
// on recent Intel) next to the weights being decoded.
constexpr size_t kActChunkBytes = 192 * 1024;
// Prefill decodes this many rows together; their 4 sums per token are stored as one vector.
constexpr int kRowTile = 4;
// Decode reads each weight row once. With hardware prefetch alone, the core waited on DRAM
// about as long as it computed (Q4_0 at ~55% of a plain read's bandwidth); asking for lines
// this far ahead, into L2, overlaps the two (~90%). Measured on Zen 3 between 1 and 16 KiB;
// interleaving 4 rows (4 streams) instead of one did worse in every variant.
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

// ---- formats with 32-element blocks and Q8_0 activations --------------------------------------
// Work goes by groups of 8 blocks. Each block's dot product is 32 products, formed 2 at a time
// by vpmaddubsw (u8 x s8 -> s16 pairs) and then summed; the layouts below decide how much
// horizontal work that sum takes, because horizontal adds are slow (vphaddw/vphaddd issue
// once per 2 cycles on Zen 3):
//   Natural      block b in vector b, element order (Q8_0 in decode). A transpose-add folds
//                the 8 vectors of 8 partial sums into one vector, lane b = block b.
//   Paired       the 4-bit formats in decode: one 16-byte load holds the nibbles of two blocks,
//                so vector 2j holds the low nibbles (elements 0..15) of blocks 2j | 2j+1 and
//                vector 2j+1 their high nibbles (elements 16..31). The two products of a pair
//                add in 16 bits; a transpose-add of 4 vectors leaves lanes in block order
//                0 2 4 6 | 1 3 5 7.
//   Interleaved  prefill: the 8 blocks transposed in 32-bit units, so vector v holds elements
//                4v..4v+3 of every block, block b in lane b. Sums then stay in their lanes:
//                no horizontal work at all. Transposing costs 3 shuffles per block, paid once
//                per group of a row (weights) or of a token (activations) and reused across
//                the whole tile.
// Activations are rearranged once per call into the layout the weights use. They come from
// quantize_activation_row, so |a| <= 127, which the 16-bit sums below rely on.
enum class Layout { kNatural, kPaired, kInterleaved };

// Block whose value lane `lane` of a per-block vector (scales, sums, dots) holds.
template <Layout L>
constexpr int lane_block(int lane) {
    if constexpr (L == Layout::kPaired) return lane < 4 ? 2 * lane : 2 * (lane - 4) + 1;
    return lane;
}

// The fp16 fields at p + lane_block(i) * stride for lanes i = 0..7, as floats. The gather is
// done in general registers (the empty asm keeps GCC from vectorizing it): they are idle in
// these loops, while vector ports are the bottleneck.
template <Layout L>
inline __m256 load_halves8(const uint8_t* p, size_t stride) {
    uint64_t lo = 0;
    uint64_t hi = 0;
    for (int lane = 0; lane < 4; ++lane) {
        uint64_t a = load_u16(p + lane_block<L>(lane) * stride);
        uint64_t b = load_u16(p + lane_block<L>(lane + 4) * stride);
        __asm__("" : "+r"(a), "+r"(b));
        lo |= a << (16 * lane);
        hi |= b << (16 * lane);
    }
    return _mm256_cvtph_ps(_mm_set_epi64x(static_cast<long long>(hi), static_cast<long long>(lo)));
}

// Both fp16 fields of the 4-byte headers at p + lane_block(i) * stride (scale, min), as floats:
// one 32-bit load per block instead of two 16-bit ones, each u64 holding two lanes' pairs.
template <Layout L>
inline void load_half_pairs8(const uint8_t* p, size_t stride, __m256& first, __m256& second) {
    uint64_t u[4];
    // u[0], u[2]: lanes 0-1 and 2-3 (low halves); u[1], u[3]: lanes 4-5 and 6-7.
    for (int j = 0; j < 4; ++j) {
        const int lane = (j & 1) * 4 + (j >> 1) * 2;
        uint64_t a = load_u32(p + lane_block<L>(lane) * stride);
        uint64_t b = load_u32(p + lane_block<L>(lane + 1) * stride);
        __asm__("" : "+r"(a), "+r"(b));
        u[j] = a | b << 32;
    }
    const __m256 x =
        _mm256_cvtph_ps(_mm_set_epi64x(static_cast<long long>(u[1]), static_cast<long long>(u[0])));
    const __m256 y =
        _mm256_cvtph_ps(_mm_set_epi64x(static_cast<long long>(u[3]), static_cast<long long>(u[2])));
    first = _mm256_shuffle_ps(x, y, 0x88);
    second = _mm256_shuffle_ps(x, y, 0xdd);
}

// Four vectors of int32 lanes -> lane i of half h (= 4 * h + i) is the sum of the 4 lanes of
// half h of m[i]. Unpacks and adds, no hadd.
inline __m256i transpose_add4(__m256i m0, __m256i m1, __m256i m2, __m256i m3) {
    const __m256i s01 =
        _mm256_add_epi32(_mm256_unpacklo_epi32(m0, m1), _mm256_unpackhi_epi32(m0, m1));
    const __m256i s23 =
        _mm256_add_epi32(_mm256_unpacklo_epi32(m2, m3), _mm256_unpackhi_epi32(m2, m3));
    return _mm256_add_epi32(_mm256_unpacklo_epi64(s01, s23), _mm256_unpackhi_epi64(s01, s23));
}

// Eight vectors of 8 int32 lanes -> one vector whose lane b is the sum of the lanes of p[b].
inline __m256i reduce8(const __m256i p[8]) {
    const __m256i lo = transpose_add4(p[0], p[1], p[2], p[3]);  // blocks 0..3, per half
    const __m256i hi = transpose_add4(p[4], p[5], p[6], p[7]);  // blocks 4..7, per half
    return _mm256_add_epi32(_mm256_permute2x128_si256(lo, hi, 0x20),
                            _mm256_permute2x128_si256(lo, hi, 0x31));
}

// In place: dword i of v[j] becomes dword j of v[i] (an 8 x 8 transpose of 32-bit lanes).
inline void transpose8x8_epi32(__m256i v[8]) {
    __m256i t[8];
    for (int i = 0; i < 8; i += 2) {
        t[i] = _mm256_unpacklo_epi32(v[i], v[i + 1]);
        t[i + 1] = _mm256_unpackhi_epi32(v[i], v[i + 1]);
    }
    __m256i u[8];
    for (int i = 0; i < 8; i += 4) {
        u[i] = _mm256_unpacklo_epi64(t[i], t[i + 2]);
        u[i + 1] = _mm256_unpackhi_epi64(t[i], t[i + 2]);
        u[i + 2] = _mm256_unpacklo_epi64(t[i + 1], t[i + 3]);
        u[i + 3] = _mm256_unpackhi_epi64(t[i + 1], t[i + 3]);
    }
    for (int i = 0; i < 4; ++i) {
        v[i] = _mm256_permute2x128_si256(u[i], u[i + 4], 0x20);
        v[i + 4] = _mm256_permute2x128_si256(u[i], u[i + 4], 0x31);
    }
}

// 8 blocks' quants in element order -> layout L.
template <Layout L>
inline void arrange(__m256i q[8]) {
    if constexpr (L == Layout::kPaired) {
        for (int j = 0; j < 4; ++j) {
            const __m256i lo = _mm256_permute2x128_si256(q[2 * j], q[2 * j + 1], 0x20);
            const __m256i hi = _mm256_permute2x128_si256(q[2 * j], q[2 * j + 1], 0x31);
            q[2 * j] = lo;
            q[2 * j + 1] = hi;
        }
    } else if constexpr (L == Layout::kInterleaved) {
        transpose8x8_epi32(q);
    }
}

// sum over pairs of u8 x s8 products, widened to 8 int32 lanes of 4 products each.
inline __m256i dot_u8s8(__m256i u, __m256i s) {
    return _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), _mm256_set1_epi16(1));
}

inline __m128i load128(const uint8_t* p) {
    return _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
}

inline void store256(void* p, __m256i v) {
    _mm256_store_si256(static_cast<__m256i*>(p), v);
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

// The formats. Each gives: block size; its decode layout; zero point as a shift (q - (1 <<
// kZeroShift); none if < 0); an fp16 min at byte 2 (x = d q + m); whether quants are signed;
// the largest unsigned quant; its quants as one block in element order and, for the paired
// ones, as a pair of blocks (lo, hi). The fp16 scale is at byte 0 in all of them.

// 16 bytes at p0 in the low half, 16 at p1 in the high half.
inline __m256i load_pair128(const uint8_t* p0, const uint8_t* p1) {
    return _mm256_inserti128_si256(_mm256_castsi128_si256(load128(p0)), load128(p1), 1);
}

// The nibbles of the blocks at qs0 and qs1.
inline void pair_nibbles(const uint8_t* qs0, const uint8_t* qs1, __m256i& lo, __m256i& hi) {
    const __m256i both = load_pair128(qs0, qs1);
    const __m256i low4 = _mm256_set1_epi8(0x0f);
    lo = _mm256_and_si256(both, low4);
    hi = _mm256_and_si256(_mm256_srli_epi16(both, 4), low4);
}

// Byte j of each half of the result is 16 when bit (j % 8) of byte select[j] of that half of
// `bits` is set, else 0. The bit isolated by the mask is positive as a signed byte except bit
// 7 (-128), so signing +-16 by it gives +16 for every set bit: 4 instructions, no compare.
inline __m256i spread_bits_to_16(__m256i bits, __m256i select) {
    const __m256i bit = _mm256_set1_epi64x(static_cast<long long>(0x8040201008040201ull));
    const __m256i sixteen = _mm256_set1_epi64x(static_cast<long long>(0xf010101010101010ull));
    return _mm256_sign_epi8(sixteen, _mm256_and_si256(_mm256_shuffle_epi8(bits, select), bit));
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
    static constexpr Layout kDecodeLayout = Layout::kPaired;
    static constexpr int kZeroShift = 3;
    static constexpr bool kHasMin = false;
    static constexpr bool kSigned = false;
    static constexpr int kMaxQ = 15;
    static void pair(const uint8_t* b, __m256i& lo, __m256i& hi) {
        pair_nibbles(b + 2, b + kBytes + 2, lo, hi);
    }
    static __m256i block(const uint8_t* b) { return block_nibbles(b + 2); }
};

struct Q4_1 {
    static constexpr size_t kBytes = sizeof(BlockQ4_1);
    static constexpr Layout kDecodeLayout = Layout::kPaired;
    static constexpr int kZeroShift = -1;
    static constexpr bool kHasMin = true;
    static constexpr bool kSigned = false;
    static constexpr int kMaxQ = 15;
    static void pair(const uint8_t* b, __m256i& lo, __m256i& hi) {
        pair_nibbles(b + 4, b + kBytes + 4, lo, hi);
    }
    static __m256i block(const uint8_t* b) { return block_nibbles(b + 4); }
};

struct Q5_0 {
    static constexpr size_t kBytes = sizeof(BlockQ5_0);
    static constexpr Layout kDecodeLayout = Layout::kPaired;
    static constexpr int kZeroShift = 4;
    static constexpr bool kHasMin = false;
    static constexpr bool kSigned = false;
    static constexpr int kMaxQ = 31;
    static void pair(const uint8_t* b, __m256i& lo, __m256i& hi) {
        pair_nibbles(b + 6, b + kBytes + 6, lo, hi);
        // Each half's bytes 0-3 are its block's 32 fifth bits: bytes 0-1 for the lo elements
        // (0..15), 2-3 for the hi ones.
        const __m256i bits = load_pair128(b + 2, b + kBytes + 2);
        const __m256i lo_select =
            _mm256_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1,  //
                             0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1);
        const __m256i hi_select =
            _mm256_setr_epi8(2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3,  //
                             2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3);
        lo = _mm256_add_epi8(lo, spread_bits_to_16(bits, lo_select));
        hi = _mm256_add_epi8(hi, spread_bits_to_16(bits, hi_select));
    }
    static __m256i block(const uint8_t* b) {
        const __m256i select = _mm256_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1,  //
                                                2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3);
        return _mm256_or_si256(block_nibbles(b + 6), spread_bits_to_0x10(load_u32(b + 2), select));
    }
};

struct Q8_0 {
    static constexpr size_t kBytes = sizeof(BlockQ8_0);
    static constexpr Layout kDecodeLayout = Layout::kNatural;
    static constexpr int kZeroShift = -1;
    static constexpr bool kHasMin = false;
    static constexpr bool kSigned = true;
    static constexpr int kMaxQ = 128;
    static __m256i block(const uint8_t* b) { return load256(b + 2); }
};

// The activation side of one group of 8 blocks, rearranged once per call: quants in the
// weights' layout, and per lane (in the layout's lane order) the block's scale and sums.
struct alignas(32) ActGroup {
    int8_t qs[8][kQK];
    float d[8];
    int32_t zsum[8];  // sum of quants << the weight format's zero shift (0 without one)
    float dsum[8];    // d * sum of quants (for mins)
};

// One group of 8 weight blocks decoded for reuse across tokens (and for the ragged last group
// of a row, zero-padded), in a layout as ActGroup. Signed formats keep |q| in q and q in sign.
struct alignas(32) WeightGroup {
    uint8_t q[8][kQK];
    int8_t sign[8][kQK];
    float d[8];
    float m[8];
};

// Fills ng groups for one Q8_0 activation row of nb blocks for weights of format F in layout
// L. Group g holds activation blocks 8g .. 8g + 7: past nb they are zero, or with `wrap` they
// start over at block 0 (block i mod nb), for decode's flat stream of rows (see gemv_stream).
template <class F, Layout L>
void prepare_act_groups(const uint8_t* row, int64_t nb, int64_t ng, bool wrap, ActGroup* groups) {
    const auto* blocks = reinterpret_cast<const BlockQ8_0*>(row);
    for (int64_t g = 0; g < ng; ++g) {
        ActGroup& out = groups[g];
        __m256i q[8];
        __m256i sums[8];
        float d[8];
        for (int b = 0; b < 8; ++b) {
            int64_t i = g * 8 + b;
            if (wrap) i %= nb;
            q[b] = i < nb ? load256(blocks[i].qs) : _mm256_setzero_si256();
            d[b] = i < nb ? half_to_float(blocks[i].d) : 0.0f;
            sums[b] = dot_u8s8(_mm256_set1_epi8(1), q[b]);
        }
        __m256i sum = reduce8(sums);
        arrange<L>(q);
        for (int b = 0; b < 8; ++b) store256(out.qs[b], q[b]);
        if constexpr (L == Layout::kPaired)
            sum = _mm256_permutevar8x32_epi32(sum, _mm256_setr_epi32(0, 2, 4, 6, 1, 3, 5, 7));
        for (int lane = 0; lane < 8; ++lane) out.d[lane] = d[lane_block<L>(lane)];
        store256(out.zsum, F::kZeroShift >= 0 ? _mm256_slli_epi32(sum, F::kZeroShift)
                                              : _mm256_setzero_si256());
        _mm256_store_ps(out.dsum, _mm256_mul_ps(_mm256_load_ps(out.d), _mm256_cvtepi32_ps(sum)));
    }
}

// Decodes the first `count` (<= 8) blocks at `blocks` for prefill (interleaved); the rest of
// the group is zero.
template <class F>
void decode_group(const uint8_t* blocks, int count, WeightGroup& out) {
    constexpr Layout L = Layout::kInterleaved;
    __m256i q[8];
    for (int b = 0; b < 8; ++b) {
        const uint8_t* blk = blocks + b * F::kBytes;
        q[b] = b < count ? F::block(blk) : _mm256_setzero_si256();
    }
    for (int lane = 0; lane < 8; ++lane) {
        const int b = lane_block<L>(lane);
        const uint8_t* blk = blocks + b * F::kBytes;
        out.d[lane] = b < count ? half_to_float(load_u16(blk)) : 0.0f;
        out.m[lane] = F::kHasMin && b < count ? half_to_float(load_u16(blk + 2)) : 0.0f;
    }
    if constexpr (F::kSigned) {
        __m256i a[8];
        for (int b = 0; b < 8; ++b) a[b] = _mm256_abs_epi8(q[b]);
        arrange<L>(a);
        arrange<L>(q);
        for (int b = 0; b < 8; ++b) {
            store256(out.q[b], a[b]);
            store256(out.sign[b], q[b]);
        }
    } else {
        arrange<L>(q);
        for (int b = 0; b < 8; ++b) store256(out.q[b], q[b]);
    }
}

// The 8 integer block dot products of a group, lane order of L, from vpmaddubsw results:
// p[v] for v < 8 (natural, interleaved) or 4 vectors of 16-bit pair sums (paired).
template <class F, Layout L>
inline __m256i reduce_products(const __m256i* p) {
    const __m256i ones = _mm256_set1_epi16(1);
    if constexpr (L == Layout::kPaired) {
        // Horizontal adds keep the halves apart, which is the lane order wanted here. p[j]
        // holds sums of 4 products: 16 products of a 4-bit quant fit in 16 bits (16 * 15 * 128
        // < 2^15), 8 of a 5-bit one.
        const __m256i p01 = _mm256_hadd_epi16(p[0], p[1]);
        const __m256i p23 = _mm256_hadd_epi16(p[2], p[3]);
        if constexpr (F::kMaxQ <= 15) return _mm256_madd_epi16(_mm256_hadd_epi16(p01, p23), ones);
        return _mm256_hadd_epi32(_mm256_madd_epi16(p01, ones), _mm256_madd_epi16(p23, ones));
    } else if constexpr (L == Layout::kNatural) {
        __m256i m[8];
        for (int b = 0; b < 8; ++b) m[b] = _mm256_madd_epi16(p[b], ones);
        return reduce8(m);
    } else if constexpr (F::kMaxQ <= 15) {
        // 16 products of a 4-bit quant and an 8-bit activation fit in 16 bits
        // (16 * 15 * 128 < 2^15): add all 8 vectors before widening.
        __m256i s = p[0];
        for (int v = 1; v < 8; ++v) s = _mm256_add_epi16(s, p[v]);
        return _mm256_madd_epi16(s, ones);
    } else if constexpr (F::kMaxQ <= 31) {
        // 8 products of a 5-bit quant do: widen two halves.
        __m256i s0 = _mm256_add_epi16(_mm256_add_epi16(p[0], p[1]), _mm256_add_epi16(p[2], p[3]));
        __m256i s1 = _mm256_add_epi16(_mm256_add_epi16(p[4], p[5]), _mm256_add_epi16(p[6], p[7]));
        return _mm256_add_epi32(_mm256_madd_epi16(s0, ones), _mm256_madd_epi16(s1, ones));
    } else {
        // Pairs of 8-bit x 8-bit products fill 16 bits already.
        __m256i s = _mm256_madd_epi16(p[0], ones);
        for (int v = 1; v < 8; ++v) s = _mm256_add_epi32(s, _mm256_madd_epi16(p[v], ones));
        return s;
    }
}

// The dots straight from the weight blocks in memory (decode).
template <class F>
inline __m256i group_dots(const uint8_t* blocks, const ActGroup& a) {
    constexpr Layout L = F::kDecodeLayout;
    if constexpr (L == Layout::kPaired) {
        __m256i p[4];
        for (int j = 0; j < 4; ++j) {
            __m256i lo, hi;
            F::pair(blocks + 2 * j * F::kBytes, lo, hi);
            p[j] = _mm256_add_epi16(_mm256_maddubs_epi16(lo, load256(a.qs[2 * j])),
                                    _mm256_maddubs_epi16(hi, load256(a.qs[2 * j + 1])));
        }
        return reduce_products<F, L>(p);
    } else {
        __m256i p[8];
        for (int b = 0; b < 8; ++b) {
            const __m256i q = F::block(blocks + b * F::kBytes);
            p[b] = _mm256_maddubs_epi16(_mm256_abs_epi8(q), _mm256_sign_epi8(load256(a.qs[b]), q));
        }
        return reduce_products<F, L>(p);
    }
}

// The same from a group decoded for prefill (interleaved).
template <class F>
inline __m256i group_dots(const WeightGroup& w, const ActGroup& a) {
    __m256i p[8];
    for (int v = 0; v < 8; ++v) {
        __m256i av = load256(a.qs[v]);
        if constexpr (F::kSigned) av = _mm256_sign_epi8(av, load256(w.sign[v]));
        p[v] = _mm256_maddubs_epi16(load256(w.q[v]), av);
    }
    return reduce_products<F, Layout::kInterleaved>(p);
}

// acc += the float value of one group: dots (one lane per block) minus the zero point, scaled
// per block, plus the min term; zero points and mins go through the activation sums.
template <class F>
inline __m256 group_accumulate(__m256i dots, __m256 wd, __m256 wm, const ActGroup& a, __m256 acc) {
    if constexpr (F::kZeroShift >= 0) {
        dots = _mm256_sub_epi32(dots, _mm256_load_si256(reinterpret_cast<const __m256i*>(a.zsum)));
    }
    const __m256 scale = _mm256_mul_ps(wd, _mm256_load_ps(a.d));
    acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(dots), scale, acc);
    if constexpr (F::kHasMin) acc = _mm256_fmadd_ps(wm, _mm256_load_ps(a.dsum), acc);
    return acc;
}

// Decode reads a thread's rows as one flat stream of blocks: rows are back to back in memory,
// so rows [r0, r1) of nb blocks are the block positions [r0 nb, r1 nb) counted from the
// matrix start, and the stream goes by groups of 8 positions aligned to multiples of 8 whatever
// nb is. A row whose block count is not a multiple of 8 thus costs no ragged group of its own:
// a group that straddles rows is computed once and its lanes are split between them. Group G
// meets the activation blocks (8G + j) mod nb, which repeat every nb / gcd(nb, 8) groups: the
// activation groups are prepared for one such period (at most 8 rows' worth).
constexpr size_t kMaxPeriodBytes = 64 * 1024;

// acc + the lanes of v whose blocks (in the group) are before end_in_group: the value of a row
// that ends there. Those lanes of v are cleared.
template <Layout L>
inline float split_row(__m256 acc, __m256& v, int64_t end_in_group) {
    const __m256i lane_blocks =
        _mm256_setr_epi32(lane_block<L>(0), lane_block<L>(1), lane_block<L>(2), lane_block<L>(3),
                          lane_block<L>(4), lane_block<L>(5), lane_block<L>(6), lane_block<L>(7));
    const __m256 in_row = _mm256_castsi256_ps(
        _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(end_in_group)), lane_blocks));
    const float sum = hsum(_mm256_add_ps(acc, _mm256_and_ps(v, in_row)));
    v = _mm256_andnot_ps(in_row, v);
    return sum;
}

// y[i] = row i . activations for the rows i in [s0 / nb, s1 / nb), where s0 and s1 are block
// positions from w (multiples of nb) and group G of the stream uses act[G % period].
template <class F>
void gemv_stream(const uint8_t* w, int64_t nb, int64_t s0, int64_t s1, const ActGroup* act,
                 int64_t period, float* y) {
    constexpr Layout L = F::kDecodeLayout;
    constexpr size_t kGroupBytes = 8 * F::kBytes;
    alignas(32) uint8_t edge[kGroupBytes];
    int64_t row = s0 / nb;
    int64_t row_end = s0 + nb;   // where the row being summed ends
    int64_t first = s0 / 8 * 8;  // the current group's first block position
    int64_t phase = (first / 8) % period;
    __m256 acc = _mm256_setzero_ps();
    while (first < s1) {
        const uint8_t* blocks = w + first * F::kBytes;
        if (first < s0 || first + 8 > s1) [[unlikely]] {
            // A group cut by an end of the stream: its blocks inside the stream, copied into
            // zeros (zero scales: the lanes outside add nothing). Never reads past s1, which
            // may be the end of the matrix.
            const int64_t lo = s0 > first ? s0 : first;
            const int64_t hi = min64(s1, first + 8);
            std::memset(edge, 0, kGroupBytes);
            std::memcpy(edge + (lo - first) * F::kBytes, w + lo * F::kBytes,
                        static_cast<size_t>(hi - lo) * F::kBytes);
            blocks = edge;
        } else {
            prefetch_ahead(blocks, kGroupBytes);
        }
        const ActGroup& a = act[phase];
        __m256i idots = group_dots<F>(blocks, a);
        if constexpr (F::kZeroShift >= 0) {
            idots = _mm256_sub_epi32(idots,
                                     _mm256_load_si256(reinterpret_cast<const __m256i*>(a.zsum)));
        }
        const __m256 dots = _mm256_cvtepi32_ps(idots);
        __m256 wd;
        __m256 wm;
        if constexpr (F::kHasMin) {
            load_half_pairs8<L>(blocks, F::kBytes, wd, wm);
        } else {
            wd = load_halves8<L>(blocks, F::kBytes);
        }
        const __m256 scale = _mm256_mul_ps(wd, _mm256_load_ps(a.d));
        if (row_end > first + 8) [[likely]] {
            acc = _mm256_fmadd_ps(dots, scale, acc);
            if constexpr (F::kHasMin) acc = _mm256_fmadd_ps(wm, _mm256_load_ps(a.dsum), acc);
        } else {
            // One row (or, for nb < 8, several) ends in this group.
            __m256 v = _mm256_mul_ps(dots, scale);
            if constexpr (F::kHasMin) v = _mm256_fmadd_ps(wm, _mm256_load_ps(a.dsum), v);
            const int64_t last = min64(first + 8, s1);
            do {
                y[row++] = split_row<L>(acc, v, row_end - first);
                acc = _mm256_setzero_ps();
                row_end += nb;
            } while (row_end <= last);
            acc = v;
        }
        first += 8;
        if (++phase == period) phase = 0;
    }
}

// Prefill: NR rows x tc tokens; each group of a row is decoded once (interleaved) and reused
// by every token. acc holds NR * tc accumulators.
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
        constexpr Layout L = F::kDecodeLayout;
        const int64_t period = nb / std::gcd(nb, int64_t{8});  // groups per activation pattern
        const size_t period_bytes = static_cast<size_t>(period) * sizeof(ActGroup);
        if (args.w_row_bytes == static_cast<size_t>(nb) * F::kBytes &&
            period_bytes <= kMaxPeriodBytes) {
            auto* act = static_cast<ActGroup*>(kernel_scratch(period_bytes));
            prepare_act_groups<F, L>(args.act, nb, period, /*wrap=*/true, act);
            gemv_stream<F>(args.w, nb, args.row_begin * nb, args.row_end * nb, act, period, args.y);
            return;
        }
        // Rows apart in memory, or a long period: one stream per row.
        auto* act = static_cast<ActGroup*>(kernel_scratch(act_bytes));
        prepare_act_groups<F, L>(args.act, nb, ng, /*wrap=*/false, act);
        for (int64_t r = args.row_begin; r < args.row_end; ++r)
            gemv_stream<F>(args.w + r * args.w_row_bytes, nb, 0, nb, act, ng, args.y + r);
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
        for (int64_t t = 0; t < tc; ++t) {
            prepare_act_groups<F, Layout::kInterleaved>(args.act + (t0 + t) * args.act_row_bytes,
                                                        nb, ng, /*wrap=*/false, act + t * ng);
        }
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

// Prefill tokens per K-format tile: 8 int32 sums + quants + multipliers + temporaries fill the
// 16 vector registers.
constexpr int kKTokenTile = 8;

// One Q8_K activation block copied to 32-byte alignment (the blocks themselves are 292 bytes
// apart, so half of their vector loads would straddle cache lines).
struct alignas(32) KAct {
    int8_t qs[kQK_K];
    int16_t bsums[16];
    float d;
};

// Prefill tile: one decoded super-block of one row against NT tokens. The row's quants and
// multipliers of a chunk stay in registers while the tokens' activations stream past, so the
// inner loop loads one vector per 32 multiply-adds.
template <int NT>
inline void k_tile(const KWeights& kw, const KAct* a, __m256* acc) {
    __m256i isum[NT];
    for (int t = 0; t < NT; ++t) isum[t] = _mm256_setzero_si256();
#pragma GCC unroll 8
    for (int c = 0; c < 8; ++c) {
        const __m256i q = load256(kw.q[c]);
        const __m256i sc = load256(kw.scale[c]);
        for (int t = 0; t < NT; ++t) {
            const __m256i p = _mm256_maddubs_epi16(q, load256(a[t].qs + 32 * c));
            isum[t] = _mm256_add_epi32(isum[t], _mm256_madd_epi16(p, sc));
        }
    }
    const __m256i mins = load256(kw.mins);
    for (int t = 0; t < NT; ++t) {
        const __m256i msum = _mm256_madd_epi16(mins, load256(a[t].bsums));
        __m256 v =
            _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum[t]), _mm256_set1_ps(kw.d * a[t].d), acc[t]);
        acc[t] = _mm256_fnmadd_ps(_mm256_cvtepi32_ps(msum), _mm256_set1_ps(kw.dmin * a[t].d), v);
    }
}

// Prefill: NR rows x tc tokens. Each super-block of a row is decoded once into an L1 scratch
// and reused by every token; acc holds NR * tc accumulators (row-major by token).
template <class F, int NR>
void gemm_k_rows(const uint8_t* w, size_t w_stride, int64_t nsb, const KAct* act, int64_t tc,
                 __m256* acc, float* y, int64_t ldy) {
    for (int64_t i = 0; i < NR * tc; ++i) acc[i] = _mm256_setzero_ps();
    KWeights kw[NR];
    for (int64_t s = 0; s < nsb; ++s) {
        for (int r = 0; r < NR; ++r) decode_k<F>(w + r * w_stride + s * F::kBytes, kw[r]);
        int64_t t = 0;
        for (; t + kKTokenTile <= tc; t += kKTokenTile) {
            const KAct* a = act + s * tc + t;  // activations are stored block-major
            for (int r = 0; r < NR; ++r) {
                __m256 tile_acc[kKTokenTile];
                for (int i = 0; i < kKTokenTile; ++i) tile_acc[i] = acc[(t + i) * NR + r];
                k_tile<kKTokenTile>(kw[r], a, tile_acc);
                for (int i = 0; i < kKTokenTile; ++i) acc[(t + i) * NR + r] = tile_acc[i];
            }
        }
        for (; t < tc; ++t)
            for (int r = 0; r < NR; ++r) k_tile<1>(kw[r], act + s * tc + t, acc + t * NR + r);
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
    const size_t act_bytes = static_cast<size_t>(nsb) * sizeof(KAct);
    // A whole number of token tiles per chunk: leftover tokens take the slower 1-token path.
    const int64_t tiles = static_cast<int64_t>(kActChunkBytes / act_bytes) / kKTokenTile;
    const int64_t tc_max = min64(args.n_tokens, (tiles > 1 ? tiles : 1) * kKTokenTile);
    const size_t acc_offset = (act_bytes * static_cast<size_t>(tc_max) + 63) / 64 * 64;
    auto* scratch =
        static_cast<uint8_t*>(kernel_scratch(acc_offset + sizeof(__m256) * kRowTile * tc_max));
    auto* act = reinterpret_cast<KAct*>(scratch);
    auto* acc = reinterpret_cast<__m256*>(scratch + acc_offset);
    for (int64_t t0 = 0; t0 < args.n_tokens; t0 += tc_max) {
        const int64_t tc = min64(tc_max, args.n_tokens - t0);
        // Block-major (all tokens' block s together), the order the tiles read them in.
        for (int64_t t = 0; t < tc; ++t) {
            const auto* row =
                reinterpret_cast<const BlockQ8_K*>(args.act + (t0 + t) * args.act_row_bytes);
            for (int64_t s = 0; s < nsb; ++s) {
                KAct& out = act[s * tc + t];
                for (int c = 0; c < 8; ++c) store256(out.qs + 32 * c, load256(row[s].qs + 32 * c));
                store256(out.bsums, load256(row[s].bsums));
                out.d = row[s].d;
            }
        }
        float* y = args.y + t0 * args.ldy;
        int64_t r = args.row_begin;
        for (; r + kRowTile <= args.row_end; r += kRowTile) {
            gemm_k_rows<F, kRowTile>(args.w + r * args.w_row_bytes, args.w_row_bytes, nsb, act, tc,
                                     acc, y + r, args.ldy);
        }
        for (; r < args.row_end; ++r) {
            gemm_k_rows<F, 1>(args.w + r * args.w_row_bytes, args.w_row_bytes, nsb, act, tc, acc,
                              y + r, args.ldy);
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

void quantize_row_q8_0_avx2(const float* x, void* dst, int64_t k) {
    auto* blocks = static_cast<BlockQ8_0*>(dst);
    const __m256 abs_mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
    const __m256 sign_mask = _mm256_castsi256_ps(_mm256_set1_epi32(static_cast<int>(0x80000000u)));
    const __m256 half = _mm256_set1_ps(0.5f);
    const __m256 one = _mm256_set1_ps(1.0f);
    for (int64_t b = 0; b < k / kQK; ++b, x += kQK) {
        __m256 v[4];
        __m256 amax = _mm256_setzero_ps();
        for (int i = 0; i < 4; ++i) {
            v[i] = _mm256_loadu_ps(x + 8 * i);
            amax = _mm256_max_ps(amax, _mm256_and_ps(v[i], abs_mask));
        }
        __m128 m = _mm_max_ps(_mm256_castps256_ps128(amax), _mm256_extractf128_ps(amax, 1));
        m = _mm_max_ps(m, _mm_movehl_ps(m, m));
        m = _mm_max_ss(m, _mm_movehdup_ps(m));
        // The reference's scalar expressions, in the same order: d = amax / 127, id = 1 / d.
        const float d = _mm_cvtss_f32(m) / 127.0f;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        blocks[b].d = _cvtss_sh(d, _MM_FROUND_TO_NEAREST_INT);
        __m256i q[4];
        for (int i = 0; i < 4; ++i) {
            // Round half away from zero (std::round) exactly: truncate, then step one away
            // from zero when the dropped fraction (exact in float) is at least one half.
            const __m256 p = _mm256_mul_ps(v[i], _mm256_set1_ps(id));
            const __m256 t = _mm256_round_ps(p, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
            const __m256 frac = _mm256_and_ps(_mm256_sub_ps(p, t), abs_mask);
            const __m256 step = _mm256_and_ps(_mm256_cmp_ps(frac, half, _CMP_GE_OQ),
                                              _mm256_or_ps(one, _mm256_and_ps(p, sign_mask)));
            q[i] = _mm256_cvtps_epi32(_mm256_add_ps(t, step));
        }
        // int32 -> int8; the packs interleave 128-bit halves, the permute restores the order.
        const __m256i q16a = _mm256_packs_epi32(q[0], q[1]);
        const __m256i q16b = _mm256_packs_epi32(q[2], q[3]);
        const __m256i q8 = _mm256_packs_epi16(q16a, q16b);
        _mm256_storeu_si256(
            reinterpret_cast<__m256i*>(blocks[b].qs),
            _mm256_permutevar8x32_epi32(q8, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7)));
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
