"""Many Python threads on one handle: sessions without cross-talk, status under load,
concurrent task creation, per-thread last_error."""
import json
import threading

import pytest

from helpers import E, LONG, OK, SLOWDOWN, create_task_raw, ffi, last_error, lib, wait_dispatched
from llama_nif_tools.binding import reply_text

pytestmark = pytest.mark.model
JOIN_S = 120 * SLOWDOWN   # a hang detector, not a speed limit


def run_threads(target, args_list):
    """Run target(*args) on one thread each; re-raise the first failure; detect hangs."""
    errors, threads = [], []

    def wrap(*a):
        try:
            target(*a)
        except BaseException as e:   # noqa: B902 - reported below
            errors.append(e)

    for a in args_list:
        threads.append(threading.Thread(target=wrap, args=a, daemon=True))
    for t in threads:
        t.start()
    for t in threads:
        t.join(JOIN_S)
        assert not t.is_alive(), "a thread hung"
    if errors:
        raise errors[0]


def test_four_sessions_on_four_threads_do_not_cross_talk(make_server):
    s = make_server({"n_parallel": 4})
    names = ["Zoltan", "Priya", "Kenji", "Olga"]
    replies = {}
    start = threading.Barrier(len(names))

    def converse(name):
        ses = s.create_session({"temperature": 0})
        start.wait(JOIN_S)
        ses.chat(f"My name is {name}. Please remember it.", n_predict=24)
        replies[name] = reply_text(ses.chat("What is my name?", n_predict=24))
        ses.close()

    run_threads(converse, [(n,) for n in names])
    for name, reply in replies.items():
        assert name in reply, f"{name}'s session answered {reply!r}"
        others = [n for n in names if n != name and n in reply]
        assert not others, f"{name}'s session mentions {others}: {reply!r}"


def test_status_and_session_info_from_many_threads_while_tasks_run(make_server):
    s = make_server({"n_parallel": 2})
    sessions = [s.create_session() for _ in range(2)]
    tasks = [s.create_task(ses.id, "completion", LONG) for ses in sessions]   # busy throughout
    for t in tasks:
        wait_dispatched(s, t)
    seen_busy = []

    def poll(i):
        size = ffi.new("size_t *")
        buf = ffi.new("char[]", 1 << 16)
        for n in range(40):
            assert lib().llama_server_get_status(s.handle, buf, 1 << 16, size) == OK, last_error()
            st = json.loads(ffi.string(buf, size[0]))
            assert st["state"] == "ready" and len(st["slots"]) == 2
            seen_busy.append(sum(sl["busy"] for sl in st["slots"]))
            sid = sessions[n % 2].id
            assert lib().llama_server_get_session_info(s.handle, sid, buf, 1 << 16, size) == OK, last_error()
            assert json.loads(ffi.string(buf, size[0]))["id"] == sid

    run_threads(poll, [(i,) for i in range(8)])
    assert len(seen_busy) == 8 * 40 and max(seen_busy) == 2
    for t in tasks:
        s.cancel(t)


def test_concurrent_create_task_gives_unique_ids(make_server):
    s = make_server({"n_parallel": 4})
    ids, lock = [], threading.Lock()
    start = threading.Barrier(8)

    def submit(_):
        start.wait(JOIN_S)
        for _ in range(4):
            rc, tid = create_task_raw(s, 0, "completion", {"prompt": "Hi", "n_predict": 1})
            assert rc == OK, last_error()
            with lock:
                ids.append(tid)

    run_threads(submit, [(i,) for i in range(8)])
    assert len(ids) == 32 and len(set(ids)) == 32 and min(ids) > 0
    for tid in ids:
        assert s.get_result(tid)["tokens_predicted"] <= 1


def test_concurrent_streams_on_distinct_sessions(make_server):
    s = make_server({"n_parallel": 3})
    got = {}

    def stream(i):
        ses = s.create_session({"temperature": 0})
        chunks = list(s.stream(ses.id, {"prompt": f"{i}, {i + 1}, {i + 2},", "n_predict": 8, "ignore_eos": True}))
        got[i] = chunks[-1]
        ses.close()

    run_threads(stream, [(i,) for i in (10, 20, 30)])
    assert all(got[i]["tokens_predicted"] == 8 for i in (10, 20, 30))


def test_last_error_is_per_thread(server):
    # two threads fail with different keys at the same time; each reads its own message
    barrier = threading.Barrier(2)
    seen = {}

    def fail_with(key):
        for _ in range(50):
            barrier.wait(JOIN_S)
            rc, _ = create_task_raw(server, 0, "completion", {"prompt": "x", key: 1})
            barrier.wait(JOIN_S)
            seen.setdefault(key, set()).add((rc, key in last_error()))

    run_threads(fail_with, [("aaa_key",), ("bbb_key",)])
    bad = E("INVALID_ARGUMENT")
    assert seen == {"aaa_key": {(bad, True)}, "bbb_key": {(bad, True)}}
