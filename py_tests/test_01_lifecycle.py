"""init / load_model / destroy / set_log: handles, model loading and its failures.
(The 20-cycle leak check lives in test_11_lifecycle_leaks.py.)"""
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from conftest import new_server
from helpers import MODEL_PATH, OK, assert_code, cstr, ffi, init_raw, lib
from llama_nif_tools.binding import Server


def test_init_null_config_gives_defaults_and_destroy():
    rc, h = init_raw(None)
    assert rc == OK and h != ffi.NULL
    s = Server.__new__(Server)          # wrap the raw handle to read its status
    s.lib, s.handle = lib(), h
    st = s.status()
    assert st["state"] == "no_model" and st["model"] is None
    assert st["n_parallel"] == 4 and len(st["slots"]) == 4          # documented default
    assert st["tasks"]["max_queued"] == 256
    assert lib().llama_server_destroy(h) == OK


def test_init_null_out_pointer():
    assert_code(lib().llama_server_init(ffi.NULL, ffi.NULL), "INVALID_ARGUMENT", "server_handle")


def test_init_failure_sets_handle_to_null():
    h = ffi.new("void **", ffi.cast("void *", 0x1234))
    assert_code(lib().llama_server_init(h, b'{"n_parallel": 0}'), "INVALID_ARGUMENT", "n_parallel")
    assert h[0] == ffi.NULL


def test_destroy_null_is_invalid_argument():
    assert_code(lib().llama_server_destroy(ffi.NULL), "INVALID_ARGUMENT")


def test_destroyed_handle_is_refused():
    rc, h = init_raw(None)
    assert rc == OK
    assert lib().llama_server_destroy(h) == OK
    size = ffi.new("size_t *")
    sid = ffi.new("int *")
    assert_code(lib().llama_server_get_status(h, ffi.NULL, 0, size), "INVALID_ARGUMENT")
    assert_code(lib().llama_server_create_session(h, ffi.NULL, sid), "INVALID_ARGUMENT")
    assert_code(lib().llama_server_load_model(h, cstr(str(MODEL_PATH)), ffi.NULL), "INVALID_ARGUMENT")
    assert_code(lib().llama_server_destroy(h), "INVALID_ARGUMENT")


def test_calls_before_load_model():
    s = new_server(load=False)
    try:
        sid = ffi.new("int *")
        tid = ffi.new("int *")
        assert_code(lib().llama_server_create_session(s.handle, ffi.NULL, sid), "MODEL_NOT_LOADED")
        assert_code(lib().llama_server_create_task(s.handle, 0, b"completion", b'{"prompt": "x"}', tid),
                    "MODEL_NOT_LOADED")
        cb = ffi.callback("int(const char *, size_t, int, void *)", lambda *a: 0)
        assert_code(lib().llama_server_stream_inference(s.handle, 0, b'{"prompt": "x"}', cb, ffi.NULL),
                    "MODEL_NOT_LOADED")
        assert_code(lib().llama_server_cancel_task(s.handle, 1), "TASK_NOT_FOUND")
        assert s.status()["state"] == "no_model"
    finally:
        s.destroy()


@pytest.mark.model
@pytest.mark.parametrize("kind", ["missing", "text_file", "directory", "bad_gguf_header", "truncated_gguf"])
def test_load_failures_then_a_good_load(make_server, tmp_path, kind):
    if kind == "missing":
        path = tmp_path / "nope.gguf"
    elif kind == "directory":
        path = tmp_path
    else:
        path = tmp_path / f"{kind}.gguf"
        data = {"text_file": b"hello, I am not a model\n",
                "bad_gguf_header": b"GGUF" + bytes(range(256)) * 64,
                "truncated_gguf": MODEL_PATH.read_bytes()[: 1 << 20]}[kind]
        path.write_bytes(data)
    s = make_server(load=False)
    rc = lib().llama_server_load_model(s.handle, cstr(str(path)), ffi.NULL)
    assert_code(rc, "MODEL_LOAD_FAILED", str(path))
    assert s.status()["state"] == "no_model"
    s.load_model(MODEL_PATH)   # a failed load leaves the handle usable
    assert s.status()["state"] == "ready"


def test_load_null_path(make_server):
    s = make_server(load=False)
    assert_code(lib().llama_server_load_model(s.handle, ffi.NULL, ffi.NULL), "INVALID_ARGUMENT", "model_path")


@pytest.mark.model
def test_second_load_on_one_handle_fails(make_server):
    s = make_server()
    rc = lib().llama_server_load_model(s.handle, cstr(str(MODEL_PATH)), ffi.NULL)
    assert_code(rc, "MODEL_LOAD_FAILED", "already")
    r = s.run(0, "completion", {"prompt": "The capital of France is", "n_predict": 4, "temperature": 0})
    assert "Paris" in r["content"]


@pytest.mark.model
def test_two_handles_in_one_process(make_server):
    a, b = make_server(), make_server()
    for s in (a, b):
        assert s.run(0, "completion", {"prompt": "1, 2, 3,", "n_predict": 2})["tokens_predicted"] == 2
    a.destroy()
    assert b.status()["state"] == "ready"   # destroying one handle leaves the other alone


@pytest.mark.model
def test_set_log_routes_lines_to_the_callback():
    got = []
    lock = threading.Lock()

    @ffi.callback("void(int, const char *, void *)")
    def on_log(level, text, user):
        with lock:
            got.append((level, ffi.string(text).decode("utf-8", "replace"), user))

    tag = ffi.cast("void *", 0xBEEF)
    try:
        lib().llama_server_set_log(1, on_log, tag)          # INFO and above
        s = Server({"n_parallel": 1, "n_ctx": 256})         # no log_level: it would reset the sink
        s.load_model(MODEL_PATH)
        s.destroy()
        assert got, "loading a model at INFO level logs something"
        assert all(level >= 1 for level, _, _ in got)
        assert all(user == tag for _, _, user in got)
        got.clear()
        lib().llama_server_set_log(4, on_log, ffi.NULL)     # NONE: nothing reaches the callback
        s = Server({"n_parallel": 1, "n_ctx": 256})
        s.load_model(MODEL_PATH)
        s.destroy()
        assert got == []
    finally:
        lib().llama_server_set_log(3, ffi.NULL, ffi.NULL)   # back to quiet stderr


EXIT_WITHOUT_DESTROY = """
import sys
from llama_nif_tools.binding import Server
s = Server({"n_parallel": 2, "n_ctx": 512, "log_level": "error"})
s.load_model(sys.argv[1])
s.create_task(0, "completion", {"prompt": "Once upon a time", "n_predict": 900, "ignore_eos": True})
for i, _ in enumerate(s.stream(0, {"prompt": "1, 2, 3,", "n_predict": 200, "ignore_eos": True})):
    if i == 3:
        break
print("exiting", flush=True)   # generation still running, no destroy
"""


@pytest.mark.model
def test_exit_with_a_live_server_and_tasks_running_is_clean():
    # exit() used to run llama.cpp's static destructors under the compute threads (SIGSEGV
    # 3 runs in 5); the library now stops live servers from an atexit handler first
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "python")}
    for _ in range(4):
        p = subprocess.run([sys.executable, "-c", EXIT_WITHOUT_DESTROY, str(MODEL_PATH)],
                           env=env, capture_output=True, text=True, timeout=120)
        assert p.returncode == 0 and "exiting" in p.stdout, (p.returncode, p.stderr[-2000:])
