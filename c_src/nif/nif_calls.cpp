// The NIF functions. Anything that parses JSON, renders a template, takes the core's lock
// or waits runs on a dirty scheduler (see the table in nif_main.cpp); results never do:
// they come back as messages from the core's threads.
#include "nif_calls.h"
#include "nif_server.h"

#include "cpu_select.h"

#include <algorithm>

namespace lnif {

namespace {

// A server argument in use: keeps the core alive and destroy waiting until the call ends.
struct Use {
    ServerRes * res = nullptr;
    std::shared_ptr<Shared> sh;
    std::shared_lock<std::shared_mutex> lk;
    lls::Server * s = nullptr;

    Use(ErlNifEnv * env, ERL_NIF_TERM term) {
        void * obj = nullptr;
        if (!enif_get_resource(env, term, SERVER_RES, &obj)) {
            lls::fail(LLAMA_ERROR_INVALID_ARGUMENT, "not a llama_nif server");
        }
        res = static_cast<ServerRes *>(obj);
        sh = res->sh;
        if (!sh) lls::fail(LLAMA_ERROR_INVALID_ARGUMENT, "the server was destroyed");
        lk = std::shared_lock<std::shared_mutex>(sh->life);
        s = sh->server.get();
        if (!s) lls::fail(LLAMA_ERROR_INVALID_ARGUMENT, "the server was destroyed");
    }
    lls::Server * operator->() const { return s; }
};

ERL_NIF_TERM ok_tuple(ErlNifEnv * env, ERL_NIF_TERM t) { return enif_make_tuple2(env, A.ok, t); }

}  // namespace

// init_server(Config) -> {ok, Server}. Two keys are the NIF's own: "model" (a path, loaded
// here, so that init_server + create_session is all the basic pattern needs: examples/erlang_usage_pattern.escript)
// and "model_config".
ERL_NIF_TERM nif_init_server(ErlNifEnv * env, int, const ERL_NIF_TERM argv[]) {
    CallerEnv ce(env);
    return guarded(env, [&] {
        std::string text = arg_to_json(env, argv[0], "server config");
        lls::json cfg_json = lls::parse_object(text.c_str(), "server config");
        std::string model_path, model_cfg;
        if (cfg_json.contains("model")) {
            const lls::json & m = cfg_json.at("model");
            if (!m.is_string() || m.get<std::string>().empty() || m.get<std::string>().find('\0') != std::string::npos) {
                lls::fail(LLAMA_ERROR_INVALID_ARGUMENT, "'model' in server config must be a path (a string)");
            }
            model_path = m.get<std::string>();
            cfg_json.erase("model");
        }
        if (cfg_json.contains("model_config")) {
            if (model_path.empty()) lls::fail(LLAMA_ERROR_INVALID_ARGUMENT, "'model_config' in server config needs 'model'");
            const lls::json & mc = cfg_json.at("model_config");
            if (!mc.is_object() && !mc.is_null()) lls::fail(LLAMA_ERROR_INVALID_ARGUMENT, "'model_config' in server config must be an object");
            model_cfg = mc.dump_safe();
            cfg_json.erase("model_config");
        }
        lls::ServerConfig cfg = lls::parse_server_config(cfg_json.dump_safe().c_str());
        lls::ModelConfig mc = lls::parse_model_config(model_cfg.c_str());
        auto sh = std::make_shared<Shared>();
        sh->server = std::make_unique<lls::Server>(cfg);
        server_created();
        if (!model_path.empty()) {
            sh->server->load_model(model_path, mc);   // on failure sh frees it
        }
        void * obj = enif_alloc_resource(SERVER_RES, sizeof(ServerRes));
        new (obj) ServerRes{std::move(sh)};
        ERL_NIF_TERM t = enif_make_resource(env, obj);
        enif_release_resource(obj);   // the term owns it now
        return ok_tuple(env, t);
    });
}

// load_model(Server, PathBinary, ModelConfig) -> ok
ERL_NIF_TERM nif_load_model(ErlNifEnv * env, int, const ERL_NIF_TERM argv[]) {
    CallerEnv ce(env);
    return guarded(env, [&] {
        Use u(env, argv[0]);
        std::string path = arg_to_string(env, argv[1], "model path", 4096);
        std::string text = arg_to_json(env, argv[2], "model config");
        u->load_model(path, lls::parse_model_config(text.c_str()));
        return A.ok;
    });
}

// destroy_server(Server) -> ok
ERL_NIF_TERM nif_destroy_server(ErlNifEnv * env, int, const ERL_NIF_TERM argv[]) {
    CallerEnv ce(env);
    return guarded(env, [&] {
        void * obj = nullptr;
        if (!enif_get_resource(env, argv[0], SERVER_RES, &obj)) {
            lls::fail(LLAMA_ERROR_INVALID_ARGUMENT, "not a llama_nif server");
        }
        std::shared_ptr<Shared> sh = static_cast<ServerRes *>(obj)->sh;
        if (!sh || !sh->destroy()) lls::fail(LLAMA_ERROR_INVALID_ARGUMENT, "the server was already destroyed");
        return A.ok;
    });
}

// create_session(Server, Config, OwnerPid | undefined) -> {ok, SessionId}
// With a pid, the session is closed when that process exits.
ERL_NIF_TERM nif_create_session(ErlNifEnv * env, int, const ERL_NIF_TERM argv[]) {
    CallerEnv ce(env);
    return guarded(env, [&] {
        Use u(env, argv[0]);
        ErlNifPid owner;
        const bool owned = !enif_is_identical(argv[2], A.undefined);
        if (owned && !enif_get_local_pid(env, argv[2], &owner)) {
            lls::fail(LLAMA_ERROR_INVALID_ARGUMENT, "the session owner must be a local pid");
        }
        std::string text = arg_to_json(env, argv[1], "session config");
        const int sid = u->create_session(lls::parse_object(text.c_str(), "session config"));
        if (owned) {
            bool alive;
            {
                std::lock_guard<std::mutex> lk(u.sh->mu);
                alive = u.sh->watch_locked(env, u.res, owner);
                if (alive) u.sh->owners[owner].sessions.insert(sid);
            }
            if (!alive) {
                u->close_session(sid);
                lls::fail(LLAMA_ERROR_INVALID_ARGUMENT, "the session owner is not alive");
            }
        }
        return ok_tuple(env, enif_make_int(env, sid));
    });
}

// close_session(Server, SessionId) -> ok
ERL_NIF_TERM nif_close_session(ErlNifEnv * env, int, const ERL_NIF_TERM argv[]) {
    CallerEnv ce(env);
    return guarded(env, [&] {
        Use u(env, argv[0]);
        const int sid = (int) arg_to_int(env, argv[1], "session id", 1, INT32_MAX);
        u->close_session(sid);   // its tasks' owners get {llama_error, Id, {cancelled, _}}
        std::lock_guard<std::mutex> lk(u.sh->mu);
        for (auto & kv : u.sh->owners) kv.second.sessions.erase(sid);
        return A.ok;
    });
}

// create_task(Server, SessionId, Type, Input, Stream, Format, Null) -> {ok, TaskId}
// Stream: true | false | undefined (then the input's "stream" key decides).
ERL_NIF_TERM nif_create_task(ErlNifEnv * env, int, const ERL_NIF_TERM argv[]) {
    CallerEnv ce(env);
    return guarded(env, [&] {
        Use u(env, argv[0]);
        const int sid = (int) arg_to_int(env, argv[1], "session id", 0, INT32_MAX);
        std::string type = arg_to_string(env, argv[2], "task type", 64);
        const lls::TaskKind kind = lls::parse_task_kind(type.c_str());
        std::string text = arg_to_json(env, argv[3], "task input");
        lls::json input = lls::parse_object(text.c_str(), "task input");
        bool stream;
        if (enif_is_identical(argv[4], A.true_)) stream = true;
        else if (enif_is_identical(argv[4], A.false_)) stream = false;
        else if (enif_is_identical(argv[4], A.undefined)) stream = input.contains("stream") && input.at("stream").is_boolean() && input.at("stream").get<bool>();
        else lls::fail(LLAMA_ERROR_INVALID_ARGUMENT, "stream must be true, false or undefined");
        const Format fmt = arg_to_format(env, argv[5], argv[6]);

        // the task's messages go to reply_to (default: the caller), which owns it: its
        // exit cancels the task, and only it may fetch the result
        ErlNifPid self;
        if (!enif_get_local_pid(env, argv[7], &self)) lls::fail(LLAMA_ERROR_INVALID_ARGUMENT, "reply_to must be a local pid");
        const long long pub = next_task_id();
        {
            std::lock_guard<std::mutex> lk(u.sh->mu);
            if (!u.sh->watch_locked(env, u.res, self)) lls::fail(LLAMA_ERROR_INVALID_ARGUMENT, "the process that would own the task (reply_to, or the caller) is not alive");
            TaskRec rec;
            rec.owner = self;
            u.sh->tasks.emplace(pub, rec);
            u.sh->owners[self].tasks.insert(pub);
        }
        int cid;
        try {
            cid = u->create_task(sid, kind, input, stream, std::make_shared<Listener>(u.sh.get(), u.s, pub, self, fmt));
        } catch (...) {
            u.sh->task_finished(pub);
            throw;
        }
        bool cancel = false;
        {
            std::lock_guard<std::mutex> lk(u.sh->mu);
            auto it = u.sh->tasks.find(pub);
            if (it != u.sh->tasks.end()) {   // else: it already finished
                it->second.core_id = cid;
                cancel = it->second.cancel_pending;
            }
        }
        if (cancel) {
            try {
                u->cancel_task(cid);
            } catch (...) {
            }
        }
        return ok_tuple(env, enif_make_int64(env, pub));
    });
}

// cancel_task(Server, TaskId) -> ok. The task's owner gets {llama_error, Id, {cancelled, _}}.
ERL_NIF_TERM nif_cancel_task(ErlNifEnv * env, int, const ERL_NIF_TERM argv[]) {
    CallerEnv ce(env);
    return guarded(env, [&] {
        Use u(env, argv[0]);
        const long long pub = arg_to_int(env, argv[1], "task id", 1, INT64_MAX);
        int cid;
        {
            std::lock_guard<std::mutex> lk(u.sh->mu);
            auto it = u.sh->tasks.find(pub);
            if (it == u.sh->tasks.end()) {
                lls::fail(LLAMA_ERROR_TASK_NOT_FOUND, "no task " + std::to_string(pub) +
                          " in flight on this server (never created, finished, or cancelled)");
            }
            if (it->second.core_id < 0) {
                it->second.cancel_pending = true;
                return A.ok;
            }
            cid = it->second.core_id;
        }
        u->cancel_task(cid);
        return A.ok;
    });
}

// task_known(Server, TaskId) -> true | false | destroyed | not_owner (the task is another
// process's: its messages go there) | busy. On a normal scheduler it never waits for our
// lock: `busy` says "ask nif_task_known_dirty" (the same function on a dirty scheduler).
static ERL_NIF_TERM task_known(ErlNifEnv * env, const ERL_NIF_TERM argv[], bool may_wait) {
    return guarded(env, [&] {
        void * obj = nullptr;
        if (!enif_get_resource(env, argv[0], SERVER_RES, &obj)) {
            lls::fail(LLAMA_ERROR_INVALID_ARGUMENT, "not a llama_nif server");
        }
        std::shared_ptr<Shared> sh = static_cast<ServerRes *>(obj)->sh;
        const long long pub = arg_to_int(env, argv[1], "task id", 1, INT64_MAX);
        if (!sh) return A.destroyed;
        ErlNifPid self;
        const bool have_self = enif_self(env, &self) != nullptr;
        std::unique_lock<std::mutex> lk(sh->mu, std::defer_lock);
        if (may_wait) {
            lk.lock();
        } else if (!lk.try_lock()) {
            return A.busy;
        }
        auto it = sh->tasks.find(pub);
        if (it != sh->tasks.end()) {
            return have_self && enif_compare_pids(&self, &it->second.owner) != 0 ? A.not_owner : A.true_;
        }
        return sh->destroyed ? A.destroyed : A.false_;
    });
}

ERL_NIF_TERM nif_task_known(ErlNifEnv * env, int, const ERL_NIF_TERM argv[]) {
    return task_known(env, argv, false);
}

ERL_NIF_TERM nif_task_known_dirty(ErlNifEnv * env, int, const ERL_NIF_TERM argv[]) {
    return task_known(env, argv, true);
}

// status(Server, Format, Null) -> {ok, Map | Json}
ERL_NIF_TERM nif_status(ErlNifEnv * env, int, const ERL_NIF_TERM argv[]) {
    CallerEnv ce(env);
    return guarded(env, [&] {
        Use u(env, argv[0]);
        const Format fmt = arg_to_format(env, argv[1], argv[2]);
        return ok_tuple(env, json_to_term(env, u->status_json(), fmt));
    });
}

// session_info(Server, SessionId, Format, Null) -> {ok, Map | Json}
ERL_NIF_TERM nif_session_info(ErlNifEnv * env, int, const ERL_NIF_TERM argv[]) {
    CallerEnv ce(env);
    return guarded(env, [&] {
        Use u(env, argv[0]);
        const int sid = (int) arg_to_int(env, argv[1], "session id", 1, INT32_MAX);
        const Format fmt = arg_to_format(env, argv[2], argv[3]);
        return ok_tuple(env, json_to_term(env, u->session_info_json(sid), fmt));
    });
}

// info() -> #{servers => LiveServers,
//             normal_scheduler => #{calls, max_cpu_us, max_wall_us, sites => #{Site => Stats}}}
// Stats: #{calls, max_cpu_us, max_wall_us, cpu_us => [{Below, Calls}]}, calls by CPU time
// under each bound (and at or over the one before), ending with {infinity, Calls}.
ERL_NIF_TERM nif_info(ErlNifEnv * env, int, const ERL_NIF_TERM[]) {
    const ERL_NIF_TERM k_calls = enif_make_atom(env, "calls"), k_cpu = enif_make_atom(env, "max_cpu_us"),
                       k_wall = enif_make_atom(env, "max_wall_us");
    auto stats_map = [&](long long calls, long long cpu_ns, long long wall_ns) {
        ERL_NIF_TERM keys[] = {k_calls, k_cpu, k_wall};
        ERL_NIF_TERM vals[] = {enif_make_int64(env, calls), enif_make_double(env, cpu_ns / 1000.0),
                               enif_make_double(env, wall_ns / 1000.0)};
        ERL_NIF_TERM m;
        enif_make_map_from_arrays(env, keys, vals, 3, &m);
        return m;
    };
    long long calls = 0, cpu_ns = 0, wall_ns = 0;
    ERL_NIF_TERM sites = enif_make_new_map(env);
    for (int i = 0; i < (int) SchedSite::Count; i++) {
        const SchedSiteStats st = sched_site_stats((SchedSite) i);
        calls += st.calls;
        cpu_ns = std::max(cpu_ns, st.max_cpu_ns);
        wall_ns = std::max(wall_ns, st.max_wall_ns);
        ERL_NIF_TERM buckets[kCpuBuckets];
        for (int b = 0; b < kCpuBuckets; b++) {
            const ERL_NIF_TERM below = b + 1 < kCpuBuckets ? enif_make_int64(env, 1LL << b) : enif_make_atom(env, "infinity");
            buckets[b] = enif_make_tuple2(env, below, enif_make_int64(env, st.cpu_buckets[b]));
        }
        ERL_NIF_TERM site = stats_map(st.calls, st.max_cpu_ns, st.max_wall_ns);
        enif_make_map_put(env, site, enif_make_atom(env, "cpu_us"), enif_make_list_from_array(env, buckets, kCpuBuckets), &site);
        enif_make_map_put(env, sites, enif_make_atom(env, kSchedSiteNames[i]), site, &sites);
    }
    ERL_NIF_TERM sched = stats_map(calls, cpu_ns, wall_ns);
    enif_make_map_put(env, sched, enif_make_atom(env, "sites"), sites, &sched);
    ERL_NIF_TERM m = enif_make_new_map(env);
    enif_make_map_put(env, m, A.servers, enif_make_int(env, live_servers()), &m);
    enif_make_map_put(env, m, enif_make_atom(env, "normal_scheduler"), sched, &m);
    return m;
}

// wait_servers(AtMost, TimeoutMs) -> true | false: until at most AtMost servers are alive.
ERL_NIF_TERM nif_wait_servers(ErlNifEnv * env, int, const ERL_NIF_TERM argv[]) {
    return guarded(env, [&] {
        const int at_most = (int) arg_to_int(env, argv[0], "server count", 0, INT32_MAX);
        const int timeout = (int) arg_to_int(env, argv[1], "timeout", 0, 3600 * 1000);
        return wait_live_servers(at_most, timeout) ? A.true_ : A.false_;
    });
}

// cpu_check() -> ok | {error, {not_supported, Why}}: whether a CPU variant built into this
// library runs here. llama_nif's on_load calls it, so a CPU below the baseline makes the
// module fail to load with this reason instead of a SIGILL that takes the VM down.
ERL_NIF_TERM nif_cpu_check(ErlNifEnv * env, int, const ERL_NIF_TERM[]) {
    const std::string & why = lls::cpu::unsupported_reason();
    if (why.empty()) return A.ok;
    return enif_make_tuple2(env, A.error, enif_make_tuple2(env, code_atom(LLAMA_ERROR_NOT_SUPPORTED), make_binary(env, why)));
}

}  // namespace lnif
