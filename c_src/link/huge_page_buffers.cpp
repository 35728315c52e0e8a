// ggml makes and frees every CPU buffer (weights, KV cache, compute buffers) with
// ggml_aligned_malloc / ggml_aligned_free, called from ggml-backend.cpp. Every object linked
// into our libraries calls these instead (-Wl,--wrap, c_src/CMakeLists.txt): a big buffer
// made on a thread that asked for huge pages gets a mapping of its own in 2 MiB pages
// (core/huge_pages.cpp says why); anything else goes to ggml's own functions. The free side
// asks the registry, not the size, whether a pointer is ours. py_tests/test_24 checks that a
// loaded model's buffers are there.
#include <cstddef>

#include "huge_pages.h"

extern "C" void * __real_ggml_aligned_malloc(size_t size);
extern "C" void __real_ggml_aligned_free(void * ptr, size_t size);

extern "C" void * __wrap_ggml_aligned_malloc(size_t size) {
    if (void * p = lls::huge_pages::alloc(size)) return p;
    return __real_ggml_aligned_malloc(size);
}

extern "C" void __wrap_ggml_aligned_free(void * ptr, size_t size) {
    if (!lls::huge_pages::release(ptr)) __real_ggml_aligned_free(ptr, size);
}
