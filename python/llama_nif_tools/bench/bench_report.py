"""Numbers of a `make bench` run: summary (medians of the rounds), the terminal table,
bench-results/bench.json (raw runs + summary) and bench-results/bench.png; for the users
phase (`make bench-users`) also its entry in bench/RESULTS.md."""
from __future__ import annotations

import json
import math
import os
import random
import statistics
import time
from pathlib import Path

from ..progress import say

SYSTEMS = (("c", "C API"), ("nif", "NIF"), ("server", "llama-server"))
# per-round throughput ratios: (system, reference, label); c2 is --control's second C API
RATIOS = (("c", "server", "C/srv"), ("nif", "server", "NIF/srv"), ("c", "c2", "C/C2 (noise floor)"))


def _ok(r: dict) -> bool:
    per = r.get("per", [])
    return bool(per) and all(p.get("rc") == 0 and p.get("predicted_n") == r["n_predict"] for p in per)


def tok_s(r: dict) -> float | None:
    """Aggregate tokens/s of one gen run: all tokens over first submit to last result."""
    if not _ok(r):
        return None
    per = r["per"]
    wall = max(p["done_s"] for p in per) - min(p["submit_s"] for p in per)
    return sum(p["predicted_n"] for p in per) / wall if wall > 0 else None


def ttft_ms(r: dict) -> tuple[float, float] | None:
    """(mean, max) time to first token over the sessions of one stream run, in ms."""
    if not _ok(r) or any(p["first_s"] < 0 for p in r["per"]):
        return None
    f = [(p["first_s"] - p["submit_s"]) * 1e3 for p in r["per"]]
    return statistics.fmean(f), max(f)


def items_s(r: dict) -> float | None:
    return r["items"] / r["wall_s"] if not r.get("fails") and r.get("wall_s") else None


def one_line(r: dict) -> str:
    """Progress text for one run."""
    if r.get("cmd") == "chat":
        v, t = tok_s(r), ttft_s(r)
        fails = _fails(r)
        return (f"{_f(v)} tok/s, TTFT p50 / p95 / max {_ttft_cell(t)} s"
                + (f", {fails} of {r['k']} streams FAILED or short {r.get('error') or ''}" if fails else ""))
    if "pl" in r and "t" in r:   # a llama-batched-bench row
        return f"ceiling {r['pl'] * r['tg'] / r['t']:.1f} tok/s (prefill {r['t_pp']:.2f} s, S_TG {r['speed_tg']:.1f})"
    if "error" in r and "per" not in r:
        return f"FAILED {r['error']}"
    if r.get("cmd") == "gen":
        v = tok_s(r)
        return f"{v:.1f} tok/s" if v else f"FAILED {r.get('error') or r['per']}"
    if r.get("cmd") == "stream":
        v = ttft_ms(r)
        return f"TTFT mean {v[0]:.0f} ms, max {v[1]:.0f} ms" if v else f"FAILED {r['per']}"
    v = items_s(r) if "items" in r else None
    return f"{v:.1f} items/s" if v else f"FAILED {r}"


def percentile(vals: list, q: float) -> float | None:
    """The q-quantile (0..1) of vals, linear between the closest ranks (numpy's default);
    None for no values."""
    v = sorted(x for x in vals if x is not None)
    if not v:
        return None
    pos = (len(v) - 1) * q
    lo = math.floor(pos)
    hi = min(lo + 1, len(v) - 1)
    return v[lo] + (v[hi] - v[lo]) * (pos - lo)


def _firsts(runs: list) -> list:
    """Time to first token, seconds, of every stream of these runs that got one."""
    return [p["first_s"] - p["submit_s"] for r in runs for p in r.get("per", [])
            if p.get("rc") == 0 and p.get("first_s", -1) >= 0]


def ttft_s(r: dict | list) -> dict | None:
    """p50 / p95 / max time to first token, seconds, over the streams of one chat run (or of
    a list of runs, pooled)."""
    f = _firsts(r if isinstance(r, list) else [r])
    return {"p50": percentile(f, 0.5), "p95": percentile(f, 0.95), "max": max(f), "n": len(f)} if f else None


