"""get_status and get_session_info: fields, counters, slots, and the caller-buffer protocol."""
import json

import pytest

from helpers import LONG, MODEL_PATH, OK, assert_code, ffi, lib, wait_dispatched, wait_until

pytestmark = pytest.mark.model


def test_status_without_a_model(make_server):
    st = make_server({"n_parallel": 3}, load=False).status()
    assert st["state"] == "no_model" and st["model"] is None
    assert len(st["slots"]) == 3 and st["sessions"] == 0
    assert st["tasks"] == {"queued": 0, "running": 0, "unfetched": 0, "max_queued": 256}


def test_status_model_facts_and_slots(make_server):
    s = make_server({"n_parallel": 3, "n_ctx": 512})
    st = s.status()
    assert st["state"] == "ready" and st["version"] == ffi.string(lib().llama_server_version()).decode()
    m = st["model"]
    assert m["path"] == str(MODEL_PATH) and m["name"] == MODEL_PATH.stem
    assert m["size"] > 100e6 and m["n_params"] > 400e6 and m["n_ctx_train"] >= 32768
    assert m["embedding"] is False
    assert st["n_parallel"] == 3 and st["n_ctx_slot"] == 512        # n_ctx is per slot
    assert [sl["id"] for sl in st["slots"]] == [0, 1, 2]
    assert all(not sl["busy"] and sl["task"] is None and sl["session"] is None for sl in st["slots"])
    assert {"tasks_completed", "prompt_tokens", "generated_tokens", "tokens_per_second"} <= set(st["totals"])


def test_n_ctx_is_per_slot(make_server):
    # 4 slots x 512: a 450-token prompt fits one slot (it would not fit 512 / 4)
    s = make_server({"n_parallel": 4, "n_ctx": 512})
    r = s.run(0, "completion", {"prompt": "hello " * 450, "n_predict": 2})
    assert r["tokens_evaluated"] > 400


def test_status_counts_sessions(make_server):
    s = make_server()
    a, b = s.create_session(), s.create_session()
    assert s.status()["sessions"] == 2
    a.close()
    assert s.status()["sessions"] == 1
    b.close()
    assert s.status()["sessions"] == 0


def test_status_shows_running_queued_and_unfetched_tasks(make_server):
    s = make_server({"n_parallel": 1})
    ses = s.create_session()
    a = s.create_task(ses.id, "completion", LONG)
    b = s.create_task(0, "completion", {"prompt": "Hi", "n_predict": 2})
    wait_dispatched(s, a)
    wait_until(lambda: s.status()["tasks"]["running"] == 1, "the task to start decoding")
    st = s.status()
    assert st["slots"][0] == {**st["slots"][0], "busy": True, "task": a, "session": ses.id}
    assert st["tasks"]["queued"] == 1
    s.cancel(a)
    s.get_result(b)  # runs once the slot is free
    st = s.status()
    assert st["tasks"]["unfetched"] == 1 and st["tasks"]["running"] == st["tasks"]["queued"] == 0


def test_totals_grow_with_finished_tasks(make_server):
    s = make_server()
    before = s.status()["totals"]
    r = s.run(0, "completion", {"prompt": "1, 2, 3,", "n_predict": 7, "ignore_eos": True})
    after = s.status()["totals"]
    assert after["tasks_completed"] == before["tasks_completed"] + 1
    assert after["generated_tokens"] == before["generated_tokens"] + 7
    assert after["prompt_tokens"] == before["prompt_tokens"] + r["timings"]["prompt_n"]
    assert after["tokens_per_second"] > 0


def test_session_stays_on_its_slot(make_server):
    s = make_server({"n_parallel": 2})
    ses = s.create_session({"temperature": 0})
    ses.chat("Name a colour.", n_predict=8)
    slot = ses.info()["slot"]
    assert slot in (0, 1)
    assert s.status()["slots"][slot]["tokens_cached"] > 0
    s.run(0, "completion", {"prompt": "Unrelated stateless work", "n_predict": 4})
    r = ses.chat("Name another colour.", n_predict=8)
    assert ses.info()["slot"] == slot
    assert r["usage"]["prompt_tokens_details"]["cached_tokens"] > 0


def test_session_info_buffer_protocol(server):
    ses = server.create_session({"system_prompt": "x" * 300})
    size = ffi.new("size_t *")

    def call(buf, n, actual=size):
        return lib().llama_server_get_session_info(server.handle, ses.id, buf, n, actual)

    try:
        assert_code(call(ffi.NULL, 0), "BUFFER_TOO_SMALL")          # size query
        need = size[0]
        buf = ffi.new("char[]", b"y" * need)
        assert_code(call(buf, need), "BUFFER_TOO_SMALL")           # no room for the NUL
        assert buf[0] == b"\0" and size[0] == need
        assert_code(call(buf, 1), "BUFFER_TOO_SMALL")
        assert buf[0] == b"\0"
        assert_code(call(ffi.NULL, 16), "INVALID_ARGUMENT")
        buf = ffi.new("char[]", need + 1)
        assert call(buf, need + 1) == OK and size[0] == need
        assert len(ffi.string(buf)) == need and json.loads(ffi.string(buf))["id"] == ses.id
        assert call(buf, need + 1, ffi.NULL) == OK                  # actual_size may be NULL
    finally:
        ses.close()


def test_status_buffer_protocol(server):
    # the status changes between calls (uptime_s), so only clear margins are exact
    size = ffi.new("size_t *")
    st = lambda buf, n, actual=size: lib().llama_server_get_status(server.handle, buf, n, actual)  # noqa: E731
    assert_code(st(ffi.NULL, 0), "BUFFER_TOO_SMALL")
    need = size[0]
    buf = ffi.new("char[]", b"y" * (need + 256))
    assert_code(st(buf, need // 2), "BUFFER_TOO_SMALL")
    assert buf[0] == b"\0" and size[0] > need // 2
    assert_code(st(ffi.NULL, 16), "INVALID_ARGUMENT")
    assert st(buf, need + 256) == OK
    assert len(ffi.string(buf)) == size[0] and json.loads(ffi.string(buf))["state"] == "ready"
    assert st(buf, need + 256, ffi.NULL) == OK


def test_status_reports_the_configured_queue_bound(make_server):
    s = make_server({"max_queued_tasks": 5})
    assert s.status()["tasks"]["max_queued"] == 5
    assert_code(lib().llama_server_get_session_info(s.handle, 424242, ffi.NULL, 0, ffi.NULL),
                "SESSION_NOT_FOUND")
