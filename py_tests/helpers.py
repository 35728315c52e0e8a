"""Helpers shared by the conformance suite: raw C calls (to pass NULLs and odd buffers),
error codes by short name, and waits on the server's own state."""
from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import textwrap
import time

from llama_nif_tools import paths
from llama_nif_tools.binding import CODES, NAMES, ffi, last_error, lib  # noqa: F401 (re-exported)
from llama_nif_tools.build import pins

MODEL_PATH = paths.MODELS / pins.DEFAULT_MODEL.filename
ROOT = paths.ROOT
HEADER = ROOT / "c_src" / "include" / "llama_server.h"
LIB_DIR = paths.BUILD / "lib"
# the two libraries the build makes, by file name
BUILT_LIBS = {"libllama_server.so": LIB_DIR / "libllama_server.so", "llama_nif.so": paths.PRIV / "llama_nif.so"}

OK = CODES["LLAMA_SUCCESS"]

# A completion that runs for many seconds on a CPU: tests that need a task "running" or a
# queue "blocked" use it and cancel it; its prompt is short so that it starts decoding at once.
LONG = {"prompt": "Count from 1 to 1000: 1, 2, 3,", "n_predict": 900, "ignore_eos": True,
        "temperature": 0}


def E(name: str) -> int:
    """Error code by short name: E("TIMEOUT") == LLAMA_ERROR_TIMEOUT."""
    return CODES["LLAMA_ERROR_" + name]


def cstr(v):
    """None -> NULL, str -> UTF-8 bytes, dict/list -> JSON bytes, bytes as they are."""
    if v is None:
        return ffi.NULL
    if isinstance(v, bytes):
        return v
    if isinstance(v, str):
        return v.encode("utf-8")
    return json.dumps(v).encode("utf-8")


def init_raw(config=None):
    h = ffi.new("void **")
    rc = lib().llama_server_init(h, cstr(config))
    return rc, h[0]


def create_task_raw(server, session_id, task_type, inp):
    tid = ffi.new("int *")
    rc = lib().llama_server_create_task(server.handle, session_id, cstr(task_type), cstr(inp), tid)
    return rc, tid[0]


def get_result_raw(server, task_id, size=1 << 16, timeout_ms=0):
    """(rc, text written into the buffer, *actual_size)."""
    buf = ffi.new("char[]", size) if size else ffi.NULL
    actual = ffi.new("size_t *", 12345)
    rc = lib().llama_server_get_result(server.handle, task_id, buf, size, actual, timeout_ms)
    text = ffi.string(buf).decode("utf-8") if size else None
    return rc, text, actual[0]


def assert_code(rc: int, name: str, *mentions: str) -> str:
    """rc is LLAMA_ERROR_<name>, and last_error() (this thread) mentions every given word."""
    detail = last_error()
    assert NAMES.get(rc, rc) == "LLAMA_ERROR_" + name, f"got {NAMES.get(rc, rc)}: {detail!r}"
    assert detail, "a failed call must leave a detail message"
    for m in mentions:
        assert m in detail, f"last_error {detail!r} should mention {m!r}"
    return detail


# Limits that only detect a hang (never a speed claim) are multiplied by this: sanitizer runs
# (make test-asan / test-tsan) execute the model 5-20 times slower.
SLOWDOWN = float(os.environ.get("LLAMA_NIF_TEST_SLOWDOWN", "1"))


def wait_until(pred, what: str, timeout: float = 120.0):
    """Poll a condition on the server's state (only where no event exists to wait on)."""
    deadline = time.monotonic() + timeout * SLOWDOWN
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)   # poll interval: do not steal the 2 cores from the model


def slot_of_task(server, task_id):
    return next((s for s in server.status()["slots"] if s["task"] == task_id), None)


def wait_dispatched(server, task_id):
    """Until the task holds a slot (it left the queue)."""
    return wait_until(lambda: slot_of_task(server, task_id), f"task {task_id} on a slot")


