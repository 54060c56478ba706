#include "backends/cpu/kernels/matmul_f32.h"

#include <Eigen/Core>

namespace mllm::cpu {

void matmul_f32(const float* x, int64_t n, int64_t k, const float* w, int64_t row_begin,
                int64_t row_end, float* y, int64_t ldy) {
    using RowMajor = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
    const Eigen::Map<const RowMajor> xm(x, n, k);
    const Eigen::Map<const RowMajor> wm(w + row_begin * k, row_end - row_begin, k);
    Eigen::Map<RowMajor, 0, Eigen::OuterStride<>> ym(y + row_begin, n, row_end - row_begin,
                                                     Eigen::OuterStride<>(ldy));
    if (n == 1) {
        // GEMV: Eigen's matrix-vector product streams the weight rows once.
        ym.row(0).transpose().noalias() = wm * xm.row(0).transpose();
    } else {
        ym.noalias() = xm * wm.transpose();
    }
}

}  // namespace mllm::cpu
