// The server resource's life: destruction, process monitors, and the listener that sends
// task events as messages.
#include "nif_server.h"

namespace lnif {

ErlNifResourceType * SERVER_RES = nullptr;

// ---- Shared -------------------------------------------------------------------------------

Shared::~Shared() { destroy(); }

bool Shared::destroy() {
    std::unique_ptr<lls::Server> s;
    {
        std::unique_lock<std::shared_mutex> lk(life);   // waits for calls in flight
        s = std::move(server);
        destroyed = true;
    }
    if (!s) return false;
    try {
        s->shutdown();   // listeners report every unfinished task as cancelled
    } catch (...) {
    }
    s.reset();
    {
        std::lock_guard<std::mutex> lk(mu);
        tasks.clear();
        owners.clear();   // the monitors go with the resource
    }
    server_freed();
    return true;
}

bool Shared::watch_locked(ErlNifEnv * env, void * res, const ErlNifPid & pid) {
    if (owners.count(pid)) return true;
    Owner o;
    if (enif_monitor_process(env, res, &pid, &o.mon) != 0) return false;
    owners.emplace(pid, std::move(o));
    return true;
}

void Shared::owner_exited(const ErlNifPid & pid) {
    std::vector<long long> pubs;
    std::vector<int> sessions;
    {
        std::lock_guard<std::mutex> lk(mu);
        auto it = owners.find(pid);
        if (it == owners.end()) return;
        pubs.assign(it->second.tasks.begin(), it->second.tasks.end());
        sessions.assign(it->second.sessions.begin(), it->second.sessions.end());
        owners.erase(it);
    }
    std::shared_lock<std::shared_mutex> lk(life);
    if (!server) return;
    for (long long pub : pubs) {
        int cid = -1;
        {
            std::lock_guard<std::mutex> g(mu);
            auto it = tasks.find(pub);
            if (it == tasks.end()) continue;   // finished meanwhile
            if (it->second.core_id < 0) {
                it->second.cancel_pending = true;   // create_task will cancel it on return
                continue;
            }
            cid = it->second.core_id;
        }
        try {
            server->cancel_task(cid);
        } catch (...) {
        }
    }
    for (int sid : sessions) {
        try {
            server->close_session(sid);
        } catch (...) {
        }
    }
}

void Shared::task_finished(long long pub) {
    std::lock_guard<std::mutex> lk(mu);
    task_finished_locked(pub);
}

void Shared::task_finished_locked(long long pub) {
    auto it = tasks.find(pub);
    if (it == tasks.end()) return;
    auto o = owners.find(it->second.owner);
    if (o != owners.end()) o->second.tasks.erase(pub);
    tasks.erase(it);
}

// ---- listener -----------------------------------------------------------------------------

namespace {
// Builds and sends one message from a fresh env; the env is freed whatever happens.
template <typename Build>
void send(const ErlNifPid & to, Build build) {
    if (exiting()) return;   // the VM is going away
    ErlNifEnv * env = enif_alloc_env();
    if (!env) return;
    try {
        ERL_NIF_TERM msg = build(env);
        ErlNifPid pid = to;
        enif_send(t_caller_env, &pid, env, msg);
    } catch (...) {
    }
    enif_free_env(env);
}
}  // namespace

void Listener::on_chunk(int, const std::string & chunk_json) {
    // A failing stream task repeats its error as a last chunk; {llama_error, ...} says it.
    if (chunk_json.compare(0, 9, "{\"error\":") == 0) return;
    std::lock_guard<std::mutex> order(order_mu);
    if (done) return;   // the task already ended (cancelled): nothing may follow its end
    send(to, [&](ErlNifEnv * env) {
        ERL_NIF_TERM chunk;
        try {
            chunk = json_to_term(env, chunk_json, fmt);
        } catch (...) {
            chunk = make_binary(env, chunk_json);
        }
        return enif_make_tuple3(env, A.llama_chunk, enif_make_int64(env, pub), chunk);
    });
}

void Listener::on_done(int task_id, llama_error_t code, const std::string & result_json) {
    std::lock_guard<std::mutex> order(order_mu);   // lock order: order_mu, then the server's
    if (done) return;
    done = true;
    // with a listener the core keeps the task until told; forget it first, so that status
    // shows it gone by the time its owner has the message
    try {
        srv->forget_task(task_id);
    } catch (...) {
    }
    ErlNifEnv * env = exiting() ? nullptr : enif_alloc_env();   // no message while the VM exits
    ERL_NIF_TERM msg = 0;
    if (env) {
        try {
            if (code == LLAMA_SUCCESS) {
                ERL_NIF_TERM r;
                try {
                    r = json_to_term(env, result_json, fmt);
                } catch (...) {
                    r = make_binary(env, result_json);
                }
                msg = enif_make_tuple3(env, A.llama_done, enif_make_int64(env, pub), r);
            } else {
                std::string m = error_message_of(result_json);
                msg = enif_make_tuple3(env, A.llama_error, enif_make_int64(env, pub), reason_term(env, code, m.c_str()));
            }
        } catch (...) {
            msg = 0;
        }
    }
    {
        // Send and forget under the bookkeeping lock: task_known/2 (get_result) then sees
        // either "known, message to come" or "gone, message sent" - never a sent message
        // for a task it still calls known.
        std::lock_guard<std::mutex> lk(sh->mu);
        if (env && msg) {
            ErlNifPid pid = to;
            enif_send(t_caller_env, &pid, env, msg);
        }
        sh->task_finished_locked(pub);
    }
    if (env) enif_free_env(env);
}

// ---- resource type ------------------------------------------------------------------------

namespace {

void server_dtor(ErlNifEnv *, void * obj) {
    NormalSchedTimer timer(SchedSite::ServerDtor);
    auto * r = static_cast<ServerRes *>(obj);
    std::shared_ptr<Shared> sh = std::move(r->sh);
    r->~ServerRes();
    if (sh) {
        // shutdown joins threads: not on this (normal) scheduler
        reaper_post([sh]() mutable {
            sh->destroy();
            sh.reset();
        });
    }
}

// A monitored process exited. This runs on a normal scheduler: take no lock here, let the
// reaper find and cancel its work.
void server_down(ErlNifEnv *, void * obj, ErlNifPid * pid, ErlNifMonitor *) {
    NormalSchedTimer timer(SchedSite::ServerDown);
    auto * r = static_cast<ServerRes *>(obj);
    std::shared_ptr<Shared> sh = r->sh;
    if (!sh) return;
    ErlNifPid p = *pid;
    reaper_post([sh, p] { sh->owner_exited(p); });
}

}  // namespace

bool open_resource_types(ErlNifEnv * env) {
    ErlNifResourceTypeInit init{};
    init.dtor = server_dtor;
    init.down = server_down;
    init.members = 3;
    ErlNifResourceFlags tried;
    SERVER_RES = enif_open_resource_type_x(env, "llama_nif_server", &init,
                                           (ErlNifResourceFlags) (ERL_NIF_RT_CREATE | ERL_NIF_RT_TAKEOVER), &tried);
    return SERVER_RES != nullptr;
}

}  // namespace lnif
