// Server and model configuration: validation (unknown keys, types, ranges) and mapping to
// llama.cpp's common_params with library-friendly defaults.
#include "config.h"
#include "json_check.h"

#include "common.h"
#include "llama.h"

#include <thread>

namespace lls {

static const char * SERVER = "server config";
static const char * MODEL  = "model config";

ServerConfig parse_server_config(const char * text) {
    json j = parse_object(text, SERVER);
    check_known_keys(j, {"n_parallel", "n_ctx", "n_batch", "n_ubatch", "n_threads", "n_threads_batch",
                         "n_gpu_layers", "timeout_read", "timeout_write", "slot_prompt_similarity",
                         "cont_batching", "flash_attn", "max_queued_tasks", "cache_ram_mib", "log_level"},
                     SERVER);
    ServerConfig c;
    c.n_parallel       = get_int(j, "n_parallel", c.n_parallel, 1, 256, SERVER);
    c.n_ctx            = get_int(j, "n_ctx", c.n_ctx, 0, 1 << 20, SERVER);
    if (c.n_ctx != 0 && c.n_ctx < 64) {
        fail(LLAMA_ERROR_INVALID_ARGUMENT, "'n_ctx' in server config must be 0 (model default) or >= 64");
    }
    // at least 2: llama.cpp's warmup decodes two tokens in one batch (n_batch 1 aborted in
    // common_batch::get_sub_batch)
    c.n_batch          = get_int(j, "n_batch", c.n_batch, 2, 1 << 20, SERVER);
    c.n_ubatch         = get_int(j, "n_ubatch", std::min(c.n_ubatch, c.n_batch), 1, 1 << 20, SERVER);
    // llama.cpp sizes its output buffers by n_batch and asserts that every sequence fits
    // (llama-context.cpp: n_outputs_max <= n_batch): each slot may output in one batch
    if (c.n_batch < c.n_parallel) {
        fail(LLAMA_ERROR_INVALID_ARGUMENT, "'n_batch' (" + std::to_string(c.n_batch) + ") in server config must be at least "
             "'n_parallel' (" + std::to_string(c.n_parallel) + "): every slot may need an output in one batch");
    }
    c.n_threads        = get_int(j, "n_threads", c.n_threads, 1, 1024, SERVER);   // absent: all cores
    c.n_threads_batch  = get_int(j, "n_threads_batch", c.n_threads_batch, 1, 1024, SERVER);
    c.n_gpu_layers     = get_int(j, "n_gpu_layers", c.n_gpu_layers, -1, 100000, SERVER);
    c.timeout_read_s   = get_num(j, "timeout_read", c.timeout_read_s, 0.001, 1e9, SERVER);
    c.timeout_write_s  = get_num(j, "timeout_write", c.timeout_write_s, 0.001, 1e9, SERVER);
    c.slot_prompt_similarity = get_num(j, "slot_prompt_similarity", c.slot_prompt_similarity, 0.0, 1.0, SERVER);
    c.cont_batching    = get_bool(j, "cont_batching", c.cont_batching, SERVER);
    if (j.contains("flash_attn") && !j.at("flash_attn").is_null()) {
        const json & fa = j.at("flash_attn");
        if (fa.is_boolean()) {
            c.flash_attn = fa.get<bool>() ? 1 : 0;
        } else if (fa.is_string() && fa.get<std::string>() == "auto") {
            c.flash_attn = -1;
        } else {
            fail(LLAMA_ERROR_INVALID_ARGUMENT, "'flash_attn' in server config must be true, false or \"auto\"");
        }
    }
    c.max_queued_tasks = get_int(j, "max_queued_tasks", c.max_queued_tasks, 1, 1 << 20, SERVER);
    c.cache_ram_mib    = get_int(j, "cache_ram_mib", c.cache_ram_mib, 0, 1 << 22, SERVER);
    std::string level  = get_str(j, "log_level", "", SERVER);
    if (!level.empty()) {
        static const char * names[] = {"debug", "info", "warn", "error", "none"};
        int found = -1;
        for (int i = 0; i < 5; i++) {
            if (level == names[i]) found = i;
        }
        if (found < 0) {
            fail(LLAMA_ERROR_INVALID_ARGUMENT, "'log_level' in server config must be one of debug, info, warn, error, none");
        }
        c.log_level = found;
    }
    return c;
}

ModelConfig parse_model_config(const char * text) {
    json j = parse_object(text, MODEL);
    check_known_keys(j, {"n_gpu_layers", "use_mmap", "use_mlock", "embedding", "pooling", "chat_template"}, MODEL);
    ModelConfig m;
    m.n_gpu_layers  = get_int(j, "n_gpu_layers", m.n_gpu_layers, -2, 100000, MODEL);
    m.use_mmap      = get_bool(j, "use_mmap", m.use_mmap, MODEL);
    m.use_mlock     = get_bool(j, "use_mlock", m.use_mlock, MODEL);
    m.embedding     = get_bool(j, "embedding", m.embedding, MODEL);
    m.pooling       = get_str(j, "pooling", m.pooling, MODEL);
    if (!m.pooling.empty() && m.pooling != "none" && m.pooling != "mean" && m.pooling != "cls" &&
        m.pooling != "last" && m.pooling != "rank") {
        fail(LLAMA_ERROR_INVALID_ARGUMENT, "'pooling' in model config must be one of none, mean, cls, last, rank");
    }
    if (!m.pooling.empty() && !m.embedding) {
        fail(LLAMA_ERROR_INVALID_ARGUMENT, "'pooling' in model config needs \"embedding\": true");
    }
    m.chat_template = get_str(j, "chat_template", m.chat_template, MODEL);
    return m;
}

static enum llama_pooling_type pooling_of(const std::string & p) {
    if (p == "none") return LLAMA_POOLING_TYPE_NONE;
    if (p == "mean") return LLAMA_POOLING_TYPE_MEAN;
    if (p == "cls")  return LLAMA_POOLING_TYPE_CLS;
    if (p == "last") return LLAMA_POOLING_TYPE_LAST;
    if (p == "rank") return LLAMA_POOLING_TYPE_RANK;
    return LLAMA_POOLING_TYPE_UNSPECIFIED;
}

void to_common_params(const ServerConfig & sc, const ModelConfig & mc, const std::string & model_path,
                      common_params & p) {
    const int cores = (int) std::max(1u, std::thread::hardware_concurrency());
    p.model.path        = model_path;
    // results name the model by file name, not by its (possibly long) path
    std::string stem = model_path.substr(model_path.find_last_of('/') + 1);
    if (stem.size() > 5 && stem.compare(stem.size() - 5, 5, ".gguf") == 0) stem.resize(stem.size() - 5);
    p.model_alias = {stem};
    p.n_parallel        = sc.n_parallel;
    p.n_ctx             = sc.n_ctx * sc.n_parallel;   // ours is per slot, llama.cpp's is total
    p.kv_unified        = false;                      // so that every slot gets exactly n_ctx
    p.n_batch           = sc.n_batch;
    p.n_ubatch          = std::min(sc.n_ubatch, sc.n_batch);
    if (mc.embedding && p.n_ubatch < p.n_batch) {
        // an encoder takes each input whole in one micro-batch (llama.cpp asserts n_ubatch >=
        // n_tokens), so, as llama-server does, n_batch becomes n_ubatch
        log(LLAMA_SERVER_LOG_WARN, "embedding model: n_batch %d > n_ubatch %d, using n_batch = n_ubatch\n",
            p.n_batch, p.n_ubatch);
        p.n_batch = p.n_ubatch;
        if (p.n_batch < sc.n_parallel) {
            fail(LLAMA_ERROR_INVALID_ARGUMENT, "'n_ubatch' (" + std::to_string(p.n_ubatch) + ") in server config must be at "
                 "least 'n_parallel' (" + std::to_string(sc.n_parallel) + ") for an embedding model: its n_batch becomes "
                 "n_ubatch, and every slot may need an output in one batch");
        }
    }
    p.cpuparams.n_threads       = sc.n_threads > 0 ? sc.n_threads : cores;
    p.cpuparams_batch.n_threads = sc.n_threads_batch > 0 ? sc.n_threads_batch : p.cpuparams.n_threads;
    postprocess_cpu_params(p.cpuparams, nullptr);
    postprocess_cpu_params(p.cpuparams_batch, &p.cpuparams);
    p.n_gpu_layers      = mc.n_gpu_layers != -2 ? mc.n_gpu_layers : sc.n_gpu_layers;
    p.flash_attn_type   = sc.flash_attn < 0 ? LLAMA_FLASH_ATTN_TYPE_AUTO
                        : sc.flash_attn ? LLAMA_FLASH_ATTN_TYPE_ENABLED : LLAMA_FLASH_ATTN_TYPE_DISABLED;
    p.cont_batching     = sc.cont_batching;
    // We pin every task to a slot and apply slot_prompt_similarity ourselves. llama.cpp only
    // saves a slot's old prompt to the host cache (and restores a matching one) for a pinned
    // task when its own similarity is non-zero, so give it the smallest positive value.
    p.slot_prompt_similarity = std::max((float) sc.slot_prompt_similarity, 1e-6f);
    p.cache_ram_mib     = sc.cache_ram_mib;           // llama.cpp's default is 8 GiB
    p.load_mode         = mc.use_mmap ? (mc.use_mlock ? LLAMA_LOAD_MODE_MMAP_MLOCK : LLAMA_LOAD_MODE_MMAP)
                                      : (mc.use_mlock ? LLAMA_LOAD_MODE_MLOCK : LLAMA_LOAD_MODE_NONE);
    p.embedding         = mc.embedding;
    p.pooling_type      = pooling_of(mc.pooling);
    p.chat_template     = mc.chat_template;
    p.use_jinja         = true;
    p.fit_params        = false;                      // keep the sizes the caller asked for
    p.sleep_idle_seconds = -1;                        // never free the context under us
    p.warmup            = true;
}

}  // namespace lls
