// exit() runs atexit handlers and static destructors in reverse order of registration, and
// llama.cpp builds some statics lazily during a model load: the handler is registered again
// after each load, so that it runs before those statics are destroyed. It stops each live
// server (its threads are joined: nothing computes any more); nothing is freed, the process
// is going away.
#include "exit_guard.h"

#include "server.h"

#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <mutex>
#include <unordered_set>

namespace lls {
namespace exit_guard {

namespace {

struct Registry {
    std::mutex mu;
    std::condition_variable freed;
    std::unordered_set<Server *> live;
    int n_freeing = 0;
    std::atomic<bool> exiting{false};
};
Registry & registry() {
    static Registry * r = new Registry;   // never destroyed: used at exit
    return *r;
}

void stop_all_at_exit() {
    Registry & r = registry();
    std::unique_lock<std::mutex> lk(r.mu);
    r.exiting = true;   // first: stopping a server ends its tasks, whose listeners must not send
    // Under the lock: a server being destroyed on another thread (an Erlang process's
    // resource, by the NIF's reaper) stays listed until its destructor ends, so it is not
    // freed under us; stop() waits for a stop already under way.
    for (Server * s : r.live) {
        try {
            s->stop();
        } catch (...) {
        }
    }
    // a server freeing its model right now, on another thread: let it finish (bounded)
    r.freed.wait_for(lk, std::chrono::seconds(5), [&] { return r.n_freeing == 0; });
}

}  // namespace

void add(Server * s) {
    Registry & r = registry();
    std::lock_guard<std::mutex> lk(r.mu);
    r.live.insert(s);
}

void remove(Server * s) {
    Registry & r = registry();
    std::lock_guard<std::mutex> lk(r.mu);
    r.live.erase(s);
}

void arm() { std::atexit(stop_all_at_exit); }

bool exiting() { return registry().exiting.load(std::memory_order_relaxed); }

bool begin_free() {
    Registry & r = registry();
    std::lock_guard<std::mutex> lk(r.mu);
    if (r.exiting) return false;
    r.n_freeing++;
    return true;
}

void end_free() {
    Registry & r = registry();
    std::lock_guard<std::mutex> lk(r.mu);
    if (--r.n_freeing == 0) r.freed.notify_all();
}

}  // namespace exit_guard
}  // namespace lls
