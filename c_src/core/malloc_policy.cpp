// The host prompt cache keeps each slot's saved state in a buffer of one to tens of MiB, and
// frees and allocates them as prompts come and go. glibc raises its mmap threshold each time
// such a mapped buffer is freed (up to 32 MiB), after which these buffers come from the
// heap arenas and leave holes there that RSS keeps: ~90 MiB above the cache's own budget in
// a 30-minute soak (README, "Memory over time"). A fixed threshold keeps them mapped, so a
// freed buffer is returned at once. It is a process-wide setting, hence the ways out.
#include "malloc_policy.h"

#include <cstdlib>
#include <cstring>
#include <mutex>

#include "lls_common.h"

#if defined(__GLIBC__)
#include <malloc.h>
#endif

namespace lls {

namespace {
constexpr int kMmapThreshold = 1 << 20;   // 1 MiB: below every cached state, above token-sized work
}

void apply_malloc_policy(int cache_ram_mib) {
#if defined(__GLIBC__)
    if (cache_ram_mib <= 0) return;
    static std::once_flag once;
    std::call_once(once, [] {
        const char * tunables = std::getenv("GLIBC_TUNABLES");
        const char * choice = std::getenv("LLAMA_SERVER_MALLOC");
        if ((tunables && std::strstr(tunables, "mmap_threshold")) || (choice && std::strcmp(choice, "keep") == 0)) {
            return;
        }
        if (mallopt(M_MMAP_THRESHOLD, kMmapThreshold) == 1) {
            log(LLAMA_SERVER_LOG_INFO, "llama_server: malloc: fixed mmap threshold of 1 MiB for the prompt cache's buffers "
                     "(LLAMA_SERVER_MALLOC=keep leaves malloc as it was)\n");
        }
    });
#else
    (void) cache_ram_mib;
#endif
}

}  // namespace lls
