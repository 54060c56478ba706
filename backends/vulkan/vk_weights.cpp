#include "backends/vulkan/vk_weights.h"

#include <utility>
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

namespace {

// The tensor's rows of ne[0] elements.
int64_t whole_rows(const GgufTensor& t) {
    const int64_t k = t.ne[0];
    const int64_t rows = t.n_elements() / k;
    if (row_bytes(t.type, k) * static_cast<size_t>(rows) != t.nbytes)
        fail("internal: weight '", t.name, "' is not whole rows of ", k, " elements");
    return rows;
}

}  // namespace

WeightStore::ForMatMul WeightStore::for_matmul(const GgufTensor& tensor) {
    if (!matmul_repacks(ctx_.props(), tensor.type)) return {get(tensor), false};
    auto it = repacked_.find(&tensor);
    if (it != repacked_.end()) return {it->second, true};
    Allocation a =
        upload_repacked(ctx_, tensor.type, tensor.data, whole_rows(tensor), tensor.ne[0]);
    return {repacked_.emplace(&tensor, std::move(a)).first->second, true};
}

WeightStore::Group WeightStore::matmul_group(std::span<const GgufTensor* const> tensors) {
    const GgufTensor& first = *tensors.front();
    for (const GgufTensor* t : tensors)
        if (t->type != first.type || t->ne[0] != first.ne[0] || !matmul_supports(t->type))
            return {nullptr, false};
    const bool repacked = matmul_repacks(ctx_.props(), first.type);
    std::vector<const GgufTensor*> key(tensors.begin(), tensors.end());
    auto it = groups_.find(key);
    if (it != groups_.end()) return {&it->second, repacked};
    Allocation a;
    if (repacked) {
        std::vector<RepackRows> parts;
        for (const GgufTensor* t : tensors) parts.push_back({t->data, whole_rows(*t)});
        a = upload_repacked(ctx_, first.type, parts, first.ne[0]);
    } else {
        // Whole rows of one length: the concatenation is one GGUF matrix (padded to a word).
        size_t bytes = 0;
        for (const GgufTensor* t : tensors) bytes += t->nbytes;
        a = ctx_.memory().allocate((bytes + 3) / 4 * 4);
        size_t at = 0;
        for (const GgufTensor* t : tensors) {
            (void)whole_rows(*t);  // throws unless whole rows
            ctx_.write(a, at, t->data, t->nbytes);
            at += t->nbytes;
        }
        if (bytes % 4 != 0) {
            const uint8_t zeros[4] = {};
            ctx_.write(a, bytes, zeros, 4 - bytes % 4);
        }
    }
    return {&groups_.emplace(std::move(key), std::move(a)).first->second, repacked};
}

const Allocation& WeightStore::gated_pairs(const GgufTensor& gate, const GgufTensor& up) {
    const auto key = std::make_pair(&gate, &up);
    auto it = gated_.find(key);
    if (it != gated_.end()) return it->second;
    const int64_t rows = whole_rows(gate);
    if (up.type != gate.type || up.ne[0] != gate.ne[0] || whole_rows(up) != rows)
        fail("internal: gate '", gate.name, "' and up '", up.name, "' differ in type or shape");
    const std::vector<uint8_t> interleaved =
        interleave_gate_up(gate.type, gate.data, up.data, rows, gate.ne[0]);
    Allocation a = upload_repacked(ctx_, gate.type, interleaved.data(), 2 * rows, gate.ne[0]);
    return gated_.emplace(key, std::move(a)).first->second;
}

const Allocation& WeightStore::bias_group(std::span<const GgufTensor* const> biases) {
    std::vector<const GgufTensor*> key(biases.begin(), biases.end());
    auto it = groups_.find(key);
    if (it != groups_.end()) return it->second;
    size_t bytes = 0;
    for (const GgufTensor* b : biases) {
        if (b->type != DType::F32) fail("internal: bias '", b->name, "' is not f32");
        bytes += b->nbytes;
    }
    Allocation a = ctx_.memory().allocate(bytes);
    size_t at = 0;
    for (const GgufTensor* b : biases) {
        ctx_.write(a, at, b->data, b->nbytes);
        at += b->nbytes;
    }
    return groups_.emplace(std::move(key), std::move(a)).first->second;
}

}  // namespace mllm::vk
