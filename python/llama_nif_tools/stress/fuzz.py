"""Structure-aware fuzzing of every JSON entry point of the C API, with real models loaded.

    python -m llama_nif_tools.stress.fuzz --minutes 10             # all entry points (make fuzz)
    python -m llama_nif_tools.stress.fuzz --minutes 1 --entry chat
    python -m llama_nif_tools.stress.fuzz fuzz/crashes/crash-...   # rerun one input

An input is one file: its first line names the entry point (server_config, model_config,
session_config, completion, chat, embedding, rerank, load), the rest is the JSON text handed to
the library; "load" crosses every model with server settings and model configs (fuzz_load.py). atheris (libFuzzer for Python) runs the loop, keeps the corpus and writes the input
of any crash to fuzz/crashes/. Our mutator edits the JSON as a tree (values swapped for edge
cases, keys dropped or added, strings spliced with template and grammar syntax, deep and long
values), so most inputs get past the JSON parser into validation and llama.cpp.

A finding is: the process dies (a signal, an abort), a call returns a code its contract does
not list (UNKNOWN above all) or no message, a task that does not end after cancel, or a
server that stops answering. Resource requests that are valid but huge (a 1M-token context)
are not loaded: they would measure the machine, not the library.
"""
from __future__ import annotations

import argparse
import collections
import json
import os
import random
import sys
import time
from pathlib import Path

from .. import paths
from ..binding import NAMES as C_NAMES
from ..binding import SHORT as C
from ..binding import LlamaError, Server
from ..build import pins
from ..models import embed_models
from . import fuzz_load

ENTRIES = ["server_config", "model_config", "session_config", "completion", "chat", "embedding", "rerank", "load"]
CORPUS = paths.ROOT / "fuzz" / "corpus"
CRASHES = paths.ROOT / "fuzz" / "crashes"

# the codes each call may return for bad input (llama_server.h); anything else is a finding
ALLOWED = {
    "init": {C["LLAMA_SUCCESS"], C["INVALID_ARGUMENT"], C["NOT_SUPPORTED"], C["OUT_OF_MEMORY"]},
    "load": {C["LLAMA_SUCCESS"], C["INVALID_ARGUMENT"], C["MODEL_LOAD_FAILED"], C["OUT_OF_MEMORY"], C["NOT_SUPPORTED"]},
    "session": {C["LLAMA_SUCCESS"], C["INVALID_ARGUMENT"]},
    "create": {C["LLAMA_SUCCESS"], C["INVALID_ARGUMENT"], C["NOT_SUPPORTED"], C["SERVER_BUSY"]},
    "result": {C["LLAMA_SUCCESS"], C["INFERENCE_FAILED"], C["TIMEOUT"], C["CANCELLED"]},
}
TASK_WAIT_MS = 3000            # then cancel: a fuzzed n_predict may ask for thousands of tokens
CANCEL_WAIT_MS = 60000         # a cancelled task must end by then
HUGE = {"n_ctx": 8192, "n_parallel": 8, "n_batch": 8192, "n_ubatch": 8192, "cache_ram_mib": 1024,
        "n_threads": 16, "n_threads_batch": 16, "max_queued_tasks": 100000}


class Finding(AssertionError):
    """A broken contract: atheris saves the input that caused it."""


# What the last input did: (step, code, the start of the message with digits dropped). An
# input that does something new joins the pool mutations start from (the library is not
# instrumented for coverage, so this is our guide instead of libFuzzer's).
SEEN: list = []


def expect(code: int, step: str, detail: str = "") -> None:
    SEEN.append((step, code, "".join(c for c in detail[:60] if not c.isdigit())))
    if code not in ALLOWED[step]:
        raise Finding(f"{step} returned code {code} ({detail!r}), not one of {sorted(ALLOWED[step])}")
    if code != 0 and not detail:
        raise Finding(f"{step} returned code {code} with no message")


