// The KV cache memory rule of memory_rule.h. The bound counts what every llama.cpp KV cache
// of the pinned version makes (src/llama-kv-cache.cpp, the llama_kv_cache constructor): a
// cell per token of n_ctx (position, shift and a bitset of LLAMA_MAX_SEQ sequences, in host
// memory), and, on the CPU, K and V rows of every layer for each cell. Where the metadata does
// not tell the layers' share for sure (sliding-window or chunked attention, MLA, per-layer
// recurrence) only the cells count, and a recurrent model (no cell per token) is not checked:
// the bound stays below what llama.cpp allocates, so a load that fits is never refused.
#include "memory_rule.h"

#include "common.h"
#include "ggml-backend.h"
#include "gguf.h"
#include "llama.h"

#include <cstdio>
#include <fstream>
#include <vector>

namespace lls {

namespace {

// Bytes this process may still use, and where that figure comes from (0: unknown).
double available_memory(std::string & source) {
    double avail = 0;
    {
        std::ifstream f("/proc/meminfo");
        std::string key;
        double kb;
        std::string unit;
        while (f >> key >> kb) {
            std::getline(f, unit);
            if (key == "MemAvailable:") {
                avail = kb * 1024;
                source = "MemAvailable in /proc/meminfo";
                break;
            }
        }
    }
    // a container's limit (cgroup v2, else v1): what is left of it
    auto read_num = [](const char * path, double & v) {
        std::ifstream f(path);
        return bool(f >> v);
    };
    double limit = 0, used = 0;
    if ((read_num("/sys/fs/cgroup/memory.max", limit) && read_num("/sys/fs/cgroup/memory.current", used)) ||
        (read_num("/sys/fs/cgroup/memory/memory.limit_in_bytes", limit) &&
         read_num("/sys/fs/cgroup/memory/memory.usage_in_bytes", used))) {
        if (limit < 1e18 && (avail == 0 || limit - used < avail)) {   // "max" (v2) does not read as a number
            avail = std::max(0.0, limit - used);
            source = "what is left of the cgroup's memory limit";
        }
    }
    return avail;
}

bool kv_tensors_on_gpu(const common_params & p) {
    if (p.n_gpu_layers == 0) return false;
    for (size_t i = 0; i < ggml_backend_dev_count(); i++) {
        const auto type = ggml_backend_dev_type(ggml_backend_dev_get(i));
        if (type == GGML_BACKEND_DEVICE_TYPE_GPU || type == GGML_BACKEND_DEVICE_TYPE_IGPU) return true;
    }
    return false;
}

std::string gib(double bytes) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.1f GiB", bytes / (1024.0 * 1024 * 1024));
    return buf;
}

}  // namespace

void check_kv_memory(const GgufMeta & m, const ModelFacts & facts, const common_params & p) {
    if (facts.memoryless) return;   // no KV cache
    const std::string a = m.ok() ? facts.arch + "." : "";
    if (a.empty() || m.has_prefix(a + "ssm.") || m.has_prefix(a + "wkv.") || m.has_prefix(a + "shortconv.")) return;
    auto count = [&](const std::string & key) { return (uint64_t) std::max(0ll, m.scalar(key)); };   // 0 when absent
    const uint32_t n_layer = (uint32_t) std::min<uint64_t>(count(a + "block_count"), 1u << 20);
    std::vector<uint64_t> n_head = m.per_layer(a + "attention.head_count", n_layer);
    std::vector<uint64_t> n_head_kv = m.per_layer(a + "attention.head_count_kv", n_layer);
    if (n_layer == 0 || n_head.empty()) return;
    if (n_head_kv.empty()) n_head_kv = n_head;
    uint64_t n_head0 = 0;
    for (uint64_t h : n_head) n_head0 = n_head0 ? n_head0 : h;
    const uint64_t n_embd = count(a + "embedding_length");
    const uint64_t k_len = m.has(a + "attention.key_length") ? count(a + "attention.key_length") : n_head0 ? n_embd / n_head0 : 0;
    const uint64_t v_len = m.has(a + "attention.value_length") ? count(a + "attention.value_length") : k_len;
    uint64_t k_elems = 0, v_elems = 0;
    for (uint32_t il = 0; il < n_layer; il++) {
        k_elems += n_head_kv[il] * k_len;
        v_elems += n_head_kv[il] * v_len;
    }
    if (k_elems == 0) return;   // no attention layer
    // sliding-window or chunked attention (llama4 sets it without a key), MLA: cells only
    const bool sure = !m.has(a + "attention.sliding_window") && !m.has(a + "attention.sliding_window_pattern") &&
                      !m.has(a + "attention.kv_lora_rank") && facts.arch != "llama4" && !kv_tensors_on_gpu(p);

    // llama_context: n_ctx (0: the training context) padded, split evenly over the slots
    const uint64_t n_ctx = p.n_ctx > 0 ? (uint64_t) p.n_ctx : count(a + "context_length");
    const uint64_t n_seq = (uint64_t) std::max(1, p.n_parallel);
    const uint64_t per_seq = (n_ctx / n_seq + 255) / 256 * 256;
    const uint64_t cells = per_seq * n_seq;
    const double cell_meta = 2 * sizeof(llama_pos) + llama_max_parallel_sequences() / 8.0;
    auto elem = [](ggml_type t) { return (double) ggml_type_size(t) / (double) ggml_blck_size(t); };
    const double per_cell = cell_meta + (sure ? k_elems * elem(p.cache_type_k) + v_elems * elem(p.cache_type_v) : 0);
    const double need = per_cell * (double) cells;

    std::string source;
    const double avail = available_memory(source);
    if (avail <= 0 || need <= avail) return;
    char per[32];
    std::snprintf(per, sizeof per, "%.1f KiB", per_cell / 1024);
    fail(LLAMA_ERROR_OUT_OF_MEMORY,
         "'n_ctx' (" + std::to_string(p.n_ctx / (int) n_seq) + (p.n_ctx > 0 ? "" : ": the model's " + std::to_string(n_ctx)) +
         ") x 'n_parallel' (" + std::to_string(n_seq) + ") in server config make a KV cache of " + std::to_string(cells) +
         " cells, which needs at least " + gib(need) + " for this model (" + per + " a cell), more than the " +
         gib(avail) + " of memory available (" + source + "): lower n_ctx or n_parallel");
}

}  // namespace lls
