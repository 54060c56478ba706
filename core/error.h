#pragma once
// One exception type for every user-facing failure: the message names the problem in one line,
// and the CLIs print it and exit non-zero. Internal invariants use assert.
#include <sstream>
#include <stdexcept>
#include <string>

namespace mllm {

class Error : public std::runtime_error {
  public:
    using std::runtime_error::runtime_error;
};

// Concatenates its arguments with operator<< (GCC 12 has no std::format).
template <typename... Args>
std::string str_cat(const Args&... args) {
    std::ostringstream os;
    (os << ... << args);
    return os.str();
}

template <typename... Args>
[[noreturn]] void fail(const Args&... args) {
    throw Error(str_cat(args...));
}

}  // namespace mllm
