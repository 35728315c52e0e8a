// The three configuration objects of the C API, validated into plain structs.
#pragma once

#include "lls_common.h"

#include <string>

struct common_params;

namespace lls {

struct ServerConfig {
    int    n_parallel = 4;
    int    n_ctx = 4096;            // per slot
    int    n_batch = 512;
    int    n_ubatch = 512;
    int    n_threads = 0;           // 0: number of cores
    int    n_threads_batch = 0;     // 0: n_threads
    int    n_gpu_layers = -1;
    int    flash_attn = -1;         // -1 auto, 0 off, 1 on
    bool   cont_batching = true;
    double timeout_read_s = 600;
    double timeout_write_s = 600;
    double slot_prompt_similarity = 0.0;
    int    max_queued_tasks = 256;
    int    cache_ram_mib = 256;
    int    log_level = -1;          // LLAMA_SERVER_LOG_*, -1: leave the process's level; set by Server
};

struct ModelConfig {
    int         n_gpu_layers = -2;  // -2: use the server config's value
    bool        use_mmap = true;
    bool        use_mlock = false;
    bool        embedding = false;
    std::string pooling;            // "" = model default
    std::string chat_template;      // "" = the model's own
};

ServerConfig parse_server_config(const char * text);
ModelConfig  parse_model_config(const char * text);

// Fill llama.cpp's common_params for one server handle.
void to_common_params(const ServerConfig & sc, const ModelConfig & mc, const std::string & model_path,
                      common_params & out);

}  // namespace lls
