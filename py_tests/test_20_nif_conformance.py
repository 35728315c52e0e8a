"""The conformance cases that make sense for Erlang, run against the NIF (priv/llama_nif.so)
in a real Erlang node, driven through a port (py_tests/erl_port.py, test/llama_nif_port.erl).

Errors come back as {error, {Code, Detail}}, Code an atom named after the C error code."""
from __future__ import annotations

import threading

import pytest

from erl_port import Atom, NifPort
from helpers import LONG, MODEL_PATH
from llama_nif_tools import paths

pytestmark = pytest.mark.model
CFG = {"n_parallel": 2, "n_ctx": 1024, "log_level": "error"}


def erlang_node():
    """A new Erlang node running the port program (test/llama_nif_port.erl)."""
    if not (paths.PRIV / "llama_nif.so").is_file():
        pytest.fail("priv/llama_nif.so is missing: build it with `make nif`", pytrace=False)
    p = NifPort()
    yield p
    p.close()


port = pytest.fixture(scope="module", name="port")(erlang_node)


@pytest.fixture(scope="module")
def srv(port):
    ok, h = port.call("init_server", {**CFG, "model": str(MODEL_PATH)})
    assert ok == "ok"
    yield h
    port.call("destroy_server", h)


def error_code(r) -> str:
    assert isinstance(r, tuple) and r[0] == "error", r
    code, detail = r[1]
    assert isinstance(code, Atom) and isinstance(detail, str) and detail
    return code


def run(port, srv, session, kind, inp, caller=0, timeout_ms=120000):
    ok, tid = port.call("create_task", srv, session, Atom(kind), inp, caller=caller)
    assert ok == "ok", tid
    ok, res = port.call("get_result", srv, tid, timeout_ms, caller=caller)
    assert ok == "ok", res
    return res


def reply(res) -> str:
    return res["choices"][0]["message"]["content"] if "choices" in res else res["content"]


# ---- configuration and lifecycle -------------------------------------------------------------

@pytest.mark.parametrize("cfg,key", [({"n_ctxx": 5}, "n_ctxx"), ({"n_parallel": "four"}, "n_parallel"),
                                     ({"n_parallel": 0}, "n_parallel"), ({"timeout_read": -1}, "timeout_read")])
def test_bad_server_config(port, cfg, key):
    r = port.call("init_server", cfg)
    assert error_code(r) == "invalid_argument" and key in r[1][1]


def test_json_binary_config_is_accepted(port):
    ok, h = port.call("init_server", '{"n_parallel": 1}')
    assert ok == "ok"
    assert port.call("destroy_server", h) == "ok"


def test_session_before_model_and_bad_model_files(port, tmp_path):
    ok, h = port.call("init_server", CFG)
    try:
        assert error_code(port.call("create_session", h, {})) == "model_not_loaded"
        assert error_code(port.call("load_model", h, str(tmp_path / "missing.gguf"), {})) == "model_load_failed"
        junk = tmp_path / "junk.gguf"
        junk.write_bytes(b"not a model at all")
        assert error_code(port.call("load_model", h, str(junk), {})) == "model_load_failed"
    finally:
        port.call("destroy_server", h)


def test_calls_on_a_destroyed_server_return_errors(port):
    ok, h = port.call("init_server", {**CFG, "model": str(MODEL_PATH)})
    assert port.call("destroy_server", h) == "ok"
    assert port.call("create_session", h, {})[0] == "error"
    assert port.call("status", h)[0] == "error"


# ---- tasks ---------------------------------------------------------------------------------------

def test_completion_result_is_a_map(port, srv):
    res = run(port, srv, 0, "completion", {"prompt": "def add(a, b):", "n_predict": 6, "temperature": 0})
    assert res["tokens_predicted"] == 6 and isinstance(res["content"], str) and "timings" in res


def test_chat_history_is_carried_by_the_session(port, srv):
    ok, s = port.call("create_session", srv, {"system_prompt": "Answer briefly.", "temperature": 0})
    run(port, srv, s, "chat", {"messages": [{"role": "user", "content": "My name is Zorblax. Say hello."}],
                               "max_tokens": 16})
    again = run(port, srv, s, "chat", {"messages": [{"role": "user", "content": "What is my name?"}],
                                       "max_tokens": 12})
    assert "zorblax" in reply(again).lower()
    ok, fresh = port.call("create_session", srv, {"temperature": 0})
    other = run(port, srv, fresh, "chat", {"messages": [{"role": "user", "content": "What is my name?"}],
                                           "max_tokens": 12})
    assert "zorblax" not in reply(other).lower()
    ok, info = port.call("session_info", srv, s)
    assert info["message_count"] == 4 and info["task_count"] == 2
    for sid in (s, fresh):
        assert port.call("close_session", srv, sid) == "ok"
    assert error_code(port.call("session_info", srv, s)) == "session_not_found"


