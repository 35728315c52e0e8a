// Memory for the KV cache, checked before llama.cpp allocates it. llama.cpp sizes the cache
// by n_ctx x n_parallel and allocates it whatever the machine has: first the cells' metadata
// (about 48 bytes a cell, touched at once), then one buffer for the K and V tensors, cleared
// at once. Far beyond the memory this either fails late (after using gigabytes for the cells)
// or, where the kernel lets the buffer through, brings the OOM killer. The rule refuses a
// load whose cache cannot fit the memory available (py_tests/test_26, item 6).
#pragma once

#include "load_rules.h"

#include <string>

struct common_params;

namespace lls {

// Throws OUT_OF_MEMORY naming n_ctx and n_parallel when a lower bound of the host memory the
// KV cache of `p` takes (read from the model's GGUF metadata) exceeds the memory available
// to this process (MemAvailable, and the cgroup's limit where there is one). Checks nothing
// where the bound or the available memory is unknown.
void check_kv_memory(const GgufMeta & meta, const ModelFacts & facts, const common_params & p);

}  // namespace lls
