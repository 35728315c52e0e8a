"""Configuration validation: server, model, session and task input JSON.

Every rejection must be LLAMA_ERROR_INVALID_ARGUMENT with last_error naming the key.
"""
import pytest

from helpers import MODEL_PATH, OK, assert_code, create_task_raw, cstr, ffi, init_raw, lib
from llama_nif_tools.binding import Server

BAD_JSON = [b"{", b'{"n_parallel": }', b"{'n_parallel': 4}", b'{"a": 1} trailing', b"\xff\xfe{}",
            b'{"a": "\xc3\x28"}']
NOT_OBJECT = [b"[1, 2]", b"42", b'"text"', b"true"]


# ---- server config ----------------------------------------------------------------------------

def test_server_config_accepts_every_documented_key():
    cfg = {"n_parallel": 3, "n_ctx": 512, "n_batch": 256, "n_ubatch": 128, "n_threads": 2,
           "n_threads_batch": 2, "n_gpu_layers": 0, "flash_attn": False, "cont_batching": True,
           "timeout_read": 30, "timeout_write": 30.5, "slot_prompt_similarity": 0.5,
           "max_queued_tasks": 7, "cache_ram_mib": 0, "log_level": "error", "main_gpu": 0,
           "split_mode": "row", "tensor_split": [3, 1.5]}
    with Server(cfg) as s:
        st = s.status()
        assert st["n_parallel"] == 3 and len(st["slots"]) == 3
        assert st["tasks"]["max_queued"] == 7


@pytest.mark.parametrize("cfg", [None, b"{}"], ids=["NULL", "empty_object"])
def test_server_config_null_or_empty_object_means_defaults(cfg):
    rc, h = init_raw(cfg)
    assert rc == OK and h != ffi.NULL
    assert lib().llama_server_destroy(h) == OK


SERVER_BAD = [
    ({"n_ctxx": 1024}, "n_ctxx"),                 # unknown key
    ({"n_parallel": 0}, "n_parallel"), ({"n_parallel": 257}, "n_parallel"),
    ({"n_parallel": "4"}, "n_parallel"), ({"n_parallel": 2.5}, "n_parallel"),
    ({"n_parallel": 1e300}, "n_parallel"),
    ({"n_ctx": 32}, "n_ctx"), ({"n_ctx": -1}, "n_ctx"), ({"n_ctx": 2 ** 64}, "n_ctx"),
    ({"n_batch": 0}, "n_batch"), ({"n_ubatch": 0}, "n_ubatch"),
    ({"n_threads": 0}, "n_threads"), ({"n_threads": 2000}, "n_threads"),   # header: 1..1024
    ({"n_threads_batch": "2"}, "n_threads_batch"),
    ({"n_gpu_layers": -2}, "n_gpu_layers"), ({"n_gpu_layers": "all"}, "n_gpu_layers"),
    ({"timeout_read": 0}, "timeout_read"), ({"timeout_read": -5}, "timeout_read"),
    ({"timeout_write": "60"}, "timeout_write"),
    ({"slot_prompt_similarity": 1.5}, "slot_prompt_similarity"),
    ({"cont_batching": 1}, "cont_batching"), ({"flash_attn": "yes"}, "flash_attn"),
    ({"max_queued_tasks": 0}, "max_queued_tasks"), ({"cache_ram_mib": -1}, "cache_ram_mib"),
    ({"log_level": "loud"}, "log_level"), ({"log_level": 3}, "log_level"),
    ({"main_gpu": -1}, "main_gpu"), ({"main_gpu": 128}, "main_gpu"), ({"main_gpu": "0"}, "main_gpu"),
    ({"split_mode": "rows"}, "split_mode"), ({"split_mode": 1}, "split_mode"),
    ({"tensor_split": 0.5}, "tensor_split"), ({"tensor_split": [1, "a"]}, "tensor_split"),
    ({"tensor_split": [-1, 2]}, "tensor_split"),
]


