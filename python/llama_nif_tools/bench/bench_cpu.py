"""`make bench-cpu` (python -m llama_nif_tools bench-cpu): what the portable build costs on
this machine. The same C bench program against three libraries of the same tree, in one run,
alternating: the portable default (best CPU variant picked at run time), a native build
(-march=native, build-native/), and the portable build forced to its x86-64-v3 baseline
(LLAMA_NIF_CPU_VARIANT=haswell), the speed an AVX2-only build would have here.
Measures generated tokens/s at K = 1 and K = 4 and prompt tokens/s on a ~500-token prompt."""
from __future__ import annotations

import json
import os
import statistics
import time
from pathlib import Path

from .. import paths
from ..build import cmake, pins
from ..progress import say
from . import bench, bench_procs, bench_report

NATIVE_DIR = paths.ROOT / "build-native"
# ~500 tokens of varied prose for prompt processing (a tag in front keeps the cache cold)
LONG_PROMPT = " ".join(
    f"Section {i}: a hash map stores key {i * 7} in bucket {i * 7 % 13}, probes {i % 3} times on a "
    f"collision, and grows to {2 ** (i % 6 + 4)} buckets when its load factor passes {0.5 + i % 4 / 10:.1f}."
    for i in range(14))
SHORT_PROMPT = "Write a short story about a lighthouse keeper who learns to paint."


def _columns(model: Path, s: bench_procs.Settings, out: Path) -> dict:
    portable = paths.BUILD / "bin" / "llama_nif_bench"
    native = NATIVE_DIR / "bin" / "llama_nif_bench"
    cols = {}
    for name, exe, env in (("portable", portable, {}), ("native", native, {}),
                           ("baseline", portable, {"LLAMA_NIF_CPU_VARIANT": "haswell"})):
        cols[name] = bench_procs.Worker(name, [exe, model, s.ours(), "{}"], out / f"cpu-{name}.log", env)
    return cols


def _prompt_tok_s(r: dict) -> float | None:
    per = [p for p in r.get("per", []) if p.get("rc") == 0 and p.get("prompt_ms", 0) > 0]
    return sum(p["prompt_n"] for p in per) / (sum(p["prompt_ms"] for p in per) / 1000) if per else None


def main(repeats: int = 3, n_predict: int = 64, skip_build: bool = False, out: Path | None = None) -> int:
    t0 = time.monotonic()
    out = out or paths.ROOT / "bench-results"
    out.mkdir(parents=True, exist_ok=True)
    if not skip_build:
        cmake.build(["llama_nif_bench"])
        cmake.build(["llama_nif_bench"], NATIVE_DIR, {"LLAMA_NIF_NATIVE": "ON", "LLAMA_NIF_BUILD_NIF": "OFF"})
    elif not all([bench.require_built(d / "bin", ["llama_nif_bench"], "make bench-cpu") for d in (paths.BUILD, NATIVE_DIR)]):
        return 1   # (a list, not a generator: each missing program gets its line)
    model = paths.MODELS / pins.DEFAULT_MODEL.filename
    s = bench_procs.Settings()
    cols = _columns(model, s, out)
    # what each column runs, from its own status
    variants = {name: w.cmd("status").get("backend", {}).get("cpu_variant", "?") for name, w in cols.items()}
    say(f"CPU variants: {variants}")
    # label, sessions, tokens each, prompt, what to read off the result
    tests = [("gen K=1", 1, n_predict, SHORT_PROMPT, bench_report.tok_s),
             ("gen K=4", 4, n_predict, SHORT_PROMPT, bench_report.tok_s),
             ("prompt ~500 tok", 1, 1, LONG_PROMPT, _prompt_tok_s)]
    res: dict = {name: {t[0]: [] for t in tests} for name in cols}
    try:
        for w in cols.values():
            w.cmd(f"gen 4 8 warm {SHORT_PROMPT}")
        for rep in range(repeats):
            order = list(cols) if rep % 2 == 0 else list(cols)[::-1]
            for label, k, n, text, measure in tests:
                for name in order:
                    r = cols[name].cmd(f"gen {k} {n} c{rep}{label[:3]}{name[:2]} {text}")
                    v = measure(r)
                    res[name][label].append(v)
                    say(f"  rep {rep + 1}/{repeats} {label:16s} {name:9s} {v:8.1f} tok/s" if v else f"  {name}: {r}")
    finally:
        for w in cols.values():
            w.close()

    lines = [f"model {model.name}, {s.ours()}, {os.cpu_count()} cores, OMP_WAIT_POLICY "
             f"{os.environ.get('OMP_WAIT_POLICY', 'default')}, {repeats} rounds (median), wall {time.monotonic() - t0:.0f} s",
             f"CPU variants: portable -> {variants['portable']}, native -> {variants['native']}, "
             f"baseline -> {variants['baseline']}", "",
             f"{'tokens/s':18s} {'portable':>9s} {'native':>9s} {'baseline':>9s} {'port/nat':>9s} {'base/nat':>9s}"]
    summary = {}
    for label, *_ in tests:
        med = {n: statistics.median([v for v in res[n][label] if v]) for n in cols}
        summary[label] = {**med, "portable/native": med["portable"] / med["native"],
                          "baseline/native": med["baseline"] / med["native"]}
        lines.append(f"{label:18s} {med['portable']:9.1f} {med['native']:9.1f} {med['baseline']:9.1f} "
                     f"{summary[label]['portable/native']:9.3f} {summary[label]['baseline/native']:9.3f}")
    text = "\n".join(lines)
    print(text)
    (out / "bench-cpu.txt").write_text(text + "\n")
    (out / "bench-cpu.json").write_text(json.dumps({"variants": variants, "runs": res, "summary": summary}, indent=1))
    return 0
