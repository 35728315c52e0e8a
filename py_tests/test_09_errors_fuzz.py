"""Error plumbing (error_string, last_error, NULL arguments) and a seeded fuzz of task input.

Whatever the input, a call returns a clean code (or succeeds) and never crashes; after the
fuzz the same server still answers a normal chat.
"""
import json
import random
import threading

import pytest

from helpers import (CODES, E, MODEL_PATH, OK, assert_code, create_task_raw, cstr, ffi,
                     get_result_raw, init_raw, last_error, lib)

NULL_CB = ffi.callback("int(const char *, size_t, int, void *)", lambda *a: 0)


# ---- error_string / last_error ----------------------------------------------------------------

@pytest.mark.parametrize("name,code", sorted(CODES.items(), key=lambda kv: kv[1]))
def test_error_string_for_every_code(name, code):
    p = lib().llama_server_error_string(code)
    assert p != ffi.NULL
    text = ffi.string(p).decode("ascii")
    assert text and text.isprintable()
    assert lib().llama_server_error_string(code) == p          # a static string
    if code != OK:
        assert text != ffi.string(lib().llama_server_error_string(OK)).decode()


def test_error_strings_are_distinct():
    texts = [ffi.string(lib().llama_server_error_string(c)) for c in CODES.values()]
    assert len(set(texts)) == len(texts)


@pytest.mark.parametrize("code", [13, 50, 98, 100, 1000, 2 ** 31 - 1])
def test_error_string_for_unknown_codes_is_never_null(code):
    p = lib().llama_server_error_string(code)
    assert p != ffi.NULL and ffi.string(p)


def test_last_error_is_cleared_by_a_successful_call():
    rc, h = init_raw({"bogus": 1})
    assert_code(rc, "INVALID_ARGUMENT", "bogus")
    rc, h = init_raw(None)
    assert rc == OK and last_error() == ""
    assert lib().llama_server_destroy(h) == OK


# ---- NULL handle and NULL pointers ------------------------------------------------------------

def _null_handle_calls():
    buf, size, out = ffi.new("char[]", 64), ffi.new("size_t *"), ffi.new("int *")
    N = ffi.NULL
    return {
        "load_model": lambda: lib().llama_server_load_model(N, cstr(str(MODEL_PATH)), N),
        "destroy": lambda: lib().llama_server_destroy(N),
        "create_session": lambda: lib().llama_server_create_session(N, N, out),
        "close_session": lambda: lib().llama_server_close_session(N, 1),
        "create_task": lambda: lib().llama_server_create_task(N, 0, b"completion", b'{"prompt": "x"}', out),
        "get_result": lambda: lib().llama_server_get_result(N, 1, buf, 64, size, 0),
        "stream_inference": lambda: lib().llama_server_stream_inference(N, 0, b'{"prompt": "x"}', NULL_CB, N),
        "cancel_task": lambda: lib().llama_server_cancel_task(N, 1),
        "get_status": lambda: lib().llama_server_get_status(N, buf, 64, size),
        "get_session_info": lambda: lib().llama_server_get_session_info(N, 1, buf, 64, size),
    }


@pytest.mark.parametrize("fn", list(_null_handle_calls()))
def test_null_handle(fn):
    assert_code(_null_handle_calls()[fn](), "INVALID_ARGUMENT", "NULL")


@pytest.mark.model
@pytest.mark.parametrize("case", ["create_session.session_id", "create_task.task_id",
                                  "create_task.task_type", "create_task.input_json"])
def test_null_pointer_arguments(server, case):
    h, N = server.handle, ffi.NULL
    tid = ffi.new("int *")
    rc = {
        "create_session.session_id": lambda: lib().llama_server_create_session(h, N, N),
        "create_task.task_id": lambda: lib().llama_server_create_task(h, 0, b"completion", b'{"prompt": "x"}', N),
        "create_task.task_type": lambda: lib().llama_server_create_task(h, 0, N, b'{"prompt": "x"}', tid),
        "create_task.input_json": lambda: lib().llama_server_create_task(h, 0, b"completion", N, tid),
    }[case]()
    assert_code(rc, "INVALID_ARGUMENT", case.split(".")[1])


# ---- every whitelisted key with a wrong type --------------------------------------------------

