"""Numbers of a `make bench` run: summary (medians of the rounds), the terminal table,
bench-results/bench.json (raw runs + summary) and bench-results/bench.png."""
from __future__ import annotations

import json
import random
import statistics
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
    if r.get("cmd") == "gen":
        v = tok_s(r)
        return f"{v:.1f} tok/s" if v else f"FAILED {r.get('error') or r['per']}"
    if r.get("cmd") == "stream":
        v = ttft_ms(r)
        return f"TTFT mean {v[0]:.0f} ms, max {v[1]:.0f} ms" if v else f"FAILED {r['per']}"
    v = items_s(r) if "items" in r else None
    return f"{v:.1f} items/s" if v else f"FAILED {r}"


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
    return s


def _f(v, fmt="{:.1f}") -> str:
    return fmt.format(v) if isinstance(v, (int, float)) else "-"


def table(res: dict, s: dict) -> str:
    plan, np_ = res["plan"], res["plan"]["settings"]["n_parallel"]
    nif = res.get("nif_status", "ok")
    col = lambda name, d, k, fmt="{:.1f}": nif if name == "nif" and nif != "ok" else _f(d.get(name, {}).get(k), fmt)
    out = [f"model {res['model']}, {plan['settings']}, {res.get('cores')} cores, "
           f"OMP_WAIT_POLICY {res.get('omp_wait_policy')}, "
           f"load avg at start {res['load_start'][0]:.2f}, end {res['load_end'][0]:.2f}, wall {res['wall_s']:.0f} s", ""]
    hp = res.get("c_memory")
    if hp:   # the C API's and the NIF's default; llama-server maps the file
        out.insert(1, f"memory: C API and NIF read the weights into their own buffers, "
                      f"{hp['backed_bytes_at_load'] >> 20} of {hp['requested_bytes'] >> 20} MiB in 2 MiB pages "
                      f"(transparent huge pages: {hp['system']}); llama-server "
                      + ("reads it into 2 MiB pages too (--server-huge-pages)" if plan.get("server_huge_pages")
                         else "maps the file (its default)"))
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
    plot(res, s, out / "bench.png")
    say(f"wrote {out / 'bench.json'}, {out / 'bench.txt'} and {out / 'bench.png'}")
    return s
