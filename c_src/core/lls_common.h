// Shared vocabulary of the core: the JSON type, the error exception, small helpers.
#pragma once

#include "llama_server.h"

#include "json.h"   // llama.cpp's common_json (ordered keys, throws common_json_error)

#include <stdexcept>
#include <string>

namespace lls {

using json = common_json;

// Thrown inside the core; the C boundary turns it into a code + last_error message.
struct Error : std::runtime_error {
    llama_error_t code;
    Error(llama_error_t code, const std::string & msg) : std::runtime_error(msg), code(code) {}
};

[[noreturn]] inline void fail(llama_error_t code, const std::string & msg) { throw Error(code, msg); }

const char * error_string(llama_error_t code);

// Per-thread detail message of the last failed call.
void        set_last_error(const std::string & msg);
const char * last_error();

// Parse a JSON object argument; NULL/empty means {}. Nesting deeper than MAX_JSON_DEPTH is
// refused before parsing: copying and dumping a json recurse once per level, and a deep
// document would overflow a caller's stack (an Erlang dirty scheduler's is small).
constexpr int MAX_JSON_DEPTH = 64;
json parse_object(const char * text, const char * what);
int  json_nesting_depth(const char * s, size_t n);   // deepest [ / { nesting, strings skipped

// {"error": {"code": <llama_error_t>, "type": ..., "message": ...}}
json error_json(llama_error_t code, const std::string & type, const std::string & message);

// Log through the embedder's sink (see llama_server_set_log).
void log(int level, const char * fmt, ...) __attribute__((format(printf, 2, 3)));

}  // namespace lls

namespace lls {
void set_log(int min_level, llama_server_log_callback_t cb, void * user);
void set_log_level(int min_level);
void ensure_log_installed();   // first init: route llama.cpp logs to our sink
}  // namespace lls
