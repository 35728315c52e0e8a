// Error names, the per-thread detail message, and argument parsing shared by all entry points.
#include "lls_common.h"

namespace lls {

const char * error_string(llama_error_t code) {
    switch (code) {
        case LLAMA_SUCCESS:                return "success";
        case LLAMA_ERROR_INVALID_ARGUMENT: return "invalid argument";
        case LLAMA_ERROR_OUT_OF_MEMORY:    return "out of memory";
        case LLAMA_ERROR_MODEL_LOAD_FAILED:return "model load failed";
        case LLAMA_ERROR_INFERENCE_FAILED: return "inference failed";
        case LLAMA_ERROR_SESSION_NOT_FOUND:return "session not found";
        case LLAMA_ERROR_SERVER_BUSY:      return "server busy";
        case LLAMA_ERROR_TIMEOUT:          return "timeout";
        case LLAMA_ERROR_BUFFER_TOO_SMALL: return "buffer too small";
        case LLAMA_ERROR_TASK_NOT_FOUND:   return "task not found";
        case LLAMA_ERROR_MODEL_NOT_LOADED: return "model not loaded";
        case LLAMA_ERROR_CANCELLED:        return "cancelled";
        case LLAMA_ERROR_NOT_SUPPORTED:    return "not supported";
        case LLAMA_ERROR_UNKNOWN:          return "unknown error";
    }
    return "unrecognised error code";
}

static thread_local std::string t_last_error;

void set_last_error(const std::string & msg) { t_last_error = msg; }
const char * last_error() { return t_last_error.c_str(); }

json parse_object(const char * text, const char * what) {
    if (text == nullptr || text[0] == '\0') {
        return json::object();
    }
    json j = json::parse_no_throw(text);
    if (j.is_discarded()) {
        fail(LLAMA_ERROR_INVALID_ARGUMENT, std::string(what) + " is not valid JSON (or not UTF-8)");
    }
    if (j.is_null()) {
        return json::object();
    }
    if (!j.is_object()) {
        fail(LLAMA_ERROR_INVALID_ARGUMENT, std::string(what) + " must be a JSON object");
    }
    return j;
}

json error_json(llama_error_t code, const std::string & type, const std::string & message) {
    json err = json::object();
    err["code"] = (int) code;
    err["type"] = type;
    err["message"] = message;
    json out = json::object();
    out["error"] = err;
    return out;
}

}  // namespace lls
