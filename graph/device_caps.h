#pragma once
// What the placement pass asks of a device. Backends implement it; graph never includes them.
#include <string_view>

#include "graph/ir.h"

namespace mllm::graph {

class DeviceCaps {
  public:
    virtual ~DeviceCaps() = default;
    virtual std::string_view device_name() const = 0;
    virtual bool supports(const Graph& g, const Node& node) const = 0;
};

}  // namespace mllm::graph
