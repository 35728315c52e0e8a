// The tasks of one Server by id (ids increase from 1, never reused: submission order), the
// links from llama.cpp's core task ids to them, and how many are not finished yet (for
// max_queued_tasks in O(1)). Plain bookkeeping: it never looks inside a task, so the unit
// tests (c_src/tests/registry_test.cpp) run it on a stand-in type without llama.cpp.
// Not thread-safe by itself: the Server's mu_ guards it.
#pragma once

#include <cassert>
#include <cstddef>
#include <functional>
#include <map>
#include <memory>
#include <unordered_map>
#include <utility>

namespace lls {

template <class T>
class TaskRegistry {
  public:
    using Ptr = std::shared_ptr<T>;
    using Map = std::map<int, Ptr>;

    // Registers `t` under a fresh id and returns that id. An unfinished task counts in
    // unfinished() until finished() is called for it.
    int add(Ptr t, bool unfinished) {
        const int id = next_id_++;
        tasks_.emplace(id, std::move(t));
        if (unfinished) unfinished_++;
        return id;
    }
    Ptr  find(int id) const {
        auto it = tasks_.find(id);
        return it == tasks_.end() ? nullptr : it->second;
    }
    bool contains(int id) const { return tasks_.count(id) > 0; }
    // Unregisters the task; returns it (null when there was none), for the caller to free
    // after unlocking. Its core ids stay linked, its count in unfinished() stays.
    Ptr  take(int id) {
        auto it = tasks_.find(id);
        if (it == tasks_.end()) return nullptr;
        Ptr t = std::move(it->second);
        tasks_.erase(it);
        return t;
    }
    size_t size() const { return tasks_.size(); }

    void finished() {   // an unfinished task is done
        assert(unfinished_ > 0 && "finished() without an unfinished task");
        unfinished_--;
    }
    int unfinished() const { return unfinished_; }

    // llama.cpp's ids of the core tasks running a task (one per generation, one per input of
    // an embedding/rerank): their results are routed to it.
    void link(int core_id, Ptr t) { by_core_id_[core_id] = std::move(t); }
    bool unlink(int core_id) { return by_core_id_.erase(core_id) > 0; }   // false: not linked
    Ptr  by_core_id(int core_id) const {
        auto it = by_core_id_.find(core_id);
        return it == by_core_id_.end() ? nullptr : it->second;
    }
    size_t n_linked() const { return by_core_id_.size(); }
    template <typename F>
    void for_each_core_id(F f) const {
        for (const auto & kv : by_core_id_) f(kv.first);
    }

    // Forgets everything but the id counter.
    void clear() {
        tasks_.clear();
        by_core_id_.clear();
        unfinished_ = 0;
    }

    // The registered tasks in submission order (range-for gives `const Ptr &`).
    class const_iterator {
      public:
        explicit const_iterator(typename Map::const_iterator it) : it_(it) {}
        const Ptr & operator*() const { return it_->second; }
        const_iterator & operator++() {
            ++it_;
            return *this;
        }
        bool operator!=(const const_iterator & o) const { return it_ != o.it_; }

      private:
        typename Map::const_iterator it_;
    };
    const_iterator begin() const { return const_iterator(tasks_.begin()); }
    const_iterator end() const { return const_iterator(tasks_.end()); }

    // Debug builds: every linked task is running, and the registered unfinished tasks are
    // no more than counted (a task can be taken before it ends: a failed stream call forgets
    // its task; it still counts until it finishes).
    void check(const std::function<bool(const Ptr &)> & running,
               const std::function<bool(const Ptr &)> & unfinished) const {
#ifndef NDEBUG
        for (const auto & kv : by_core_id_) assert(running(kv.second) && "a core id is linked to a task not running");
        int n = 0;
        for (const auto & kv : tasks_) n += unfinished(kv.second) ? 1 : 0;
        assert(n <= unfinished_ && "more unfinished tasks registered than counted");
#else
        (void) running;
        (void) unfinished;
#endif
    }

  private:
    Map tasks_;                                   // ordered by id = submission order
    std::unordered_map<int, Ptr> by_core_id_;
    int next_id_ = 1;
    int unfinished_ = 0;                          // not done yet, registered or taken
};

}  // namespace lls
