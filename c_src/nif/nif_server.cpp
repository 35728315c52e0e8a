// The server resource's life: creation count, destructor, process monitors, the listener
// that sends task events as messages, and the reaper thread.
#include "nif_server.h"

#include <chrono>
#include <condition_variable>
#include <deque>
#include <thread>

namespace lnif {

ErlNifResourceType * SERVER_RES = nullptr;

// ---- live server count ------------------------------------------------------------------

// Process-wide state is allocated once and never destroyed: at halt() the VM runs static
// destructors while our threads may still wait on it (a joinable std::thread would even
// std::terminate there).
namespace {
struct Live {
    std::mutex              mu;
    std::condition_variable cv;
    int                     n = 0;
};
Live & live() {
    static Live * l = new Live;
    return *l;
}
std::atomic<long long> g_next_task{1};
}  // namespace

long long next_task_id() { return g_next_task.fetch_add(1); }

int live_servers() {
    std::lock_guard<std::mutex> lk(live().mu);
    return live().n;
}

void server_created() {
    std::lock_guard<std::mutex> lk(live().mu);
    live().n++;
}

static void server_freed() {
    std::lock_guard<std::mutex> lk(live().mu);
    live().n--;
    live().cv.notify_all();
}

bool wait_live_servers(int at_most, int timeout_ms) {
    std::unique_lock<std::mutex> lk(live().mu);
    return live().cv.wait_for(lk, std::chrono::milliseconds(timeout_ms), [&] { return live().n <= at_most; });
}

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

void Shared::reap(const std::vector<long long> & pubs, const std::vector<int> & sessions) {
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
    send(to, [&](ErlNifEnv * env) {
        if (code == LLAMA_SUCCESS) {
            ERL_NIF_TERM r;
            try {
                r = json_to_term(env, result_json, fmt);
            } catch (...) {
                r = make_binary(env, result_json);
            }
            return enif_make_tuple3(env, A.llama_done, enif_make_int64(env, pub), r);
        }
        std::string msg = error_message_of(result_json);
        return enif_make_tuple3(env, A.llama_error, enif_make_int64(env, pub), reason_term(env, code, msg.c_str()));
    });
    // the message is out: only now may the task be unknown to task_known/2 (get_result relies on it)
    sh->task_finished(pub);
    try {
        srv->forget_task(task_id);   // with a listener the core keeps the task until told
    } catch (...) {
    }
}

// ---- resource type ------------------------------------------------------------------------

namespace {

void server_dtor(ErlNifEnv *, void * obj) {
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

void server_down(ErlNifEnv *, void * obj, ErlNifPid * pid, ErlNifMonitor *) {
    auto * r = static_cast<ServerRes *>(obj);
    std::shared_ptr<Shared> sh = r->sh;
    if (!sh) return;
    std::vector<long long> pubs;
    std::vector<int> sessions;
    {
        std::lock_guard<std::mutex> lk(sh->mu);
        auto it = sh->owners.find(*pid);
        if (it == sh->owners.end()) return;
        pubs.assign(it->second.tasks.begin(), it->second.tasks.end());
        sessions.assign(it->second.sessions.begin(), it->second.sessions.end());
        sh->owners.erase(it);
    }
    if (pubs.empty() && sessions.empty()) return;
    reaper_post([sh, pubs, sessions] { sh->reap(pubs, sessions); });
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

// ---- reaper -------------------------------------------------------------------------------

namespace {
struct Reaper {
    std::mutex                        mu;
    std::condition_variable           cv;
    std::deque<std::function<void()>> jobs;
    bool                              stop = false;
    std::thread                       thread;
    int                               users = 0;   // load + upgrade share one thread
};
Reaper & reaper() {
    static Reaper * r = new Reaper;   // see live()
    return *r;
}

void reaper_main() {
    Reaper & r = reaper();
    std::unique_lock<std::mutex> lk(r.mu);
    while (true) {
        r.cv.wait(lk, [&] { return r.stop || !r.jobs.empty(); });
        if (r.jobs.empty()) break;   // stop, and nothing left to do
        std::function<void()> job = std::move(r.jobs.front());
        r.jobs.pop_front();
        lk.unlock();
        try {
            job();
        } catch (...) {
        }
        job = nullptr;   // captured servers are freed here, not under the lock
        lk.lock();
    }
}
}  // namespace

void reaper_start() {
    Reaper & r = reaper();
    std::lock_guard<std::mutex> lk(r.mu);
    if (r.users++ == 0) {
        r.stop = false;
        r.thread = std::thread(reaper_main);
    }
}

void reaper_stop() {
    Reaper & r = reaper();
    std::thread t;
    {
        std::lock_guard<std::mutex> lk(r.mu);
        if (--r.users > 0) return;
        r.stop = true;
        r.cv.notify_all();
        t = std::move(r.thread);
    }
    if (t.joinable()) t.join();
}

void reaper_post(std::function<void()> job) {
    Reaper & r = reaper();
    std::lock_guard<std::mutex> lk(r.mu);
    r.jobs.push_back(std::move(job));
    r.cv.notify_one();
}

}  // namespace lnif
