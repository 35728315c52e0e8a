"""Soak of the C API: many threads, every task kind, cancels, timeouts, tiny buffers, sessions
closed under running tasks, streams stopped early; then an account of every task.

    python -m llama_nif_tools.stress.soak --minutes 30 --cache-ram-mib 0     (make soak-c)

Reports tasks by kind and outcome, the codes every call returned, lost tasks (created, never
ended), duplicated results (a second final result or stream end for one task, or a released
id that still answers), and the process's RSS minute by minute. Exit status 1 when anything
was lost or duplicated, a code is undocumented, or the servers are not idle at the end.
The Erlang side (processes killed at random) is test/llama_nif_soak.erl (make soak-nif).
"""
from __future__ import annotations

import argparse
import collections
import random
import sys
import threading
import time

from .. import paths
from ..binding import SHORT as C
from ..binding import LlamaError, Server
from ..build import pins
from ..models import embed_models

NAMES = {code: name for name, code in C.items()}
# what a result may end with in this workload; anything else is a finding
RESULT_CODES = {C["LLAMA_SUCCESS"], C["INFERENCE_FAILED"], C["CANCELLED"], C["TIMEOUT"], C["SERVER_BUSY"]}
PROMPTS = ["Write a limerick about", "List three facts about", "def fibonacci(n):", "Explain briefly:",
           "Translate to French:", "SELECT * FROM"]
TOPICS = ["owls", "Erlang", "the sea", "compilers", "tea", "prime numbers", "bridges", "snow"]


def rss_mib() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def heap_mib() -> tuple[float, float]:
    """glibc's malloc: (bytes in use, bytes held from the OS) over all arenas, in MiB. RSS
    growing while 'in use' stays flat is memory freed but kept by malloc, not a leak."""
    try:
        import ctypes

        class Mallinfo2(ctypes.Structure):
            _fields_ = [(n, ctypes.c_size_t) for n in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks",
                                                      "fsmblks", "uordblks", "fordblks", "keepcost")]
        libc = ctypes.CDLL(None)
        libc.mallinfo2.restype = Mallinfo2
        m = libc.mallinfo2()
        return (m.uordblks + m.hblkhd) / 2**20, (m.arena + m.hblkhd) / 2**20
    except (AttributeError, OSError):
        return 0.0, 0.0


class Ledger:
    """Every task id: created once, ended once."""

    def __init__(self):
        self.mu = threading.Lock()
        self.open = {}
        self.ended = set()
        self.duplicated = []
        self.outcomes = collections.Counter()
        self.codes = collections.Counter()
        self.undocumented = []

    def created(self, server_name: str, tid: int, kind: str):
        with self.mu:
            self.open[(server_name, tid)] = kind

    def code(self, call: str, code: int, detail: str = ""):
        with self.mu:
            self.codes[f"{call}:{NAMES.get(code, code)}"] += 1
            if code == C["UNKNOWN"] or (code != 0 and not detail):
                self.undocumented.append((call, code, detail))

    def ended_with(self, server_name: str, tid: int, outcome: str):
        with self.mu:
            key = (server_name, tid)
            if key in self.ended:
                self.duplicated.append((key, outcome))
                return
            kind = self.open.pop(key, "?")
            self.ended.add(key)
            self.outcomes[f"{kind} {outcome}"] += 1