def call(step: str, fn, *args):
    """(True, fn(*args)), or (False, None) when refused with a code the step allows."""
    try:
        out = fn(*args)
        SEEN.append((step, 0, ""))
        return True, out
    except LlamaError as e:
        expect(e.code, step, e.detail)
        return False, None


# ---- inputs ----------------------------------------------------------------------------------

def decode(data: bytes) -> tuple[str, bytes]:
    head, _, body = data.partition(b"\n")
    name = head.decode("ascii", "replace").strip()
    return (name if name in ENTRIES else ENTRIES[sum(head) % len(ENTRIES)]), body


def encode(entry: str, body: bytes) -> bytes:
    return entry.encode() + b"\n" + body


def seed_keys() -> list[str]:
    keys = set()

    def walk(v):
        if isinstance(v, dict):
            for k, x in v.items():
                keys.add(k)
                walk(x)
        elif isinstance(v, list):
            for x in v:
                walk(x)

    for f in sorted(CORPUS.glob("*/*")):
        try:
            walk(json.loads(decode(f.read_bytes())[1]))
        except ValueError:
            pass
    return sorted(keys)


SNIPPETS = ["{%", "%}", "{{", "}}", "{#", "#}", "{% macro f() %}{{ f() }}{% endmacro %}", "{{ f() }}",
            "{% for m in messages %}", "{% endfor %}", "{% if", "{% endif %}", "raise_exception('x')", "|tojson",
            "::=", "root ::= ", "(", ")", "[", "]", "*", "+", "?", '"', "\\", "\n", "\u0000", "\ufffd", "é", "日本",
            "<|im_start|>", "<|im_end|>", "<|fim_prefix|>", "<|endoftext|>", "user", "assistant", "system", "tool",
            "{5,2}", "{2,5}", "{0}", "{3,}", "{1999}", "{0,0}", "{ 9 , 8 }", "{2001,1}", "{18446744073709551617,1}"]


def random_grammar(rng: random.Random) -> str:
    """A GBNF grammar of nested groups and repetition ranges, inverted ones among them."""
    def item(depth):
        pick = rng.randrange(5)
        if pick == 0 and depth < 4:
            return "(" + " ".join(item(depth + 1) for _ in range(rng.randrange(1, 3))) + ")"
        if pick == 1:
            return "[a-" + rng.choice("cz") + "]"
        if pick == 2:
            return '"' + "ab" * rng.choice([1, 5, 300]) + '"'
        return rng.choice(['"a"', "x", "."])

    def rep(s):
        m = rng.choice([0, 1, 2, 5, 100, 1999, 2001])
        n = rng.choice([m, m + 3, max(0, m - 3), 0, 2000, 5000])
        return s + rng.choice(["", "*", "+", "?", "{%d}" % m, "{%d,}" % m, "{%d,%d}" % (m, n)])

    return "root ::= " + " ".join(rep(item(0)) for _ in range(rng.randrange(1, 4))) + '\nx ::= "y"' + rep('"z"')