def _fails(r: dict) -> int:
    """Streams of one run that failed, came back short, or never came back."""
    per = r.get("per", [])
    bad = sum(1 for p in per if p.get("rc") != 0 or p.get("predicted_n") != r.get("n_predict"))
    return bad + max(0, r.get("k", len(per)) - len(per))


def _median(vals: list) -> float | None:
    vals = [v for v in vals if v is not None]
    return statistics.median(vals) if vals else None


def median_interval(vals: list, level: float = 0.95, draws: int = 2000) -> tuple[float, float] | None:
    """Bootstrap interval of the median: the rounds resampled with replacement, a fixed seed so
    that a report is reproducible. None below 5 rounds, where it would say little."""
    vals = [v for v in vals if v is not None]
    if len(vals) < 5:
        return None
    rnd = random.Random(0)
    meds = sorted(statistics.median(rnd.choices(vals, k=len(vals))) for _ in range(draws))
    cut = int(draws * (1 - level) / 2)
    return meds[cut], meds[draws - 1 - cut]


def summarize(res: dict) -> dict:
    np_ = res["plan"]["settings"]["n_parallel"]
    s: dict = {"tok_s": {}, "ttft_ms": {}, "ttft_max_ms": {}, "engine": {}, "embed": {}, "rerank": {}}
    for name, _ in SYSTEMS:
        for k, runs in res.get("gen", {}).get(name, {}).items():
            s["tok_s"].setdefault(name, {})[k] = _median([tok_s(r) for r in runs])
        for k, runs in res.get("stream", {}).get(name, {}).items():
            t = [ttft_ms(r) for r in runs]
            s["ttft_ms"].setdefault(name, {})[k] = _median([x[0] for x in t if x])
            s["ttft_max_ms"].setdefault(name, {})[k] = _median([x[1] for x in t if x])
    for row in res.get("engine", []):
        s["engine"][str(row["pl"])] = {"s_tg": row["speed_tg"], "e2e": row["pl"] * row["tg"] / row["t"]}
    ratios: dict = {}
    gen = res.get("gen", {})
    for k in gen.get("server", {}):
        for name, ref, _ in RATIOS:
            # per round, then the median: a round's runs are adjacent in time, so a load
            # change between rounds (other jobs on the machine) cancels out
            pairs = zip(gen.get(name, {}).get(k, []), gen.get(ref, {}).get(k, []))
            per_round = [a / b if a and b else None for a, b in ((tok_s(x), tok_s(y)) for x, y in pairs)]
            r = _median(per_round)
            if r:
                ratios.setdefault(f"{name}/{ref}", {})[k] = r
            ci = median_interval(per_round)
            if ci:
                s.setdefault("ratio_interval", {}).setdefault(f"{name}/{ref}", {})[k] = ci
        eng = s["engine"].get(str(min(int(k), np_)))
        mine = s["tok_s"].get("c", {}).get(k)
        if eng and mine:
            ratios.setdefault("c/engine_e2e", {})[k] = mine / eng["e2e"]
            ratios.setdefault("c/engine_tg", {})[k] = mine / eng["s_tg"]
    s["ratios"] = ratios
    for kind in ("embed", "rerank"):
        for name, by_t in res.get(kind, {}).items():
            for t, runs in by_t.items():
                s[kind].setdefault(name, {})[t] = _median([items_s(r) for r in runs])
    s["overhead"] = res.get("overhead", {})
    if "users" in res:
        s["users"] = users_summary(res)
    return s


USER_SYSTEMS = SYSTEMS


def _ceiling(row: dict) -> float | None:
    """llama-batched-bench's generated tokens over prefill + decode time (one B = K row)."""
    return row["pl"] * row["tg"] / row["t"] if row.get("t") else None


