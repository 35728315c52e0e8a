"""cancel_task, close_session and destroy with work in flight; timeout_write; SERVER_BUSY.

A "running" task is LONG (900 tokens, many seconds on a CPU) once it holds a slot; a
"queued" one waits behind it with n_parallel = 1 (or behind its own session's task).
"""
import json
import threading

import pytest

from helpers import (E, LONG, OK, SLOWDOWN, assert_code, create_task_raw, cstr, ffi, get_result_raw, lib,
                     let_tokens_flow, slot_of_task, wait_dispatched, wait_until)
from llama_nif_tools.binding import LlamaError

pytestmark = pytest.mark.model
JOIN_S = 60 * SLOWDOWN   # a waiter still blocked after this is a hang


class Waiter(threading.Thread):
    """Blocks in get_result(timeout 0) on its own thread; keeps rc and the buffer's JSON."""

    def __init__(self, server, task_id):
        super().__init__(daemon=True)
        self.handle, self.task_id = server.handle, task_id
        self.entered = threading.Event()
        self.rc = self.result = None

    def run(self):
        buf = ffi.new("char[]", 1 << 16)
        size = ffi.new("size_t *")
        self.entered.set()
        self.rc = lib().llama_server_get_result(self.handle, self.task_id, buf, 1 << 16, size, 0)
        text = ffi.string(buf)
        self.result = json.loads(text) if text else None

    def finish(self):
        self.join(JOIN_S)
        assert not self.is_alive(), f"waiter of task {self.task_id} still blocked"
        return self.rc, self.result


def test_cancel_a_queued_task(make_server):
    s = make_server({"n_parallel": 1})
    a = s.create_task(0, "completion", LONG)
    b = s.create_task(0, "completion", {"prompt": "Hi", "n_predict": 4})
    wait_dispatched(s, a)
    assert slot_of_task(s, b) is None and s.status()["tasks"]["queued"] == 1
    w = Waiter(s, b)
    w.start()
    s.cancel(b)
    rc, res = w.finish()
    assert rc == E("CANCELLED")
    assert res["error"]["code"] == E("CANCELLED") and res["error"]["message"]
    assert res["content"] == "" and res["tokens_predicted"] == 0
    assert slot_of_task(s, a) is not None          # the running task is untouched
    s.cancel(a)
    assert_code(get_result_raw(s, a)[0], "CANCELLED")


def test_cancel_a_running_task_keeps_the_partial_text(make_server):
    s = make_server({"n_parallel": 2})
    t = s.create_task(0, "completion", LONG)
    wait_dispatched(s, t)
    w = Waiter(s, t)
    w.start()
    let_tokens_flow(s, 3)                          # t decodes in the same batches
    assert lib().llama_server_cancel_task(s.handle, t) == OK
    rc, res = w.finish()
    assert rc == E("CANCELLED")
    assert res["error"]["code"] == E("CANCELLED")
    assert res["content"] and 1 <= res["tokens_predicted"] < LONG["n_predict"]
    assert_code(lib().llama_server_cancel_task(s.handle, t), "TASK_NOT_FOUND")   # fetched: gone
    wait_until(lambda: not any(sl["busy"] for sl in s.status()["slots"]), "the slot to be freed")
    assert s.run(0, "completion", {"prompt": "Hi", "n_predict": 2, "ignore_eos": True})["tokens_predicted"] == 2


def test_close_session_cancels_its_running_and_queued_tasks(make_server):
    s = make_server({"n_parallel": 2})
    ses, other = s.create_session(), s.create_session()
    t1 = s.create_task(ses.id, "completion", LONG)
    t2 = s.create_task(ses.id, "completion", {"prompt": "Hi", "n_predict": 2})
    t3 = s.create_task(other.id, "completion", {"prompt": "1, 2, 3,", "n_predict": 24, "ignore_eos": True})
    wait_dispatched(s, t1)
    waiters = [Waiter(s, t) for t in (t1, t2)]
    for w in waiters:
        w.start()
    ses.close()
    for w in waiters:
        rc, res = w.finish()
        assert rc == E("CANCELLED") and "closed" in res["error"]["message"]
    assert_code(create_task_raw(s, ses.id, "completion", {"prompt": "x"})[0], "SESSION_NOT_FOUND")
    assert s.get_result(t3)["tokens_predicted"] == 24       # other sessions carry on


def _stream_in_thread(s, session_id, inp):
    """Start a stream on a thread; returns (thread, first_chunk_event, outcome dict)."""
    first, out = threading.Event(), {}

    def run():
        try:
            for chunk in s.stream(session_id, inp):
                out.setdefault("chunks", 0)
                out["chunks"] += 1
                first.set()
            out["rc"] = OK
        except LlamaError as e:
            out["rc"] = e.code
        first.set()

    th = threading.Thread(target=run, daemon=True)
    th.start()
    return th, first, out