TYPED_KEYS = {
    "num": ["temperature", "dynatemp_range", "dynatemp_exponent", "top_p", "min_p", "typical_p",
            "top_n_sigma", "xtc_probability", "xtc_threshold", "repeat_penalty", "presence_penalty",
            "frequency_penalty", "dry_multiplier", "dry_base", "mirostat_tau", "mirostat_eta"],
    "int": ["n_predict", "top_k", "repeat_last_n", "dry_allowed_length", "dry_penalty_last_n",
            "mirostat", "seed", "n_probs", "min_keep", "n_keep", "n_indent", "t_max_predict_ms"],
    "bool": ["ignore_eos", "cache_prompt", "return_tokens", "post_sampling_probs",
             "timings_per_token", "verbose", "stream"],
    "str": ["grammar"],
    "arr": ["dry_sequence_breakers", "response_fields"],
    "obj": ["json_schema"],
    "str_or_arr": ["stop", "samplers"],
    "obj_or_arr": ["logit_bias"],
}
CHAT_TYPED_KEYS = {
    "int": ["max_tokens", "max_completion_tokens", "top_logprobs"],
    "bool": ["logprobs", "parallel_tool_calls", "add_generation_prompt"],
    "obj": ["response_format", "chat_template_kwargs"],
    "arr": ["tools", "messages"],
    "str": ["reasoning_format", "model"],
}
WRONG = {"num": ["NaN", True], "int": ["5", 2.5], "bool": ["true", 1], "str": [5, ["x"]],
         "arr": ["x", {"a": 1}], "obj": ["x", [1]], "str_or_arr": [5, [1]], "obj_or_arr": ["x", 5]}
CASES = ([("completion", k, v) for t, ks in TYPED_KEYS.items() for k in ks for v in WRONG[t]] +
         [("chat", k, v) for t, ks in CHAT_TYPED_KEYS.items() for k in ks for v in WRONG[t]])


@pytest.mark.model
@pytest.mark.parametrize("task_type,key,value", CASES,
                         ids=[f"{t}-{k}-{json.dumps(v)}" for t, k, v in CASES])
def test_wrong_type_for_every_key(server, task_type, key, value):
    base = {"prompt": "x"} if task_type == "completion" else {"messages": [{"role": "user", "content": "x"}]}
    rc, _ = create_task_raw(server, 0, task_type, {**base, key: value})
    assert_code(rc, "INVALID_ARGUMENT", f"'{key}'" if key != "messages" else key)


# ---- raw and extreme inputs -------------------------------------------------------------------

def _deep(n):
    return b'{"prompt": "x", "n_predict": 2, "logit_bias": ' + b"[" * n + b"]" * n + b"}"


# case -> (input, the code create_task must return, for accepted inputs: a check of the end)
RAW = {
    "utf8_invalid_value": (b'{"prompt": "\xff\xfe", "n_predict": 2}', E("INVALID_ARGUMENT"), None),
    "utf8_invalid_key": (b'{"\xc3\x28": 1, "prompt": "x"}', E("INVALID_ARGUMENT"), None),
    "utf8_overlong": (b'{"prompt": "\xc0\xaf"}', E("INVALID_ARGUMENT"), None),
    "utf8_truncated": (b'{"prompt": "\xe6\x97"}', E("INVALID_ARGUMENT"), None),
    # an escaped lone surrogate decodes to no valid UTF-8
    "lone_surrogate": (b'{"prompt": "\\ud800", "n_predict": 2}', E("INVALID_ARGUMENT"), None),
    "nan_literal": (b'{"prompt": "x", "temperature": NaN}', E("INVALID_ARGUMENT"), None),
    "deep_1k": (_deep(1000), E("INVALID_ARGUMENT"), None),
    "deep_100k": (_deep(100000), E("INVALID_ARGUMENT"), None),   # refused before parsing: copies recurse
    "deep_document": (b"[" * 200000, E("INVALID_ARGUMENT"), None),
    "huge_numbers": (b'{"prompt": "x", "n_predict": 1e400}', E("INVALID_ARGUMENT"), None),
    "int_overflow": (b'{"prompt": "x", "seed": 184467440737095516150}', E("INVALID_ARGUMENT"), None),
    "grammar_triggers": (b'{"prompt": "x", "grammar_triggers": [{"type": 0, "value": "x"}]}',
                         E("INVALID_ARGUMENT"), None),
    "empty_key": (b'{"prompt": "x", "": 1}', E("INVALID_ARGUMENT"), None),
    # a repeated key is valid JSON: the last one counts (3 tokens, not 2)
    "duplicate_keys": (b'{"prompt": "x", "n_predict": 2, "n_predict": 3}', OK,
                       lambda rc, body: rc == OK and body["tokens_predicted"] == 3),
    # \u0000 is a valid JSON string character: it reaches the tokenizer as text
    "nul_escape": (b'{"prompt": "a\\u0000b", "n_predict": 2}', OK,
                   lambda rc, body: rc == OK and body["tokens_evaluated"] >= 3),
    "token_ids_out_of_vocab": (b'{"prompt": [999999999], "n_predict": 2}', E("INVALID_ARGUMENT"), None),
    "token_ids_negative": (b'{"prompt": [-5, 12], "n_predict": 2}', E("INVALID_ARGUMENT"), None),
    # as llama-server: a bias for a token outside the vocabulary is ignored
    "logit_bias_bad_token": (b'{"prompt": "x", "n_predict": 2, "logit_bias": [[999999999, 1.0]]}', OK,
                             lambda rc, body: rc == OK and body["tokens_predicted"] == 2),
    "bad_grammar": (b'{"prompt": "x", "n_predict": 2, "grammar": "root ::= ("}', E("INVALID_ARGUMENT"), None),
    "bad_json_schema": (b'{"prompt": "x", "n_predict": 2, "json_schema": {"type": 5}}',
                        E("INVALID_ARGUMENT"), None),
    "empty_breakers": (b'{"prompt": "x", "n_predict": 2, "dry_sequence_breakers": []}',
                       E("INVALID_ARGUMENT"), None),
    "many_stops": (json.dumps({"prompt": "x", "n_predict": 2, "stop": ["s%d" % i for i in range(10000)]}).encode(),
                   OK, lambda rc, body: rc == OK and body["tokens_predicted"] == 2),
    # accepted (the length is known only once tokenized), then refused by the core
    "prompt_1mb": (json.dumps({"prompt": "lorem ipsum " * 87382, "n_predict": 2}).encode(), OK,
                   lambda rc, body: rc == E("INFERENCE_FAILED")
                   and "exceeds the available context size" in body["error"]["message"]),
}


