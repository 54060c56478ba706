#include "backends/cpu/kernels/cpu_features.h"

#include <cstdint>
#include <cstdlib>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif
#if defined(__aarch64__) && defined(__linux__)
#include <asm/hwcap.h>
#include <sys/auxv.h>
#endif

namespace mllm::cpu {
namespace {

#if defined(__x86_64__) || defined(__i386__)

struct X86Features {
    bool avx2 = false;
    bool avx512vnni = false;
};

// Extended control register 0: which register states the OS saves on a context switch.
uint64_t read_xcr0() {
    uint32_t lo = 0;
    uint32_t hi = 0;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return (static_cast<uint64_t>(hi) << 32) | lo;
}

X86Features detect_x86() {
    X86Features f;
    unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
    if (!__get_cpuid(1, &eax, &ebx, &ecx, &edx)) return f;
    const bool fma = (ecx >> 12) & 1;
    const bool osxsave = (ecx >> 27) & 1;
    const bool avx = (ecx >> 28) & 1;
    const bool f16c = (ecx >> 29) & 1;
    if (!osxsave || !avx) return f;
    const uint64_t xcr0 = read_xcr0();
    const bool os_ymm = (xcr0 & 0x6) == 0x6;    // SSE and AVX state
    const bool os_zmm = (xcr0 & 0xe6) == 0xe6;  // plus opmask and the upper zmm halves
    if (!__get_cpuid_count(7, 0, &eax, &ebx, &ecx, &edx)) return f;
    const bool avx2 = (ebx >> 5) & 1;
    const bool bmi2 = (ebx >> 8) & 1;
    const bool avx512f = (ebx >> 16) & 1;
    const bool avx512dq = (ebx >> 17) & 1;
    const bool avx512bw = (ebx >> 30) & 1;
    const bool avx512vl = (ebx >> 31) & 1;
    const bool avx512vnni = (ecx >> 11) & 1;
    f.avx2 = os_ymm && avx2 && fma && f16c && bmi2;
    f.avx512vnni = f.avx2 && os_zmm && avx512f && avx512dq && avx512bw && avx512vl && avx512vnni;
    return f;
}

const X86Features& x86_features() {
    static const X86Features f = detect_x86();
    return f;
}

#endif

bool has_neon_dotprod() {
#if defined(__aarch64__) && defined(__linux__) && defined(HWCAP_ASIMDDP) && defined(HWCAP_FPHP)
    const unsigned long caps = getauxval(AT_HWCAP);
    return (caps & HWCAP_ASIMDDP) != 0 && (caps & HWCAP_FPHP) != 0;
#elif defined(__aarch64__) && defined(__APPLE__)
    return true;  // every Apple arm64 chip has the dot product and fp16 instructions
#else
    return false;
#endif
}

Isa detect_best() {
    if (cpu_supports(Isa::Avx512Vnni)) return Isa::Avx512Vnni;
    if (cpu_supports(Isa::Avx2)) return Isa::Avx2;
    if (cpu_supports(Isa::NeonDotprod)) return Isa::NeonDotprod;
    return Isa::Scalar;
}

}  // namespace

const char* isa_name(Isa isa) {
    switch (isa) {
        case Isa::Scalar:
            return "scalar";
        case Isa::Avx2:
            return "avx2";
        case Isa::Avx512Vnni:
            return "avx512vnni";
        case Isa::NeonDotprod:
            return "neon-dotprod";
    }
    return "unknown";
}

bool parse_isa(std::string_view name, Isa& out) {
    for (Isa isa : {Isa::Scalar, Isa::Avx2, Isa::Avx512Vnni, Isa::NeonDotprod}) {
        if (name == isa_name(isa)) {
            out = isa;
            return true;
        }
    }
    return false;
}

bool cpu_supports(Isa isa) {
    switch (isa) {
        case Isa::Scalar:
            return true;
#if defined(__x86_64__) || defined(__i386__)
        case Isa::Avx2:
            return x86_features().avx2;
        case Isa::Avx512Vnni:
            return x86_features().avx512vnni;
#else
        case Isa::Avx2:
        case Isa::Avx512Vnni:
            return false;
#endif
        case Isa::NeonDotprod:
            return has_neon_dotprod();
    }
    return false;
}

Isa best_isa() {
    static const Isa best = [] {
        const Isa detected = detect_best();
        const char* env = std::getenv("MLLM_CPU_ISA");
        Isa requested = detected;
        if (env == nullptr || !parse_isa(env, requested)) return detected;
        // Only lower: scalar always works, and x86 levels include the ones below them.
        if (requested == Isa::Scalar) return Isa::Scalar;
        if (cpu_supports(requested) && static_cast<int>(requested) < static_cast<int>(detected))
            return requested;
        return detected;
    }();
    return best;
}

}  // namespace mllm::cpu