def interesting(rng: random.Random, keys: list[str]):
    pick = rng.randrange(13)
    if pick == 0:
        return rng.choice([None, True, False])
    if pick == 1:
        return rng.choice([0, 1, -1, 2, 3, 7, 64, 100, 512, 4096, 2**31 - 1, 2**31, -2**31 - 1, 2**53 + 1,
                           2**63, -2**63, 2**64, 10**30])
    if pick == 2:
        return rng.choice([0.5, -0.0, 1e-300, 1e308, -1e308, 3.14, 2.0, 1e9])
    if pick == 3:
        return rng.choice(["", "x", "0", "1", "true", "null", "chat", "rank", "mean", "none", "auto", "json_object"])
    if pick == 4:
        return "".join(rng.choice(SNIPPETS) for _ in range(rng.randrange(1, 12)))
    if pick == 5:
        return rng.choice(["a", "hello ", "日本語 ", "\u0000"]) * rng.choice([100, 3000, 40000])
    if pick == 6:
        v = "x"
        for _ in range(rng.choice([10, 63, 64, 65, 200])):
            v = [v] if rng.random() < 0.5 else {"a": v}
        return v
    if pick == 7:
        return [rng.choice(["a", 1, None, {"role": "user", "content": "hi"}, "doc"])] * rng.choice([0, 1, 2, 17, 300, 5000])
    if pick == 8:
        return {rng.choice(keys): interesting(rng, keys)} if keys else {}
    if pick == 9:
        return [rng.randrange(-5, 160000) for _ in range(rng.randrange(0, 20))]   # token ids
    if pick == 11:
        return random_grammar(rng)
    if pick == 10:
        return {"role": rng.choice(["user", "assistant", "system", "tool", "x", ""]),
                "content": rng.choice(["hi", "", None, [{"type": "text", "text": "hi"}], [{"type": "image_url"}], 5])}
    return []


def nodes(v, path=()):
    yield path, v
    if isinstance(v, dict):
        for k, x in list(v.items()):
            yield from nodes(x, path + (k,))
    elif isinstance(v, list):
        for i, x in enumerate(v[:50]):
            yield from nodes(x, path + (i,))


def put(root, path, value):
    if not path:
        return value
    parent = root
    for p in path[:-1]:
        parent = parent[p]
    parent[path[-1]] = value
    return root


def mutate_tree(doc, rng: random.Random, keys: list[str]):
    all_nodes = list(nodes(doc))
    path, node = rng.choice(all_nodes)
    op = rng.randrange(7)
    if op == 0:                                             # a value becomes an edge case
        return put(doc, path, interesting(rng, keys))
    if op == 1 and isinstance(node, dict) and node:         # a key goes
        del node[rng.choice(list(node))]
        return doc
    if op == 2 and isinstance(node, dict):                  # a key comes, maybe a known one
        node[rng.choice(keys) if keys and rng.random() < 0.8 else "zz"] = interesting(rng, keys)
        return doc
    if op == 3 and isinstance(node, list) and node:          # an element repeats
        node.extend([rng.choice(node)] * rng.choice([1, 2, 10, 1000]))
        return doc
    if op == 4 and isinstance(node, str):                    # text spliced with syntax
        i = rng.randrange(len(node) + 1)
        return put(doc, path, node[:i] + rng.choice(SNIPPETS) * rng.choice([1, 1, 3, 150]) + node[i:])
    if op == 5 and isinstance(node, (int, float)) and not isinstance(node, bool):
        return put(doc, path, rng.choice([node + 1, node - 1, -node, node * 1000, str(node), float(node)]))
    _, other = rng.choice(all_nodes)                         # a subtree copied elsewhere
    return put(doc, path, json.loads(json.dumps(other)))


class Pool:
    """Inputs to mutate from, per entry point: the seeds, then inputs that did something new."""

    def __init__(self, seeds: list[Path], cap: int = 400):
        self.by_entry = {e: [] for e in ENTRIES}
        self.behaviours = set()
        self.cap = cap
        for f in seeds:
            e, body = decode(f.read_bytes())
            self.by_entry[e].append(encode(e, body))

    def offer(self, data: bytes, behaviour: tuple) -> None:
        if behaviour in self.behaviours:
            return
        self.behaviours.add(behaviour)
        inputs = self.by_entry[decode(data)[0]]
        if len(inputs) < self.cap:
            inputs.append(data)

    def pick(self, rng: random.Random, entry: str | None) -> bytes:
        entries = [e for e in ([entry] if entry else ENTRIES) if self.by_entry[e]]
        return rng.choice(self.by_entry[rng.choice(entries)])


