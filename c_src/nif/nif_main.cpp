// NIF entry: atoms, load/upgrade/unload, and the function table with each function's
// scheduler (dirty for anything that parses, renders, takes the core's lock or waits).
#include "nif_calls.h"
#include "nif_server.h"

namespace lnif {

Atoms A;

namespace {

ERL_NIF_TERM g_codes[14];   // by position in code_index()

int code_index(llama_error_t c) {
    switch (c) {
        case LLAMA_SUCCESS:                 return 0;
        case LLAMA_ERROR_INVALID_ARGUMENT:  return 1;
        case LLAMA_ERROR_OUT_OF_MEMORY:     return 2;
        case LLAMA_ERROR_MODEL_LOAD_FAILED: return 3;
        case LLAMA_ERROR_INFERENCE_FAILED:  return 4;
        case LLAMA_ERROR_SESSION_NOT_FOUND: return 5;
        case LLAMA_ERROR_SERVER_BUSY:       return 6;
        case LLAMA_ERROR_TIMEOUT:           return 7;
        case LLAMA_ERROR_BUFFER_TOO_SMALL:  return 8;
        case LLAMA_ERROR_TASK_NOT_FOUND:    return 9;
        case LLAMA_ERROR_MODEL_NOT_LOADED:  return 10;
        case LLAMA_ERROR_CANCELLED:         return 11;
        case LLAMA_ERROR_NOT_SUPPORTED:     return 12;
        default:                            return 13;   // LLAMA_ERROR_UNKNOWN and anything new
    }
}

void make_atoms(ErlNifEnv * env) {
    auto a = [&](const char * n) { return enif_make_atom(env, n); };
    A.ok = a("ok");
    A.error = a("error");
    A.true_ = a("true");
    A.false_ = a("false");
    A.null = a("null");
    A.nil = a("nil");
    A.undefined = a("undefined");
    A.llama_chunk = a("llama_chunk");
    A.llama_done = a("llama_done");
    A.llama_error = a("llama_error");
    A.map = a("map");
    A.json = a("json");
    A.destroyed = a("destroyed");
    A.not_owner = a("not_owner");
    A.busy = a("busy");
    A.servers = a("servers");
    A.tasks = a("tasks");
    // atoms named after the C error codes (LLAMA_ERROR_X -> x)
    const char * names[14] = {"success", "invalid_argument", "out_of_memory", "model_load_failed",
                              "inference_failed", "session_not_found", "server_busy", "timeout",
                              "buffer_too_small", "task_not_found", "model_not_loaded", "cancelled",
                              "not_supported", "unknown"};
    for (int i = 0; i < 14; i++) g_codes[i] = a(names[i]);
}

int load(ErlNifEnv * env, void **, ERL_NIF_TERM) {
    make_atoms(env);
    if (!open_resource_types(env)) return 1;
    reaper_start();
    return 0;
}

int upgrade(ErlNifEnv * env, void **, void **, ERL_NIF_TERM) { return load(env, nullptr, 0); }

void unload(ErlNifEnv *, void *) { reaper_stop(); }

const int CPU = ERL_NIF_DIRTY_JOB_CPU_BOUND;
const int IO = ERL_NIF_DIRTY_JOB_IO_BOUND;

ErlNifFunc funcs[] = {
    {"nif_init_server", 1, nif_init_server, IO},        // may load a model ("model" key)
    {"nif_load_model", 3, nif_load_model, IO},          // seconds: file I/O and warmup
    {"nif_destroy_server", 1, nif_destroy_server, IO},  // joins the core's threads
    {"nif_create_session", 3, nif_create_session, CPU},
    {"nif_close_session", 2, nif_close_session, CPU},
    {"nif_create_task", 7, nif_create_task, CPU},       // JSON, validation, chat template
    {"nif_cancel_task", 2, nif_cancel_task, CPU},
    {"nif_task_known", 2, nif_task_known, 0},           // try_lock only, else busy:
    {"nif_task_known_dirty", 2, nif_task_known_dirty, CPU},   // ... then this one
    {"nif_status", 3, nif_status, CPU},
    {"nif_session_info", 4, nif_session_info, CPU},
    {"nif_info", 0, nif_info, 0},
    {"nif_wait_servers", 2, nif_wait_servers, IO},
    {"nif_cpu_check", 0, nif_cpu_check, 0},             // cpuid once, then a cached answer
};

}  // namespace

ERL_NIF_TERM code_atom(llama_error_t code) { return g_codes[code_index(code)]; }

}  // namespace lnif

ERL_NIF_INIT(llama_nif, lnif::funcs, lnif::load, nullptr, lnif::upgrade, lnif::unload)
