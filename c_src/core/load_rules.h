// What llama.cpp will make of a model and its configs, decided before it sees the model. Its
// context asserts (GGML_ASSERT: the process aborts) when a batch outgrows what it sized at
// load: an encoder's input must fit one micro-batch and output every token, the output buffer
// holds n_outputs_max rows. Which sizes a load gets depends on the model's architecture, so
// the rules are checked here, from the GGUF file's metadata and the final common_params.
#pragma once

#include "config.h"
#include "gguf_meta.h"

#include <string>

namespace lls {

struct ModelFacts {
    std::string arch;              // general.architecture
    bool memoryless = false;       // a row of memoryless_archs.def: can only embed
    bool unsupported = false;      // a row whose use is "unsupported"
    int pooling = -1;              // <arch>.pooling_type (llama_pooling_type), -1 when absent
    int n_ctx_train = 0;           // <arch>.context_length, 0 when absent
};

ModelFacts read_model_facts(const GgufMeta & meta);

// The model config a load runs with: a memoryless model is loaded for embeddings, the only
// thing it can do, even without "embedding": true (`implied` says so); an architecture the
// server cannot run is NOT_SUPPORTED.
ModelConfig effective_model_config(const ModelFacts & facts, ModelConfig mc, bool & implied);

// Throws INVALID_ARGUMENT naming the keys when llama.cpp's context for `p` could not run its
// warm-up or a batch the server makes; rounds a mean-pooled load's micro-batch down to a
// multiple of n_parallel (see load_rules.cpp for each rule and its source).
void apply_context_rules(const ModelFacts & facts, common_params & p);

}  // namespace lls