def let_tokens_flow(server, k: int = 3):
    """Stream a stateless completion until it has produced k text chunks, then stop it.

    With continuous batching every task already on a slot decodes in the same batches,
    so a task dispatched before this call has generated tokens once this returns.
    """
    n = 0
    for chunk in server.stream(0, {"prompt": "1, 2, 3,", "n_predict": 64, "ignore_eos": True}):
        if chunk.get("content"):
            n += 1
            if n >= k:
                break
    assert n >= k, "the clock stream ended early"


def sh(cmd, **kw) -> str:
    """Run a command (e.g. a compiler, nm, objdump); its stdout, asserting it succeeded."""
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=kw.pop("timeout", 300), **kw)
    assert p.returncode == 0, f"{' '.join(map(str, cmd))} -> {p.returncode}\n{p.stdout[-3000:]}\n{p.stderr[-3000:]}"
    return p.stdout


# ---- one process per case: a regression that kills the process fails its own test ----------

CHILD = textwrap.dedent("""
    import json, sys
    sys.path.insert(0, {python!r})
    from llama_nif_tools.binding import LlamaError, Server
    steps = json.loads(sys.stdin.read())
    out, s, resume = [], None, None
    for op, *args in steps:
        if resume and op not in resume:
            continue
        resume = None
        try:
            if op == "init":
                s = Server(args[0]); r = None
            elif op == "load":
                s.load_model(args[0], args[1]); r = None
            elif op == "session":
                r = s.create_session(args[0]).id
            elif op == "run":
                r = s.run(0, args[0], args[1], 120000)
            elif op == "status":
                r = s.status()
            out.append([op, 0, r])
        except LlamaError as e:
            out.append([op, e.code, e.detail])
            if op in ("init", "load"):
                resume = ("init",) if op == "init" else ("init", "load")
    print(json.dumps(out))
""").format(python=str(paths.ROOT / "python"))


def _limit_address_space(max_bytes):
    def limit():
        resource.setrlimit(resource.RLIMIT_AS, (max_bytes, max_bytes))
    return limit


def run_steps(steps, max_address_space=None):
    """Runs [op, *args] steps (init, load, session, run, status) in a fresh Python process, each
    as [op, code, result or detail]. After a failed init the steps go on at the next init;
    after a failed load, at the next init or load (a retry on the same handle). Asserts that
    the process survived. max_address_space (bytes, RLIMIT_AS): a safety net for a case that
    could otherwise make the child allocate the machine's memory (then allocations fail)."""
    p = subprocess.run([sys.executable, "-c", CHILD], input=json.dumps(steps), capture_output=True, text=True,
                       timeout=600 * SLOWDOWN,
                       preexec_fn=_limit_address_space(max_address_space) if max_address_space else None)
    assert p.returncode == 0, f"the process died ({p.returncode}):\n{p.stderr[-3000:]}"
    return json.loads(p.stdout.strip().splitlines()[-1])


SCRIPT_PRELUDE = textwrap.dedent("""
    import json, sys, threading
    sys.path[:0] = [{python!r}, {tests!r}]
""").format(python=str(paths.ROOT / "python"), tests=str(paths.ROOT / "py_tests"))


def run_script(source: str, timeout: float = 300):
    """Runs a Python script (dedented; sys.path holds the binding and these helpers; json, sys and
    threading imported) in a fresh process and returns the JSON its last line of output holds.
    Asserts that the process survived and ended within timeout seconds (times SLOWDOWN): a
    deadlock fails the test instead of hanging the suite."""
    try:
        p = subprocess.run([sys.executable, "-c", SCRIPT_PRELUDE + textwrap.dedent(source)], capture_output=True,
                           text=True, timeout=timeout * SLOWDOWN)
    except subprocess.TimeoutExpired as e:
        err = e.stderr.decode("utf-8", "replace") if isinstance(e.stderr, bytes) else e.stderr or ""
        raise AssertionError(f"the process hung (killed after {e.timeout:.0f} s):\n{err[-3000:]}") from None
    assert p.returncode == 0, f"the process died ({p.returncode}):\n{p.stderr[-3000:]}"
    return json.loads(p.stdout.strip().splitlines()[-1])