def users_summary(res: dict) -> dict:
    """The users phase: per system and K, tokens/s (median of the rounds), time to first
    token p50 / p95 / max over every stream of every round, failed streams, the prompt's
    tokens (and how many came from a cache); per K, the ceiling (llama-batched-bench at B = K:
    median of its runs) and C/ceiling (median of the per-round ratios: round i's C API run
    against round i's llama-batched-bench run)."""
    u = res["users"]
    out: dict = {"tok_s": {}, "ttft_s": {}, "fails": {}, "streams": {}, "prompt": {}, "ceiling": {}, "c/ceiling": {}}
    for name, _ in USER_SYSTEMS:
        for k, runs in u.get(name, {}).items():
            out["tok_s"].setdefault(name, {})[k] = _median([tok_s(r) for r in runs])
            out["ttft_s"].setdefault(name, {})[k] = ttft_s(runs)
            out["fails"].setdefault(name, {})[k] = sum(_fails(r) for r in runs)
            out["streams"].setdefault(name, {})[k] = sum(r.get("k", 0) for r in runs)
            per = [p for r in runs for p in r.get("per", []) if p.get("rc") == 0 and p.get("prompt_n", -1) >= 0]
            if per:
                out["prompt"].setdefault(name, {})[k] = {
                    "tokens": _median([p["prompt_n"] + p.get("cache_n", 0) for p in per]),
                    "cached": _median([p.get("cache_n", 0) for p in per])}
    for k, rows in u.get("engine", {}).items():
        ok = [r for r in rows if r.get("t")]
        if ok:
            out["ceiling"][k] = {"tok_s": _median([_ceiling(r) for r in ok]), "t_pp": _median([r["t_pp"] for r in ok]),
                                 "s_tg": _median([r["speed_tg"] for r in ok]), "pp": ok[0]["pp"], "tg": ok[0]["tg"],
                                 "runs": len(ok)}
        pairs = zip(u.get("c", {}).get(k, []), rows)
        r = _median([a / b if a and b else None for a, b in ((tok_s(x), _ceiling(y) if y.get("t") else None)
                                                             for x, y in pairs)])
        if r:
            out["c/ceiling"][k] = r
    return out


def _ttft_cell(t: dict | None) -> str:
    if not t:
        return "-"
    return f"{t['p50']:.2f} / {t['p95']:.2f} / {t['max']:.2f}"


