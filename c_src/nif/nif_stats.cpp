// Library-wide counters: public task ids, live servers (for cleanup tests), and the time
// our code spends on normal schedulers (for the scheduler-hygiene test).
#include "nif_server.h"

#include <chrono>
#include <condition_variable>
#include <ctime>

namespace lnif {

namespace {

// Allocated once and never destroyed: at halt() the VM runs static destructors while our
// threads may still use it.
struct Live {
    std::mutex              mu;   // for the condition variable only
    std::condition_variable cv;
    std::atomic<int>        n{0};
};
Live & live() {
    static Live * l = new Live;
    return *l;
}

std::atomic<long long> g_next_task{1};
std::atomic<long long> g_sched_calls{0}, g_sched_max_cpu_ns{0}, g_sched_max_wall_ns{0};

long long now_ns(clockid_t clock) {
    timespec ts;
    clock_gettime(clock, &ts);
    return (long long) ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

void raise_to(std::atomic<long long> & a, long long v) {
    long long cur = a.load(std::memory_order_relaxed);
    while (v > cur && !a.compare_exchange_weak(cur, v, std::memory_order_relaxed)) {
    }
}

}  // namespace

long long next_task_id() { return g_next_task.fetch_add(1); }

// Read on a normal scheduler (info/0): an atomic, no lock.
int live_servers() { return live().n.load(); }

void server_created() { live().n++; }

void server_freed() {
    std::lock_guard<std::mutex> lk(live().mu);
    live().n--;
    live().cv.notify_all();
}

bool wait_live_servers(int at_most, int timeout_ms) {
    std::unique_lock<std::mutex> lk(live().mu);
    return live().cv.wait_for(lk, std::chrono::milliseconds(timeout_ms), [&] { return live().n.load() <= at_most; });
}

NormalSchedTimer::NormalSchedTimer()
    : cpu0(now_ns(CLOCK_THREAD_CPUTIME_ID)), wall0(now_ns(CLOCK_MONOTONIC)) {}

NormalSchedTimer::~NormalSchedTimer() {
    raise_to(g_sched_max_cpu_ns, now_ns(CLOCK_THREAD_CPUTIME_ID) - cpu0);
    raise_to(g_sched_max_wall_ns, now_ns(CLOCK_MONOTONIC) - wall0);
    g_sched_calls.fetch_add(1, std::memory_order_relaxed);
}

void normal_sched_stats(long long & calls, long long & max_cpu_ns, long long & max_wall_ns) {
    calls = g_sched_calls.load();
    max_cpu_ns = g_sched_max_cpu_ns.load();
    max_wall_ns = g_sched_max_wall_ns.load();
}

}  // namespace lnif
