// The reaper: one background thread that frees garbage-collected servers and cancels the
// work of exited processes. Its clients are resource destructors and monitor callbacks,
// which run on normal schedulers: posting is lock-free (a CAS on a stack and an eventfd
// write), so they never wait for a lock held by a preempted thread.
#include "nif_server.h"

#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <thread>

namespace lnif {

namespace {

struct Job {
    std::function<void()> fn;
    Job * next = nullptr;
};

// Never destroyed (see nif_stats.cpp): halt() may come while the thread runs.
struct Reaper {
    std::atomic<Job *> head{nullptr};
    std::atomic<bool> stop{false};
    int efd = -1;
    std::thread thread;
    std::mutex users_mu;   // load/upgrade/unload only
    int users = 0;
};
Reaper & reaper() {
    static Reaper * r = new Reaper;
    return *r;
}

void wake(Reaper & r) {
    uint64_t one = 1;
    while (write(r.efd, &one, sizeof one) < 0 && errno == EINTR) {
    }
}

// Runs the jobs posted so far, oldest first.
void run_all(Reaper & r) {
    Job * list = r.head.exchange(nullptr);
    Job * fifo = nullptr;
    while (list) {   // the stack is newest first
        Job * next = list->next;
        list->next = fifo;
        fifo = list;
        list = next;
    }
    while (fifo) {
        Job * next = fifo->next;
        try {
            fifo->fn();
        } catch (...) {
        }
        delete fifo;   // captured servers are freed here
        fifo = next;
    }
}

void reaper_main() {
    Reaper & r = reaper();
    while (true) {
        uint64_t n;
        if (read(r.efd, &n, sizeof n) < 0 && errno == EINTR) continue;
        run_all(r);
        if (r.stop.load()) {
            run_all(r);
            return;
        }
    }
}

}  // namespace

void reaper_start() {
    Reaper & r = reaper();
    std::lock_guard<std::mutex> lk(r.users_mu);
    if (r.users++ > 0) return;
    if (r.efd < 0) r.efd = eventfd(0, EFD_CLOEXEC);
    r.stop = false;
    r.thread = std::thread(reaper_main);
}

void reaper_stop() {
    Reaper & r = reaper();
    std::lock_guard<std::mutex> lk(r.users_mu);
    if (--r.users > 0) return;
    r.stop = true;
    wake(r);
    if (r.thread.joinable()) r.thread.join();
}

void reaper_post(std::function<void()> fn) {
    Reaper & r = reaper();
    Job * j = new Job{std::move(fn), nullptr};
    Job * old = r.head.load(std::memory_order_relaxed);
    do {
        j->next = old;
    } while (!r.head.compare_exchange_weak(old, j, std::memory_order_release, std::memory_order_relaxed));
    wake(r);
}

}  // namespace lnif