def users_table(res: dict, us: dict) -> list[str]:
    """The users phase's lines: what ran, then one markdown table (the terminal's and
    bench/RESULTS.md's)."""
    setup = res.get("users_setup", {})
    ks = [str(k) for k in setup.get("ks", sorted({int(k) for d in us["tok_s"].values() for k in d}))]
    reps = setup.get("repeats", "?")
    n = setup.get("n_predict", "?")
    slots = setup.get("slots", {})
    nif = setup.get("nif_status", "ok")
    pp = {c["pp"] for c in us["ceiling"].values()}
    out = [f"Users arriving together (issue 24): K users each send one chat at the same moment, {n} tokens "
           f"each, streamed; every program at its defaults but threads ({setup.get('threads', '?')}): ours "
           f"`{setup.get('ours', '?')}` ({slots.get('c', '?')} slots), "
           f"llama-server `{' '.join(setup.get('server', []))}` ({slots.get('server', '?')} slots).",
           f"tok/s: all generated tokens over first submit to last token, median of {reps} rounds (the order "
           f"reversing every other round); TTFT: from a user's request (all within ms of the common start) "
           f"to its first chunk, seconds, "
           f"p50 / p95 / max over the K x {reps} streams; ceiling: llama-batched-bench at B = K (-kvu, "
           f"{'/'.join(map(str, sorted(pp))) or '?'}-token prompts, {n} generated), generated tokens over "
           f"prefill + decode, median of {reps} runs in the same rounds; C/ceiling: median of the per-round "
           f"ratios; engine prefill: its time to prefill the K prompts at once (T_PP)."]
    pr = us["prompt"]
    tokens = _median([x["tokens"] for d in pr.values() for x in d.values()])
    if tokens is not None:
        cached = [f"{label} " + " / ".join(_f(pr.get(name, {}).get(k, {}).get("cached"), "{:.0f}") for k in ks)
                  for name, label in USER_SYSTEMS if pr.get(name)]
        out.append(f"Prompt tokens per chat: {tokens:.0f} (median); of them from a cache (slot or prompt cache), "
                   f"median at K = {' / '.join(ks)}: " + ", ".join(cached) + ".")
    fails = [f"{label} K={k}: {v} of {us['streams'][name][k]}" for name, label in USER_SYSTEMS
             for k, v in us["fails"].get(name, {}).items() if v]
    out.append("Failed or short streams: " + ("; ".join(fails) if fails else "none") + ".")
    cell = lambda name, d, k, fmt: (nif if name == "nif" and nif != "ok" else fmt(d.get(name, {}).get(k)))
    out += ["", "| K | C API tok/s | TTFT p50 / p95 / max | NIF tok/s | TTFT p50 / p95 / max | llama-server tok/s | "
                "TTFT p50 / p95 / max | ceiling tok/s | C/ceiling | engine prefill s |",
            "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for k in ks:
        cells = [k]
        for name, _ in USER_SYSTEMS:
            cells += [cell(name, us["tok_s"], k, _f), cell(name, us["ttft_s"], k, _ttft_cell)]
        c = us["ceiling"].get(k, {})
        cells += [_f(c.get("tok_s")), _f(us["c/ceiling"].get(k), "{:.2f}"), _f(c.get("t_pp"), "{:.2f}")]
        out.append("| " + " | ".join(cells) + " |")
    return out


def machine() -> str:
    """The CPU (model name, cpu family, model) and cores, from /proc/cpuinfo."""
    info: dict = {}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, val = line.partition(":")
            info.setdefault(key.strip(), val.strip())
    except OSError:
        pass
    return (f"{info.get('model name', '?')} (cpu family {info.get('cpu family', '?')}, "
            f"model {info.get('model', '?')}), {os.cpu_count()} cores")


RESULTS_HEAD = """# Benchmark results

Newest first. Each entry is one run of the users phase of `make bench` (`make bench-users`:
K users arriving together, every program at its defaults, issue 24), added by the run itself:
date, machine, command, what ran and the table. The other figures of `make bench` are in the
README's "Benchmarks".
"""


def users_entry(res: dict, s: dict, when: str | None = None, cpu: str | None = None) -> str:
    """One bench/RESULTS.md entry for this run's users phase."""
    setup = res.get("users_setup", {})
    head = [f"## {when or time.strftime('%Y-%m-%d %H:%M')}: users arriving together", "",
            f"- machine: {cpu or machine()}; load average {res['load_start'][0]:.2f} at the start, "
            f"{res['load_end'][0]:.2f} at the end; wall {res['wall_s']:.0f} s",
            f"- command: `{res.get('command') or 'make bench-users'}`",
            f"- model {res['model']}, CPU variant {setup.get('cpu_variant') or '?'}, OMP_WAIT_POLICY "
            f"{res.get('omp_wait_policy', 'default')}", ""]
    return "\n".join(head + users_table(res, s["users"])) + "\n"


def record_users(res: dict, s: dict, path: Path, when: str | None = None, cpu: str | None = None) -> None:
    """Adds this run's entry to path (created with its heading if missing), newest first: before
    the first entry already there."""
    text = path.read_text() if path.exists() else RESULTS_HEAD
    entry = users_entry(res, s, when, cpu)
    at = text.find("\n## ")
    text = (text[:at + 1] + entry + "\n" + text[at + 1:]) if at >= 0 else text.rstrip("\n") + "\n\n" + entry
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def _f(v, fmt="{:.1f}") -> str:
    return fmt.format(v) if isinstance(v, (int, float)) else "-"


def table(res: dict, s: dict) -> str:
    plan, np_ = res["plan"], res["plan"]["settings"]["n_parallel"]
    nif = res.get("nif_status", "ok")
    col = lambda name, d, k, fmt="{:.1f}": nif if name == "nif" and nif != "ok" else _f(d.get(name, {}).get(k), fmt)
    has_gen = "users" not in res or any(x in res for x in ("gen", "stream"))
    out = [f"model {res['model']}, " + (f"{plan['settings']}, " if has_gen else "") + f"{res.get('cores')} cores, "
           f"OMP_WAIT_POLICY {res.get('omp_wait_policy')}, "
           f"load avg at start {res['load_start'][0]:.2f}, end {res['load_end'][0]:.2f}, wall {res['wall_s']:.0f} s", ""]
    hp = res.get("c_memory")
    if hp:   # the C API's and the NIF's default; llama-server maps the file
        out.insert(1, f"memory: C API and NIF read the weights into their own buffers, "
                      f"{hp['backed_bytes_at_load'] >> 20} of {hp['requested_bytes'] >> 20} MiB in 2 MiB pages "
                      f"(transparent huge pages: {hp['system']}); llama-server "
                      + ("reads it into 2 MiB pages too (--server-huge-pages)" if plan.get("server_huge_pages")
                         else "maps the file (its default)"))
    if has_gen:   # a run of the users phase alone has no gen tables
        gens = plan.get("generations", 1)
        rounds = f"{plan['repeats'] * gens} rounds" + (f" in {gens} generations of fresh processes" if gens > 1 else "")
        out.append(f"Throughput, tokens/s (K sessions x {plan['n_predict']} tokens, median of {rounds}; "
                   f"ratios: median of the per-round ratios;\n  engine = llama-batched-bench at B = min(K, "
                   f"n_parallel={np_}), end to end incl. prompt, one run)")
        out.append(f"{'K':>3} {'C API':>8} {'NIF':>8} {'llama-srv':>9} {'C/srv':>6} {'NIF/srv':>7} "
                   f"{'engine':>7} {'C/engine':>8} {'engine S_TG':>11}")
        r = s["ratios"]
        for k in map(str, plan["ks"]):
            eng = s["engine"].get(str(min(int(k), np_)), {})
            out.append(f"{k:>3} {col('c', s['tok_s'], k):>8} {col('nif', s['tok_s'], k):>8} "
                       f"{col('server', s['tok_s'], k):>9} {_f(r.get('c/server', {}).get(k), '{:.2f}'):>6} "
                       f"{_f(r.get('nif/server', {}).get(k), '{:.2f}'):>7} {_f(eng.get('e2e')):>7} "
                       f"{_f(r.get('c/engine_e2e', {}).get(k), '{:.2f}'):>8} {_f(eng.get('s_tg')):>11}")
        for name, ref, label in RATIOS:
            ci = s.get("ratio_interval", {}).get(f"{name}/{ref}")
            if ci:
                out.append(f"  {label} 95% interval of the median ratio (bootstrap over rounds): "
                           + ", ".join(f"K={k} [{lo:.2f}, {hi:.2f}]" for k, (lo, hi) in ci.items()))
        control = r.get("c/c2")
        if control:
            out.append("  C/C2, two identical C API processes (--control): "
                       + ", ".join(f"K={k} {v:.3f}" for k, v in control.items()))
        out += ["", f"Time to first token, ms (streaming; mean over the K sessions [max], median of "
                    f"{plan['ttft_repeats']} rounds)"]
        out.append(f"{'K':>3} {'C API':>16} {'NIF':>16} {'llama-server':>16}")
        for k in map(str, plan["ttft_ks"]):
            cells = []
            for name, _ in SYSTEMS:
                if name == "nif" and nif != "ok":
                    cells.append(nif)
                else:
                    cells.append(f"{_f(s['ttft_ms'].get(name, {}).get(k), '{:.0f}')} "
                                 f"[{_f(s['ttft_max_ms'].get(name, {}).get(k), '{:.0f}')}]")
            out.append(f"{k:>3} " + " ".join(f"{c:>16}" for c in cells))
    if s["engine"]:
        out += ["", "llama-batched-bench (engine alone): B, S_TG tok/s, end-to-end gen tok/s"]
        out += [f"  B={b}: {_f(e['s_tg'])}  {_f(e['e2e'])}" for b, e in sorted(s["engine"].items(), key=lambda x: int(x[0]))]
    o = s["overhead"]
    if o:
        c, srv = o.get("c", {}), o.get("server", {})
        st = lambda d: f"{_f(d.get('median'))} / {_f(d.get('p99'))}" if d else "-"
        out += ["", "Per-call cost, microseconds (median / p99)",
                f"  C create_task, wall                   {st(c.get('create_task_us'))}",
                f"  C create_task, CPU of the caller      {st(c.get('create_task_cpu_us'))}",
                f"  C get_result, result already there    {st(c.get('get_result_ready_us'))}",
                f"  C get_status                          {st(c.get('get_status_us'))}",
                f"  1-token completion, round trip minus engine time: C API {st(c.get('overhead_us'))}; "
                f"llama-server HTTP (Python client) {st(srv.get('overhead_us'))}",
                f"  1-token completion round trip: C API {st(c.get('roundtrip_us'))}; llama-server {st(srv.get('roundtrip_us'))}"]
    for kind, unit in (("embed", "embeddings/s"), ("rerank", f"rerank docs/s ({plan['rerank_docs']} docs a request)")):
        if s[kind] or res.get("embed_status", {}).get(kind):
            out += ["", f"{unit}, ours (C API) vs llama-server, median of {plan['repeats']} rounds"
                    + (f": {res['embed_status'][kind]}" if res.get("embed_status", {}).get(kind) else "")]
            for t in map(str, plan["embed_threads"]):
                a, b = s[kind].get("c", {}).get(t), s[kind].get("server", {}).get(t)
                out.append(f"  threads {t:>2}: {_f(a):>8} {_f(b):>8}  ratio {_f(a / b if a and b else None, '{:.2f}')}")
    if "users" in s:
        out += ["", *users_table(res, s["users"])]
    return "\n".join(out)


def plot(res: dict, s: dict, path: Path) -> None:
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        say("no matplotlib: no plot")
        return
    fig, ax = plt.subplots(1, 3, figsize=(15, 4.5))
    np_ = res["plan"]["settings"]["n_parallel"]

    def bars(a, data: dict, keys: list, title: str, ylabel: str, extra: dict | None = None):
        """Grouped bars: one group per K, one bar per system."""
        series = [(label, data.get(name, {})) for name, label in SYSTEMS] + (list(extra.items()) if extra else [])
        w = 0.8 / len(series)
        for i, (label, d) in enumerate(series):
            a.bar([j + i * w for j in range(len(keys))], [d.get(k) or 0 for k in keys], w, label=label)
        a.set_xticks([j + 0.4 - w / 2 for j in range(len(keys))], keys)
        a.set_title(title)
        a.set_xlabel("K concurrent sessions")
        a.set_ylabel(ylabel)
        a.legend(fontsize=8)

    ks = list(map(str, res["plan"]["ks"]))
    eng = {k: s["engine"].get(str(min(int(k), np_)), {}).get("e2e") for k in ks}
    bars(ax[0], s["tok_s"], ks, "throughput (higher is better)", "tokens/s", {"engine (batched-bench)": eng})
    bars(ax[1], s["ttft_ms"], list(map(str, res["plan"]["ttft_ks"])), "time to first token, mean (lower is better)", "ms")
    emb = {f"{kind} {name} t={t}": v for kind in ("embed", "rerank") for name, d in s[kind].items() for t, v in d.items()}
    ax[2].barh(list(emb), [v or 0 for v in emb.values()])
    ax[2].set_title("embeddings/s and rerank docs/s")
    fig.suptitle(f"llama_nif bench: {res['model']}, n_parallel {np_}, {res['plan']['settings']['n_threads']} threads")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def report(res: dict, out: Path) -> dict:
    s = summarize(res)
    text = table(res, s)
    print("\n" + text + "\n", flush=True)
    (out / "bench.json").write_text(json.dumps({"summary": s, "raw": res}, indent=1))
    (out / "bench.txt").write_text(text + "\n")
    if "users" not in res or any(x in res for x in ("gen", "stream", "embed", "rerank")):
        plot(res, s, out / "bench.png")
        say(f"wrote {out / 'bench.json'}, {out / 'bench.txt'} and {out / 'bench.png'}")
    else:
        say(f"wrote {out / 'bench.json'} and {out / 'bench.txt'}")
    return s
