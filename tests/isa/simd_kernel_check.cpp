// One SIMD set's quantized matmul kernels against the scalar kernels and the reference
// conversions of core/quant, as a plain static program for emulators where no GoogleTest is at
// hand: `scripts/test-simd.sh neon` cross-compiles it for aarch64 and runs it under QEMU
// user-mode emulation (the NEON dot-product kernels), `scripts/test-simd.sh avx512` builds it for
// x86-64 and boots it in Bochs on an emulated AVX-512 VNNI CPU (this project's machines have AVX2
// only, and QEMU's x86 emulation stops there). The checks and tolerances are those of
// tests/backends/quant_matmul_test.cpp:
//  1. every kernel against the float dot of the dequantized weight row with the dequantized
//     activation (only float rounding separates them) and with the original float activation
//     (within the bound activation quantization allows); rows outside [row_begin, rows) and the
//     padding of each output row stay untouched;
//  2. the set under test against scalar, which form the same integer sums (only float order
//     differs); AVX-512 VNNI also bit for bit against AVX2, whose code it shares;
//  3. the tolerances catch a kernel fed nibble-swapped Q4_0 weights;
//  4. real quantizer output through the default dispatch against the float dot;
//  5. the dispatch picks the set under test on a CPU that has it, the scalar kernels on a CPU
//     without (and under MLLM_CPU_ISA=scalar): `--expect-isa NAME` checks quant_kernel_isa()
//     == NAME, `--dispatch-only` skips 1-4 (which compare against the set under test).
// `--quick` checks a tenth of the shapes of 1 (see shapes_for), for slow emulators.
// `--isa NAME` names the set under test: by default neon-dotprod on aarch64, avx512vnni on x86.
// Prints "N passed, M failed" and exits non-zero on any failure.
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "backends/cpu/kernels/cpu_features.h"
#include "backends/cpu/kernels/quant_matmul.h"
#include "core/dtype.h"
#include "core/fp16.h"
#include "core/quant/blocks.h"
#include "core/quant/quant.h"
#include "tests/support/quant_matmul_problem.h"

