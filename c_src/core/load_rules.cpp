// The load rules of load_rules.h. Each is a constraint of the pinned llama.cpp, computed the
// way it computes its context parameters (src/llama-context.cpp, the llama_context
// constructor; tools/server/server-context.cpp, server_output_limits; common/common.cpp, the
// warm-up in common_init_from_params).
#include "load_rules.h"

#include "common.h"

#include <algorithm>
#include <cstring>

namespace lls {

namespace {

enum class ArchUse { embedding, unsupported };

struct MemorylessArch {
    const char * name;
    ArchUse use;
};

const MemorylessArch kMemorylessArchs[] = {
#define LLS_MEMORYLESS_ARCH(name, use) {name, ArchUse::use},
#include "memoryless_archs.def"
#undef LLS_MEMORYLESS_ARCH
};

// llama.cpp's warm-up decodes (or, for a memoryless model, encodes) a BOS and an EOS token
// in one batch.
constexpr int WARMUP_TOKENS = 2;

std::string n(int v) { return std::to_string(v); }

}  // namespace

ModelFacts read_model_facts(const GgufMeta & meta) {
    ModelFacts f;
    f.arch = meta.str("general.architecture");
    f.pooling = (int) meta.scalar(f.arch + ".pooling_type");
    f.n_ctx_train = (int) std::clamp(meta.scalar(f.arch + ".context_length"), 0ll, (long long) INT32_MAX);
    for (const auto & a : kMemorylessArchs) {
        if (f.arch == a.name) {
            f.memoryless = true;
            f.unsupported = a.use == ArchUse::unsupported;
        }
    }
    return f;
}

ModelConfig effective_model_config(const ModelFacts & facts, ModelConfig mc, bool & implied) {
    implied = false;
    if (facts.unsupported) {
        fail(LLAMA_ERROR_NOT_SUPPORTED, "the model's architecture '" + facts.arch + "' cannot be served: llama.cpp's "
             "server runs neither diffusion models nor audio decoders");
    }
    if (facts.memoryless && !mc.embedding) {
        // without it, llama.cpp would size the context for generation (one output per slot)
        // and abort on the first input longer than the slots
        log(LLAMA_SERVER_LOG_INFO, "llama_server: '%s' is an encoder: loaded for embeddings\n", facts.arch.c_str());
        mc.embedding = true;
        implied = true;
    }
    return mc;
}

void apply_context_rules(const ModelFacts & facts, common_params & p) {
    // server_output_limits: a pooled load sizes llama.cpp's output buffer for n_batch rows (every
    // token is an output); generation, for one row per slot.
    const bool pooled = p.embedding;
    const int n_outputs_max = pooled ? p.n_batch : std::min(p.n_batch, p.n_parallel);
    // the context reserves an output row per sequence when it is made (output_reserve(n_seq_max))
    if (n_outputs_max < p.n_parallel) {
        fail(LLAMA_ERROR_INVALID_ARGUMENT, pooled ?
             "'n_ubatch' (" + n(p.n_ubatch) + ") in server config must be at least 'n_parallel' (" + n(p.n_parallel) +
             ") for an embedding model: its n_batch becomes n_ubatch, and every slot may need an output in one batch" :
             "'n_batch' (" + n(p.n_batch) + ") in server config must be at least 'n_parallel' (" + n(p.n_parallel) +
             "): every slot may need an output in one batch");
    }
    if (!pooled) return;   // generation: one output per slot; n_batch >= 2 is a rule of the key
    // A pooled load's batch is one micro-batch (to_common_params made n_batch = n_ubatch) whose
    // every token is an output. The warm-up sends 2 tokens at once: a memoryless model encodes
    // them whole (llama_context::encode asserts n_ubatch >= n_tokens, output_reserve asserts
    // the rows fit), a decoder adds them to a batch of n_batch tokens (common_batch aborts).
    if (std::min(p.n_batch, p.n_ubatch) < WARMUP_TOKENS) {
        fail(LLAMA_ERROR_INVALID_ARGUMENT, "'n_ubatch' (" + n(p.n_ubatch) + ") in server config must be at least " +
             n(WARMUP_TOKENS) + " for an embedding model" + (facts.memoryless ? " (" + facts.arch + ", an encoder)" : "") +
             ": each input is one micro-batch, and llama.cpp's warm-up sends " + n(WARMUP_TOKENS) + " tokens");
    }
    // llama_context::graph_reserve sizes the worst-case graph for the micro-batch spread evenly
    // over the sequences: it rounds the tokens up to a multiple of n_parallel but keeps the
    // outputs, and mean pooling then multiplies mismatched shapes (GGML_ASSERT in
    // ggml_mul_mat). The micro-batch it sees (causal attention caps it at the context) goes
    // down to a multiple of n_parallel instead, at least n_parallel by the rule above.
    const int pooling = p.pooling_type != LLAMA_POOLING_TYPE_UNSPECIFIED ? (int) p.pooling_type : facts.pooling;
    if (pooling == LLAMA_POOLING_TYPE_MEAN) {
        const int n_ctx_total = p.n_ctx > 0 ? p.n_ctx : facts.n_ctx_train;
        int ubatch = facts.memoryless || n_ctx_total <= 0 ? p.n_ubatch : std::min(p.n_ubatch, n_ctx_total);
        if (ubatch % p.n_parallel != 0) {
            const int rounded = ubatch - ubatch % p.n_parallel;
            log(LLAMA_SERVER_LOG_WARN, "llama_server: mean pooling over %d slots: n_ubatch %d -> %d (a multiple of "
                "n_parallel)\n", p.n_parallel, ubatch, rounded);
            p.n_ubatch = p.n_batch = rounded;
        }
    }
}

}  // namespace lls