@pytest.mark.parametrize("kind,inp,code", [
    ("translate", {"prompt": "x"}, "invalid_argument"),
    ("completion", {"prompt": "x", "n_predictt": 1}, "invalid_argument"),
    ("completion", {"prompt": "x", "temperature": "hot"}, "invalid_argument"),
    ("chat", {"messages": "hi"}, "invalid_argument"),
    ("embedding", {"content": "x"}, "not_supported"),
    ("rerank", {"query": "q", "documents": ["d"]}, "not_supported"),
])
def test_bad_task_input(port, srv, kind, inp, code):
    assert error_code(port.call("create_task", srv, 0, Atom(kind), inp)) == code


def test_unknown_session_and_unknown_task(port, srv):
    assert error_code(port.call("create_task", srv, 987654, Atom("completion"), {"prompt": "x"})) == "session_not_found"
    assert error_code(port.call("get_result", srv, 987654, 10)) == "task_not_found"
    assert error_code(port.call("cancel_task", srv, 987654)) == "task_not_found"


def test_timeout_then_fetch_later_then_not_found(port, srv):
    ok, tid = port.call("create_task", srv, 0, Atom("completion"),
                        {"prompt": "Count: 1, 2, 3,", "n_predict": 24, "ignore_eos": True}, caller="t")
    assert error_code(port.call("get_result", srv, tid, 1, caller="t")) == "timeout"
    ok, res = port.call("get_result", srv, tid, 120000, caller="t")
    assert ok == "ok" and res["tokens_predicted"] == 24
    assert error_code(port.call("get_result", srv, tid, 10, caller="t")) == "task_not_found"


def test_streaming_chunks_concatenate_to_the_plain_text(port, srv):
    inp = {"prompt": "def fib(n):", "n_predict": 20, "temperature": 0}
    ok, tid = port.call("stream_task", srv, 0, Atom("completion"), inp, caller="s")
    assert ok == "ok"
    ok, chunks, final = port.call("collect_stream", tid, 120000, caller="s")
    assert ok == "ok" and len(chunks) >= 2
    streamed = "".join(c.get("content", "") for c in chunks)
    assert streamed == run(port, srv, 0, "completion", inp)["content"]


def test_cancel_a_running_task(port, srv):
    ok, tid = port.call("stream_task", srv, 0, Atom("completion"), LONG, caller="c")
    assert port.call("next_chunk", tid, 120000, caller="c")[0] == "chunk"    # it is running
    assert port.call("cancel_task", srv, tid, caller="c") == "ok"
    r = port.call("collect_stream", tid, 120000, caller="c")
    assert r[0] == "error" and r[1][0] == "cancelled"


def test_queue_full_is_server_busy(port):
    ok, h = port.call("init_server", {**CFG, "n_parallel": 1, "max_queued_tasks": 2, "model": str(MODEL_PATH)})
    try:
        ids = [port.call("create_task", h, 0, Atom("completion"), LONG, caller="b")[1] for _ in range(2)]
        assert error_code(port.call("create_task", h, 0, Atom("completion"), LONG, caller="b")) == "server_busy"
        for t in ids:
            assert port.call("cancel_task", h, t, caller="b") == "ok"
    finally:
        port.call("destroy_server", h)


def test_a_dead_caller_has_its_task_cancelled_and_others_go_on(port):
    ok, h = port.call("init_server", {**CFG, "n_parallel": 1, "model": str(MODEL_PATH)})
    try:
        ok, doomed = port.call("stream_task", h, 0, Atom("completion"), LONG, caller="doomed")
        assert port.call("next_chunk", doomed, 120000, caller="doomed")[0] == "chunk"
        ok, waiting = port.call("create_task", h, 0, Atom("completion"), {"prompt": "Hi", "n_predict": 4}, caller="w")
        assert port.call("exit", caller="doomed") == "ok"          # that Erlang process ends
        ok, res = port.call("get_result", h, waiting, 120000, caller="w")
        assert ok == "ok" and res["tokens_predicted"] == 4          # the slot was freed for it
        ok, st = port.call("status", h)
        assert st["totals"]["tasks_completed"] == 1                 # the dead one never finished
    finally:
        port.call("destroy_server", h)


def test_four_callers_on_four_sessions_do_not_cross_talk(port):
    ok, h = port.call("init_server", {**CFG, "n_parallel": 4, "model": str(MODEL_PATH)})
    names = ["Alice", "Bruno", "Chidi", "Dagny"]
    answers, errors = {}, []

    def talk(name):
        try:
            ok, s = port.call("create_session", h, {"temperature": 0}, caller=name)
            run(port, h, s, "chat", {"messages": [{"role": "user", "content": f"My name is {name}. Say hi."}],
                                     "max_tokens": 12}, caller=name)
            answers[name] = reply(run(port, h, s, "chat", {"messages": [{"role": "user", "content":
                                      "What is my name? Answer with the name only."}], "max_tokens": 8},
                                      caller=name))
        except Exception as e:   # reported below
            errors.append((name, e))

    try:
        threads = [threading.Thread(target=talk, args=(n,)) for n in names]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=600)
        assert not errors and len(answers) == 4
        for name, text in answers.items():
            assert name.lower() in text.lower()
            assert not any(o.lower() in text.lower() for o in names if o != name)
    finally:
        port.call("destroy_server", h)


