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


# --- the users phase (`make bench-users`, issue 24): K users arriving together ---------------

def _chat(k: int, tok_s: float, firsts: list, n: int = 96) -> dict:
    """One chat run of k users that together made tok_s tokens/s, the streams' first tokens
    at `firsts` seconds after the common start."""
    wall = k * n / tok_s
    return {"cmd": "chat", "k": k, "n_predict": n,
            "per": [{"rc": 0, "submit_s": 0.0, "first_s": f, "done_s": wall, "prompt_n": 50, "cache_n": 16,
                     "predicted_n": n, "prompt_ms": 1.0, "predicted_ms": 1.0} for f in firsts]}


def _ceiling_row(k: int, tok_s: float, t_pp: float, n: int = 96) -> dict:
    """One llama-batched-bench JSONL row at B = k whose k * n tokens took prefill + decode = k * n / tok_s."""
    t = k * n / tok_s
    return {"pp": 66, "tg": n, "pl": k, "t": t, "t_pp": t_pp, "speed_tg": k * n / (t - t_pp)}


def _users_res(users: dict, nif_status: str = "ok") -> dict:
    res = _res({"server": [], "c": [], "nif": []}, control=False)
    del res["gen"]
    res["users_setup"] = {"ours": '{"log_level": "error"}', "server": ["-t", "2"], "threads": 2, "n_predict": 96,
                          "ks": [4], "repeats": 2, "nif_status": nif_status, "slots": {"c": 4, "server": 4}}
    res["users"] = users
    return res


def test_users_table_reads_rounds_streams_and_the_ceiling():
    # two rounds at K = 4: first tokens at 1..4 s, then 5..8 s; batched-bench 100 tok/s both times
    users = {"c": {"4": [_chat(4, 70.0, [1, 2, 3, 4]), _chat(4, 80.0, [5, 6, 7, 8])]},
             "nif": {"4": [_chat(4, 60.0, [1, 1, 1, 1]), _chat(4, 60.0, [1, 1, 1, 1])]},
             "server": {"4": [_chat(4, 50.0, [2, 2, 2, 2]), _chat(4, 54.0, [2, 2, 2, 2])]},
             "engine": {"4": [_ceiling_row(4, 100.0, 0.5), _ceiling_row(4, 100.0, 0.7)]}}
    res = _users_res(users)
    s = bench_report.summarize(res)
    u = s["users"]
    assert u["tok_s"]["c"]["4"] == pytest.approx(75.0)               # median of the rounds
    # TTFT over all 8 streams of both rounds, p95 between the closest ranks
    assert u["ttft_s"]["c"]["4"] == pytest.approx({"p50": 4.5, "p95": 7.65, "max": 8.0, "n": 8})
    assert u["ceiling"]["4"]["tok_s"] == pytest.approx(100.0)
    assert u["ceiling"]["4"]["t_pp"] == pytest.approx(0.6)
    assert u["c/ceiling"]["4"] == pytest.approx(0.75)               # per-round 0.70 and 0.80
    assert u["fails"]["c"]["4"] == 0
    text = bench_report.table(res, s)
    assert "Throughput, tokens/s" not in text                         # no gen phase ran: no empty gen table
    assert ("| 4 | 75.0 | 4.50 / 7.65 / 8.00 | 60.0 | 1.00 / 1.00 / 1.00 | 52.0 | 2.00 / 2.00 / 2.00 "
            "| 100.0 | 0.75 | 0.60 |") in text
    assert ("Prompt tokens per chat: 66 (median); of them from a cache (slot or prompt cache), median at "
            "K = 4: C API 16, NIF 16, llama-server 16.") in text
    assert "Failed or short streams: none." in text
    assert "ceiling: llama-batched-bench at B = K (-kvu, 66-token prompts, 96 generated)" in text


def test_users_a_failed_stream_is_counted_and_left_out():
    # one of round 1's four users refused (SERVER_BUSY): that round has no tokens/s, its
    # stream no first token; the other round stands, and the table says what failed
    bad = _chat(4, 70.0, [1, 2, 3, 4])
    bad["per"][3].update(rc='"server_busy"', first_s=-1.0, predicted_n=-1)
    users = {"c": {"4": [bad, _chat(4, 80.0, [5, 6, 7, 8])]},
             "server": {"4": [_chat(4, 50.0, [2] * 4), _chat(4, 50.0, [2] * 4)]},
             "engine": {"4": [_ceiling_row(4, 100.0, 0.5), {"error": "no row for B=4 (context too small?)"}]}}
    res = _users_res(users, nif_status="n/a (NIF not built)")
    s = bench_report.summarize(res)
    u = s["users"]
    assert u["tok_s"]["c"]["4"] == pytest.approx(80.0)
    assert u["ttft_s"]["c"]["4"]["n"] == 7
    assert u["fails"]["c"]["4"] == 1
    assert u["ceiling"]["4"]["runs"] == 1
    assert "4" not in u["c/ceiling"]           # neither round has both a C API and a ceiling figure
    text = bench_report.table(res, s)
    assert "Failed or short streams: C API K=4: 1 of 8." in text
    # first tokens at 1, 2, 3, 5, 6, 7 and 8 s: the refused stream is in none of the figures
    assert "| 4 | 80.0 | 5.00 / 7.70 / 8.00 | n/a (NIF not built) | n/a (NIF not built) | 50.0 |" in text


def test_users_results_file_newest_first(tmp_path):
    path = tmp_path / "RESULTS.md"
    users = {"c": {"4": [_chat(4, 70.0, [1, 2, 3, 4])]}, "engine": {"4": [_ceiling_row(4, 100.0, 0.5)]}}
    res = _users_res(users)
    res["command"] = 'make bench-users BENCH_ARGS="--users 4"'
    s = bench_report.summarize(res)
    cpu = "Test CPU (cpu family 26, model 2), 2 cores"
    bench_report.record_users(res, s, path, when="2026-01-01 10:00", cpu=cpu)
    bench_report.record_users(res, s, path, when="2026-01-02 10:00", cpu=cpu)
    text = path.read_text()
    assert text.startswith("# Benchmark results\n")
    assert text.count("# Benchmark results") == 1
    assert text.index("## 2026-01-02 10:00") < text.index("## 2026-01-01 10:00")
    assert f"- machine: {cpu}; load average 0.00 at the start" in text
    assert '- command: `make bench-users BENCH_ARGS="--users 4"`' in text
    assert text.count("| 4 | 70.0 | 2.50 / 3.85 / 4.00 |") == 2


def test_users_percentile_is_linear_between_ranks():
    assert bench_report.percentile([3.0, 1.0, 2.0], 0.5) == 2.0
    assert bench_report.percentile([1.0, 2.0], 0.95) == pytest.approx(1.95)
    assert bench_report.percentile([5.0], 0.95) == 5.0
    assert bench_report.percentile([], 0.5) is None
