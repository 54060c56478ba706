#pragma once
// What mllm-run and mllm-perplexity share: reading a text file, the error wrapper around main.
#include <exception>
#include <fstream>
#include <iostream>
#include <new>
#include <sstream>
#include <string>

#include "core/error.h"

namespace mllm::tools {

inline std::string read_text_file(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) fail("cannot read '", path, "'");
    std::ostringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

// Runs body(); turns every failure into one line on stderr and exit status 1.
template <typename Body>
int run_main(const char* tool, Body&& body) {
    try {
        return body();
    } catch (const Error& e) {
        std::cerr << tool << ": error: " << e.what() << "\n";
    } catch (const std::bad_alloc&) {
        std::cerr << tool << ": error: out of memory\n";
    } catch (const std::exception& e) {
        std::cerr << tool << ": error: " << e.what() << "\n";
    }
    return 1;
}

}  // namespace mllm::tools