def test_status_lists_every_slot(port, srv):
    ok, st = port.call("status", srv)
    assert ok == "ok" and st["state"] == "ready" and len(st["slots"]) == CFG["n_parallel"]


def test_the_nif_reads_the_weights_into_huge_pages(port, srv):
    # the NIF links the same buffer wrap as the C library (c_src/link/huge_page_buffers.cpp)
    ok, st = port.call("status", srv)
    hp = st["model"]["huge_pages"]
    assert ok == "ok" and st["model"]["use_mmap"] is False and hp["enabled"] is True
    assert hp["requested_bytes"] >= 0.9 * MODEL_PATH.stat().st_size, hp
    if hp["system"] in ("always", "madvise"):
        assert hp["backed_bytes_at_load"] >= hp["requested_bytes"] // 4, hp


# ---- inputs that killed the VM (issue 23), each in an Erlang node of its own ----------------

QUIET = {"log_level": "none"}


# a node per case: if a case kills the VM, only that case fails
node = pytest.fixture(name="node")(erlang_node)


def loaded(node, cfg, path, mcfg=None):
    ok, h = node.call("init_server", {**cfg, **QUIET})
    assert ok == "ok", h
    return h, node.call("load_model", h, path, mcfg or {})


def model_path(name):
    from llama_nif_tools.models import embed_models
    return str(MODEL_PATH) if name == "qwen" else str(embed_models.ensure(name))


@pytest.mark.parametrize("cfg,model_name,mcfg,kind", [
    ({"n_parallel": 1, "n_ctx": 512, "n_threads": 1, "n_batch": 8, "n_ubatch": 8}, "minilm-l6-v2-f16", None, "embedding"),
    ({"n_parallel": 1, "n_ctx": 64, "n_threads": 1, "n_batch": 512, "n_ubatch": 512}, "tiny-bert-rerank-f32", None, "rerank"),
    ({"n_parallel": 1, "n_ctx": 128, "n_threads": 1, "n_batch": 512, "n_ubatch": 8}, "tiny-bert-rerank-f32",
     {"chat_template": None}, "rerank"),
    ({"n_parallel": 1, "n_ctx": 512, "n_threads": 1, "n_batch": 8, "n_ubatch": 512}, "tiny-bert-rerank-f32", None, "rerank"),
    ({"n_parallel": 2, "n_ctx": 512, "n_threads": 1, "n_batch": 512, "n_ubatch": 1}, "tiny-bert-rerank-f32",
     {"chat_template": "chatml"}, None),
    ({"n_parallel": 1, "n_ctx": 128, "n_threads": 1, "n_batch": 512, "n_ubatch": 1}, "minilm-l6-v2-f16", None, None),
    ({"n_parallel": 1, "n_ctx": 512, "n_threads": 1, "n_batch": 512, "n_ubatch": 1}, "qwen", {"embedding": True}, None),
])
def test_the_load_settings_that_aborted_the_vm_load_and_serve_or_are_refused(node, cfg, model_name, mcfg, kind):
    h, r = loaded(node, cfg, model_path(model_name), mcfg)
    if kind is None:
        assert error_code(r) == "invalid_argument" and "'n_ubatch' (1)" in r[1][1], r
    else:
        assert r == "ok", r
        assert node.call("status", h)[1]["model"]["embedding_implied"] is True
        task = {"embedding": {"input": "hello"}, "rerank": {"query": "a", "documents": ["a", "b"]}}[kind]
        ok, tid = node.call("create_task", h, 0, Atom(kind), task)
        assert ok == "ok" and node.call("get_result", h, tid, 120000)[0] == "ok"
    assert node.call("status", h)[0] == "ok"   # the VM is still there


def test_a_grammar_that_expanded_without_end_is_refused(node):
    h, r = loaded(node, {"n_parallel": 1, "n_ctx": 512}, str(MODEL_PATH))
    assert r == "ok"
    chat = {"messages": [{"role": "user", "content": "Hi"}], "n_predict": 4, "grammar": 'root ::= "a"{5,2}'}
    r = node.call("create_task", h, 0, Atom("chat"), chat)
    assert error_code(r) == "invalid_argument" and "{5,2}" in r[1][1], r
    r = node.call("create_session", h, {"grammar": 'root ::= "a"{5,0}'})
    assert error_code(r) == "invalid_argument" and "{5,0}" in r[1][1], r
    ok, tid = node.call("create_task", h, 0, Atom("chat"), {**chat, "grammar": 'root ::= "a"{2,5}'})
    assert ok == "ok" and node.call("get_result", h, tid, 120000)[0] == "ok"


def test_a_chat_template_that_rendered_without_end_is_refused_at_load(node):
    h, r = loaded(node, {"n_parallel": 1, "n_ctx": 512}, str(MODEL_PATH),
                  {"chat_template": "{% for i in range(1000000) %}x{% endfor %}"})
    assert error_code(r) == "invalid_argument" and "over its budget" in r[1][1], r
