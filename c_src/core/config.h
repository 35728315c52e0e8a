// The server and model configuration of the C API: plain structs whose members are the rows
// of config_keys.def, filled by parse_*_config after every key passed its rule.
#pragma once

#include "lls_common.h"

#include <string>
#include <vector>

struct common_params;

namespace lls {

struct ServerConfig {
#define LLS_SERVER_KEY(key, type, def, rule, effect) type key = def;
#define LLS_MODEL_KEY(key, type, def, rule, effect)
#include "config_keys.def"
#undef LLS_SERVER_KEY
#undef LLS_MODEL_KEY
};

struct ModelConfig {
#define LLS_SERVER_KEY(key, type, def, rule, effect)
#define LLS_MODEL_KEY(key, type, def, rule, effect) type key = def;
#include "config_keys.def"
#undef LLS_SERVER_KEY
#undef LLS_MODEL_KEY
};

ServerConfig parse_server_config(const char * text);
ModelConfig  parse_model_config(const char * text);

// Fill llama.cpp's common_params for one server handle.
void to_common_params(const ServerConfig & sc, const ModelConfig & mc, const std::string & model_path,
                      common_params & out);

}  // namespace lls