def _finish(server, tid, patience_ms=5000):
    """Fetch an accepted task: it must end cleanly (a fuzzed task may run long: cancelled
    after patience_ms; 0 waits for the end)."""
    rc, text, _ = get_result_raw(server, tid, size=1 << 20, timeout_ms=patience_ms)
    if rc == E("TIMEOUT"):
        assert lib().llama_server_cancel_task(server.handle, tid) == OK
        rc, text, _ = get_result_raw(server, tid, size=1 << 20)
        assert rc == E("CANCELLED"), last_error()
    assert rc in (OK, E("INFERENCE_FAILED"), E("CANCELLED")), f"{rc}: {last_error()}"
    body = json.loads(text)
    assert ("error" in body) == (rc != OK)
    return rc, body


@pytest.mark.model
@pytest.mark.parametrize("case", list(RAW))
def test_raw_and_extreme_task_input(server, case):
    data, expected, check = RAW[case]
    rc, tid = create_task_raw(server, 0, "completion", data)
    assert rc == expected, f"{case}: {rc} {last_error()!r}"
    if rc == OK:
        rc, body = _finish(server, tid, patience_ms=0)   # 2-3 tokens: no cancel, whatever the load
        assert check(rc, body), f"{case}: {rc} {body}"
    else:
        assert last_error()


@pytest.mark.model
@pytest.mark.parametrize("task_type", [b"\xff\xfe", b"chat\xc3", b"x" * 10000, b"completion\n"])
def test_raw_task_types(server, task_type):
    tid = ffi.new("int *")
    rc = lib().llama_server_create_task(server.handle, 0, task_type, b'{"prompt": "x"}', tid)
    detail = assert_code(rc, "INVALID_ARGUMENT", "task type")
    assert len(detail) < 1000, "the detail message should not echo huge input"


# ---- seeded random fuzz -----------------------------------------------------------------------

ALL_KEYS = [k for ks in TYPED_KEYS.values() for k in ks] + [k for ks in CHAT_TYPED_KEYS.values() for k in ks]
JUNK_KEYS = ["bogus", "grammar_triggers", "__proto__", "", "n_predict ", "PROMPT", "\u00e9t\u00e9"]
VALUES = [0, 1, -1, 2, 7, 0.5, -0.5, 1e308, -1e308, 2 ** 63, -(2 ** 63), 2 ** 64, 1e-308, "NaN", "inf",
          "-Infinity", "", "x" * 1000, "\u0000", "\u65e5\u672c\u8a9e", "\U0001F600", True, False, None,
          [], {}, [1, "a", None], {"a": [1, {"b": 2}]}, [[[]]], ["a", "b"], [[1, 0.5]], {"1": -1}]


