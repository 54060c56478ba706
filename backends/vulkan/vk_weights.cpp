#include "backends/vulkan/vk_weights.h"

#include <vector>

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
    bytes_ += a.reserved();
    return tensors_.emplace(&tensor, std::move(a)).first->second;
}

}  // namespace mllm::vk