@pytest.mark.parametrize("cfg,key", SERVER_BAD, ids=[f"{k}={v[k]!r}" for v, k in SERVER_BAD])
def test_server_config_rejects(cfg, key):
    rc, h = init_raw(cfg)
    try:
        assert_code(rc, "INVALID_ARGUMENT", f"'{key}'")
        assert h == ffi.NULL
    finally:
        if h != ffi.NULL:
            lib().llama_server_destroy(h)


@pytest.mark.model
def test_status_lists_devices_and_the_layers_offloaded(make_server):
    s = make_server({"n_parallel": 1, "n_ctx": 256, "split_mode": "none", "main_gpu": 0})
    st = s.status()
    cpu = [d for d in st["devices"] if d["type"] == "cpu"]
    assert len(cpu) == 1 and cpu[0]["memory_total"] > 0 and 0 < cpu[0]["memory_free"] <= cpu[0]["memory_total"]
    gpus = [d for d in st["devices"] if d["type"] in ("gpu", "igpu")]
    assert st["model"]["n_layer"] == 24                      # Qwen2.5 0.5B
    # all layers (n_gpu_layers -1) go to a GPU when there is one, else none
    assert st["model"]["gpu_layers"] == (25 if gpus else 0)


@pytest.mark.parametrize("text", BAD_JSON + NOT_OBJECT)
def test_server_config_rejects_bad_json_and_non_objects(text):
    rc, h = init_raw(text)
    detail = assert_code(rc, "INVALID_ARGUMENT", "server config")
    assert ("JSON" in detail) if text in BAD_JSON else ("object" in detail)
    assert h == ffi.NULL


# ---- model config -----------------------------------------------------------------------------

MODEL_BAD = [
    ({"n_gpu_layerz": 0}, "n_gpu_layerz"), ({"use_mmap": "yes"}, "use_mmap"),
    ({"use_mlock": 0}, "use_mlock"), ({"embedding": 1}, "embedding"),
    ({"embedding": True, "pooling": "max"}, "pooling"), ({"pooling": "mean"}, "pooling"),
    ({"chat_template": 5}, "chat_template"), ({"n_gpu_layers": "all"}, "n_gpu_layers"),
    ({"huge_pages": "on"}, "huge_pages"),
]


@pytest.mark.parametrize("cfg,key", MODEL_BAD, ids=[k + "-" + str(i) for i, (_, k) in enumerate(MODEL_BAD)])
def test_model_config_rejects(make_server, cfg, key):
    s = make_server(load=False)
    rc = lib().llama_server_load_model(s.handle, cstr(str(MODEL_PATH)), cstr(cfg))
    assert_code(rc, "INVALID_ARGUMENT", f"'{key}'")
    assert s.status()["state"] == "no_model"


@pytest.mark.parametrize("text", BAD_JSON[:2] + NOT_OBJECT[:2])
def test_model_config_rejects_bad_json_and_non_objects(make_server, text):
    s = make_server(load=False)
    rc = lib().llama_server_load_model(s.handle, cstr(str(MODEL_PATH)), text)
    assert_code(rc, "INVALID_ARGUMENT", "model config")


@pytest.mark.model
def test_model_config_documented_keys_load(make_server):
    s = make_server(model_config={"n_gpu_layers": 0, "use_mmap": True, "use_mlock": False,
                                  "huge_pages": False, "embedding": False, "chat_template": "chatml"})
    st = s.status()
    assert st["state"] == "ready" and st["model"]["embedding"] is False
    r = s.run(0, "chat", {"messages": [{"role": "user", "content": "What is the capital of France?"}],
                          "n_predict": 16, "temperature": 0})
    assert "Paris" in r["choices"][0]["message"]["content"]


# ---- session config ---------------------------------------------------------------------------

SESSION_BAD = [
    ({"sytem_prompt": "x"}, "sytem_prompt"), ({"system_prompt": 5}, "system_prompt"),
    ({"keep_history": "no"}, "keep_history"), ({"temperature": "hot"}, "temperature"),
    ({"top_p": 2}, "top_p"), ({"n_predict": 1.5}, "n_predict"), ({"stream": True}, "stream"),
    ({"grammar_triggers": []}, "grammar_triggers"), ({"messages": []}, "messages"),
    ({"stop": [1, 2]}, "stop"), ({"seed": -2}, "seed"),
]


