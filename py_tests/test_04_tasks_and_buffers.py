"""create_task / get_result: result shapes, the caller-buffer protocol, ids, timeouts."""
import json
import re

import pytest

from helpers import (E, LONG, OK, assert_code, create_task_raw, ffi, get_result_raw, lib,
                     wait_until)
from llama_nif_tools.binding import LlamaError

pytestmark = pytest.mark.model

FRANCE = {"messages": [{"role": "user", "content": "What is the capital of France?"}],
          "n_predict": 16, "temperature": 0}


def test_completion_result_shape_is_compact(server):
    r = server.run(0, "completion", {"prompt": "1, 2, 3,", "n_predict": 6, "ignore_eos": True})
    assert isinstance(r["content"], str) and r["content"]
    assert r["tokens_predicted"] == 6 and r["tokens_evaluated"] > 0
    assert r["stop_type"] == "limit" and r["stop"] is True
    assert r["timings"]["predicted_n"] == 6 and r["timings"]["prompt_n"] >= 1
    for bulky in ("generation_settings", "prompt", "tokens", "completion_probabilities"):
        assert bulky not in r, f"{bulky} must appear only on request"


def test_completion_verbose_and_return_tokens(server):
    r = server.run(0, "completion", {"prompt": "1, 2, 3,", "n_predict": 4, "ignore_eos": True,
                                     "verbose": True, "return_tokens": True})
    assert "generation_settings" in r and "prompt" in r
    assert len(r["tokens"]) == 4 and all(isinstance(t, int) for t in r["tokens"])


def test_completion_n_probs_on_request(server):
    r = server.run(0, "completion", {"prompt": "1, 2, 3,", "n_predict": 2, "n_probs": 3})
    assert len(r["completion_probabilities"]) == 2


def test_chat_result_shape_and_answer(server):
    r = server.run(0, "chat", FRANCE)
    assert r["object"] == "chat.completion"
    choice = r["choices"][0]
    assert choice["message"]["role"] == "assistant"
    assert "Paris" in choice["message"]["content"]
    assert choice["finish_reason"] in ("stop", "length")
    u = r["usage"]
    assert u["total_tokens"] == u["prompt_tokens"] + u["completion_tokens"]
    assert r["timings"]["predicted_n"] == u["completion_tokens"]
    # OpenAI-style ids as llama-server's, a fresh one per task
    again = server.run(0, "chat", {**FRANCE, "n_predict": 1})
    assert re.fullmatch(r"chatcmpl-[0-9A-Za-z]{32}", r["id"]) and again["id"] != r["id"]


@pytest.mark.parametrize("stateless", [True, False])
def test_chat_response_format_constrains_the_answer(server, stateless):
    """A stateless chat is rendered once, by create_task; a session's chat at dispatch, with
    its history. Both must carry the grammar the response format asks for."""
    schema = {"type": "object", "properties": {"capital": {"type": "string"}}, "required": ["capital"]}
    inp = {"messages": [{"role": "user", "content": "What is the capital of France? Answer in JSON."}],
           "n_predict": 32, "temperature": 0,
           "response_format": {"type": "json_schema", "json_schema": {"schema": schema}}}
    sid = 0 if stateless else server.create_session().id
    answer = json.loads(server.run(sid, "chat", inp)["choices"][0]["message"]["content"])
    assert set(answer) == {"capital"} and "Paris" in answer["capital"]


@pytest.mark.parametrize("key", ["n_predict", "max_tokens", "max_completion_tokens"])
def test_chat_length_keys(server, key):
    inp = {"messages": FRANCE["messages"], key: 3, "ignore_eos": True}
    r = server.run(0, "chat", inp)
    assert r["usage"]["completion_tokens"] == 3 and r["choices"][0]["finish_reason"] == "length"


def test_buffer_too_small_keeps_the_result_for_a_retry(server):
    tid = server.create_task(0, "completion", {"prompt": "1, 2, 3,", "n_predict": 4})
    size = ffi.new("size_t *")
    # size query: NULL/0 waits for the result and says how big it is
    rc = lib().llama_server_get_result(server.handle, tid, ffi.NULL, 0, size, 0)
    assert_code(rc, "BUFFER_TOO_SMALL")
    need = size[0]
    assert need > 10
    # one byte short (no room for the NUL): refused, "" written, size repeated
    buf = ffi.new("char[]", b"x" * need)
    size[0] = 0
    assert_code(lib().llama_server_get_result(server.handle, tid, buf, need, size, 0), "BUFFER_TOO_SMALL")
    assert buf[0] == b"\0" and size[0] == need
    # exactly need + 1: the JSON, NUL-terminated, and the id is released
    buf = ffi.new("char[]", b"x" * (need + 1))
    assert lib().llama_server_get_result(server.handle, tid, buf, need + 1, size, 0) == OK
    assert size[0] == need and buf[need] == b"\0"
    text = ffi.string(buf)
    assert len(text) == need
    assert json.loads(text)["tokens_predicted"] == 4
    assert_code(lib().llama_server_get_result(server.handle, tid, buf, need + 1, size, 0), "TASK_NOT_FOUND")


