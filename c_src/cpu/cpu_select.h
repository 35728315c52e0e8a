// Which build of ggml's CPU backend runs on this CPU (see c_src/cpu/CMakeLists.txt).
// Compiled without architecture flags: it must run, and refuse cleanly, on any x86-64 CPU.
#pragma once

#include <string>
#include <vector>

namespace lls::cpu {

// "" when a variant built into this library can run here (the choice is then fixed for the
// process), else a message naming the missing CPU features or the bad LLAMA_NIF_CPU_VARIANT.
// Call it before anything reaches ggml's backend registry.
const std::string & unsupported_reason();

struct Info {
    std::string              variant;    // the variant in use ("" when unsupported)
    bool                     native;     // built with LLAMA_NIF_NATIVE (for the build machine only)
    std::vector<std::string> built;      // the variants in this library, baseline first
    std::vector<std::string> detected;   // x86 features this CPU and its OS offer
};
Info info();

}  // namespace lls::cpu
