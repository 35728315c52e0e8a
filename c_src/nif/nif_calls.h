// The NIF functions (nif_calls.cpp), registered in nif_main.cpp.
#pragma once

#include "nif_common.h"

namespace lnif {

#define LNIF_DECL(name) ERL_NIF_TERM name(ErlNifEnv * env, int argc, const ERL_NIF_TERM argv[])
LNIF_DECL(nif_init_server);
LNIF_DECL(nif_load_model);
LNIF_DECL(nif_destroy_server);
LNIF_DECL(nif_create_session);
LNIF_DECL(nif_close_session);
LNIF_DECL(nif_create_task);
LNIF_DECL(nif_cancel_task);
LNIF_DECL(nif_task_known);
LNIF_DECL(nif_task_known_dirty);
LNIF_DECL(nif_status);
LNIF_DECL(nif_session_info);
LNIF_DECL(nif_info);
LNIF_DECL(nif_wait_servers);
LNIF_DECL(nif_cpu_check);
#undef LNIF_DECL

}  // namespace lnif
