"""`make bench` (python -m llama_nif_tools bench): our C API, our NIF and llama.cpp's
llama-server on the same model, threads and settings, in one run, alternating per K; then
llama-batched-bench (the engine alone), the C API's per-call costs, and embeddings/rerank.
The phase "users" (`make bench-users`, issue 24) is the concurrency a new user meets: K users
send one streamed chat each at the same moment, every program at its own defaults but threads,
beside llama-batched-bench's ceiling at B = K; its table also goes to bench/RESULTS.md.
Writes bench-results/bench.json and bench.png and prints the table (bench_report.py)."""
from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .. import paths
from ..build import cmake, pins
from ..progress import say
from . import bench_http, bench_procs, bench_report

PROMPT = ("Explain, step by step, how a hash map stores and finds keys: hashing, buckets, "
          "collisions, resizing, and the cost of each operation.")
EMBED_TEXT = "The quick brown fox jumps over the lazy dog near the river bank at dawn."
TARGETS = ["llama_server", "llama_nif_bench", "llama-server", "llama-batched-bench"]


@dataclass
class Plan:
    ks: list = field(default_factory=lambda: [1, 4, 8])
    ttft_ks: list = field(default_factory=lambda: [1, 8])
    n_predict: int = 128
    repeats: int = 2                   # 3 takes a fresh clone past 20 min on a busy machine
    ttft_repeats: int = 2
    overhead_iters: int = 200
    embed_requests: int = 320          # per run, split over the client threads
    rerank_requests: int = 40
    rerank_docs: int = 8
    embed_threads: list = field(default_factory=lambda: [1, 8])
    control: bool = False              # a second C API process in the throughput rounds
    generations: int = 1               # fresh processes this many times, `repeats` rounds each
    server_huge_pages: bool = False    # llama-server with our default's memory (a control)
    settings: bench_procs.Settings = field(default_factory=bench_procs.Settings)
    # phase "users": K users arriving together, each one streamed chat of users_n_predict
    # tokens, every program at its defaults; users_threads None: our default (the cores)
    users: list = field(default_factory=lambda: [1, 4, 8, 16, 32])
    users_n_predict: int = 96
    users_threads: int | None = None

    @classmethod
    def quick(cls) -> "Plan":
        return cls(n_predict=16, repeats=1, ttft_repeats=1, overhead_iters=40, embed_requests=32,
                   rerank_requests=8, users_n_predict=16)


RESULTS = paths.ROOT / "bench" / "RESULTS.md"   # the users phase's tables, newest first

# what the runs start, under build/bin (the C API and llama_server come in through the bench program)
PROGRAMS = ["llama_nif_bench", "llama-server", "llama-batched-bench"]


def missing_programs(bin_dir: Path, names: list = PROGRAMS) -> list:
    """The programs --no-build would need that are not built (so it says so, not a traceback)."""
    return [str(bin_dir / n) for n in names if not (bin_dir / n).is_file()]


def require_built(bin_dir: Path, names: list, make_target: str) -> bool:
    """For --no-build: says which of names is not built, and whether all are."""
    missing = missing_programs(bin_dir, names)
    for m in missing:
        say(f"--no-build: {m} is not built; run `{make_target}` once without --no-build")
    return not missing


def ensure_built(skip: bool) -> bool:
    if not skip:
        for t in TARGETS:   # one at a time: the machine is small and shared
            cmake.build([t])
        return True
    return require_built(bench_procs.BIN, PROGRAMS, "make bench")


def ensure_matplotlib() -> None:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        say("installing matplotlib for the plot (pip)")
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "matplotlib"], check=False)


def _systems(model: Path, plan: Plan, out: Path) -> dict:
    """name -> (object, runner); the NIF entry is a string when it cannot run."""
    s = plan.settings
    systems: dict = {"c": bench_procs.c_worker(model, s, out / "c.log")}
    why = bench_procs.nif_missing()
    systems["nif"] = why or bench_procs.nif_worker(model, s, out / "nif.log")
    systems["server"] = bench_procs.LlamaServer(model, s, out / "llama-server.log",
                                                **(bench_procs.SERVER_HUGE_PAGES if plan.server_huge_pages else {}))
    if plan.control:
        # The noise floor: two identical processes differed by up to 2.3% in one run on
        # this VM (round-to-round noise); C/srv means no more than C/C2 does.
        systems["c2"] = bench_procs.c_worker(model, s, out / "c2.log")
    return systems