@pytest.mark.parametrize("how", ["close_session", "cancel_task"])
def test_stopping_a_stream_from_another_thread(make_server, how):
    s = make_server({"n_parallel": 2})
    ses = s.create_session()
    th, first, out = _stream_in_thread(s, ses.id, LONG)
    assert first.wait(JOIN_S) and out.get("chunks")
    if how == "close_session":
        ses.close()
    else:
        slot = next(sl for sl in s.status()["slots"] if sl["session"] == ses.id)
        s.cancel(slot["task"])
    th.join(JOIN_S)
    assert not th.is_alive(), "stream_inference did not return"
    assert out["rc"] == E("CANCELLED")


def test_destroy_wakes_every_waiter(make_server):
    s = make_server({"n_parallel": 3})
    s1, s2, s3 = (s.create_session() for _ in range(3))
    running = [s.create_task(s1.id, "completion", LONG), s.create_task(s2.id, "completion", LONG)]
    queued = [s.create_task(s1.id, "completion", {"prompt": "Hi", "n_predict": 2})]
    for t in running:
        wait_dispatched(s, t)
    waiters = [Waiter(s, t) for t in running + queued]
    for w in waiters:
        w.start()
    # a stream inside the library: its first chunk proves it is there
    th, first, out = _stream_in_thread(s, s3.id, LONG)
    assert all(w.entered.wait(JOIN_S) for w in waiters)
    assert first.wait(JOIN_S)
    h, s.handle = s.handle, None
    d = {}
    destroyer = threading.Thread(target=lambda: d.setdefault("rc", lib().llama_server_destroy(h)), daemon=True)
    destroyer.start()
    destroyer.join(JOIN_S)
    assert not destroyer.is_alive(), "destroy hung"
    assert d["rc"] == OK
    for w in waiters:
        rc, _ = w.finish()
        assert rc == E("CANCELLED"), f"task {w.task_id}: {rc}"
    th.join(JOIN_S)
    assert not th.is_alive() and out["rc"] == E("CANCELLED")


def test_timeout_write_fails_a_task_stuck_in_the_queue(make_server):
    s = make_server({"n_parallel": 1, "timeout_write": 0.5})
    a = s.create_task(0, "completion", LONG)
    b = s.create_task(0, "completion", {"prompt": "Hi", "n_predict": 2})
    with pytest.raises(LlamaError) as ei:
        s.get_result(b)                   # waits forever, so TIMEOUT comes from timeout_write
    assert ei.value.code == E("TIMEOUT")
    assert ei.value.result["error"]["code"] == E("TIMEOUT")
    assert "timeout_write" in ei.value.result["error"]["message"]
    assert slot_of_task(s, a) is not None         # a running task never expires
    s.cancel(a)


def test_server_busy_when_max_queued_tasks_are_unfinished(make_server):
    s = make_server({"n_parallel": 1, "max_queued_tasks": 2})
    a = s.create_task(0, "completion", LONG)
    b = s.create_task(0, "completion", {"prompt": "Hi", "n_predict": 2})
    assert_code(create_task_raw(s, 0, "completion", {"prompt": "Hi"})[0], "SERVER_BUSY", "max_queued_tasks")
    cb = ffi.callback("int(const char *, size_t, int, void *)", lambda *a: 0)
    rc = lib().llama_server_stream_inference(s.handle, 0, cstr({"prompt": "Hi"}), cb, ffi.NULL)
    assert_code(rc, "SERVER_BUSY")
    s.cancel(b)                           # finished (cancelled) tasks no longer count
    c = s.create_task(0, "completion", {"prompt": "Hi", "n_predict": 2})
    assert_code(create_task_raw(s, 0, "completion", {"prompt": "Hi"})[0], "SERVER_BUSY")
    s.cancel(a)
    assert s.get_result(c)["tokens_predicted"] <= 2


def test_every_way_a_task_ends_frees_its_place(make_server):
    """max_queued_tasks counts unfinished tasks: success, cancel (queued, running, finished),
    a failure in the core, a stopped stream and a closed session all give the place back."""
    s = make_server({"n_parallel": 1, "max_queued_tasks": 2})
    hi = {"prompt": "Hi", "n_predict": 1}
    for _ in range(3):
        s.run(0, "completion", hi)                                     # success, fetched
        s.cancel(s.create_task(0, "completion", hi))                   # cancelled early
        t = s.create_task(0, "completion", LONG)
        wait_dispatched(s, t)
        s.cancel(t)                                                    # cancelled running
        with pytest.raises(LlamaError):                                # fails in the core
            s.run(0, "completion", {"prompt": "hello " * 1500, "n_predict": 4})
        for _ in s.stream(0, {"prompt": "1, 2,", "n_predict": 50, "ignore_eos": True}):
            break                                                      # stream stopped
        ses = s.create_session()
        s.create_task(ses.id, "completion", LONG)
        ses.close()                                                    # session closed
    # unfetched results do not count; two unfinished do
    a = s.create_task(0, "completion", LONG)
    b = s.create_task(0, "completion", hi)
    assert_code(create_task_raw(s, 0, "completion", hi)[0], "SERVER_BUSY")
    s.cancel(a)
    s.cancel(b)
    assert s.run(0, "completion", hi)["tokens_predicted"] <= 1
