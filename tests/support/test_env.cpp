#include "tests/support/test_env.h"

#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <mutex>
#include <string_view>
#include <vector>

namespace mllm::test {
namespace {

std::mutex g_mutex;
std::vector<std::string>* g_temp_files = nullptr;

void remove_temp_files() {
    std::lock_guard lock(g_mutex);
    if (g_temp_files == nullptr) return;
    // A path may have become a directory (a cache dir a tool filled): remove it whole.
    std::error_code ec;
    for (const auto& p : *g_temp_files) std::filesystem::remove_all(p, ec);
}

}  // namespace

std::string shared_dir() {
    return MLLM_SHARED_DIR;
}
std::string shared_path(const std::string& relative) {
    return shared_dir() + "/" + relative;
}
std::string build_dir() {
    return MLLM_BUILD_DIR;
}

std::string temp_path(const std::string& suffix) {
    static std::atomic<int> counter{0};
    const std::string path =
        (std::filesystem::temp_directory_path() /
         ("mllm-test-" + std::to_string(::getpid()) + "-" + std::to_string(counter++) + suffix))
            .string();
    std::lock_guard lock(g_mutex);
    if (g_temp_files == nullptr) {
        g_temp_files = new std::vector<std::string>();
        std::atexit(remove_temp_files);
    }
    g_temp_files->push_back(path);
    return path;
}

bool in_ci() {
    const char* ci = std::getenv("CI");
    return ci != nullptr && std::string_view(ci) == "true";
}

}  // namespace mllm::test
