#pragma once
// The self-test a device passes before its pipelines are trusted (mobile drivers are known to
// crash or compute garbage): each pipeline family runs a small problem through the same
// record_* functions the backend uses, and its output is compared with a plain scalar reference
// computed here on the host. A family that fails is refused by the backend, so its nodes run on
// the CPU. Results are cached on disk per device, driver and build (the embedded shaders and
// the binary's build id: a fixed test must not keep an old failure).
#include <map>
#include <string>
#include <vector>

#include "backends/vulkan/vk_context.h"
#include "core/dtype.h"

namespace mllm::vk {

struct SelfTestResult {
    std::string pipeline;  // the family: "matmul_q4_0", "embed_f16", "attention", ...
    bool ok = false;
    std::string detail;  // why it failed
};

// Every family, in the order `mllm-run --self-test` prints them.
std::vector<std::string> self_test_families();
// The families of the matmul and the embedding lookup for a weight type.
std::string matmul_family(DType weight_type);
std::string embed_family(DType table_type);

// Runs one family's test (never throws: a driver error is a failure with its message).
SelfTestResult run_self_test(Context& ctx, const std::string& family);

// Results remembered across runs in the user's cache directory ($MLLM_CACHE_DIR, else
// $XDG_CACHE_HOME/mllm, else ~/.cache/mllm), keyed by device, driver version, the embedded
// shaders and the build id of the code. Disabled (nothing read or written) while
// MLLM_VK_CORRUPT is set.
class SelfTestCache {
  public:
    explicit SelfTestCache(const DeviceProps& device);
    // The cached result, or runs the test and remembers it.
    const SelfTestResult& get(Context& ctx, const std::string& family);

  private:
    void save() const;
    std::string path_;
    std::map<std::string, SelfTestResult> results_;
};

}  // namespace mllm::vk
