// The NIF functions. Anything that parses JSON, renders a template, takes the core's lock
// or waits runs on a dirty scheduler (see the table in nif_main.cpp); results never do:
// they come back as messages from the core's threads.
#include "nif_calls.h"
#include "nif_server.h"

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

// init_server(Config) -> {ok, Server}
ERL_NIF_TERM nif_init_server(ErlNifEnv * env, int, const ERL_NIF_TERM argv[]) {
    CallerEnv ce(env);
    return guarded(env, [&] {
        std::string text = arg_to_json(env, argv[0], "server config");
        lls::ServerConfig cfg = lls::parse_server_config(text.c_str());
        auto sh = std::make_shared<Shared>();
        sh->server = std::make_unique<lls::Server>(cfg);
        server_created();
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

        ErlNifPid self;
        if (!enif_self(env, &self)) lls::fail(LLAMA_ERROR_INVALID_ARGUMENT, "create_task needs a calling process");
        const long long pub = next_task_id();
        {
            std::lock_guard<std::mutex> lk(u.sh->mu);
            if (!u.sh->watch_locked(env, u.res, self)) lls::fail(LLAMA_ERROR_INVALID_ARGUMENT, "the calling process is exiting");
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

// task_known(Server, TaskId) -> true | false | destroyed. Normal scheduler: our lock only.
ERL_NIF_TERM nif_task_known(ErlNifEnv * env, int, const ERL_NIF_TERM argv[]) {
    return guarded(env, [&] {
        void * obj = nullptr;
        if (!enif_get_resource(env, argv[0], SERVER_RES, &obj)) {
            lls::fail(LLAMA_ERROR_INVALID_ARGUMENT, "not a llama_nif server");
        }
        std::shared_ptr<Shared> sh = static_cast<ServerRes *>(obj)->sh;
        const long long pub = arg_to_int(env, argv[1], "task id", 1, INT64_MAX);
        if (!sh) return A.destroyed;
        std::lock_guard<std::mutex> lk(sh->mu);
        if (sh->tasks.count(pub)) return A.true_;
        return sh->destroyed ? A.destroyed : A.false_;
    });
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

// info() -> #{servers => LiveServers}
ERL_NIF_TERM nif_info(ErlNifEnv * env, int, const ERL_NIF_TERM[]) {
    ERL_NIF_TERM m = enif_make_new_map(env);
    enif_make_map_put(env, m, A.servers, enif_make_int(env, live_servers()), &m);
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

}  // namespace lnif