def _gen(sysobj, k: int, n: int, tag: str, stream: bool) -> dict:
    if isinstance(sysobj, bench_procs.LlamaServer):
        return bench_http.gen(sysobj.port, k, n, tag, PROMPT, stream)
    return sysobj.cmd(f"{'stream' if stream else 'gen'} {k} {n} {tag} {PROMPT}")


def _alternate(systems: dict, ks: list, repeats: int, n: int, stream: bool, res: dict) -> None:
    """For each K, repeats rounds of every system, the order reversed every other round."""
    names = [name for name, o in systems.items() if not isinstance(o, str)]
    for k in ks:
        for rep in range(repeats):
            for name in (names if rep % 2 == 0 else names[::-1]):
                tag = f"{'s' if stream else 'g'}{rep}k{k}"     # fresh prompts: no prompt-cache hits
                r = _gen(systems[name], k, n, tag, stream)
                res.setdefault(name, {}).setdefault(str(k), []).append(r)
                say(f"  {'stream' if stream else 'gen'} K={k} rep {rep + 1}/{repeats} {name}: "
                    f"{bench_report.one_line(r)}")


def _warm(systems: dict, plan: Plan) -> None:
    for o in systems.values():
        if not isinstance(o, str):
            _gen(o, plan.settings.n_parallel, 8, "warm", False)


def run_generation(model: Path, plan: Plan, out: Path, res: dict) -> None:
    """Throughput rounds, then (in the last generation) time to first token and per-call costs.
    With plan.generations > 1 every generation starts fresh processes, and the first system
    of a round rotates, so that neither a process's lifetime nor its place in the order is
    shared by all the rounds of one system."""
    for g in range(plan.generations):
        last = g == plan.generations - 1
        systems = _systems(model, plan, out)
        try:
            say("warm-up" + (f" (generation {g + 1}/{plan.generations}: fresh processes)" if plan.generations > 1 else ""))
            _warm(systems, plan)
            if g == 0:
                res["nif_status"] = systems["nif"] if isinstance(systems["nif"], str) else "ok"
                res["load_before"] = os.getloadavg()
                res["c_memory"] = systems["c"].cmd("status").get("model", {}).get("huge_pages")
            say(f"throughput: K={plan.ks}, {plan.n_predict} tokens each, {plan.repeats} rounds")
            names = list(systems)
            order = names[g % len(names):] + names[:g % len(names)]
            _alternate({n: systems[n] for n in order}, plan.ks, plan.repeats, plan.n_predict, False,
                       res.setdefault("gen", {}))
            if last:
                say(f"time to first token: K={plan.ttft_ks} (streaming)")
                streams = {name: o for name, o in systems.items() if name != "c2"}
                _alternate(streams, plan.ttft_ks, plan.ttft_repeats, plan.n_predict, True, res.setdefault("stream", {}))
                say("per-call costs (1-token completions, get_status)")
                res["overhead"] = {"c": systems["c"].cmd(f"overhead {plan.overhead_iters} {PROMPT}"),
                                   "server": bench_http.overhead(systems["server"].port, plan.overhead_iters, PROMPT)}
                res["load_after"] = os.getloadavg()
        finally:
            for o in systems.values():
                if not isinstance(o, str):
                    o.close()


