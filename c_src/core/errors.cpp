// Error names, the per-thread detail message, and argument parsing shared by all entry points.
#include "lls_common.h"

#include <cstring>

namespace lls {

const char * error_string(llama_error_t code) {
    switch (code) {
#define LLS_ERROR_CODE(name, text, atom) \
        case name: return text;
#include "error_codes.def"
#undef LLS_ERROR_CODE
    }
    return "unrecognised error code";
}

static thread_local std::string t_last_error;

void set_last_error(const std::string & msg) { t_last_error = msg; }
const char * last_error() { return t_last_error.c_str(); }

int json_nesting_depth(const char * s, size_t n) {
    int depth = 0, max = 0;
    bool in_str = false, esc = false;
    for (size_t i = 0; i < n; i++) {
        const char c = s[i];
        if (in_str) {
            if (esc) esc = false;
            else if (c == '\\') esc = true;
            else if (c == '"') in_str = false;
        } else if (c == '"') {
            in_str = true;
        } else if (c == '[' || c == '{') {
            if (++depth > max) max = depth;
        } else if (c == ']' || c == '}') {
            depth--;
        }
    }
    return max;
}

json parse_object(const char * text, const char * what) {
    if (text == nullptr || text[0] == '\0') {
        return json::object();
    }
    if (json_nesting_depth(text, std::strlen(text)) > MAX_JSON_DEPTH) {
        fail(LLAMA_ERROR_INVALID_ARGUMENT, std::string(what) + " is nested deeper than " +
             std::to_string(MAX_JSON_DEPTH) + " levels");
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
