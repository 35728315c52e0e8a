"""cffi reference binding of libllama_server.so: for applications that call the C library
from Python. Needs only the standard library and cffi (`pip install ./python`); it imports
nothing else of llama_nif_tools.

Two layers: `ffi`/`lib()` give the raw C API (the conformance suite uses them to pass NULLs
and odd buffers), and `Server`/`Session` are the small Pythonic layer over it: dicts in and
out, `LlamaError` with the code and the library's detail message, streaming as an iterator.

Where it finds the header (read at import) and the library (loaded on first use):
- the header: $LLAMA_SERVER_HEADER; else the checkout's c_src/include/llama_server.h (the
  checkout is the folder three levels above this package, or $LLAMA_NIF_ROOT); else
  /usr/local/include/llama_server.h, /usr/include/llama_server.h (`make install`).
- the library: the path given to `lib()`, else $LLAMA_SERVER_LIB, else `DEFAULT_LIB`: in a
  checkout its build/lib/libllama_server.so, else the name "libllama_server.so", which the
  dynamic loader finds (e.g. after `make install`).
"""
from __future__ import annotations

import json
import os
import queue
import re
import threading
from pathlib import Path
from typing import Any, Iterator

import cffi

# a checkout: python/llama_nif_tools/binding/__init__.py -> the repository root
_ROOT = Path(os.environ.get("LLAMA_NIF_ROOT", Path(__file__).resolve().parents[3]))
_ROOT_HEADER = _ROOT / "c_src" / "include" / "llama_server.h"
SYSTEM_HEADERS = (Path("/usr/local/include/llama_server.h"), Path("/usr/include/llama_server.h"))


def _find_header() -> Path:
    env = os.environ.get("LLAMA_SERVER_HEADER")
    if env:
        return Path(env)
    for p in (_ROOT_HEADER, *SYSTEM_HEADERS):
        if p.is_file():
            return p
    raise FileNotFoundError(
        "llama_server.h not found: set LLAMA_SERVER_HEADER, or install the library (`make install`); "
        "looked at " + ", ".join(str(p) for p in (_ROOT_HEADER, *SYSTEM_HEADERS)))


HEADER = _find_header()
# in a checkout, its build (built or not); installed elsewhere, the dynamic loader's search
DEFAULT_LIB: Path | str = (_ROOT / "build" / "lib" / "libllama_server.so" if _ROOT_HEADER.is_file()
                           else "libllama_server.so")

ffi = cffi.FFI()


def _cdef_from_header(text: str) -> str:
    """The header's declarations, minus what cffi's parser does not take."""
    body = text.split('extern "C" {', 1)[1].rsplit("#ifdef __cplusplus", 1)[0]
    body = re.sub(r"/\*.*?\*/", "", body, flags=re.S)
    body = body.replace("LLAMA_SERVER_API ", "")
    return "\n".join(line for line in body.splitlines() if not line.lstrip().startswith("#"))


ffi.cdef(_cdef_from_header(HEADER.read_text()))

_lib = None
_lib_lock = threading.Lock()


def lib(path: str | os.PathLike | None = None):
    """Load the shared library once (LLAMA_SERVER_LIB, else DEFAULT_LIB)."""
    global _lib
    with _lib_lock:
        if _lib is None:
            p = path or os.environ.get("LLAMA_SERVER_LIB") or DEFAULT_LIB
            _lib = ffi.dlopen(str(p))
        return _lib


# error codes by name, read from the header so that they cannot drift
CODES = {m.group(1): int(m.group(2))
         for m in re.finditer(r"(LLAMA_(?:SUCCESS|ERROR_\w+))\s*=\s*(\d+)", HEADER.read_text())}
NAMES = {v: k for k, v in CODES.items()}
# short names: SHORT["INVALID_ARGUMENT"], SHORT["LLAMA_SUCCESS"] (the fuzz harness and soak use them)
SHORT = {k.replace("LLAMA_ERROR_", ""): v for k, v in CODES.items()}


class LlamaError(Exception):
    """A call returned a code other than LLAMA_SUCCESS."""

    def __init__(self, code: int, detail: str, result: Any = None):
        self.code = code
        self.name = NAMES.get(code, str(code))
        self.detail = detail
        self.result = result          # the task's JSON for failed/cancelled tasks
        super().__init__(f"{self.name}: {detail}")


def last_error() -> str:
    return ffi.string(lib().llama_server_last_error()).decode("utf-8", "replace")


def check(code: int) -> None:
    if code != 0:
        raise LlamaError(code, last_error())


def _c(s: str | bytes | None):
    if s is None:
        return ffi.NULL
    return s if isinstance(s, bytes) else s.encode("utf-8")


def _j(obj: Any) -> bytes | None:
    if obj is None:
        return None
    if isinstance(obj, (str, bytes)):
        return _c(obj)
    return json.dumps(obj).encode("utf-8")


def read_buffer(call, initial: int = 4096) -> str:
    """Run a buffer-filling call, growing the buffer on BUFFER_TOO_SMALL."""
    size = initial
    actual = ffi.new("size_t *")
    while True:
        buf = ffi.new("char[]", size)
        rc = call(buf, size, actual)
        if rc == CODES["LLAMA_ERROR_BUFFER_TOO_SMALL"]:
            size = actual[0] + 1
            continue
        check(rc)
        return ffi.string(buf, actual[0]).decode("utf-8")


