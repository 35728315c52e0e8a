// ggml's CPU buffers in transparent huge pages (see huge_pages.cpp for why).
#pragma once

#include <cstddef>
#include <string>

namespace lls::huge_pages {

// From now on, the calling thread's ggml buffers of 2 MiB or more are made in 2 MiB pages and
// counted for `owner` (a server); nullptr: made as ggml makes them. The loop thread sets it
// before it loads the model: the weights, the KV cache and the compute buffers are all made there.
void use_for_this_thread(const void * owner);

// Bytes of the live buffers made for owner.
size_t requested_bytes(const void * owner);

// How much of owner's buffers the kernel has backed with 2 MiB pages now, read from
// /proc/self/smaps (milliseconds: once, after the load, not in every status).
size_t backed_bytes(const void * owner);

// The kernel's setting (/sys/kernel/mm/transparent_hugepage/enabled): "always", "madvise",
// "never", or "unavailable" where the kernel has no transparent huge pages.
const std::string & system_mode();

// For the link wrap of ggml_aligned_malloc / ggml_aligned_free (c_src/link/huge_page_buffers.cpp).
// alloc: nullptr when the buffer is not for us (this thread has no owner, smaller than a page,
// or the mapping failed): the caller then uses ggml's own allocation. release: true when ptr
// was made by alloc and is now unmapped. Neither throws.
void * alloc(size_t size) noexcept;
bool release(void * ptr) noexcept;

}  // namespace lls::huge_pages
