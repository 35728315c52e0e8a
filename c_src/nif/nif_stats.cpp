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

#define LNIF_SITE_NAME(e, name) name,
const char * const kSchedSiteNames[] = {LNIF_SCHED_SITES(LNIF_SITE_NAME)};
#undef LNIF_SITE_NAME

namespace {

// Atomics, not a lock: a normal scheduler must never wait on a preempted thread. The calls
// are the buckets' sum.
struct SiteCounters {
    std::atomic<long long> max_cpu_ns{0}, max_wall_ns{0};
    std::atomic<long long> cpu_buckets[kCpuBuckets] = {};
};
SiteCounters g_sites[(int) SchedSite::Count];

int cpu_bucket(long long cpu_ns) {
    int b = 0;
    for (long long us = cpu_ns / 1000; us > 0 && b < kCpuBuckets - 1; us >>= 1) b++;
    return b;
}

}  // namespace

NormalSchedTimer::NormalSchedTimer(SchedSite site)
    : site(site), cpu0(now_ns(CLOCK_THREAD_CPUTIME_ID)), wall0(now_ns(CLOCK_MONOTONIC)) {}

NormalSchedTimer::~NormalSchedTimer() {
    const long long cpu = now_ns(CLOCK_THREAD_CPUTIME_ID) - cpu0;
    SiteCounters & c = g_sites[(int) site];
    raise_to(c.max_cpu_ns, cpu);
    raise_to(c.max_wall_ns, now_ns(CLOCK_MONOTONIC) - wall0);
    c.cpu_buckets[cpu_bucket(cpu)].fetch_add(1, std::memory_order_relaxed);
}

SchedSiteStats sched_site_stats(SchedSite site) {
    const SiteCounters & c = g_sites[(int) site];
    SchedSiteStats s;
    s.max_cpu_ns = c.max_cpu_ns.load();
    s.max_wall_ns = c.max_wall_ns.load();
    for (int i = 0; i < kCpuBuckets; i++) {
        s.cpu_buckets[i] = c.cpu_buckets[i].load();
        s.calls += s.cpu_buckets[i];
    }
    return s;
}

}  // namespace lnif
