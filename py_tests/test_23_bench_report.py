"""The bench's arithmetic (python/llama_nif_tools/bench/bench_report.py) on runs of known
speed: a wrong pairing of rounds or a lost ratio would print a wrong verdict on us against
llama-server without failing anything else. `make bench` itself is not run here (minutes,
and speed is never asserted in tests)."""
import pytest

from llama_nif_tools.bench import bench_report


def _run(k: int, tok_s: float, n: int = 128) -> dict:
    """One gen run of k sessions that together made tok_s tokens/s."""
    wall = k * n / tok_s
    return {"cmd": "gen", "k": k, "n_predict": n,
            "per": [{"rc": 0, "submit_s": 0.0, "done_s": wall, "predicted_n": n, "first_s": -1} for _ in range(k)]}


def _res(speeds: dict, control: bool) -> dict:
    """speeds: system -> tok/s of each round, for K = 4."""
    names = ["c", "nif", "server"] + (["c2"] if control else [])
    return {"plan": {"ks": [4], "ttft_ks": [], "n_predict": 128, "repeats": 5, "ttft_repeats": 5,
                     "rerank_docs": 8, "embed_threads": [], "settings": {"n_parallel": 4, "n_threads": 2}},
            "model": "m.gguf", "cores": 2, "omp_wait_policy": "default", "load_start": [0.0] * 3,
            "load_end": [0.0] * 3, "wall_s": 1.0,
            "gen": {name: {"4": [_run(4, v) for v in speeds[name]]} for name in names}}


def test_ratios_pair_each_round_with_its_own_reference():
    # the machine slows down round by round; every round C is 2% ahead of llama-server
    srv = [80.0, 76.0, 72.0, 68.0, 64.0]
    res = _res({"server": srv, "c": [v * 1.02 for v in srv], "nif": [v * 0.99 for v in srv]}, control=False)
    s = bench_report.summarize(res)
    assert s["ratios"]["c/server"]["4"] == pytest.approx(1.02)
    assert s["ratios"]["nif/server"]["4"] == pytest.approx(0.99)
    lo, hi = s["ratio_interval"]["c/server"]["4"]
    assert lo == pytest.approx(1.02) and hi == pytest.approx(1.02)
    assert "c/c2" not in s["ratios"]
    assert "C/C2" not in bench_report.table(res, s)


def test_control_reports_the_ratio_of_two_identical_processes():
    srv = [80.0, 76.0, 72.0, 68.0, 64.0]
    speeds = {"server": srv, "c": srv, "nif": srv, "c2": [v / 1.01 for v in srv]}
    res = _res(speeds, control=True)
    s = bench_report.summarize(res)
    assert s["ratios"]["c/c2"]["4"] == pytest.approx(1.01)
    text = bench_report.table(res, s)
    assert "C/C2, two identical C API processes (--control): K=4 1.010" in text
    assert "C/C2 (noise floor) 95% interval of the median ratio (bootstrap over rounds): K=4 [1.01, 1.01]" in text


def test_a_failed_run_drops_out_of_its_round_only():
    srv = [80.0, 76.0, 72.0, 68.0, 64.0]
    res = _res({"server": srv, "c": [v * 1.05 for v in srv], "nif": srv}, control=False)
    res["gen"]["c"]["4"][0]["per"][0]["rc"] = 9
    s = bench_report.summarize(res)
    assert s["ratios"]["c/server"]["4"] == pytest.approx(1.05)
    assert "c/server" not in s.get("ratio_interval", {})     # 4 rounds left: too few for an interval


def test_generations_count_in_the_rounds_the_table_names():
    # --generations 3 with --repeats 5 gives 15 rounds per K, each generation in fresh processes
    srv = [80.0, 76.0, 72.0, 68.0, 64.0] * 3
    res = _res({"server": srv, "c": srv, "nif": srv}, control=False)
    res["plan"]["generations"] = 3
    text = bench_report.table(res, bench_report.summarize(res))
    assert "median of 15 rounds in 3 generations of fresh processes" in text


def test_the_table_says_where_the_weights_lie():
    srv = [80.0, 76.0, 72.0, 68.0, 64.0]
    res = _res({"server": srv, "c": srv, "nif": srv}, control=False)
    assert "memory:" not in bench_report.table(res, bench_report.summarize(res))
    res["c_memory"] = {"enabled": True, "system": "madvise", "requested_bytes": 583 << 20,
                       "backed_bytes_at_load": 556 << 20}
    text = bench_report.table(res, bench_report.summarize(res))
    assert ("memory: C API and NIF read the weights into their own buffers, 556 of 583 MiB in 2 MiB "
            "pages (transparent huge pages: madvise); llama-server maps the file (its default)") in text
    res["plan"]["server_huge_pages"] = True   # --server-huge-pages: llama-server given the same memory
    text = bench_report.table(res, bench_report.summarize(res))
    assert "llama-server reads it into 2 MiB pages too (--server-huge-pages)" in text


def test_no_build_names_what_is_not_built(tmp_path):
    # --no-build on a machine where `make bench` never built llama-server: a clear line, not a
    # FileNotFoundError traceback from the first Popen
    from llama_nif_tools.bench import bench
    (tmp_path / "llama_nif_bench").write_text("")
    missing = bench.missing_programs(tmp_path)
    assert missing == [str(tmp_path / "llama-server"), str(tmp_path / "llama-batched-bench")]
    assert bench.missing_programs(tmp_path, ["llama_nif_bench"]) == []
