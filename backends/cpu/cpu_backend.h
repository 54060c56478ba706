#pragma once
#include <memory>

#include "backends/backend.h"

namespace mllm {

// The CPU backend: runs every op; n_threads <= 0 means one thread per core.
std::unique_ptr<Backend> make_cpu_backend(int n_threads);

}  // namespace mllm
