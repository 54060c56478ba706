// The AVX-512 VNNI build of the x86 kernels (quant_matmul_x86.inc): compiled with AVX-512
// F/BW/VL/DQ and VNNI, where the integer dot products use vpdpbusd and vpdpwssd.
#include "backends/cpu/kernels/quant_matmul.h"
#include "backends/cpu/kernels/quant_matmul_x86.inc"

#if !MLLM_X86_VNNI
#error "quant_matmul_avx512.cpp must be compiled with -mavx512vnni -mavx512vl"
#endif

namespace mllm::cpu::detail {

void run_avx512_kernel(const MatmulArgs& args) {
    run_x86_kernel(args);
}

}  // namespace mllm::cpu::detail
