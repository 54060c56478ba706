#include "backends/vulkan/vk_weights.h"

#include <vector>

#include "backends/vulkan/ops/vk_matmul.h"
#include "core/error.h"

namespace mllm::vk {

const Allocation& WeightStore::get(const GgufTensor& tensor) {
    auto it = tensors_.find(&tensor);
    if (it != tensors_.end()) return it->second;
    const size_t bytes = tensor.nbytes;
    const size_t padded = (bytes + 3) / 4 * 4;
    Allocation a = ctx_.memory().allocate(padded);
    ctx_.write(a, 0, tensor.data, bytes);
    if (padded > bytes) {
        const std::vector<uint8_t> zeros(padded - bytes, 0);
        ctx_.write(a, bytes, zeros.data(), zeros.size());
    }
    return tensors_.emplace(&tensor, std::move(a)).first->second;
}

WeightStore::ForMatMul WeightStore::for_matmul(const GgufTensor& tensor) {
    if (!matmul_repacks(ctx_.props(), tensor.type)) return {get(tensor), false};
    auto it = repacked_.find(&tensor);
    if (it != repacked_.end()) return {it->second, true};
    const int64_t k = tensor.ne[0];
    const int64_t rows = tensor.n_elements() / k;
    if (row_bytes(tensor.type, k) * static_cast<size_t>(rows) != tensor.nbytes)
        fail("internal: weight '", tensor.name, "' is not whole rows of ", k, " elements");
    Allocation a = upload_repacked(ctx_, tensor.type, tensor.data, rows, k);
    return {repacked_.emplace(&tensor, std::move(a)).first->second, true};
}

}  // namespace mllm::vk
