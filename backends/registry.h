#pragma once
// Backends by name. Built-in backends are listed here explicitly (no static initialisers, so
// nothing touches a driver before a caller asks for that backend); others register at run time.
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "backends/backend.h"

namespace mllm {

struct BackendOptions {
    int n_threads = 0;  // CPU worker threads; 0 = one per core
    // Set when "auto" asks: a backend that would be slower than the CPU backend here (Vulkan on
    // a CPU device such as lavapipe) declines with a reason.
    bool automatic = false;
};

using BackendFactory = std::function<std::unique_ptr<Backend>(const BackendOptions&)>;

// Adds a backend; `priority` orders the choice of "auto" (higher first).
void register_backend(std::string name, int priority, BackendFactory factory);
// Names of the built and registered backends, best first.
std::vector<std::string> backend_names();
// One line per device each backend can run on (`mllm-run --list-devices`): the CPU, then every
// Vulkan device or why there is none.
std::vector<std::string> describe_devices(const BackendOptions& options);

// Creates a backend by name ("auto" = the best one that starts); throws mllm::Error if the name
// is unknown or the backend cannot start on this machine. With "auto", `skipped` (if given)
// receives why better backends were passed over ("vulkan: no Vulkan device ...").
std::unique_ptr<Backend> create_backend(std::string_view name, const BackendOptions& options,
                                        std::string* skipped = nullptr);

}  // namespace mllm
