// The server resource: one lls::Server, the Erlang processes that own its tasks and
// sessions (monitored), and the listener that turns task events into messages.
#pragma once

#include "exit_guard.h"
#include "nif_common.h"
#include "server.h"

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <shared_mutex>
#include <vector>

namespace lnif {

struct PidLess {
    bool operator()(const ErlNifPid & a, const ErlNifPid & b) const { return enif_compare_pids(&a, &b) < 0; }
};

// One per (server, process) that created tasks or owns sessions; removed when it exits.
struct Owner {
    ErlNifMonitor mon;
    std::set<long long> tasks;   // public task ids
    std::set<int> sessions;      // sessions closed when the process exits (close_on_exit)
};

struct TaskRec {
    int core_id = -1;            // -1 while create_task is still inside the core
    ErlNifPid owner;
    bool cancel_pending = false; // the owner died (or a cancel came) before core_id was known
};

struct Shared {
    // NIF calls hold `life` shared while they use `server`; destroy takes it exclusively.
    std::shared_mutex life;
    std::unique_ptr<lls::Server> server;
    std::atomic<bool> destroyed{false};

    // Bookkeeping of the Erlang side; never held while calling into the core.
    std::mutex mu;
    std::map<long long, TaskRec> tasks;
    std::map<ErlNifPid, Owner, PidLess> owners;

    ~Shared();

    // Shuts the core down (every unfinished task's owner gets {llama_error, Id, {cancelled, _}})
    // and frees it. False when it was already destroyed.
    bool destroy();

    // Monitor `pid` (once per process) from resource `res`. False when it is not alive.
    bool watch_locked(ErlNifEnv * env, void * res, const ErlNifPid & pid);

    // A monitored process exited: cancel its tasks, close the sessions it owned (reaper thread).
    void owner_exited(const ErlNifPid & pid);

    // A task's last event was sent (or it failed to start): drop its records.
    void task_finished(long long pub);
    void task_finished_locked(long long pub);   // with mu held
};

// What an Erlang term of type llama_nif_server points at.
struct ServerRes {
    std::shared_ptr<Shared> sh;
};

extern ErlNifResourceType * SERVER_RES;
bool open_resource_types(ErlNifEnv * env);

// Task events -> {llama_chunk, Id, Chunk}, {llama_done, Id, Result}, {llama_error, Id, Reason}.
struct Listener : lls::TaskListener {
    Shared * sh;                 // outlives the task: shutdown() ends every task before it returns
    lls::Server * srv;
    long long pub;
    ErlNifPid to;
    Format fmt;
    // A cancel sends llama_done/llama_error from the cancelling thread while the driver may
    // still be sending an earlier chunk: this lock plus `done` keep every chunk before the end.
    std::mutex order_mu;
    bool done = false;

    Listener(Shared * sh, lls::Server * srv, long long pub, const ErlNifPid & to, const Format & fmt)
        : sh(sh), srv(srv), pub(pub), to(to), fmt(fmt) {}
    void on_chunk(int task_id, const std::string & chunk_json) override;
    void on_done(int task_id, llama_error_t code, const std::string & result_json) override;
    long long public_id() const override { return pub; }
};

// Public task ids are unique in the VM, so that a process using two servers can tell their
// messages apart.
long long next_task_id();

// Where our code runs on a normal scheduler: NIFs without a dirty flag, resource callbacks.
// One row per site: enum name, name in llama_nif_debug:info/0.
#define LNIF_SCHED_SITES(X)            \
    X(TaskKnown, "task_known")         \
    X(Info, "info")                    \
    X(CpuCheck, "cpu_check")           \
    X(ServerDtor, "server_dtor")       \
    X(ServerDown, "server_down")
#define LNIF_SITE_ENUM(e, name) e,
enum class SchedSite { LNIF_SCHED_SITES(LNIF_SITE_ENUM) Count };
#undef LNIF_SITE_ENUM
extern const char * const kSchedSiteNames[(int) SchedSite::Count];

// Times one entry of our code on a normal scheduler: thread CPU time (what we hold the
// scheduler for; a kernel without CONFIG_IRQ_TIME_ACCOUNTING adds the interrupts served
// meanwhile) and wall time (adds OS preemption).
struct NormalSchedTimer {
    SchedSite site;
    long long cpu0, wall0;
    explicit NormalSchedTimer(SchedSite site);
    ~NormalSchedTimer();
};

// Calls of one site so far, by CPU time: bucket 0 < 1 us, bucket i in [2^(i-1), 2^i) us,
// the last one open-ended.
constexpr int kCpuBuckets = 16;
struct SchedSiteStats {
    long long calls = 0, max_cpu_ns = 0, max_wall_ns = 0;
    long long cpu_buckets[kCpuBuckets] = {};
};
SchedSiteStats sched_site_stats(SchedSite site);

// Live servers (created and not yet freed), for tests of cleanup.
int  live_servers();
void server_created();
void server_freed();
bool wait_live_servers(int at_most, int timeout_ms);

// The VM halts with servers alive: the core's exit handler (core/exit_guard.h) stops every
// server, first marking the process as exiting; from then on no message is sent.
inline bool exiting() { return lls::exit_guard::exiting(); }

// One background thread (nif_reaper.cpp) that frees servers whose resource was
// garbage-collected and cancels the work of exited processes: resource destructors and
// monitor callbacks run on normal schedulers, where a shutdown (tens of ms) must not happen.
void reaper_start();
void reaper_stop();
void reaper_post(std::function<void()> job);

}  // namespace lnif
