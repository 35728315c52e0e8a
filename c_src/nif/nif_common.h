// What every file of the NIF shares: atoms, error terms, the exception fence, and the
// conversions between Erlang terms and JSON text.
#pragma once

#include <erl_nif.h>

#include "lls_common.h"

#include <map>
#include <new>
#include <string>

namespace lnif {

// ---- atoms (nif_main.cpp) ---------------------------------------------------------------
struct Atoms {
    ERL_NIF_TERM ok, error, true_, false_, null, nil, undefined;
    ERL_NIF_TERM llama_chunk, llama_done, llama_error;
    ERL_NIF_TERM map, json, destroyed, not_owner, busy, servers;
};
extern Atoms A;

ERL_NIF_TERM code_atom(llama_error_t code);   // invalid_argument, timeout, ...

// ---- terms ------------------------------------------------------------------------------
ERL_NIF_TERM make_binary(ErlNifEnv * env, const char * data, size_t size);
inline ERL_NIF_TERM make_binary(ErlNifEnv * env, const std::string & s) { return make_binary(env, s.data(), s.size()); }

// {Code, Detail}, and {error, {Code, Detail}}. Never throw (used inside catch blocks).
ERL_NIF_TERM reason_term(ErlNifEnv * env, llama_error_t code, const char * detail) noexcept;
ERL_NIF_TERM error_term(ErlNifEnv * env, llama_error_t code, const char * detail) noexcept;

// Every NIF body runs inside this: no exception reaches the VM, bad input is {error, ...}.
template <typename F>
ERL_NIF_TERM guarded(ErlNifEnv * env, F && f) noexcept {
    try {
        return f();
    } catch (const lls::Error & e) {
        return error_term(env, e.code, e.what());
    } catch (const std::bad_alloc &) {
        return error_term(env, LLAMA_ERROR_OUT_OF_MEMORY, "out of memory");
    } catch (const std::exception & e) {
        return error_term(env, LLAMA_ERROR_UNKNOWN, e.what());
    } catch (...) {
        return error_term(env, LLAMA_ERROR_UNKNOWN, "internal error");
    }
}

// Limits on what Erlang may hand us: big enough for any context, small enough to refuse
// a runaway binary before it is copied and parsed.
constexpr size_t MAX_JSON_BYTES = 16u << 20;
using lls::MAX_JSON_DEPTH;          // the core's limit, for terms as for JSON text

// A config or input argument as JSON object text: a map (atom or binary keys), a JSON
// binary, or null/nil/undefined for "{}". Throws INVALID_ARGUMENT naming `what` and the path.
std::string arg_to_json(ErlNifEnv * env, ERL_NIF_TERM term, const char * what);

// A binary or an atom as a string (task types, paths). Throws INVALID_ARGUMENT.
std::string arg_to_string(ErlNifEnv * env, ERL_NIF_TERM term, const char * what, size_t max_bytes);

// Integer argument in [lo, hi]. Throws INVALID_ARGUMENT.
long long arg_to_int(ErlNifEnv * env, ERL_NIF_TERM term, const char * what, long long lo, long long hi);

// How results are handed to Erlang: decoded maps (binary keys) or the raw JSON binary.
struct Format {
    bool raw = false;                 // true: the JSON text as a binary
    ERL_NIF_TERM null_atom = 0;       // JSON null as this atom (null for Erlang, nil for Elixir)
};
Format arg_to_format(ErlNifEnv * env, ERL_NIF_TERM format, ERL_NIF_TERM null_atom);

// JSON text -> term in `env` (or the binary, when raw). Throws on invalid JSON.
ERL_NIF_TERM json_to_term(ErlNifEnv * env, const std::string & text, const Format & f);

// The "message" of the core's error JSON {"error": {"message": ...}}, or the text itself.
std::string error_message_of(const std::string & result_json);

// Listener callbacks run on the core's threads, or on the thread of a NIF call that made
// the core finish a task (cancel, close, destroy): enif_send needs that call's env then.
extern thread_local ErlNifEnv * t_caller_env;
struct CallerEnv {
    ErlNifEnv * prev;
    explicit CallerEnv(ErlNifEnv * env) : prev(t_caller_env) { t_caller_env = env; }
    ~CallerEnv() { t_caller_env = prev; }
};

}  // namespace lnif
