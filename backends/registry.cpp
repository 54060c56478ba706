#include "backends/registry.h"

#include <algorithm>
#include <mutex>

#include "backends/cpu/cpu_backend.h"
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

std::unique_ptr<Backend> create_backend(std::string_view name, const BackendOptions& options) {
    std::vector<Entry> list;
    {
        std::lock_guard lock(registry_mutex());
        list = entries();
    }
    if (name == "auto") {
        std::string errors;
        for (const Entry& e : list) {
            try {
                return e.factory(options);
            } catch (const Error& err) {
                errors += "; " + e.name + ": " + err.what();
            }
        }
        fail("no backend could start", errors);
    }
    for (const Entry& e : list)
        if (e.name == name) return e.factory(options);
    if (name == "vulkan")
        fail(
            "the vulkan backend is not built yet (it lands with the Vulkan issue); use --backend "
            "cpu");
    std::string known;
    for (const Entry& e : list) known += (known.empty() ? "" : ", ") + e.name;
    fail("unknown backend '", name, "' (available: ", known, ", auto)");
}

}  // namespace mllm