class Server:
    """One llama_server handle. Use as a context manager, or call destroy()."""

    def __init__(self, config: dict | str | None = None):
        self.lib = lib()
        h = ffi.new("void **")
        check(self.lib.llama_server_init(h, _j(config) or ffi.NULL))
        self.handle = h[0]

    # lifecycle
    def load_model(self, path: str | os.PathLike, config: dict | str | None = None) -> None:
        check(self.lib.llama_server_load_model(self.handle, _c(str(path)), _j(config) or ffi.NULL))

    def destroy(self) -> None:
        if self.handle is not None:
            h, self.handle = self.handle, None
            check(self.lib.llama_server_destroy(h))

    def __enter__(self) -> "Server":
        return self

    def __exit__(self, *exc) -> None:
        self.destroy()

    # sessions
    def create_session(self, config: dict | str | None = None) -> "Session":
        sid = ffi.new("int *")
        check(self.lib.llama_server_create_session(self.handle, _j(config) or ffi.NULL, sid))
        return Session(self, sid[0])

    def close_session(self, session_id: int) -> None:
        check(self.lib.llama_server_close_session(self.handle, session_id))

    # tasks
    def create_task(self, session_id: int, task_type: str, input: dict | str) -> int:
        tid = ffi.new("int *")
        check(self.lib.llama_server_create_task(self.handle, session_id, _c(task_type), _j(input), tid))
        return tid[0]

    def get_result(self, task_id: int, timeout_ms: int = 0, buffer_size: int = 4096) -> dict:
        """The task's result as a dict; LlamaError (with .result) if it failed or was cancelled."""
        size = buffer_size
        actual = ffi.new("size_t *")
        while True:
            buf = ffi.new("char[]", size)
            rc = self.lib.llama_server_get_result(self.handle, task_id, buf, size, actual, timeout_ms)
            if rc == CODES["LLAMA_ERROR_BUFFER_TOO_SMALL"]:
                size = actual[0] + 1
                continue
            if rc == 0:
                return json.loads(ffi.string(buf, actual[0]))
            detail = last_error()
            result = None
            if rc in (CODES["LLAMA_ERROR_INFERENCE_FAILED"], CODES["LLAMA_ERROR_CANCELLED"],
                      CODES["LLAMA_ERROR_TIMEOUT"]) and actual[0] > 0 and buf[0] != b"\0":
                result = json.loads(ffi.string(buf, actual[0]))
            raise LlamaError(rc, detail, result)

    def run(self, session_id: int, task_type: str, input: dict, timeout_ms: int = 0) -> dict:
        return self.get_result(self.create_task(session_id, task_type, input), timeout_ms)

    def tokenize(self, content: str | list, with_pieces: bool = False, **params) -> list:
        """Token ids of `content` (or {"id", "piece"} dicts with_pieces), as llama-server's
        /tokenize; params: add_special, parse_special."""
        return self.run(0, "tokenize", {"content": content, "with_pieces": with_pieces, **params})["tokens"]

    def detokenize(self, tokens: list) -> str:
        """The text of token ids, as llama-server's /detokenize."""
        return self.run(0, "detokenize", {"tokens": tokens})["content"]

    def cancel(self, task_id: int) -> None:
        check(self.lib.llama_server_cancel_task(self.handle, task_id))

    def stream(self, session_id: int, input: dict | str) -> Iterator[dict]:
        """Yield the stream's chunks as dicts; leaving the loop early stops generation.

        stream_inference blocks, so it runs on a helper thread that feeds a queue. The
        final chunk has the key "__final__" set by this binding. Raises LlamaError at the end
        if the call did not succeed.
        """
        q: queue.Queue = queue.Queue()
        stop = threading.Event()

        @ffi.callback("int(const char *, size_t, int, void *)")
        def on_chunk(chunk, size, is_final, _user):
            d = json.loads(ffi.string(chunk, size))
            if is_final:
                d["__final__"] = True
            q.put(("chunk", d))
            return 1 if stop.is_set() else 0

        def runner():
            rc = self.lib.llama_server_stream_inference(self.handle, session_id, _j(input), on_chunk, ffi.NULL)
            q.put(("end", (rc, last_error() if rc else "")))

        th = threading.Thread(target=runner, daemon=True)
        th.start()
        try:
            while True:
                kind, val = q.get()
                if kind == "end":
                    rc, detail = val
                    if rc != 0:
                        raise LlamaError(rc, detail)
                    return
                yield val
        finally:
            stop.set()
            th.join()
            on_chunk  # keep the callback alive until the C call has returned

    def status(self) -> dict:
        return json.loads(read_buffer(lambda b, n, a: self.lib.llama_server_get_status(self.handle, b, n, a)))

    def session_info(self, session_id: int) -> dict:
        return json.loads(read_buffer(
            lambda b, n, a: self.lib.llama_server_get_session_info(self.handle, session_id, b, n, a)))


class Session:
    """A conversation on a Server: chat turns carry the history."""

    def __init__(self, server: Server, session_id: int):
        self.server, self.id = server, session_id

    def chat(self, content: str | list, **params) -> dict:
        messages = [{"role": "user", "content": content}] if isinstance(content, str) else content
        return self.server.run(self.id, "chat", {"messages": messages, **params})

    def complete(self, prompt: str, **params) -> dict:
        return self.server.run(self.id, "completion", {"prompt": prompt, **params})

    def info(self) -> dict:
        return self.server.session_info(self.id)

    def close(self) -> None:
        self.server.close_session(self.id)


def reply_text(result: dict) -> str:
    """The generated text of a chat or completion result."""
    if "choices" in result:
        return result["choices"][0]["message"].get("content") or ""
    return result["content"]
