"""The llama-server column of `make bench`: a light HTTP client (http.client + threads) whose
runs return the same JSON shapes as the C bench program's commands (bench/bench_main.c), so
that one summary serves both. Non-streaming for throughput, SSE for time to first token, and
streamed chats (/v1/chat/completions) for users arriving together (`chat`)."""
from __future__ import annotations

import http.client
import json
import threading
import time

HEADERS = {"Content-Type": "application/json"}


def _connect(port: int) -> http.client.HTTPConnection:
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=900)
    c.connect()   # before the start barrier: connecting is not part of the measured request
    return c


def _post(conn: http.client.HTTPConnection, path: str, body: dict) -> dict:
    conn.request("POST", path, json.dumps(body), HEADERS)
    r = conn.getresponse()
    data = r.read()
    if r.status != 200:
        raise RuntimeError(f"POST {path}: HTTP {r.status}: {data[:300]!r}")
    return json.loads(data)


def _stream(conn: http.client.HTTPConnection, body: dict, t0: float,
            path: str = "/completion") -> tuple[float, dict]:
    """(seconds from t0 to the first SSE event, the last event's JSON)."""
    conn.request("POST", path, json.dumps({**body, "stream": True}), HEADERS)
    r = conn.getresponse()
    if r.status != 200:
        raise RuntimeError(f"stream: HTTP {r.status}: {r.read()[:300]!r}")
    first, last = -1.0, {}
    for line in r:   # HTTPResponse undoes the chunked encoding; read to the end to reuse conn
        if not line.startswith(b"data:"):
            continue
        if first < 0:
            first = time.monotonic() - t0
        payload = line[5:].strip()
        if payload and payload != b"[DONE]":
            last = json.loads(payload)
    return first, last


def _timings(result: dict) -> dict:
    t = result.get("timings") or {}
    return {**{k: t.get(k, -1) for k in ("prompt_n", "predicted_n", "prompt_ms", "predicted_ms")},
            "cache_n": max(0, t.get("cache_n", 0))}


def _threads(n: int, setup, work) -> tuple[list, float]:
    """Run work(i, state, t0) on n threads released together; setup(i) runs before the
    barrier. Returns (the results in order, the common t0)."""
    out: list = [None] * n
    start = threading.Barrier(n + 1)
    t0_box: list[float] = []

    def body(i: int) -> None:
        try:
            state, err = setup(i), None
        except Exception as e:
            state, err = None, e
        start.wait()               # even after a failed setup: the others wait for everyone
        try:
            if err:
                raise err
            out[i] = work(i, state, t0_box[0])
        except Exception as e:   # one failed request must not hang the run
            out[i] = {"rc": str(e)}

    ths = [threading.Thread(target=body, args=(i,), daemon=True) for i in range(n)]
    for t in ths:
        t.start()
    t0_box.append(time.monotonic())
    start.wait()
    for t in ths:
        t.join()
    return out, t0_box[0]


def gen(port: int, k: int, n_predict: int, tag: str, text: str, stream: bool) -> dict:
    """K concurrent completions of n_predict tokens each: the shape of the C "gen"/"stream"."""
    def work(i, conn, t0):
        body = {"prompt": f"[{tag}-{i}] {text}", "n_predict": n_predict, "temperature": 0, "ignore_eos": True}
        submit = time.monotonic() - t0
        if stream:
            first, res = _stream(conn, body, t0)
        else:
            first, res = -1.0, _post(conn, "/completion", body)
        done = time.monotonic() - t0
        conn.close()
        return {"rc": 0, "submit_s": submit, "first_s": first, "done_s": done, **_timings(res)}

    per, _ = _threads(k, lambda i: _connect(port), work)
    return {"cmd": "stream" if stream else "gen", "k": k, "n_predict": n_predict, "per": per}


def chat(port: int, k: int, n_predict: int, tag: str, text: str) -> dict:
    """K users, each one streamed chat turn of n_predict tokens (/v1/chat/completions), all
    sent at once: the shape of the C program's "chat"."""
    def work(i, conn, t0):
        body = {"messages": [{"role": "user", "content": f"[{tag}-{i}] {text}"}], "max_tokens": n_predict,
                "temperature": 0, "ignore_eos": True}
        submit = time.monotonic() - t0
        first, res = _stream(conn, body, t0, "/v1/chat/completions")
        done = time.monotonic() - t0
        conn.close()
        return {"rc": 0, "submit_s": submit, "first_s": first, "done_s": done, **_timings(res)}

    per, _ = _threads(k, lambda i: _connect(port), work)
    return {"cmd": "chat", "k": k, "n_predict": n_predict, "per": per}


def props(port: int) -> dict:
    """GET /props: what llama-server chose (total_slots, default_generation_settings.n_ctx)."""
    c = _connect(port)
    try:
        c.request("GET", "/props")
        r = c.getresponse()
        return json.loads(r.read()) if r.status == 200 else {}
    finally:
        c.close()


def stats(v: list[float]) -> dict:
    """Median, p99, min and count, as the C program's print_stats."""
    v = sorted(v)
    n = len(v)
    if not n:
        return {"median": 0, "p99": 0, "min": 0, "n": 0}
    med = v[n // 2] if n % 2 else 0.5 * (v[n // 2 - 1] + v[n // 2])
    return {"median": med, "p99": v[int((n - 1) * 0.99 + 0.5)], "min": v[0], "n": n}


def overhead(port: int, iters: int, text: str) -> dict:
    """1-token completions in a row: round trip and round trip minus the engine's time."""
    conn = _connect(port)
    body = {"prompt": text, "n_predict": 1, "temperature": 0}
    rt, over = [], []
    for i in range(-5, iters):
        t0 = time.monotonic()
        t = _timings(_post(conn, "/completion", body))
        us = (time.monotonic() - t0) * 1e6
        if i >= 0:
            rt.append(us)
            over.append(us - (t["prompt_ms"] + t["predicted_ms"]) * 1e3)
    conn.close()
    return {"cmd": "overhead", "roundtrip_us": stats(rt), "overhead_us": stats(over)}


def embed(port: int, threads: int, n: int, text: str, docs: int = 0) -> dict:
    """threads x n requests in a row: /embedding, or /rerank with `docs` documents when docs > 0
    (the same inputs as the C program's embed / rerank)."""
    def work(i, conn, t0):
        for j in range(n):
            if docs:
                _post(conn, "/rerank", {"query": text,
                                        "documents": [f"doc {d} of {i}-{j}: {text}" for d in range(docs)]})
            else:
                _post(conn, "/embedding", {"content": f"[{i}-{j}] {text}"})
        conn.close()
        return {"rc": 0, "done": time.monotonic() - t0}

    per, _ = _threads(threads, lambda i: _connect(port), work)
    fails = sum(1 for p in per if p.get("rc") != 0)
    wall = max((p.get("done", 0) for p in per), default=0)
    return {"cmd": "rerank" if docs else "embed", "threads": threads, "requests": threads * n,
            "items": threads * n * (docs or 1), "wall_s": wall, "fails": fails}
