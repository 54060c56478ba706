#pragma once
// Run-time detection of the SIMD instruction sets the CPU kernels are written for. Kernels for
// each set live in their own translation unit (compiled for that set alone), and callers pick
// one of them with these checks, so a single binary runs on any CPU of its architecture.
#include <string_view>

namespace mllm::cpu {

// Ordered from the portable fallback up; a CPU that supports one x86 level supports those
// below it.
enum class Isa {
    Scalar = 0,
    Avx2,         // AVX2 + FMA + F16C + BMI2 (Haswell, Zen and later)
    Avx512Vnni,   // AVX-512 F/BW/VL/DQ + VNNI (Ice Lake, Zen 4 and later)
    NeonDotprod,  // Armv8.2 dot product (SDOT) + fp16
};

const char* isa_name(Isa isa);
// Parses the names isa_name returns; false if unknown.
bool parse_isa(std::string_view name, Isa& out);

// True when this CPU, and the OS (which must save the wider registers), can run code for isa.
bool cpu_supports(Isa isa);

// The best instruction set this CPU supports, lowered to the one named by the environment
// variable MLLM_CPU_ISA when that is a supported lower one (tests use it to run the portable
// kernels). Read once, at the first call.
Isa best_isa();

}  // namespace mllm::cpu