def mutate(pool: Pool, entry_only: str | None, max_size: int, seed: int, keys: list[str]) -> bytes:
    import atheris
    rng = random.Random(seed)
    entry, body = decode(pool.pick(rng, entry_only))
    if rng.random() < 0.05 and not entry_only:
        entry = rng.choice(ENTRIES)
    if entry == "load" and rng.random() < 0.5:                # a fresh draw across the documented ranges
        return encode(entry, json.dumps(fuzz_load.draw(rng)).encode())[:max_size]
    try:
        doc = json.loads(body)
    except ValueError:
        doc = None
    if doc is None or rng.random() < 0.1:                    # plain byte mutation now and then
        body = atheris.Mutate(body, max(1, max_size - len(entry) - 1))
    else:
        for _ in range(rng.choice([1, 1, 2, 3])):
            doc = mutate_tree(doc, rng, keys)
        body = json.dumps(doc, ensure_ascii=rng.random() < 0.5).encode("utf-8", "surrogatepass")
    return encode(entry, body)[:max_size]


# ---- running one input -----------------------------------------------------------------------

class Targets:
    """Servers kept loaded across inputs: generation, embedding, rerank."""

    def __init__(self):
        self.qwen_path = str(paths.MODELS / pins.DEFAULT_MODEL.filename)
        self.tiny_rerank = str(embed_models.ensure("tiny-bert-rerank-f32"))
        self.minilm = str(embed_models.ensure("minilm-l6-v2-f16"))
        quiet = {"log_level": "none"}
        self.gen = Server({"n_parallel": 2, "n_ctx": 1024, "max_queued_tasks": 64, **quiet})
        self.gen.load_model(self.qwen_path)
        self.embed = Server({"n_parallel": 2, "n_ctx": 512, **quiet})
        self.embed.load_model(self.minilm, {"embedding": True})
        self.rerank = Server({"n_parallel": 2, "n_ctx": 512, **quiet})
        self.rerank.load_model(self.tiny_rerank, {"embedding": True, "pooling": "rank"})
        self.stats = collections.Counter()
        self.outcomes = collections.Counter()

    def healthy(self):
        for s, kind, inp in [(self.gen, "completion", {"prompt": "1 2 3", "n_predict": 1}),
                             (self.embed, "embedding", {"input": "ok"}),
                             (self.rerank, "rerank", {"query": "a", "documents": ["a"]})]:
            s.status()
            s.run(0, kind, inp, CANCEL_WAIT_MS)

    def run_task(self, server: Server, session: int, kind: str, body: bytes, tag: str = ""):
        kind_tag = f"{tag}: {kind}" if tag else kind
        ok, tid = call("create", server.create_task, session, kind, body)
        if not ok:
            if tag and SEEN[-1][1] == C["NOT_SUPPORTED"]:
                raise Finding(f"{tag}: get_status says it serves {kind}, create_task says NOT_SUPPORTED")
            self.outcomes[kind_tag + " refused"] += 1
            return
        try:
            server.get_result(tid, TASK_WAIT_MS)
            SEEN.append(("result", 0, ""))
            self.outcomes[kind_tag + " ok"] += 1
            return
        except LlamaError as e:
            expect(e.code, "result", e.detail)
            if e.code != C["TIMEOUT"]:
                self.outcomes[kind_tag + " failed"] += 1
                return
            if "ended with" in e.detail:   # the task ended (timeout_write: it waited in the queue too long)
                self.outcomes[kind_tag + " expired in the queue"] += 1
                return
        server.cancel(tid)
        try:
            server.get_result(tid, CANCEL_WAIT_MS)
            SEEN.append(("result after cancel", 0, ""))
            self.outcomes[kind_tag + " ok"] += 1
        except LlamaError as e:
            if e.code == C["TIMEOUT"]:
                raise Finding(f"task {tid} did not end {CANCEL_WAIT_MS} ms after cancel_task")
            expect(e.code, "result", e.detail)
            self.outcomes[kind_tag + " cancelled"] += 1

    def one(self, data: bytes) -> tuple:
        """Runs one input; returns what it did (for the pool)."""
        SEEN.clear()
        entry, body = decode(data)
        self._one(entry, body)
        return (entry, *SEEN)

    def _one(self, entry: str, body: bytes):
        self.stats[entry] += 1
        if entry in ("completion", "chat"):
            self.run_task(self.gen, 0, entry, body)
        elif entry == "embedding":
            self.run_task(self.embed, 0, entry, body)
        elif entry == "rerank":
            self.run_task(self.rerank, 0, entry, body)
        elif entry == "session_config":
            ok, s = call("session", self.gen.create_session, body)
            if ok:
                self.run_task(self.gen, s.id, "chat", b'{"messages": [{"role": "user", "content": "hi"}], "n_predict": 2}')
                s.close()
        elif entry == "server_config":
            self.server_config(body)
        elif entry == "model_config":
            self.model_config(body)
        elif entry == "load":
            self.load(body)

    def server_config(self, body: bytes):
        ok, s = call("init", Server, body)
        if not ok:
            return
        try:
            try:
                cfg = json.loads(body) or {}
            except ValueError:
                cfg = {}
            if isinstance(cfg, dict) and any(isinstance(cfg.get(k), (int, float)) and cfg[k] > v for k, v in HUGE.items()):
                return   # valid but huge: not loaded (see the module doc)
            qwen = sum(body) % 4 == 0   # mostly the tiny reranker: a load in milliseconds
            ok, _ = call("load", s.load_model, self.qwen_path if qwen else self.tiny_rerank,
                         None if qwen else {"embedding": True, "pooling": "rank"})
            if ok:
                self.run_task(s, 0, "completion" if qwen else "rerank",
                              b'{"prompt": "hi", "n_predict": 2}' if qwen else b'{"query": "a", "documents": ["a", "b"]}')
        finally:
            s.destroy()

    def model_config(self, body: bytes):
        s = Server({"n_parallel": 1, "n_ctx": 512, "log_level": "none"})
        try:
            try:
                cfg = json.loads(body)
            except ValueError:
                cfg = None
            emb = isinstance(cfg, dict) and cfg.get("embedding") is True
            rank = emb and cfg.get("pooling") == "rank"
            path = self.tiny_rerank if rank else self.minilm if emb else self.qwen_path
            ok, _ = call("load", s.load_model, path, body)
            if not ok:
                return
            kind, inp = (("rerank", b'{"query": "a", "documents": ["a"]}') if rank else
                         ("embedding", b'{"input": "a"}') if emb else
                         ("chat", b'{"messages": [{"role": "user", "content": "hi"}], "n_predict": 2}'))
            self.run_task(s, 0, kind, inp)
        finally:
            s.destroy()

    def load(self, body: bytes):
        """One load of the load phase (fuzz_load.py), then a task of each kind it serves."""
        try:
            doc = json.loads(body)
        except ValueError:
            doc = None
        if not isinstance(doc, dict):
            doc = {}
        model = doc.get("model") if doc.get("model") in fuzz_load.MODELS else fuzz_load.MODELS[sum(body) % len(fuzz_load.MODELS)]
        server, mcfg = doc.get("server", {}), doc.get("model_config")
        tag = f"load {model}"
        if isinstance(server, dict) and fuzz_load.too_big(server, model):
            self.outcomes[tag + ": not run (huge)"] += 1
            return
        ok, s = call("init", Server, json.dumps(server) if isinstance(server, dict) else server)
        if not ok:
            self.outcomes[tag + ": init refused"] += 1
            return
        try:
            path = self.qwen_path if model == "qwen" else str(embed_models.ensure(model))
            ok, _ = call("load", s.load_model, path, json.dumps(mcfg).encode() if mcfg is not None else None)
            if not ok:
                self.outcomes[f"{tag}: load refused ({C_NAMES.get(SEEN[-1][1], SEEN[-1][1])})"] += 1
                return
            st = s.status()["model"]
            served = fuzz_load.kinds_served(st)
            self.outcomes[f"{tag}: loaded for {served[0]}" + (" (implied)" if st.get("embedding_implied") else "")] += 1
            for kind in served:
                self.run_task(s, 0, kind, json.dumps(fuzz_load.TASKS[kind]).encode(), tag=tag)
            # a kind it does not serve is refused, not run
            other = next(k for k in ("completion", "embedding", "rerank") if k not in served)
            ok, _ = call("create", s.create_task, 0, other, json.dumps(fuzz_load.TASKS[other]).encode())
            if ok or SEEN[-1][1] != C["NOT_SUPPORTED"]:
                raise Finding(f"a {other} task on a load serving {served} was not refused with NOT_SUPPORTED")
        finally:
            s.destroy()