namespace mllm::cpu {
namespace {

using namespace matmul_check;  // the shared problem builders and reference

int g_passed = 0;
int g_failed = 0;

// Records one check; prints the first failures in full.
void check(bool ok, const std::string& what) {
    if (ok) {
        ++g_passed;
        return;
    }
    if (++g_failed <= 30) std::printf("FAIL: %s\n", what.c_str());
}

constexpr DType kWeightTypes[] = {DType::F32,  DType::F16,  DType::BF16, DType::Q8_0, DType::Q4_0,
                                  DType::Q4_1, DType::Q5_0, DType::Q4_K, DType::Q5_K, DType::Q6_K};

// k of one block, several, groups of 4 plus ragged tails (1..3 blocks), one and several
// super-blocks; rows 1/3/7/33 from row 0 and from row 5; tokens 1 (decode) to 17; and a long
// row with enough tokens to split prefill into several token chunks. `quick` (for slow
// emulators) keeps a ragged row, a long one, and the decode and prefill paths: about a tenth.
std::vector<Shape> shapes_for(DType t, bool quick) {
    const int64_t block = dtype_traits(t).block_size;
    std::vector<int64_t> ks = {256, 512, 1280};
    if (block < 256) ks = {32, 96, 224, 288, 416, 576};  // 1, 3, 7, 9, 13, 18 blocks
    if (quick) ks = {ks[1], ks.back()};
    std::vector<Shape> out;
    for (int64_t k : ks) {
        for (int64_t rows : {1, 3, 7, 33}) {
            if (quick && rows < 7) continue;
            for (int64_t n_tokens : {1, 2, 5, 17}) {
                if (quick && n_tokens == 2) continue;
                out.push_back({k, rows, 0, n_tokens});
                if (rows > 5) out.push_back({k, rows, 5, n_tokens});
            }
        }
    }
    if (block == 1) {
        // Float rows need not be multiples of the vector width.
        out.push_back({13, 7, 2, 5});
        out.push_back({1, 3, 0, 1});
        out.push_back({19, 9, 1, 1});
    }
    if (!quick) out.push_back({8192, 9, 1, 50});
    return out;
}

// Check 1: one pass/fail per problem and kernel set, naming the first bad element.
void check_against_reference(const Problem& p, Isa isa, const Reference& ref) {
    const std::string problem = reference_mismatch(p, isa, ref);
    check(problem.empty(), describe(p.type, p.shape, isa) + ": " + problem);
}

// Check 2.
void check_simd_vs_scalar(const Problem& p, const Reference& ref, Isa isa) {
    const Shape& s = p.shape;
    const std::vector<float> simd = run(p, isa, s.rows);
    std::string problem = scalar_mismatch(p, ref, run(p, Isa::Scalar, s.rows), simd);
    if (problem.empty() && isa == Isa::Avx512Vnni) {
        problem = bit_mismatch(p, run(p, Isa::Avx2, s.rows), simd);
        if (!problem.empty()) problem += " (to avx2)";
    }
    check(problem.empty(), describe(p.type, s, isa) + ": " + problem);
}

void check_matches_reference(Isa isa, bool quick) {
    for (DType t : kWeightTypes) {
        std::mt19937 rng(1234 + static_cast<unsigned>(t));
        check(quant_kernel_isa_for(isa, t) == isa,
              std::string(dtype_name(t)) + ": the " + isa_name(isa) + " path falls back");
        for (const Shape& s : shapes_for(t, quick)) {
            const Problem p = make_problem(t, s, rng);
            const Reference ref = reference(p);
            for (Isa each : {Isa::Scalar, isa}) check_against_reference(p, each, ref);
            check_simd_vs_scalar(p, ref, isa);
        }
    }
}

// Check 3: swap the two nibbles of every Q4_0 byte (elements j and j + 16 trade places); every
// result must fall outside the tolerance of the true reference.
void check_detects_swapped_nibbles(Isa isa) {
    Reference ref;
    const Problem p = swapped_nibbles_problem(&ref);
    for (Isa each : {Isa::Scalar, isa}) {
        const std::vector<float> y = run(p, each, p.shape.rows);
        const size_t caught = count_outside_tolerance(p, ref, y);
        check(caught == y.size(), std::string("swapped nibbles not caught by tolerance, isa=") +
                                      isa_name(each) + ": " + std::to_string(caught) + " of " +
                                      std::to_string(y.size()));
    }
}

// Check 4: real quantizer output (not random bytes) through the default dispatch.
void check_quantized_from_floats() {
    std::mt19937 rng(3);
    const int64_t rows = 6;
    for (int64_t n_tokens : {1, 4}) {
        for (DType t : kWeightTypes) {
            const FromFloats m = matmul_from_floats(t, 512, rows, n_tokens, rng);
            std::string problem;
            for (size_t i = 0; i < m.y.size() && problem.empty(); ++i) {
                if (!(std::fabs(m.y[i] - m.dot[i]) <= 0.01 * m.mag[i]))
                    problem = at(i % rows, i / rows, m.y[i], m.dot[i], 0.01 * m.mag[i]);
            }
            check(problem.empty(), "quantized from floats " + std::string(dtype_name(t)) +
                                       " tokens=" + std::to_string(n_tokens) + ":" + problem);
        }
    }
}

// Check 5.
void check_dispatch(Isa isa, const char* expect_isa) {
    if (std::strcmp(expect_isa, isa_name(isa)) == 0)
        check(cpu_supports(isa), std::string("this CPU (or emulator) lacks ") + isa_name(isa));
#if defined(__aarch64__)
    check(!cpu_supports(Isa::Avx2) && !cpu_supports(Isa::Avx512Vnni), "x86 sets reported");
#else
    check(!cpu_supports(Isa::NeonDotprod), "an Arm set reported");
#endif
    check(cpu_supports(best_isa()), "best_isa() unsupported");
    const std::string got = quant_kernel_isa();
    check(got == expect_isa,
          std::string("quant_kernel_isa() is ") + got + ", expected " + expect_isa);
    std::printf("quant_kernel_isa() = %s\n", got.c_str());
}

}  // namespace
}  // namespace mllm::cpu

int main(int argc, char** argv) {
    using namespace mllm::cpu;
#if defined(__aarch64__)
    Isa isa = Isa::NeonDotprod;
#else
    Isa isa = Isa::Avx512Vnni;
#endif
    const char* expect_isa = nullptr;
    bool dispatch_only = false;
    bool quick = false;
    for (int i = 1; i < argc; ++i) {
        if (std::strcmp(argv[i], "--isa") == 0 && i + 1 < argc && parse_isa(argv[i + 1], isa)) {
            ++i;
        } else if (std::strcmp(argv[i], "--expect-isa") == 0 && i + 1 < argc) {
            expect_isa = argv[++i];
        } else if (std::strcmp(argv[i], "--dispatch-only") == 0) {
            dispatch_only = true;
        } else if (std::strcmp(argv[i], "--quick") == 0) {
            quick = true;
        } else {
            std::fprintf(stderr,
                         "usage: %s [--isa NAME] [--expect-isa NAME] [--dispatch-only] [--quick]\n",
                         argv[0]);
            return 2;
        }
    }
    if (expect_isa == nullptr) expect_isa = isa_name(isa);
    try {
        check_dispatch(isa, expect_isa);
        if (!dispatch_only) {
            check_matches_reference(isa, quick);
            check_detects_swapped_nibbles(isa);
            check_quantized_from_floats();
        }
    } catch (const std::exception& e) {
        std::printf("FAIL: exception: %s\n", e.what());
        ++g_failed;
    }
    std::printf("%d passed, %d failed\n", g_passed, g_failed);
    return g_failed == 0 ? 0 : 1;
}