class Soak:
    def __init__(self, minutes: float, threads: int, cache_ram_mib: int | None, seed: int):
        self.deadline = time.monotonic() + minutes * 60
        self.threads = threads
        self.seed = seed
        self.ledger = Ledger()
        cfg = {"n_parallel": 4, "n_ctx": 1024, "max_queued_tasks": 64, "log_level": "none"}
        if cache_ram_mib is not None:
            cfg["cache_ram_mib"] = cache_ram_mib
        self.gen = Server(cfg)
        self.gen.load_model(paths.MODELS / pins.DEFAULT_MODEL.filename)
        self.embed = Server({"n_parallel": 2, "n_ctx": 512, "log_level": "none"})
        self.embed.load_model(embed_models.ensure("minilm-l6-v2-f16"), {"embedding": True})
        self.rerank = Server({"n_parallel": 2, "n_ctx": 512, "log_level": "none"})
        self.rerank.load_model(embed_models.ensure("tiny-bert-rerank-f32"), {"embedding": True, "pooling": "rank"})
        self.names = {id(self.gen): "gen", id(self.embed): "embed", id(self.rerank): "rerank"}
        self.rss = []          # (seconds, MiB)
        self.sessions = 0

    # ---- one task, from creation to its end, with a random way of waiting ----
    def task(self, rng: random.Random, server: Server, session: int, kind: str, inp: dict, cancel: bool = False):
        name = self.names[id(server)]
        try:
            tid = server.create_task(session, kind, inp)
        except LlamaError as e:
            self.ledger.code("create_task", e.code, e.detail)
            return None
        self.ledger.code("create_task", 0)
        self.ledger.created(name, tid, kind)
        way = rng.random()
        try:
            if cancel or way < 0.15:                      # cancel after a short while
                try:
                    return self.finish(server, name, tid, server.get_result(tid, rng.choice([1, 20, 200])))
                except LlamaError as e:
                    self.ledger.code("get_result", e.code, e.detail)
                    if e.code != C["TIMEOUT"]:
                        return self.failed(name, tid, e)
                server.cancel(tid)
                return self.finish(server, name, tid, server.get_result(tid, 120000))
            if way < 0.35:                                # poll with short timeouts
                while True:
                    try:
                        return self.finish(server, name, tid, server.get_result(tid, rng.choice([5, 50])))
                    except LlamaError as e:
                        if e.code != C["TIMEOUT"] or e.result is not None:
                            raise
                        self.ledger.code("get_result", e.code, e.detail)
            size = 8 if way < 0.5 else 4096               # a tiny buffer first: BUFFER_TOO_SMALL, then retry
            return self.finish(server, name, tid, server.get_result(tid, 120000, buffer_size=size))
        except LlamaError as e:
            self.ledger.code("get_result", e.code, e.detail)
            return self.failed(name, tid, e)

    def finish(self, server: Server, name: str, tid: int, result: dict):
        self.ledger.code("get_result", 0)
        self.ledger.ended_with(name, tid, "ok")
        self.check_released(server, name, tid)
        return result

    def failed(self, name: str, tid: int, e: LlamaError):
        if e.code not in RESULT_CODES:
            self.ledger.undocumented.append(("get_result", e.code, e.detail))
        if e.code == C["TIMEOUT"] and e.result is None:
            self.ledger.ended_with(name, tid, "LOST (no result within 120 s)")
        else:
            self.ledger.ended_with(name, tid, NAMES.get(e.code, str(e.code)).lower())

    def check_released(self, server: Server, name: str, tid: int):
        try:
            server.get_result(tid, 1)
            self.ledger.duplicated.append(((name, tid), "answered again after its result was fetched"))
        except LlamaError as e:
            if e.code != C["TASK_NOT_FOUND"]:
                self.ledger.duplicated.append(((name, tid), f"released id gave {e.code}"))

    # ---- actions ----
    def one_shot(self, rng):
        n = rng.choice([1, 4, 16, 48])
        if rng.random() < 0.5:
            self.task(rng, self.gen, 0, "completion", {"prompt": f"{rng.choice(PROMPTS)} {rng.choice(TOPICS)}", "n_predict": n})
        else:
            self.task(rng, self.gen, 0, "chat", {"messages": [{"role": "user", "content": f"{rng.choice(PROMPTS)} {rng.choice(TOPICS)}"}],
                                                 "max_tokens": n})

    def session(self, rng):
        try:
            s = self.gen.create_session({"system_prompt": "You answer in one line.", "temperature": 0.7})
        except LlamaError as e:
            self.ledger.code("create_session", e.code, e.detail)
            return
        self.ledger.code("create_session", 0)
        self.sessions += 1
        close_early = rng.random() < 0.3
        for turn in range(rng.randint(1, 4)):
            inp = {"messages": [{"role": "user", "content": f"{rng.choice(PROMPTS)} {rng.choice(TOPICS)}"}],
                   "max_tokens": rng.choice([8, 24, 64])}
            if close_early and turn > 0:
                tid = self.gen.create_task(s.id, "chat", inp)
                self.ledger.created("gen", tid, "chat")
                s.close()                                  # its task ends as cancelled (or done)
                try:
                    self.finish(self.gen, "gen", tid, self.gen.get_result(tid, 120000))
                except LlamaError as e:
                    self.ledger.code("get_result", e.code, e.detail)
                    self.failed("gen", tid, e)
                return
            self.task(rng, self.gen, s.id, "chat", inp)
            if rng.random() < 0.3:
                s.info()
        s.close()

    def stream(self, rng):
        stop_after = rng.choice([1, 3, 1000])
        inp = {"messages": [{"role": "user", "content": f"{rng.choice(PROMPTS)} {rng.choice(TOPICS)}"}],
               "max_tokens": rng.choice([8, 32])}
        finals = chunks = 0
        try:
            for chunk in self.gen.stream(0, inp):
                if finals:
                    self.ledger.duplicated.append((("gen", "stream"), "a chunk after the final one"))
                chunks += 1
                finals += 1 if chunk.get("__final__") else 0
                if chunks >= stop_after:
                    break
            outcome = "ok" if finals == 1 else "stopped" if finals == 0 and chunks >= stop_after else "LOST"
            self.ledger.code("stream_inference", 0)
        except LlamaError as e:
            self.ledger.code("stream_inference", e.code, e.detail)
            outcome = NAMES.get(e.code, str(e.code)).lower()
        with self.ledger.mu:
            self.ledger.outcomes[f"stream {outcome}"] += 1

    def embedding(self, rng):
        n = rng.choice([1, 3, 16, 200])
        self.task(rng, self.embed, 0, "embedding", {"input": [f"{rng.choice(TOPICS)} {i}" for i in range(n)]},
                  cancel=n == 200 and rng.random() < 0.5)

    def rerank_task(self, rng):
        docs = [f"{rng.choice(TOPICS)} and {rng.choice(TOPICS)}" for _ in range(rng.choice([1, 5, 40]))]
        self.task(rng, self.rerank, 0, "rerank", {"query": rng.choice(TOPICS), "documents": docs})

    def worker(self, i: int):
        rng = random.Random(self.seed * 1000 + i)
        actions = [(self.one_shot, 4), (self.session, 3), (self.stream, 2), (self.embedding, 1), (self.rerank_task, 1),
                   (lambda r: self.gen.status(), 1)]
        fns, weights = zip(*actions)
        while time.monotonic() < self.deadline:
            rng.choices(fns, weights)[0](rng)

    def run(self) -> int:
        started = time.monotonic()
        stop = threading.Event()

        def sample():
            import ctypes
            libc = ctypes.CDLL(None)
            while not stop.wait(5):
                if getattr(self, "malloc_trim", False):
                    libc.malloc_trim(0)
                self.rss.append((time.monotonic() - started, rss_mib(), *heap_mib()))

        self.rss.append((0.0, rss_mib(), *heap_mib()))
        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        workers = [threading.Thread(target=self.worker, args=(i,), daemon=True) for i in range(self.threads)]
        for w in workers:
            w.start()
        for w in workers:
            w.join(timeout=max(1.0, self.deadline - time.monotonic()) + 300)
        stop.set()
        hung = sum(w.is_alive() for w in workers)
        return self.report(time.monotonic() - started, hung)

    def report(self, took: float, hung: int) -> int:
        L = self.ledger
        idle = all(not any(s.status()["tasks"][k] for k in ("queued", "running", "unfetched"))
                   for s in (self.gen, self.embed, self.rerank)) if not hung else False
        lost = len(L.open) + sum(v for k, v in L.outcomes.items() if "LOST" in k)
        print(f"[soak] {took / 60:.1f} min, {self.threads} threads, {self.sessions} sessions; "
              f"{sum(L.outcomes.values())} tasks/streams ended, lost {lost}, duplicated {len(L.duplicated)}, "
              f"undocumented codes {len(L.undocumented)}, hung threads {hung}, servers idle at the end: {idle}")
        print("[soak] outcomes: " + ", ".join(f"{k} {v}" for k, v in sorted(L.outcomes.items())))
        print("[soak] codes: " + ", ".join(f"{k} {v}" for k, v in sorted(L.codes.items())))
        by_minute = {}
        for t, *m in self.rss:
            by_minute[int(t // 60)] = m                   # the last sample of each minute
        print("[soak] RSS MiB by minute: " + ", ".join(f"{k + 1}:{v[0]:.0f}" for k, v in sorted(by_minute.items())))
        print("[soak] malloc in use / held MiB by minute: " +
              ", ".join(f"{k + 1}:{v[1]:.0f}/{v[2]:.0f}" for k, v in sorted(by_minute.items())))
        for what in (L.duplicated[:5], L.undocumented[:5], list(L.open.items())[:5]):
            if what:
                print("[soak]   e.g.", what)
        return 0 if (lost == 0 and not L.duplicated and not L.undocumented and not hung and idle) else 1


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--threads", type=int, default=16)
    ap.add_argument("--cache-ram-mib", type=int, default=None, help="server config cache_ram_mib (default: the library's)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--malloc-trim", action="store_true",
                    help="call glibc's malloc_trim(0) every 5 s (an experiment: is the RSS above 'in use' free memory malloc keeps?)")
    args = ap.parse_args(argv)
    soak = Soak(args.minutes, args.threads, args.cache_ram_mib, args.seed)
    soak.malloc_trim = args.malloc_trim
    return soak.run()


if __name__ == "__main__":
    sys.exit(main())
