// Server and model configuration: the rows of config_keys.def checked and read, the relations
// between keys, and the mapping to llama.cpp's common_params with library-friendly defaults.
#include "config.h"
#include "spec.h"

#include "common.h"
#include "llama.h"

#include <algorithm>
#include <thread>

namespace lls {

namespace {

const char * SERVER = "server config";
const char * MODEL  = "model config";

// the rules of config_keys.def
Spec integer(double lo, double hi) { return {T::integer, lo, hi}; }
Spec number(double lo, double hi)  { return {T::num, lo, hi}; }
Spec numbers(double lo, double hi) { return {T::num_arr, lo, hi}; }
Spec boolean()                     { return {T::boolean}; }
Spec string()                      { return {T::str}; }
Spec tristate()                    { return {T::tristate}; }
Spec choice(const char * list)     { return {T::choice, -1e300, 1e300, list}; }

// A checked value into its member (choices and tristates as their index).
void read(const json & v, const Spec & s, int & out) {
    out = s.type == T::choice || s.type == T::tristate ? choice_index(v, s) : v.get<int>();
}
void read(const json & v, const Spec &, double & out)             { out = v.get<double>(); }
void read(const json & v, const Spec &, bool & out)               { out = v.get<bool>(); }
void read(const json & v, const Spec &, std::string & out)        { out = v.get<std::string>(); }
void read(const json & v, const Spec &, std::vector<float> & out) { out = v.get<std::vector<float>>(); }

const SpecTable & server_rules() {
    static const SpecTable t = {
#define LLS_SERVER_KEY(key, type, def, rule, effect) {#key, rule},
#define LLS_MODEL_KEY(key, type, def, rule, effect)
#include "config_keys.def"
#undef LLS_SERVER_KEY
#undef LLS_MODEL_KEY
    };
    return t;
}

const SpecTable & model_rules() {
    static const SpecTable t = {
#define LLS_SERVER_KEY(key, type, def, rule, effect)
#define LLS_MODEL_KEY(key, type, def, rule, effect) {#key, rule},
#include "config_keys.def"
#undef LLS_SERVER_KEY
#undef LLS_MODEL_KEY
    };
    return t;
}

// Checks every key of `j` against `rules`, then reads each given (non-null) key.
template <typename Cfg, typename Fill>
Cfg parse(const char * text, const char * what, const SpecTable & rules, Fill fill) {
    json j = parse_object(text, what);
    check_against(j, what, {&rules});
    Cfg c;
    fill(j, c);
    return c;
}

// helpers of the effects column
int cores() { return (int) std::max(1u, std::thread::hardware_concurrency()); }

void set_tensor_split(common_params & p, const std::vector<float> & v) {
    std::fill(std::begin(p.tensor_split), std::end(p.tensor_split), 0.0f);
    std::copy_n(v.begin(), std::min(v.size(), std::size(p.tensor_split)), p.tensor_split);
}

llama_flash_attn_type flash_attn_type(int v) {
    return v < 0 ? LLAMA_FLASH_ATTN_TYPE_AUTO : v ? LLAMA_FLASH_ATTN_TYPE_ENABLED : LLAMA_FLASH_ATTN_TYPE_DISABLED;
}

llama_load_mode load_mode(bool mmap, bool mlock) {
    return mmap ? (mlock ? LLAMA_LOAD_MODE_MMAP_MLOCK : LLAMA_LOAD_MODE_MMAP)
                : (mlock ? LLAMA_LOAD_MODE_MLOCK : LLAMA_LOAD_MODE_NONE);
}

enum llama_pooling_type pooling_type(int v) { return (enum llama_pooling_type) v; }   // choice order = enum order

}  // namespace

ServerConfig parse_server_config(const char * text) {
    bool ubatch_given = false;
    ServerConfig c = parse<ServerConfig>(text, SERVER, server_rules(), [&](const json & j, ServerConfig & c) {
#define LLS_SERVER_KEY(key, type, def, rule, effect) \
        if (j.contains(#key) && !j.at(#key).is_null()) read(j.at(#key), server_rules().at(#key), c.key);
#define LLS_MODEL_KEY(key, type, def, rule, effect)
#include "config_keys.def"
#undef LLS_SERVER_KEY
#undef LLS_MODEL_KEY
        ubatch_given = j.contains("n_ubatch") && !j.at("n_ubatch").is_null();
    });
    // relations between keys
    if (c.n_ctx != 0 && c.n_ctx < 64) {
        fail(LLAMA_ERROR_INVALID_ARGUMENT, "'n_ctx' in server config must be 0 (model default) or >= 64");
    }
    if (!ubatch_given) c.n_ubatch = std::min(c.n_ubatch, c.n_batch);
    // n_batch is at least 2 (its rule): llama.cpp's warmup decodes two tokens in one batch
    // (n_batch 1 aborted in common_batch::get_sub_batch). llama.cpp sizes its output buffers
    // by n_batch and asserts that every sequence fits (llama-context.cpp: n_outputs_max <=
    // n_batch): each slot may output in one batch.
    if (c.n_batch < c.n_parallel) {
        fail(LLAMA_ERROR_INVALID_ARGUMENT, "'n_batch' (" + std::to_string(c.n_batch) + ") in server config must be at least "
             "'n_parallel' (" + std::to_string(c.n_parallel) + "): every slot may need an output in one batch");
    }
    return c;
}

ModelConfig parse_model_config(const char * text) {
    ModelConfig m = parse<ModelConfig>(text, MODEL, model_rules(), [](const json & j, ModelConfig & m) {
#define LLS_SERVER_KEY(key, type, def, rule, effect)
#define LLS_MODEL_KEY(key, type, def, rule, effect) \
        if (j.contains(#key) && !j.at(#key).is_null()) read(j.at(#key), model_rules().at(#key), m.key);
#include "config_keys.def"
#undef LLS_SERVER_KEY
#undef LLS_MODEL_KEY
    });
    if (m.pooling >= 0 && !m.embedding) {
        fail(LLAMA_ERROR_INVALID_ARGUMENT, "'pooling' in model config needs \"embedding\": true");
    }
    return m;
}

void to_common_params(const ServerConfig & c, const ModelConfig & m, const std::string & model_path,
                      common_params & p) {
    p.model.path = model_path;
    // results name the model by file name, not by its (possibly long) path
    std::string stem = model_path.substr(model_path.find_last_of('/') + 1);
    if (stem.size() > 5 && stem.compare(stem.size() - 5, 5, ".gguf") == 0) stem.resize(stem.size() - 5);
    p.model_alias = {stem};
    {
#define LLS_SERVER_KEY(key, type, def, rule, effect) { const auto & v = c.key; (void) v; effect; }
#define LLS_MODEL_KEY(key, type, def, rule, effect) { const auto & v = m.key; (void) v; effect; }
#include "config_keys.def"
#undef LLS_SERVER_KEY
#undef LLS_MODEL_KEY
    }
    p.kv_unified = false;   // so that every slot gets exactly n_ctx
    if (m.embedding && p.n_ubatch < p.n_batch) {
        // an encoder takes each input whole in one micro-batch (llama.cpp asserts n_ubatch >=
        // n_tokens), so, as llama-server does, n_batch becomes n_ubatch
        log(LLAMA_SERVER_LOG_WARN, "embedding model: n_batch %d > n_ubatch %d, using n_batch = n_ubatch\n",
            p.n_batch, p.n_ubatch);
        p.n_batch = p.n_ubatch;   // what llama.cpp then needs of it: load_rules.cpp
    }
    postprocess_cpu_params(p.cpuparams, nullptr);
    postprocess_cpu_params(p.cpuparams_batch, &p.cpuparams);
    p.use_jinja          = true;
    p.fit_params         = false;   // keep the sizes the caller asked for
    p.sleep_idle_seconds = -1;      // never free the context under us
    p.warmup             = true;
}

}  // namespace lls