# ---- the loop --------------------------------------------------------------------------------

def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--runs", type=int, default=0, help="stop after this many inputs (0: --minutes decides)")
    ap.add_argument("--seed", type=int, default=0, help="libFuzzer's seed (0: from the clock)")
    ap.add_argument("--entry", choices=ENTRIES, help="fuzz one entry point only")
    ap.add_argument("--seeds-only", action="store_true", help="run the seed corpus once, no mutation")
    ap.add_argument("--work", default=str(paths.ROOT / ".cache" / "fuzz"), help="the growing corpus")
    ap.add_argument("inputs", nargs="*", help="run these input files once (e.g. a crash file)")
    args = ap.parse_args(argv)

    targets = Targets()
    keys = seed_keys()
    seeds = sorted(f for f in CORPUS.glob("*/*") if not args.entry or f.parent.name == args.entry)
    started = time.monotonic()

    def report():
        took = time.monotonic() - started
        print(f"[fuzz] {sum(targets.stats.values())} executions in {took:.0f} s, by entry point: "
              + ", ".join(f"{e} {targets.stats[e]}" for e in ENTRIES), flush=True)
        print("[fuzz] outcomes: " + ", ".join(f"{k} {v}" for k, v in sorted(targets.outcomes.items())), flush=True)

    if args.inputs or args.seeds_only:
        for f in (args.inputs or seeds):
            targets.one(Path(f).read_bytes())
        targets.healthy()
        report()
        return 0

    import atheris
    deadline = started + args.minutes * 60
    last_check = [time.monotonic()]
    pool = Pool(seeds)

    def test_one(data: bytes):
        if args.entry:
            data = encode(args.entry, decode(data)[1])
        pool.offer(data, targets.one(data))
        now = time.monotonic()
        if now - last_check[0] > 30:                      # the servers still answer
            targets.healthy()
            last_check[0] = now
        if now > deadline or (args.runs and sum(targets.stats.values()) >= args.runs):
            targets.healthy()
            report()
            print(f"[fuzz] {len(pool.behaviours)} distinct behaviours, pool: "
                  + ", ".join(f"{e} {len(v)}" for e, v in pool.by_entry.items()), flush=True)
            print("[fuzz] no crash, no broken contract", flush=True)
            os._exit(0)

    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    CRASHES.mkdir(parents=True, exist_ok=True)
    for f in seeds:                                       # libFuzzer reads one flat folder
        (work / f"seed-{f.parent.name}-{f.name}").write_bytes(f.read_bytes())
    sys.stdout.flush()
    atheris.Setup([sys.argv[0], str(work), f"-artifact_prefix={CRASHES}/", "-max_len=200000", "-timeout=300",
                   "-rss_limit_mb=16000", f"-seed={args.seed}"],
                  test_one, custom_mutator=lambda data, max_size, seed: mutate(pool, args.entry, max_size, seed, keys))
    atheris.Fuzz()
    return 0


if __name__ == "__main__":
    sys.exit(main())
