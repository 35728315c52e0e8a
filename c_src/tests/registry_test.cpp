// Unit tests of the task and session registries (core/task_registry.h, session_registry.h),
// without a model, on stand-in types: run by py_tests/test_22_slot_table.py (harness:
// unit_test.h).
#undef NDEBUG
#include "session_registry.h"
#include "task_registry.h"
#include "unit_test.h"

#include <memory>
#include <set>
#include <string>

namespace {

struct FakeTask {
    std::string name;
    bool running = false;
    bool done = false;
};
using Tasks = lls::TaskRegistry<FakeTask>;
using TaskPtr = Tasks::Ptr;

TaskPtr task(const char * name) {
    auto t = std::make_shared<FakeTask>();
    t->name = name;
    return t;
}

struct FakeSession {
    int id = 0;
    std::string name;
};
using Sessions = lls::SessionRegistry<FakeSession>;

FakeSession session(const char * name) {
    FakeSession s;
    s.name = name;
    return s;
}

}  // namespace

// ---- tasks ---------------------------------------------------------------------------------

CASE(task_ids_start_at_one_and_increase) {
    Tasks r;
    EXPECT_EQ(r.add(task("a"), true), 1);
    EXPECT_EQ(r.add(task("b"), false), 2);
    EXPECT_EQ(r.add(task("c"), true), 3);
    EXPECT_EQ(r.size(), 3);
}

CASE(a_taken_task_id_is_never_given_again) {
    Tasks r;
    r.add(task("a"), true);
    const int b = r.add(task("b"), true);
    r.take(b);
    EXPECT_EQ(r.add(task("c"), true), 3);
    r.clear();
    EXPECT_EQ(r.add(task("d"), true), 4);   // clear keeps the counter
}

CASE(find_gives_the_task_and_nothing_after_take) {
    Tasks r;
    TaskPtr a = task("a");
    const int id = r.add(a, true);
    EXPECT_EQ(r.find(id) == a, 1);
    EXPECT_EQ(r.contains(id), 1);
    EXPECT_EQ(r.find(id + 1) == nullptr, 1);   // never registered
    TaskPtr got = r.take(id);
    EXPECT_EQ(got == a, 1);
    EXPECT_EQ(r.find(id) == nullptr, 1);
    EXPECT_EQ(r.contains(id), 0);
    EXPECT_EQ(r.take(id) == nullptr, 1);       // a second take finds nothing
    EXPECT_EQ(r.size(), 0);
}

CASE(core_ids_link_and_unlink) {
    Tasks r;
    TaskPtr a = task("a"), b = task("b");
    r.add(a, true);
    r.add(b, true);
    r.link(100, a);
    r.link(101, a);   // a pooled task: one core id per input
    r.link(200, b);
    EXPECT_EQ(r.n_linked(), 3);
    EXPECT_EQ(r.by_core_id(101) == a, 1);
    EXPECT_EQ(r.by_core_id(200) == b, 1);
    EXPECT_EQ(r.by_core_id(300) == nullptr, 1);
    EXPECT_EQ(r.unlink(100), 1);
    EXPECT_EQ(r.unlink(100), 0);               // already unlinked: that part finished
    EXPECT_EQ(r.by_core_id(100) == nullptr, 1);
    std::set<int> ids;
    r.for_each_core_id([&](int id) { ids.insert(id); });
    EXPECT_EQ(ids == std::set<int>({101, 200}), 1);
}

CASE(a_taken_task_keeps_its_links_until_unlinked) {
    Tasks r;
    TaskPtr a = task("a");
    const int id = r.add(a, true);
    r.link(7, a);
    r.take(id);
    EXPECT_EQ(r.by_core_id(7) == a, 1);   // its results still reach it
    r.unlink(7);
    EXPECT_EQ(r.n_linked(), 0);
}