@pytest.mark.model
@pytest.mark.parametrize("cfg,key", SESSION_BAD, ids=[k for _, k in SESSION_BAD])
def test_session_config_rejects(server, cfg, key):
    sid = ffi.new("int *", -7)
    rc = lib().llama_server_create_session(server.handle, cstr(cfg), sid)
    assert_code(rc, "INVALID_ARGUMENT", f"'{key}'")


@pytest.mark.model
@pytest.mark.parametrize("text", BAD_JSON[:3] + NOT_OBJECT[:2])
def test_session_config_rejects_bad_json_and_non_objects(server, text):
    sid = ffi.new("int *")
    assert_code(lib().llama_server_create_session(server.handle, text, sid), "INVALID_ARGUMENT", "session config")


@pytest.mark.model
def test_session_config_round_trips_in_session_info(server):
    cfg = {"system_prompt": "Be brief.", "keep_history": False, "cache_prompt": True, "n_keep": 4,
           "temperature": 0.2, "top_p": 0.9, "top_k": 20, "min_p": 0.05, "seed": 42, "n_predict": 8,
           "stop": ["\n\n"]}
    ses = server.create_session(cfg)
    try:
        info = ses.info()
        assert info["id"] == ses.id and info["config"] == cfg and info["keep_history"] is False
    finally:
        ses.close()


# ---- task input -------------------------------------------------------------------------------

P = {"prompt": "x"}
M = {"messages": [{"role": "user", "content": "hi"}]}
TASK_BAD = [
    ("completion", {**P, "n_predictt": 5}, "n_predictt"),
    ("completion", {**P, "n_predict": "5"}, "n_predict"),
    ("completion", {**P, "temperature": "0.5"}, "temperature"),
    ("completion", {**P, "top_p": 1.5}, "top_p"),
    ("completion", {**P, "top_k": 1.5}, "top_k"),
    ("completion", {**P, "stop": 5}, "stop"),
    ("completion", {**P, "stop": ["a", 1]}, "stop"),
    ("completion", {**P, "seed": -2}, "seed"),
    ("completion", {**P, "n_probs": 101}, "n_probs"),
    ("completion", {**P, "ignore_eos": "yes"}, "ignore_eos"),
    ("completion", {**P, "grammar_triggers": []}, "grammar_triggers"),
    ("completion", {**P, "messages": []}, "messages"),
    ("completion", {"prompt": 5}, "prompt"),
    ("completion", {"prompt": [["a"], ["b"]]}, "prompt"),
    ("completion", {"n_predict": 5}, "prompt"),
    ("chat", {"messages": "hi"}, "messages"),
    ("chat", {"messages": []}, "messages"),
    ("chat", {"messages": [{"content": "hi"}]}, "role"),
    ("chat", {"messages": ["hi"]}, "messages[0]"),
    ("chat", {**M, "max_tokens": "10"}, "max_tokens"),
    ("chat", {**M, "prompt": "x"}, "prompt"),
    ("chat", {**M, "top_logprobs": 21}, "top_logprobs"),
    ("chat", {**M, "temperature": None, "mirostat": 3}, "mirostat"),
    ("embedding", {"contnt": "x"}, "contnt"),
    ("rerank", {"query": "q"}, "documents"),
]


@pytest.mark.model
@pytest.mark.parametrize("task_type,inp,key", TASK_BAD,
                         ids=[f"{t}-{k}-{i}" for i, (t, _, k) in enumerate(TASK_BAD)])
def test_task_input_rejects(server, task_type, inp, key):
    rc, _ = create_task_raw(server, 0, task_type, inp)
    assert_code(rc, "INVALID_ARGUMENT", key)


@pytest.mark.model
@pytest.mark.parametrize("text", BAD_JSON + NOT_OBJECT)
def test_task_input_rejects_bad_json_and_non_objects(server, text):
    rc, _ = create_task_raw(server, 0, "completion", text)
    assert_code(rc, "INVALID_ARGUMENT", "task input")