def run_engine(model: Path, plan: Plan, out: Path, res: dict) -> None:
    """llama-batched-bench with our prompt length, the same ntg and B = K and min(K, n_parallel)."""
    runs = res.get("gen", {}).get("c", {}).get(str(plan.ks[0]), [])
    pn = [p["prompt_n"] for r in runs for p in r["per"] if p.get("prompt_n", -1) > 0]
    npp = int(sorted(pn)[len(pn) // 2]) if pn else 32
    npl = sorted({*plan.ks, *(min(k, plan.settings.n_parallel) for k in plan.ks)})
    say(f"llama-batched-bench: npp {npp}, ntg {plan.n_predict}, npl {npl}")
    res["engine"] = bench_procs.batched_bench(model, plan.settings, npp, plan.n_predict, npl,
                                              out / "batched-bench.log")


def _users_npp(runs: dict, default: int = 48) -> int:
    """The chats' prompt length in tokens so far (prompt_n + cache_n: the whole prompt, cached
    or not), median over every stream of every system; default before any has run."""
    n = sorted(p["prompt_n"] + p.get("cache_n", 0) for by_k in runs.values() if isinstance(by_k, dict)
               for rs in by_k.values() for r in rs for p in r.get("per", [])
               if p.get("rc") == 0 and p.get("prompt_n", -1) > 0)
    return n[len(n) // 2] if n else default


def run_users(model: Path, plan: Plan, out: Path, res: dict) -> None:
    """Users arriving together (issue 24): for each K, `repeats` rounds; in each, the C API, the
    NIF and llama-server (all at their defaults but threads) get K streamed chats sent at the
    same moment, and llama-batched-bench runs at B = K with the chats' prompt length and
    users_n_predict tokens (the engine's ceiling); the order reverses every other round."""
    d = bench_procs.DefaultsRun(plan.users_threads)
    n = plan.users_n_predict
    u = res.setdefault("users", {})
    (out / "users-batched-bench.log").write_text("")   # its runs append to it
    res["users_setup"] = {"ours": d.ours(), "server": d.server_args(), "threads": d.t(), "n_predict": n,
                          "ks": plan.users, "repeats": plan.repeats}
    systems: dict = {"c": d.c_worker(model, out / "users-c.log")}
    try:
        why = bench_procs.nif_missing()
        systems["nif"] = why or d.nif_worker(model, out / "users-nif.log")
        systems["server"] = d.server(model, out / "users-llama-server.log")
        res["users_setup"]["nif_status"] = why or "ok"
        st = systems["c"].cmd("status")
        props = bench_http.props(systems["server"].port)
        res["users_setup"]["slots"] = {"c": len(st.get("slots", [])), "server": props.get("total_slots")}
        res["users_setup"]["cpu_variant"] = st.get("backend", {}).get("cpu_variant")
        say(f"users: ours {d.ours()} ({res['users_setup']['slots']['c']} slots), "
            f"llama-server {' '.join(d.server_args())} ({props.get('total_slots')} slots); warm-up")
        for name, o in systems.items():
            if not isinstance(o, str):
                _chat(o, 2, 8, "warm")
        names = [*systems, "engine"]
        say(f"users arriving together: K={plan.users}, one chat of {n} tokens each, {plan.repeats} rounds, "
            f"llama-batched-bench at B = K")
        for k in plan.users:
            for rep in range(plan.repeats):
                for name in (names if rep % 2 == 0 else names[::-1]):
                    if isinstance(systems.get(name), str):
                        continue
                    if name == "engine":
                        npp = _users_npp(u)
                        try:
                            rows = bench_procs.batched_bench(model, bench_procs.Settings(), npp, n, [k],
                                                             out / "users-batched-bench.log",
                                                             bench_procs.ceiling_args(d.t(), k, npp, n), append=True)
                            r = next((x for x in rows if x.get("pl") == k),
                                     {"error": f"no row for B={k} (context too small?)"})
                        except RuntimeError as e:
                            r = {"error": str(e)}
                    else:
                        r = _chat(systems[name], k, n, f"u{rep}k{k}")   # fresh text: no whole-prompt cache hits
                    u.setdefault(name, {}).setdefault(str(k), []).append(r)
                    say(f"  users K={k} rep {rep + 1}/{plan.repeats} {name}: {bench_report.one_line(r)}")
    finally:
        for o in systems.values():
            if not isinstance(o, str):
                o.close()


def _chat(sysobj, k: int, n: int, tag: str) -> dict:
    if isinstance(sysobj, bench_procs.LlamaServer):
        return bench_http.chat(sysobj.port, k, n, tag, PROMPT)
    return sysobj.cmd(f"chat {k} {n} {tag} {PROMPT}")


def run_embeddings(plan: Plan, out: Path, res: dict) -> None:
    s = plan.settings
    es = bench_procs.Settings(n_parallel=s.n_parallel, n_ctx=512, n_batch=s.n_batch, n_ubatch=s.n_ubatch,
                              n_threads=s.n_threads, flash_attn=s.flash_attn, cache_ram_mib=s.cache_ram_mib)
    for kind, m, mcfg, flag in (("embed", pins.MINILM_L6_V2_F16, {"embedding": True}, "--embedding"),
                                ("rerank", pins.MINILM_L6_V2_RERANK_F16, {"embedding": True, "pooling": "rank"},
                                 "--reranking")):
        model = paths.MODELS / m.filename
        if not model.is_file():
            res.setdefault("embed_status", {})[kind] = f"n/a ({model.name} missing: make model)"
            continue
        total, docs = (plan.embed_requests, 0) if kind == "embed" else (plan.rerank_requests, plan.rerank_docs)
        c = bench_procs.c_worker(model, es, out / f"c-{kind}.log", mcfg)
        srv = None
        try:
            srv = bench_procs.LlamaServer(model, es, out / f"llama-server-{kind}.log", [flag])
            for t in plan.embed_threads:
                n = max(1, total // t)
                for rep in range(plan.repeats):
                    runs = [("c", lambda: c.cmd(f"{kind} {t} {n} {docs} {EMBED_TEXT}" if docs
                                                 else f"{kind} {t} {n} {EMBED_TEXT}")),
                            ("server", lambda: bench_http.embed(srv.port, t, n, EMBED_TEXT, docs))]
                    for name, fn in (runs if rep % 2 == 0 else runs[::-1]):
                        r = fn()
                        res.setdefault(kind, {}).setdefault(name, {}).setdefault(str(t), []).append(r)
                        say(f"  {kind} threads={t} rep {rep + 1} {name}: {bench_report.one_line(r)}")
        finally:
            c.close()
            if srv:
                srv.close()


def main(plan: Plan, skip_build: bool = False, phases: str = "gen,engine,embed",
         omp_wait_policy: str = "default", out: Path | None = None, results: Path | None = None,
         command: str = "") -> int:
    """results: the file the users phase's table is added to (bench/RESULTS.md), None: not
    recorded; command: how this run was started, for that file."""
    t_start = time.monotonic()
    bench_procs.set_omp_wait_policy(omp_wait_policy)
    out = out or paths.ROOT / "bench-results"
    out.mkdir(parents=True, exist_ok=True)
    want = set(phases.split(","))
    unknown = want - {"gen", "engine", "embed", "users"}
    if unknown:
        say(f"unknown phase(s) {','.join(sorted(unknown))}: the phases are gen, engine, embed, users")
        return 2
    if not ensure_built(skip_build):
        return 1
    if want & {"gen", "engine", "embed"}:
        ensure_matplotlib()
    model = paths.MODELS / pins.DEFAULT_MODEL.filename
    if not model.is_file():
        say(f"missing {model}: run `make model`")
        return 1
    res: dict = {"plan": {**asdict(plan), "settings": asdict(plan.settings)}, "model": model.name,
                 "cores": os.cpu_count(), "omp_wait_policy": omp_wait_policy, "load_start": os.getloadavg(),
                 "started": time.strftime("%F %T"), "phases": sorted(want), "command": command}
    if "users" in want:
        run_users(model, plan, out, res)
    if "gen" in want:
        run_generation(model, plan, out, res)
    if "engine" in want:
        run_engine(model, plan, out, res)
    if "embed" in want:
        run_embeddings(plan, out, res)
    res["load_end"] = os.getloadavg()
    res["wall_s"] = time.monotonic() - t_start
    s = bench_report.report(res, out)
    if "users" in want and results:
        bench_report.record_users(res, s, results)
        say(f"added the users table to {results}")
    return 0


def results_from_args(args) -> Path | None:
    """Where the users table is recorded: --results, else bench/RESULTS.md; not for --quick
    (a smoke run) unless --results names a file; --results none: nowhere."""
    if args.results:
        return None if args.results == "none" else Path(args.results).resolve()
    return None if args.quick else RESULTS


def command_line(argv: list[str]) -> str:
    """The make command that runs these CLI arguments (`make bench` passes BENCH_ARGS on,
    `make bench-users` after --phases users)."""
    import shlex
    rest = argv[argv.index("bench") + 1:] if "bench" in argv else list(argv)
    target = "bench"
    if rest[:2] == ["--phases", "users"]:
        target, rest = "bench-users", rest[2:]
    return f'make {target} BENCH_ARGS="{shlex.join(rest)}"' if rest else f"make {target}"


def plan_from_args(args) -> Plan:
    plan = Plan.quick() if args.quick else Plan()
    if args.repeats:
        plan.repeats = plan.ttft_repeats = args.repeats
    if args.n_predict:
        plan.n_predict = args.n_predict
    plan.control = args.control
    plan.server_huge_pages = args.server_huge_pages
    plan.generations = max(1, args.generations or 1)
    if args.n_predict:
        plan.users_n_predict = args.n_predict
    if args.users:
        plan.users = [int(k) for k in args.users.split(",")]
    plan.users_threads = args.threads
    if args.ks:
        plan.ks = [int(k) for k in args.ks.split(",")]
        plan.ttft_ks = [plan.ks[0], plan.ks[-1]]
    s = plan.settings
    plan.settings = bench_procs.Settings(n_parallel=args.parallel or s.n_parallel, n_ctx=s.n_ctx,
                                         n_batch=s.n_batch, n_ubatch=s.n_ubatch,
                                         n_threads=args.threads or s.n_threads, flash_attn=s.flash_attn,
                                         cache_ram_mib=s.cache_ram_mib)
    return plan