def test_null_buffer_with_nonzero_size_is_invalid(server):
    tid = server.create_task(0, "completion", {"prompt": "Hi", "n_predict": 2})
    size = ffi.new("size_t *")
    assert_code(lib().llama_server_get_result(server.handle, tid, ffi.NULL, 64, size, 0),
                "INVALID_ARGUMENT", "NULL")
    assert server.get_result(tid)["tokens_predicted"] <= 2   # still there


def test_actual_size_may_be_null(server):
    tid = server.create_task(0, "completion", {"prompt": "Hi", "n_predict": 2})
    buf = ffi.new("char[]", 1 << 16)
    assert lib().llama_server_get_result(server.handle, tid, buf, 1 << 16, ffi.NULL, 0) == OK
    assert "content" in json.loads(ffi.string(buf))


def test_get_result_timeout_then_fetch_later(server):
    tid = server.create_task(0, "completion", {**LONG, "n_predict": 48})
    rc, text, _ = get_result_raw(server, tid, timeout_ms=1)
    assert_code(rc, "TIMEOUT")
    r = server.get_result(tid)           # the task went on
    assert r["tokens_predicted"] == 48


def test_second_get_result_is_task_not_found(server):
    tid = server.create_task(0, "completion", {"prompt": "Hi", "n_predict": 2})
    server.get_result(tid)
    rc, _, _ = get_result_raw(server, tid)
    assert_code(rc, "TASK_NOT_FOUND", str(tid))


@pytest.mark.parametrize("tid", [0, -1, 987654])
def test_unknown_task_id(server, tid):
    assert_code(get_result_raw(server, tid)[0], "TASK_NOT_FOUND")
    assert_code(lib().llama_server_cancel_task(server.handle, tid), "TASK_NOT_FOUND")


def test_negative_timeout_is_invalid(server):
    tid = server.create_task(0, "completion", {"prompt": "Hi", "n_predict": 1})
    assert_code(get_result_raw(server, tid, timeout_ms=-1)[0], "INVALID_ARGUMENT", "timeout_ms")
    server.get_result(tid)


@pytest.mark.parametrize("task_type", ["translate", "", "Completion", "chat ", "embeddings"])
def test_unknown_task_type(server, task_type):
    rc, _ = create_task_raw(server, 0, task_type, {"prompt": "x"})
    assert_code(rc, "INVALID_ARGUMENT", "task type")


@pytest.mark.parametrize("task_type,inp", [
    ("embedding", {"content": "hello"}),
    ("embedding", {"content": ["a", "b"]}),
    ("rerank", {"query": "q", "documents": ["a", "b"], "top_n": 1}),
])
def test_embedding_and_rerank_need_an_embedding_model(server, task_type, inp):
    rc, _ = create_task_raw(server, 0, task_type, inp)
    assert_code(rc, "NOT_SUPPORTED", "not loaded for embeddings")


def test_task_ids_are_positive_and_unique(server):
    ids = [server.create_task(0, "completion", {"prompt": "Hi", "n_predict": 1}) for _ in range(5)]
    assert all(i > 0 for i in ids) and len(set(ids)) == 5 and ids == sorted(ids)
    for i in reversed(ids):              # results can be fetched in any order
        server.get_result(i)


def test_cancel_of_a_finished_unfetched_task_discards_it(server):
    tid = server.create_task(0, "completion", {"prompt": "Hi", "n_predict": 2})
    rc, _, _ = get_result_raw(server, tid, size=0)     # waits until finished, keeps it
    assert_code(rc, "BUFFER_TOO_SMALL")
    assert lib().llama_server_cancel_task(server.handle, tid) == OK
    assert_code(get_result_raw(server, tid)[0], "TASK_NOT_FOUND")


def test_prompt_beyond_the_context_fails_the_task(server):
    tid = server.create_task(0, "completion", {"prompt": "hello " * 1500, "n_predict": 4})
    with pytest.raises(LlamaError) as ei:
        server.get_result(tid)
    assert ei.value.code == E("INFERENCE_FAILED")
    err = ei.value.result["error"]
    assert err["code"] == E("INFERENCE_FAILED") and err["type"] == "exceed_context_size_error"
    assert "context" in err["message"]


def test_timeout_read_drops_unfetched_results(make_server):
    s = make_server({"timeout_read": 0.2})
    tid = s.create_task(0, "completion", {"prompt": "Hi", "n_predict": 2})
    assert_code(get_result_raw(s, tid, size=0)[0], "BUFFER_TOO_SMALL")   # finished, kept
    wait_until(lambda: s.status()["tasks"]["unfetched"] == 0, "the result to expire")
    assert_code(get_result_raw(s, tid)[0], "TASK_NOT_FOUND")


def test_results_wait_for_timeout_read_when_fetched_in_time(make_server):
    s = make_server({"timeout_read": 600})
    tid = s.create_task(0, "completion", {"prompt": "Hi", "n_predict": 2})
    assert_code(get_result_raw(s, tid, size=0)[0], "BUFFER_TOO_SMALL")
    assert s.status()["tasks"]["unfetched"] == 1
    assert s.get_result(tid)["tokens_predicted"] <= 2