CASE(unfinished_counts_what_was_added_unfinished_until_finished) {
    Tasks r;
    EXPECT_EQ(r.unfinished(), 0);
    r.add(task("a"), true);
    const int b = r.add(task("b"), true);
    r.add(task("done at once"), false);   // an immediate kind
    EXPECT_EQ(r.unfinished(), 2);
    r.finished();
    EXPECT_EQ(r.unfinished(), 1);
    r.take(b);                            // taken, not finished: still counted
    EXPECT_EQ(r.unfinished(), 1);
    r.finished();
    EXPECT_EQ(r.unfinished(), 0);
    r.add(task("c"), true);
    r.clear();
    EXPECT_EQ(r.unfinished(), 0);
}

CASE(tasks_iterate_in_submission_order) {
    Tasks r;
    const char * names[] = {"a", "b", "c", "d", "e"};
    int ids[5];
    for (int i = 0; i < 5; i++) ids[i] = r.add(task(names[i]), true);
    r.take(ids[1]);
    r.take(ids[3]);
    std::string seen;
    for (const TaskPtr & t : r) seen += t->name;
    EXPECT_EQ(seen == "ace", 1);
}

CASE(clear_forgets_tasks_and_links) {
    Tasks r;
    TaskPtr a = task("a");
    const int id = r.add(a, true);
    r.link(5, a);
    r.clear();
    EXPECT_EQ(r.size(), 0);
    EXPECT_EQ(r.n_linked(), 0);
    EXPECT_EQ(r.find(id) == nullptr, 1);
    EXPECT_EQ(a.use_count(), 1);   // the registry holds no reference any more
}

CASE(the_task_invariant_check_accepts_a_consistent_registry) {
    Tasks r;
    TaskPtr a = task("a"), b = task("b"), c = task("c");
    a->running = true;
    c->done = true;
    r.add(a, true);
    r.add(b, true);
    r.add(c, false);
    r.link(9, a);
    int asked_running = 0, asked_unfinished = 0;
    r.check([&](const TaskPtr & t) { asked_running++; return t->running; },
            [&](const TaskPtr & t) { asked_unfinished++; return !t->done; });
    EXPECT_EQ(asked_running, 1);     // once per link
    EXPECT_EQ(asked_unfinished, 3);  // once per task
}

// ---- sessions ------------------------------------------------------------------------------

CASE(session_ids_start_at_one_increase_and_are_written_into_the_session) {
    Sessions r;
    EXPECT_EQ(r.add(session("a")), 1);
    EXPECT_EQ(r.add(session("b")), 2);
    EXPECT_EQ(r.find(2)->id, 2);
    EXPECT_EQ(r.find(2)->name == "b", 1);
    EXPECT_EQ(r.size(), 2);
}

CASE(find_after_erase_fails_and_ids_are_not_given_again) {
    Sessions r;
    const int a = r.add(session("a"));
    EXPECT_EQ(r.contains(a), 1);
    EXPECT_EQ(r.erase(a), 1);
    EXPECT_EQ(r.erase(a), 0);
    EXPECT_EQ(r.find(a) == nullptr, 1);
    EXPECT_EQ(r.contains(a), 0);
    EXPECT_EQ(r.find(99) == nullptr, 1);
    EXPECT_EQ(r.add(session("b")), 2);
    r.clear();
    EXPECT_EQ(r.size(), 0);
    EXPECT_EQ(r.add(session("c")), 3);   // clear keeps the counter
}

CASE(a_found_session_stays_put_while_others_come_and_go) {
    Sessions r;
    const int a = r.add(session("a"));
    FakeSession * p = r.find(a);
    for (int i = 0; i < 100; i++) r.add(session("x"));
    r.erase(a + 1);
    EXPECT_EQ(p == r.find(a), 1);
    p->name = "changed";
    const Sessions & cr = r;
    EXPECT_EQ(cr.find(a)->name == "changed", 1);
}

CASE(sessions_iterate_in_id_order) {
    Sessions r;
    r.add(session("a"));
    const int b = r.add(session("b"));
    r.add(session("c"));
    r.erase(b);
    std::string seen;
    for (FakeSession & s : r) {
        seen += s.name;
        s.name += "!";
    }
    EXPECT_EQ(seen == "ac", 1);
    seen.clear();
    const Sessions & cr = r;
    for (const FakeSession & s : cr) seen += s.name;
    EXPECT_EQ(seen == "a!c!", 1);
}

UNIT_TEST_MAIN()
