"""Test support of test_20_nif_conformance.py. Talk to the NIF from Python: an Erlang node
running test/llama_nif_port.erl as a port program (4-byte length frames of external term
format, via erlang-py's `erlang` module).

Python str <-> Erlang binary, dict <-> map, list <-> list, Atom <-> atom, tuple <-> tuple.
Calls made with the same `caller` run in one Erlang process, in order, so a task's messages
reach the process that created it; different callers run concurrently.
"""
from __future__ import annotations

import itertools
import os
import queue
import shutil
import struct
import subprocess
import tempfile
import threading
from pathlib import Path

import erlang

from llama_nif_tools import paths


class Atom(str):
    """An Erlang atom on the Python side (a str subclass, so it compares with plain strings)."""


def to_erl(v):
    if isinstance(v, Atom):
        return erlang.OtpErlangAtom(v.encode())
    if isinstance(v, bool) or v is None:
        return erlang.OtpErlangAtom(b"null") if v is None else v
    if isinstance(v, str):
        return erlang.OtpErlangBinary(v.encode("utf-8"))
    if isinstance(v, bytes):
        return erlang.OtpErlangBinary(v)
    if isinstance(v, dict):
        return {to_erl(k): to_erl(x) for k, x in v.items()}
    if isinstance(v, list):
        return [to_erl(x) for x in v]
    if isinstance(v, tuple):
        return tuple(to_erl(x) for x in v)
    return v


def from_erl(v):
    if isinstance(v, erlang.OtpErlangAtom):
        return Atom(v.value.decode())
    if isinstance(v, erlang.OtpErlangBinary):
        try:
            return v.value.decode("utf-8")
        except UnicodeDecodeError:
            return v.value
    if isinstance(v, dict):
        return {from_erl(k): from_erl(x) for k, x in v.items()}
    if isinstance(v, (list, erlang.OtpErlangList)):
        return [from_erl(x) for x in (v.value if isinstance(v, erlang.OtpErlangList) else v)]
    if isinstance(v, tuple):
        return tuple(from_erl(x) for x in v)
    return v


class NifPort:
    def __init__(self):
        self.ebin = Path(tempfile.mkdtemp(prefix="llama_nif_port_"))
        sources = [paths.ROOT / "src" / "llama_nif.erl", paths.ROOT / "src" / "llama_nif_events.erl",
                   paths.ROOT / "test" / "llama_nif_port.erl"]
        subprocess.run(["erlc", "-o", str(self.ebin), *map(str, sources)], check=True)
        env = {**os.environ, "LLAMA_NIF_SO": str(paths.PRIV / "llama_nif.so")}
        self.proc = subprocess.Popen(["erl", "-noinput", "-pa", str(self.ebin), "-s", "llama_nif_port", "main"],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env)
        self._ids = itertools.count(1)
        self._waiting: dict[int, queue.Queue] = {}
        self._lock = threading.Lock()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self):
        out = self.proc.stdout
        while True:
            head = out.read(4)
            if len(head) < 4:
                break
            body = out.read(struct.unpack(">I", head)[0])
            rid, result = erlang.binary_to_term(body)
            with self._lock:
                q = self._waiting.pop(rid, None)
            if q:
                q.put(from_erl(result))
        with self._lock:   # the node died: wake everyone
            for q in self._waiting.values():
                q.put(EOFError("the Erlang node exited"))
            self._waiting.clear()

    def call(self, fun: str, *args, caller=0, timeout: float = 300):
        rid = next(self._ids)
        q: queue.Queue = queue.Queue()
        with self._lock:
            self._waiting[rid] = q
            frame = erlang.term_to_binary((rid, to_erl(caller), erlang.OtpErlangAtom(fun.encode()),
                                           [to_erl(a) for a in args]))
            self.proc.stdin.write(struct.pack(">I", len(frame)) + frame)
            self.proc.stdin.flush()
        r = q.get(timeout=timeout)
        if isinstance(r, Exception):
            raise r
        return r

    def close(self):
        try:
            self.proc.stdin.close()
            self.proc.wait(timeout=60)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
            shutil.rmtree(self.ebin, ignore_errors=True)
