"""Sessions: conversation history, keep_history, system_prompt, defaults, info, close."""
import threading

import pytest

from helpers import LONG, assert_code, create_task_raw, ffi, lib, wait_dispatched
from llama_nif_tools.binding import reply_text

pytestmark = pytest.mark.model

PASSWORD_PROMPT = "The secret password is 'tulip'. When asked for the password, answer with it."


def tell_and_ask(ses, name="Zoltan"):
    ses.chat(f"My name is {name}. Please remember it.", n_predict=24)
    return reply_text(ses.chat("What is my name?", n_predict=24))


def test_chat_history_is_remembered_within_a_session(server):
    ses = server.create_session({"temperature": 0})
    fresh = server.create_session({"temperature": 0})
    try:
        assert "Zoltan" in tell_and_ask(ses)
        assert "Zoltan" not in reply_text(fresh.chat("What is my name?", n_predict=24))
    finally:
        ses.close()
        fresh.close()


def test_keep_history_false_forgets(server):
    ses = server.create_session({"temperature": 0, "keep_history": False})
    try:
        assert "Zoltan" not in tell_and_ask(ses)
        info = ses.info()
        assert info["message_count"] == 0 and info["task_count"] == 2
    finally:
        ses.close()


def test_system_prompt_is_honoured(server):
    with_sp = server.create_session({"temperature": 0, "system_prompt": PASSWORD_PROMPT})
    without = server.create_session({"temperature": 0})
    try:
        assert with_sp.info()["config"]["system_prompt"] == PASSWORD_PROMPT
        q = "What is the secret password?"
        assert "tulip" in reply_text(with_sp.chat(q, n_predict=20)).lower()
        assert "tulip" not in reply_text(without.chat(q, n_predict=20)).lower()
        # the system prompt is not part of the stored turns
        assert with_sp.info()["message_count"] == 2
    finally:
        with_sp.close()
        without.close()


def test_session_info_counts_turns_tokens_and_cache(server):
    ses = server.create_session({"temperature": 0})
    try:
        info = ses.info()
        assert (info["message_count"], info["task_count"], info["generated_tokens"]) == (0, 0, 0)
        r1 = ses.chat("Name three colours.", n_predict=16)
        info1 = ses.info()
        assert info1["message_count"] == 2 and info1["task_count"] == 1
        assert info1["generated_tokens"] == r1["usage"]["completion_tokens"] > 0
        assert info1["prompt_tokens"] == r1["usage"]["prompt_tokens"]
        r2 = ses.chat("Name three animals.", n_predict=16)
        info2 = ses.info()
        assert info2["message_count"] == 4 and info2["task_count"] == 2
        assert info2["generated_tokens"] == r1["usage"]["completion_tokens"] + r2["usage"]["completion_tokens"]
        assert info2["prompt_tokens"] == r1["usage"]["prompt_tokens"] + r2["usage"]["prompt_tokens"]
        # the second turn reuses the first turn's KV cache (slot affinity)
        assert info2["cached_tokens"] > 0
        assert r2["usage"]["prompt_tokens_details"]["cached_tokens"] > 0
        assert info2["tokens_in_context"] > info1["tokens_in_context"] > 0
        assert info2["queued_tasks"] == 0 and info2["running_task"] is None
        assert info2["dropped_turns"] == 0 and isinstance(info2["slot"], int)
    finally:
        ses.close()


def test_completion_tasks_do_not_touch_history(server):
    ses = server.create_session()
    try:
        ses.complete("1, 2, 3,", n_predict=3)
        info = ses.info()
        assert info["message_count"] == 0 and info["task_count"] == 1
    finally:
        ses.close()


def test_session_defaults_and_task_overrides(server):
    ses = server.create_session({"n_predict": 5, "ignore_eos": True, "temperature": 0})
    try:
        assert ses.complete("Count: 1, 2, 3,")["tokens_predicted"] == 5
        assert ses.complete("Count: 1, 2, 3,", n_predict=7)["tokens_predicted"] == 7
        assert ses.chat("Hello")["usage"]["completion_tokens"] == 5
        assert ses.chat("Hello", max_tokens=3)["usage"]["completion_tokens"] == 3
    finally:
        ses.close()


