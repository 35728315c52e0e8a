"""stream_inference: chunk shapes, equality with the non-streamed result, stopping, errors."""
import json

import pytest

from helpers import E, OK, assert_code, cstr, ffi, lib, wait_until
from llama_nif_tools.binding import reply_text

pytestmark = pytest.mark.model

# cache_prompt off: both runs evaluate the prompt the same way, so temperature 0 gives equal text
COMPLETION = {"prompt": "Write a short poem about the sea.\n", "n_predict": 24, "temperature": 0,
              "cache_prompt": False}
CHAT = {"messages": [{"role": "user", "content": "Write a short poem about the sea."}],
        "n_predict": 24, "temperature": 0, "cache_prompt": False}


class Recorder:
    """A raw C callback that records chunks and stops after `stop_after` calls (0: never)."""

    def __init__(self, stop_after=0):
        self.chunks, self.finals, self.users = [], [], []
        self.bad_sizes = 0              # checked by the test: an assert here would be swallowed
        self.stop_after = stop_after
        self.cb = ffi.callback("int(const char *, size_t, int, void *)", self._on_chunk)

    def _on_chunk(self, chunk, size, is_final, user):
        text = ffi.string(chunk, size)
        self.bad_sizes += len(text) != size or chunk[size] != b"\0"
        self.chunks.append(json.loads(text))
        self.finals.append(is_final)
        self.users.append(user)
        return 1 if self.stop_after and len(self.chunks) >= self.stop_after else 0

    def run(self, server, session_id, inp, user=ffi.NULL):
        return lib().llama_server_stream_inference(server.handle, session_id, cstr(inp), self.cb, user)


def test_completion_stream_equals_non_stream(server):
    want = server.run(0, "completion", COMPLETION)
    chunks = list(server.stream(0, COMPLETION))
    assert "".join(c["content"] for c in chunks) == want["content"]
    assert chunks[-1]["tokens_predicted"] == want["tokens_predicted"]


def test_chat_stream_equals_non_stream(server):
    want = reply_text(server.run(0, "chat", CHAT))
    chunks = list(server.stream(0, CHAT))
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    got = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    assert got == want and want


def test_completion_final_chunk(server):
    rec = Recorder()
    assert rec.run(server, 0, {"prompt": "1, 2, 3,", "n_predict": 5, "ignore_eos": True}) == OK
    assert rec.finals[-1] == 1 and set(rec.finals[:-1]) == {0} and rec.bad_sizes == 0
    last = rec.chunks[-1]
    assert last["stop"] is True and last["tokens_predicted"] == 5
    assert last["timings"]["predicted_n"] == 5
    assert sum(1 for c in rec.chunks[:-1] if "content" in c) == 5


def test_chat_final_chunk(server):
    rec = Recorder()
    assert rec.run(server, 0, {**CHAT, "n_predict": 4, "ignore_eos": True}) == OK
    last = rec.chunks[-1]
    assert rec.finals[-1] == 1 and last["object"] == "chat.completion.chunk"
    assert last["choices"][0]["finish_reason"] == "length"
    assert last["timings"]["predicted_n"] == 4


def test_callback_returning_nonzero_stops_the_stream(server):
    rec = Recorder(stop_after=3)
    tag = ffi.cast("void *", 0x5EED)
    rc = rec.run(server, 0, {"prompt": "1, 2, 3,", "n_predict": 200, "ignore_eos": True}, tag)
    assert_code(rc, "CANCELLED", "callback")
    assert len(rec.chunks) == 3 and 1 not in rec.finals      # no call after the stop
    assert all(u == tag for u in rec.users)                    # user_data passed through
    wait_until(lambda: not any(s["busy"] for s in server.status()["slots"]), "the slot to be freed")
    assert server.status()["tasks"]["running"] == 0


def test_leaving_the_iterator_early_stops_generation(server):
    before = server.status()["totals"]["generated_tokens"]
    for n, _ in enumerate(server.stream(0, {"prompt": "1, 2, 3,", "n_predict": 300, "ignore_eos": True})):
        if n == 2:
            break
    wait_until(lambda: not any(s["busy"] for s in server.status()["slots"]), "the slot to be freed")
    # the server is usable and the stopped task did not run to n_predict
    r = server.run(0, "completion", {"prompt": "Hi", "n_predict": 2, "ignore_eos": True})
    assert r["tokens_predicted"] == 2
    assert server.status()["totals"]["generated_tokens"] - before < 300


@pytest.mark.parametrize("case", ["null_callback", "null_input", "no_prompt_or_messages", "bad_json",
                                  "not_an_object", "unknown_key", "unknown_session"])
def test_stream_rejects_bad_calls(server, case):
    rec = Recorder()
    inp = {"prompt": "x", "n_predict": 2}
    cb = rec.cb
    sid = 0
    want, mention = "INVALID_ARGUMENT", ""
    if case == "null_callback":
        cb, mention = ffi.NULL, "callback"
    elif case == "null_input":
        inp, mention = None, "input_json"
    elif case == "no_prompt_or_messages":
        inp, mention = {"n_predict": 2}, "prompt"
    elif case == "bad_json":
        inp, mention = b'{"prompt": ', "JSON"
    elif case == "not_an_object":
        inp, mention = b'["prompt"]', "object"
    elif case == "unknown_key":
        inp, mention = {"prompt": "x", "n_predictt": 2}, "n_predictt"
    elif case == "unknown_session":
        sid, want = 98765, "SESSION_NOT_FOUND"
    rc = lib().llama_server_stream_inference(server.handle, sid, cstr(inp), cb, ffi.NULL)
    assert_code(rc, want, mention)
    assert rec.chunks == []


def test_streamed_chat_turn_joins_the_session_history(server):
    ses = server.create_session({"temperature": 0})
    try:
        list(server.stream(ses.id, {"messages": [{"role": "user",
                                                  "content": "My name is Priya. Please remember it."}],
                                    "n_predict": 24}))
        assert ses.info()["message_count"] == 2
        assert "Priya" in reply_text(ses.chat("What is my name?", n_predict=24))
        assert ses.info()["message_count"] == 4
    finally:
        ses.close()


def test_failed_stream_ends_with_an_error_chunk(server):
    rec = Recorder()
    rc = rec.run(server, 0, {"prompt": "hello " * 1500, "n_predict": 4})
    assert_code(rc, "INFERENCE_FAILED")
    assert rec.finals[-1] == 1
    assert rec.chunks[-1]["error"]["code"] == E("INFERENCE_FAILED")
    assert rec.chunks[-1]["error"]["type"] == "exceed_context_size_error"
