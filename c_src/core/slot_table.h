// Which task holds which of llama.cpp's slots, and how a new task picks one: session
// affinity, slots other sessions call home, least recently used, prompt similarity. Plain
// bookkeeping, no llama.cpp: the Server calls it under its lock, the unit tests call it alone
// (c_src/tests/slot_table_test.cpp).
#pragma once

#include <functional>
#include <vector>

namespace lls {

class SlotTable {
  public:
    explicit SlotTable(int n_slots);

    int  size() const { return (int) task_.size(); }
    int  task(int slot) const { return task_[slot]; }   // 0: free
    bool is_free(int slot) const { return task_[slot] == 0; }
    int  tokens_cached(int slot) const { return tokens_[slot]; }

    // The slot for a task: `preferred` (its session's last slot, -1 if none) when free, for
    // its KV cache is still there; else a free slot that no other live session calls home
    // (`homed_by_other`), least recently used first; only then another session's slot.
    // -1 when all are busy.
    int pick(int preferred, const std::function<bool(int)> & homed_by_other) const;

    void assign(int slot, int task_id);      // the slot becomes the task's, most recently used
    void release(int slot, int task_id);     // frees it if that task holds it

    // slot_prompt_similarity: the free slot whose cached tokens share the longest prefix with
    // `prompt`, when that share exceeds `threshold` and beats `current`'s; else `current`.
    int most_similar(int current, const std::vector<int> & prompt, double threshold) const;

    // What a slot holds: the prompt as handed to the core, then what the task generated.
    void set_cache(int slot, std::vector<int> tokens);
    void task_finished(int slot, int n_tokens_cached, const std::vector<int> & generated);

    // Debug builds: every held slot belongs to a running task and no task holds two.
    void check(const std::function<bool(int task_id, int slot)> & task_holds) const;

  private:
    std::vector<int> task_;                    // task id per slot, 0 = free
    std::vector<int> tokens_;                  // tokens cached per slot (last known)
    std::vector<std::vector<int>> cache_;      // those tokens, for prompt similarity
    std::vector<long long> used_at_;           // LRU stamp per slot
    long long clock_ = 0;
};

}  // namespace lls
