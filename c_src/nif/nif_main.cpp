// NIF entry: atoms, load/upgrade/unload, and the function table with each function's
// scheduler (dirty for anything that parses, renders, takes the core's lock or waits).
#include "nif_calls.h"
#include "nif_server.h"

namespace lnif {

Atoms A;

namespace {

// the atom of each error code, in the rows' order (c_src/core/error_codes.def)
constexpr llama_error_t kCodes[] = {
#define LLS_ERROR_CODE(name, text, atom) name,
#include "error_codes.def"
#undef LLS_ERROR_CODE
};
constexpr const char * kCodeAtoms[] = {
#define LLS_ERROR_CODE(name, text, atom) #atom,
#include "error_codes.def"
#undef LLS_ERROR_CODE
};
constexpr int kNumCodes = sizeof kCodes / sizeof kCodes[0];
ERL_NIF_TERM g_codes[kNumCodes];

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
    for (int i = 0; i < kNumCodes; i++) g_codes[i] = a(kCodeAtoms[i]);
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

// A NIF on a normal scheduler (flags 0), timed by site for the scheduler-hygiene test.
template <ERL_NIF_TERM (*F)(ErlNifEnv *, int, const ERL_NIF_TERM[]), SchedSite S>
ERL_NIF_TERM on_normal(ErlNifEnv * env, int argc, const ERL_NIF_TERM argv[]) {
    NormalSchedTimer timer(S);
    return F(env, argc, argv);
}

ErlNifFunc funcs[] = {
    {"nif_init_server", 1, nif_init_server, IO},        // may load a model ("model" key)
    {"nif_load_model", 3, nif_load_model, IO},          // seconds: file I/O and warmup
    {"nif_destroy_server", 1, nif_destroy_server, IO},  // joins the core's threads
    {"nif_create_session", 3, nif_create_session, CPU},
    {"nif_close_session", 2, nif_close_session, CPU},
    {"nif_create_task", 8, nif_create_task, CPU},       // JSON, validation, chat template
    {"nif_cancel_task", 2, nif_cancel_task, CPU},
    {"nif_task_known", 2, on_normal<nif_task_known, SchedSite::TaskKnown>, 0},   // try_lock only, else busy:
    {"nif_task_known_dirty", 2, nif_task_known_dirty, CPU},   // ... then this one
    {"nif_status", 3, nif_status, CPU},
    {"nif_session_info", 4, nif_session_info, CPU},
    {"nif_info", 0, on_normal<nif_info, SchedSite::Info>, 0},
    {"nif_wait_servers", 2, nif_wait_servers, IO},
    {"nif_cpu_check", 0, on_normal<nif_cpu_check, SchedSite::CpuCheck>, 0},   // cpuid once, then cached
};

}  // namespace

ERL_NIF_TERM code_atom(llama_error_t code) {
    for (int i = 0; i < kNumCodes; i++) {
        if (kCodes[i] == code) return g_codes[i];
    }
    return code_atom(LLAMA_ERROR_UNKNOWN);   // a code newer than this table
}

}  // namespace lnif

ERL_NIF_INIT(llama_nif, lnif::funcs, lnif::load, nullptr, lnif::upgrade, lnif::unload)