def random_input(rng: random.Random):
    if rng.random() < 0.5:
        task_type = "completion"
        inp = {"prompt": rng.choice(["Hello", "1, 2, 3,", "", [1, 2, 3], rng.choice(VALUES)])}
    else:
        task_type = "chat"
        msg = rng.choice([{"role": "user", "content": "Hi"}, {"role": "system", "content": "x"},
                          {"role": "assistant", "content": None}, {"role": "tool", "content": "x"},
                          {"role": "user", "content": [{"type": "text", "text": "Hi"}]},
                          {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]},
                          {"role": rng.choice(VALUES), "content": rng.choice(VALUES)}])
        inp = {"messages": [msg] if rng.random() < 0.9 else rng.choice(VALUES)}
    inp["n_predict"] = 4
    for _ in range(rng.randint(0, 5)):
        key = rng.choice(ALL_KEYS) if rng.random() < 0.85 else rng.choice(JUNK_KEYS)
        inp[key] = rng.choice(VALUES)
    text = json.dumps(inp)
    if rng.random() < 0.1:       # sometimes not even JSON: cut it
        text = text[: rng.randint(0, len(text))]
    return task_type, text.encode()


@pytest.mark.model
@pytest.mark.parametrize("seed", range(10))
def test_seeded_random_task_input(server, seed):
    rng = random.Random(seed)
    for _ in range(20):
        task_type, data = random_input(rng)
        rc, tid = create_task_raw(server, rng.choice([0, -1]), task_type, data)
        assert rc in (OK, E("INVALID_ARGUMENT"), E("NOT_SUPPORTED")), f"{data[:300]!r}: {rc} {last_error()!r}"
        if rc == OK:
            _finish(server, tid)
        else:
            assert last_error()


@pytest.mark.model
@pytest.mark.parametrize("seed", range(3))
def test_seeded_random_session_config(server, seed):
    rng = random.Random(1000 + seed)
    sid = ffi.new("int *")
    for _ in range(30):
        cfg = {rng.choice(ALL_KEYS + JUNK_KEYS + ["system_prompt", "keep_history"]): rng.choice(VALUES)
               for _ in range(rng.randint(1, 4))}
        rc = lib().llama_server_create_session(server.handle, cstr(cfg), sid)
        assert rc in (OK, E("INVALID_ARGUMENT")), f"{cfg}: {rc} {last_error()!r}"
        if rc == OK:
            assert sid[0] > 0
            assert lib().llama_server_close_session(server.handle, sid[0]) == OK


SERVER_KEYS = ["n_parallel", "n_ctx", "n_batch", "n_ubatch", "n_threads", "n_threads_batch", "n_gpu_layers",
               "flash_attn", "cont_batching", "timeout_read", "timeout_write", "slot_prompt_similarity",
               "max_queued_tasks", "cache_ram_mib"]


@pytest.mark.parametrize("seed", range(3))
def test_seeded_random_server_config(seed):
    rng = random.Random(2000 + seed)
    for _ in range(50):
        cfg = {rng.choice(SERVER_KEYS + JUNK_KEYS): rng.choice(VALUES) for _ in range(rng.randint(1, 4))}
        rc, h = init_raw(cfg)
        assert rc in (OK, E("INVALID_ARGUMENT")), f"{cfg}: {rc} {last_error()!r}"
        assert (h != ffi.NULL) == (rc == OK)
        if rc == OK:
            assert lib().llama_server_destroy(h) == OK


# ---- after all of the above, the same server still works --------------------------------------

@pytest.mark.model
def test_server_still_answers_after_the_fuzz(server):
    st = server.status()
    assert st["state"] == "ready" and st["tasks"]["queued"] == st["tasks"]["running"] == 0
    r = server.run(0, "chat", {"messages": [{"role": "user", "content": "What is the capital of France?"}],
                               "n_predict": 16, "temperature": 0})
    assert "Paris" in r["choices"][0]["message"]["content"]


@pytest.mark.model
def test_deep_input_on_a_small_stack_is_refused_not_a_crash(server):
    # an Erlang dirty scheduler's stack is small; json copies recurse once per level
    out = {}

    def call():
        out["rc"], _ = create_task_raw(server, 0, "completion", _deep(100000))
        out["detail"] = last_error()

    old = threading.stack_size(256 * 1024)
    try:
        th = threading.Thread(target=call)
        th.start()
        th.join()
    finally:
        threading.stack_size(old)
    assert out["rc"] == E("INVALID_ARGUMENT") and "nested deeper than 64" in out["detail"]