def test_session_default_stop_words_and_override(server):
    ses = server.create_session({"stop": [","], "temperature": 0, "n_predict": 12, "ignore_eos": True})
    try:
        r = ses.complete("Count: 1, 2, 3,")
        assert r["stop_type"] == "word" and r["stopping_word"] == "," and "," not in r["content"]
        r = ses.complete("Count: 1, 2, 3,", stop=[])
        assert r["stop_type"] == "limit" and r["tokens_predicted"] == 12
    finally:
        ses.close()


def test_closed_session_is_gone(server):
    ses = server.create_session()
    ses.close()
    sid = ses.id
    rc, _ = create_task_raw(server, sid, "completion", {"prompt": "x"})
    assert_code(rc, "SESSION_NOT_FOUND")
    size = ffi.new("size_t *")
    assert_code(lib().llama_server_get_session_info(server.handle, sid, ffi.NULL, 0, size), "SESSION_NOT_FOUND")
    assert_code(lib().llama_server_close_session(server.handle, sid), "SESSION_NOT_FOUND")


@pytest.mark.parametrize("sid", [9999, 2 ** 31 - 1])
def test_unknown_session(server, sid):
    rc, _ = create_task_raw(server, sid, "chat", {"messages": [{"role": "user", "content": "x"}]})
    assert_code(rc, "SESSION_NOT_FOUND", str(sid))
    size = ffi.new("size_t *")
    assert_code(lib().llama_server_get_session_info(server.handle, sid, ffi.NULL, 0, size), "SESSION_NOT_FOUND")
    assert_code(lib().llama_server_close_session(server.handle, sid), "SESSION_NOT_FOUND")


def test_session_ids_are_positive_and_never_reused(server):
    a, b = server.create_session(), server.create_session()
    b.close()
    c = server.create_session()
    try:
        assert 0 < a.id < b.id < c.id
    finally:
        a.close()
        c.close()


@pytest.mark.parametrize("sid", [0, -5])
def test_stateless_tasks_need_no_session(server, sid):
    r = server.run(sid, "completion", {"prompt": "1, 2, 3,", "n_predict": 2, "ignore_eos": True})
    assert r["tokens_predicted"] == 2


def test_tasks_of_one_session_run_in_order_one_at_a_time(make_server):
    s = make_server({"n_parallel": 2})
    ses = s.create_session()
    first = s.create_task(ses.id, "completion", LONG)
    second = s.create_task(ses.id, "completion", {"prompt": "Hi", "n_predict": 2})
    wait_dispatched(s, first)
    info = ses.info()
    assert info["running_task"] == first and info["queued_tasks"] == 1
    st = s.status()
    # a slot is free, yet the session's second task waits for its first
    assert sum(not sl["busy"] for sl in st["slots"]) == 1
    assert all(sl["task"] != second for sl in st["slots"])
    s.cancel(first)
    assert s.get_result(second)["tokens_predicted"] == 2


def test_history_outgrowing_the_slot_drops_old_turns(make_server):
    s = make_server({"n_parallel": 1, "n_ctx": 256})
    ses = s.create_session({"temperature": 0, "system_prompt": PASSWORD_PROMPT})
    filler = "Here is some text to fill the context: " + "apples and oranges, " * 12
    for i in range(5):
        r = ses.chat(filler + f"Reply with OK {i}.", n_predict=8)
        assert r["usage"]["prompt_tokens"] + r["usage"]["completion_tokens"] <= 256
    info = ses.info()
    assert info["dropped_turns"] > 0 and info["message_count"] < 10
    # the system prompt stays when old turns go
    assert "tulip" in reply_text(ses.chat("What is the secret password?", n_predict=16)).lower()


def test_chat_turns_sent_at_once_each_see_every_earlier_turn(make_server):
    """create_task renders a chat of an idle session at once; when several callers race, all
    but the first find their snapshot of the history outdated by the time they start, and
    are rendered again. Each turn, in task order, must see every earlier one."""
    s = make_server({"n_parallel": 2})
    ses = s.create_session({"temperature": 0})
    n = 8
    barrier = threading.Barrier(n)
    ids = [None] * n

    def send(i):
        barrier.wait()
        ids[i] = s.create_task(ses.id, "chat", {"messages": [{"role": "user", "content": f"Say {i}."}],
                                                "n_predict": 3})

    threads = [threading.Thread(target=send, args=(i,)) for i in range(n)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    prompt_tokens = [s.get_result(t)["usage"]["prompt_tokens"] for t in sorted(ids)]
    assert all(a < b for a, b in zip(prompt_tokens, prompt_tokens[1:])), prompt_tokens
    assert ses.info()["message_count"] == 2 * n
