// How glibc's malloc treats the prompt cache's multi-MiB state buffers (see the .cpp).
#pragma once

namespace lls {

// Once per process, when a server with a prompt cache starts: big allocations get their own
// mappings, so that memory freed by the cache goes back to the system. Does nothing when the
// user chose (GLIBC_TUNABLES names an mmap threshold, or LLAMA_SERVER_MALLOC=keep) or
// when the C library is not glibc.
void apply_malloc_policy(int cache_ram_mib);

}  // namespace lls
