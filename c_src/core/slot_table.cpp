#include "slot_table.h"

#include <cassert>
#include <set>

namespace lls {

SlotTable::SlotTable(int n) : task_(n, 0), tokens_(n, 0), cache_(n), used_at_(n, 0) {}

int SlotTable::pick(int preferred, const std::function<bool(int)> & homed_by_other) const {
    if (preferred >= 0 && preferred < size() && task_[preferred] == 0) return preferred;
    int best = -1;
    bool best_homed = true;
    for (int i = 0; i < size(); i++) {
        if (task_[i] != 0) continue;
        const bool h = homed_by_other(i);
        if (best < 0 || (best_homed && !h) || (h == best_homed && used_at_[i] < used_at_[best])) {
            best = i;
            best_homed = h;
        }
    }
    return best;
}

void SlotTable::assign(int slot, int task_id) {
    task_[slot] = task_id;
    used_at_[slot] = ++clock_;
}

void SlotTable::release(int slot, int task_id) {
    if (slot >= 0 && slot < size() && task_[slot] == task_id) task_[slot] = 0;
}

int SlotTable::most_similar(int current, const std::vector<int> & prompt, double threshold) const {
    if (prompt.empty()) return current;
    auto similarity = [&](int slot) {
        const auto & cached = cache_[slot];
        size_t n = 0;
        while (n < cached.size() && n < prompt.size() && cached[n] == prompt[n]) n++;
        return (double) n / prompt.size();
    };
    int best = current;
    double best_sim = similarity(current);
    for (int i = 0; i < size(); i++) {
        if (task_[i] != 0) continue;
        const double sim = similarity(i);
        if (sim > best_sim) {
            best = i;
            best_sim = sim;
        }
    }
    return best != current && best_sim > threshold ? best : current;
}

void SlotTable::set_cache(int slot, std::vector<int> tokens) { cache_[slot] = std::move(tokens); }

void SlotTable::task_finished(int slot, int n_tokens_cached, const std::vector<int> & generated) {
    tokens_[slot] = n_tokens_cached;
    cache_[slot].insert(cache_[slot].end(), generated.begin(), generated.end());
}

void SlotTable::check(const std::function<bool(int, int)> & task_holds) const {
#ifndef NDEBUG
    std::set<int> seen;
    for (int i = 0; i < size(); i++) {
        if (task_[i] == 0) continue;
        assert(seen.insert(task_[i]).second && "a task holds two slots");
        assert(task_holds(task_[i], i) && "a slot is held by a task that is not running on it");
    }
#else
    (void) task_holds;
#endif
}

}  // namespace lls
