#include "backends/registry.h"

#include <algorithm>
#include <mutex>

#include "backends/cpu/cpu_backend.h"
#ifdef MLLM_HAVE_VULKAN
#include "backends/vulkan/vk_backend.h"
#endif
#include "core/error.h"

namespace mllm {
namespace {

struct Entry {
    std::string name;
    int priority;
    BackendFactory factory;
};

std::mutex& registry_mutex() {
    static std::mutex m;
    return m;
}

std::vector<Entry>& entries() {
    static std::vector<Entry> list = [] {
        std::vector<Entry> builtin;
        builtin.push_back(
            {"cpu", 0, [](const BackendOptions& o) { return make_cpu_backend(o.n_threads); }});
#ifdef MLLM_HAVE_VULKAN
        builtin.push_back({"vulkan", 10, [](const BackendOptions& o) {
                               return make_vulkan_backend(o.automatic);
                           }});
#endif
        std::stable_sort(builtin.begin(), builtin.end(),
                         [](const Entry& a, const Entry& b) { return a.priority > b.priority; });
        return builtin;
    }();
    return list;
}

}  // namespace

void register_backend(std::string name, int priority, BackendFactory factory) {
    std::lock_guard lock(registry_mutex());
    auto& list = entries();
    list.erase(
        std::remove_if(list.begin(), list.end(), [&](const Entry& e) { return e.name == name; }),
        list.end());
    list.push_back({std::move(name), priority, std::move(factory)});
    std::stable_sort(list.begin(), list.end(),
                     [](const Entry& a, const Entry& b) { return a.priority > b.priority; });
}

std::vector<std::string> backend_names() {
    std::lock_guard lock(registry_mutex());
    std::vector<std::string> names;
    for (const Entry& e : entries()) names.push_back(e.name);
    return names;
}

std::vector<std::string> describe_devices(const BackendOptions& options) {
    std::vector<std::string> lines = {"cpu: " + make_cpu_backend(options.n_threads)->info().device};
#ifdef MLLM_HAVE_VULKAN
    for (std::string& line : describe_vulkan_devices()) lines.push_back(std::move(line));
#else
    lines.push_back(
        "vulkan: not built (configured without the Vulkan headers or glslangValidator)");
#endif
    return lines;
}

std::unique_ptr<Backend> create_backend(std::string_view name, const BackendOptions& options,
                                        std::string* skipped) {
    std::vector<Entry> list;
    {
        std::lock_guard lock(registry_mutex());
        list = entries();
    }
    if (name == "auto") {
        BackendOptions automatic = options;
        automatic.automatic = true;
        std::string errors;
        for (const Entry& e : list) {
            try {
                auto backend = e.factory(automatic);
                if (skipped != nullptr) *skipped = errors;
                return backend;
            } catch (const Error& err) {
                errors += (errors.empty() ? "" : "; ") + e.name + ": " + err.what();
            }
        }
        fail("no backend could start: ", errors);
    }
    for (const Entry& e : list)
        if (e.name == name) return e.factory(options);
    if (name == "vulkan")
        fail(
            "this build has no vulkan backend (configured without the Vulkan headers or "
            "glslangValidator: run scripts/install-deps.sh and rebuild); use --backend cpu");
    std::string known;
    for (const Entry& e : list) known += (known.empty() ? "" : ", ") + e.name;
    fail("unknown backend '", name, "' (available: ", known, ", auto)");
}

}  // namespace mllm
