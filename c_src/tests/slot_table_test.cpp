// Unit tests of the slot policy (core/slot_table.h), without a model: run by
// py_tests/test_22_slot_table.py (harness: unit_test.h).
#undef NDEBUG
#include "slot_table.h"
#include "unit_test.h"

#include <set>

using lls::SlotTable;

static auto nobody_home = [](int) { return false; };

CASE(a_free_preferred_slot_is_taken) {
    SlotTable t(4);
    EXPECT_EQ(t.pick(2, nobody_home), 2);
}

CASE(a_busy_preferred_slot_gives_the_least_recently_used_free_one) {
    SlotTable t(3);
    t.assign(0, 10); t.assign(1, 11); t.assign(2, 12);
    t.release(1, 11); t.release(0, 10);
    t.assign(2, 13);   // 2 busy; 1 was used after 0
    EXPECT_EQ(t.pick(2, nobody_home), 0);
}

CASE(slots_other_sessions_call_home_are_taken_last) {
    SlotTable t(3);
    t.assign(0, 1); t.release(0, 1);   // 0 is the least recently used, but homed
    std::set<int> homed = {0, 2};
    EXPECT_EQ(t.pick(-1, [&](int s) { return homed.count(s) > 0; }), 1);
    t.assign(1, 5);
    EXPECT_EQ(t.pick(-1, [&](int s) { return homed.count(s) > 0; }), 2);   // homed, never used
}

CASE(all_busy_is_minus_one) {
    SlotTable t(2);
    t.assign(0, 1); t.assign(1, 2);
    EXPECT_EQ(t.pick(0, nobody_home), -1);
    EXPECT_EQ(t.pick(-1, nobody_home), -1);
}

CASE(only_the_holder_releases_a_slot) {
    SlotTable t(2);
    t.assign(1, 7);
    t.release(1, 8);
    EXPECT_EQ(t.task(1), 7);
    t.release(1, 7);
    EXPECT_EQ(t.is_free(1), 1);
    t.release(-1, 7);   // no slot: nothing happens
    t.release(5, 7);
}

CASE(similarity_moves_to_a_free_slot_sharing_more_than_the_threshold) {
    SlotTable t(3);
    t.set_cache(1, {1, 2, 3, 4});
    t.set_cache(2, {1, 2, 9, 9});
    t.assign(0, 42);
    EXPECT_EQ(t.most_similar(0, {1, 2, 3, 4, 5}, 0.5), 1);    // 4/5 shared
    EXPECT_EQ(t.most_similar(0, {1, 2, 3, 4, 5}, 0.8), 0);    // 0.8 is not more than 0.8
    EXPECT_EQ(t.most_similar(0, {}, 0.1), 0);                  // empty prompt: stay
    t.assign(1, 43);
    EXPECT_EQ(t.most_similar(0, {1, 2, 3, 4, 5}, 0.1), 2);    // 1 is busy: 2 shares 2/5
}

CASE(the_current_slot_wins_a_tie) {
    SlotTable t(2);
    t.set_cache(0, {5, 6});
    t.set_cache(1, {5, 6});
    t.assign(0, 1);
    EXPECT_EQ(t.most_similar(0, {5, 6, 7}, 0.1), 0);
}

CASE(a_finished_task_leaves_its_tokens_in_the_cache) {
    SlotTable t(2);
    t.assign(1, 3);
    t.set_cache(1, {1, 2});
    t.task_finished(1, 5, {3, 4, 5});
    EXPECT_EQ(t.tokens_cached(1), 5);
    t.release(1, 3);
    t.assign(0, 9);
    EXPECT_EQ(t.most_similar(0, {1, 2, 3, 4, 5, 6}, 0.7), 1);   // prompt 2 + generated 3 = 5/6
    EXPECT_EQ(t.most_similar(0, {1, 2, 3, 4, 5, 6}, 0.9), 0);
}

CASE(the_invariant_check_accepts_a_consistent_table) {
    SlotTable t(3);
    t.assign(0, 1); t.assign(2, 2);
    int asked = 0;
    t.check([&](int id, int slot) { asked++; return (id == 1 && slot == 0) || (id == 2 && slot == 2); });
    EXPECT_EQ(asked, 2);
}

UNIT_TEST_MAIN()
