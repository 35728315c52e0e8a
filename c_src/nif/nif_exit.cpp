// VM exit with servers alive. halt() ends in exit(), which runs the static destructors of
// llama.cpp/ggml while the core's threads may still be computing (seen: a SIGSEGV in
// ggml_cpu_extra_compute_forward on a destroyed static vector). An atexit handler shuts
// every live server down first. exit() runs handlers and static destructors in reverse order
// of registration, and llama.cpp constructs some statics lazily during a model load, so the
// handler is registered again after each load.
#include "nif_server.h"

#include <algorithm>
#include <cstdlib>

namespace lnif {

namespace {

struct Registry {
    std::mutex mu;
    std::vector<std::weak_ptr<Shared>> servers;
};
Registry & registry() {
    static Registry * r = new Registry;   // never destroyed: used at exit
    return *r;
}

std::atomic<bool> g_exiting{false};

void shutdown_all_at_exit() {
    g_exiting = true;
    std::vector<std::weak_ptr<Shared>> all;
    {
        std::lock_guard<std::mutex> lk(registry().mu);
        all = registry().servers;
    }
    for (auto & w : all) {
        if (auto sh = w.lock()) sh->destroy();
    }
    // a server the reaper is destroying right now: let it finish (bounded)
    wait_live_servers(0, 5000);
}

}  // namespace

bool exiting() { return g_exiting.load(std::memory_order_relaxed); }

void register_server(const std::shared_ptr<Shared> & sh) {
    std::lock_guard<std::mutex> lk(registry().mu);
    auto & v = registry().servers;
    v.erase(std::remove_if(v.begin(), v.end(), [](const std::weak_ptr<Shared> & w) { return w.expired(); }), v.end());
    v.push_back(sh);
}

void arm_exit_hook() {
    std::atexit(shutdown_all_at_exit);
}

}  // namespace lnif
