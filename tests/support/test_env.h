#pragma once
// Paths and helpers shared by the test suites.
#include <string>

namespace mllm::test {

// ../shared next to the checkout (models, reference numbers).
std::string shared_dir();
std::string shared_path(const std::string& relative);
// A fresh file path under the system temp dir, removed when the process exits normally.
std::string temp_path(const std::string& suffix);
// The build tree (for tests that run the built CLIs).
std::string build_dir();
// Whether this run is CI's (CI=true): there a test that cannot run is a failure, not a skip.
bool in_ci();

}  // namespace mllm::test
