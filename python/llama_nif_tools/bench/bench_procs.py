"""Processes that `make bench` drives: our line-protocol workers (the C program and the NIF
escript, bench/), llama.cpp's llama-server and llama-batched-bench. All take the same
settings so that the columns compare like with like; the users phase (`make bench-users`)
starts every program at its own defaults instead, threads alone given (`DefaultsRun`)."""
from __future__ import annotations

import http.client
import json
import os
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from .. import paths

BIN = paths.BUILD / "bin"

# Environment of every process started here. libgomp's wait policy decides who wins on a busy
# machine: with the default (spin ~300k rounds between graphs) the OpenMP workers of a process
# spin while its main thread samples, which is fastest on a quiet machine and 5-10x slower when
# other jobs share the cores; passive makes them sleep. The default is what users get, so the
# bench runs with it unless told otherwise; set_omp_wait_policy() makes it the same for every
# column. (Before our load moved to the loop thread, a second OpenMP team left behind by
# the load made libgomp throttle our spinning, and we lost 20% to llama-server here.)
ENV = dict(os.environ)


def set_omp_wait_policy(policy: str) -> None:
    """'passive' / 'active': OMP_WAIT_POLICY for all; 'default': leave the environment as is."""
    ENV.pop("OMP_WAIT_POLICY", None)
    if policy != "default":
        ENV["OMP_WAIT_POLICY"] = policy


@dataclass(frozen=True)
class Settings:
    n_parallel: int = 4
    n_ctx: int = 1024          # per slot, as our config; llama.cpp's -c is n_ctx * n_parallel
    n_batch: int = 512
    n_ubatch: int = 512
    n_threads: int = 2
    flash_attn: str = "auto"
    cache_ram_mib: int = 256

    def ours(self) -> str:
        """Our server config JSON."""
        return json.dumps({"n_parallel": self.n_parallel, "n_ctx": self.n_ctx, "n_batch": self.n_batch,
                           "n_ubatch": self.n_ubatch, "n_threads": self.n_threads,
                           "n_threads_batch": self.n_threads, "flash_attn": self.flash_attn,
                           "cache_ram_mib": self.cache_ram_mib, "log_level": "error"})

    def llama_args(self, n_seq: int) -> list[str]:
        """The same for llama.cpp's tools, n_seq sequences: -c is the TOTAL context there, and
        -no-kvu gives every sequence exactly n_ctx of it, as our core does."""
        return ["-c", str(self.n_ctx * n_seq), "-no-kvu", "-b", str(self.n_batch), "-ub", str(self.n_ubatch),
                "-t", str(self.n_threads), "-tb", str(self.n_threads), "-fa", self.flash_attn]


class Worker:
    """bench/llama_nif_bench or bench/bench_nif.escript: one command line in, one JSON line out."""

    def __init__(self, name: str, argv: list, log: Path, env: dict | None = None):
        self.name = name
        self.log = open(log, "w")
        self.p = subprocess.Popen([str(a) for a in argv], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  stderr=self.log, text=True, cwd=paths.ROOT, env={**ENV, **(env or {})})
        ready = self._read()
        if not ready.get("ready"):
            raise RuntimeError(f"{name} did not start: {ready} (log: {log})")

    def _read(self) -> dict:
        while True:
            line = self.p.stdout.readline()
            if not line:
                raise RuntimeError(f"{self.name} exited (rc {self.p.poll()}); see {self.log.name}")
            if line.startswith("{"):
                return json.loads(line)

    def cmd(self, line: str) -> dict:
        self.p.stdin.write(line.replace("\n", " ") + "\n")
        self.p.stdin.flush()
        return self._read()

    def close(self) -> None:
        if self.p.poll() is None:
            try:
                self.p.stdin.write("quit\n")
                self.p.stdin.close()
                self.p.wait(timeout=60)
            except (OSError, subprocess.TimeoutExpired):
                self.p.kill()
                self.p.wait()
        self.log.close()


def c_worker(model: Path, s: Settings, log: Path, model_config: dict | None = None) -> Worker:
    return Worker("C API", [BIN / "llama_nif_bench", model, s.ours(), json.dumps(model_config or {})], log)


@dataclass(frozen=True)
class DefaultsRun:
    """Every program as a new user starts it: ours with no config but the log level,
    llama-server with `-t` alone (4 slots, a unified KV cache of the model's context),
    llama-batched-bench with -t, -kvu and the shape of the chats. threads None: our default
    (the number of cores, std::thread::hardware_concurrency) given to llama.cpp's tools as
    -t; a number: the same for all, ours as n_threads."""
    threads: int | None = None

    def t(self) -> int:
        return self.threads or os.cpu_count() or 1

    def ours(self) -> str:
        return json.dumps({"log_level": "error", **({"n_threads": self.threads} if self.threads else {})})

    def server_args(self) -> list[str]:
        return ["-t", str(self.t())]

    def c_worker(self, model: Path, log: Path) -> Worker:
        return Worker("C API", [BIN / "llama_nif_bench", model, self.ours()], log)

    def nif_worker(self, model: Path, log: Path) -> Worker:
        return Worker("NIF", ["escript", paths.ROOT / "bench" / "bench_nif.escript", model, self.ours()], log)

    def server(self, model: Path, log: Path) -> "LlamaServer":
        return LlamaServer(model, Settings(), log, own_args=self.server_args())


def nif_missing() -> str | None:
    """Why the NIF column cannot run, or None."""
    if not (paths.PRIV / "llama_nif.so").is_file():
        return "n/a (NIF not built)"
    if not shutil.which("escript"):
        return "n/a (no escript)"
    return None


def nif_worker(model: Path, s: Settings, log: Path) -> Worker:
    return Worker("NIF", ["escript", paths.ROOT / "bench" / "bench_nif.escript", model, s.ours()], log)


# llama-server with the memory our default gives (--server-huge-pages): the weights read into
# memory (-lm none) and glibc's mapped chunks, which ggml's buffers are, advised into 2 MiB pages.
SERVER_HUGE_PAGES = {"extra": ["-lm", "none"], "env": {"GLIBC_TUNABLES": "glibc.malloc.hugetlb=1"}}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class LlamaServer:
    """llama.cpp's llama-server on loopback, started with our settings; waits for /health."""

    def __init__(self, model: Path, s: Settings, log: Path, extra: list[str] = (), env: dict | None = None,
                 own_args: list[str] | None = None):
        """own_args: these instead of the settings (DefaultsRun: -t alone)."""
        self.port = free_port()
        self.log = open(log, "w")
        settings = own_args if own_args is not None else [
            "-np", str(s.n_parallel), *s.llama_args(s.n_parallel), "--cache-ram", str(s.cache_ram_mib),
            "-sps", "0",            # ours: slot_prompt_similarity 0 (llama-server's default is 0.1)
            "-fit", "off",          # ours: keep the sizes asked for
            "--no-ui"]
        argv = [str(BIN / "llama-server"), "-m", str(model), "--host", "127.0.0.1", "--port", str(self.port),
                *settings, *extra]
        self.p = subprocess.Popen(argv, stdout=self.log, stderr=subprocess.STDOUT, cwd=paths.ROOT,
                                  env={**ENV, **(env or {})})
        self._wait_healthy(log)

    def _wait_healthy(self, log: Path, timeout: float = 180) -> None:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.p.poll() is not None:
                raise RuntimeError(f"llama-server exited (rc {self.p.returncode}); see {log}")
            try:
                c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
                c.request("GET", "/health")
                if c.getresponse().status == 200:
                    return
            except OSError:
                pass
            time.sleep(0.25)
        raise RuntimeError(f"llama-server not healthy after {timeout}s; see {log}")

    def close(self) -> None:
        if self.p.poll() is None:
            self.p.terminate()
            try:
                self.p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()
        self.log.close()


def batched_bench(model: Path, s: Settings, npp: int, ntg: int, npl: list[int], log: Path,
                  args: list[str] | None = None, append: bool = False) -> list[dict]:
    """llama-batched-bench rows (JSONL): the engine alone, no server. -c gives every sequence
    n_ctx, as a slot of ours. args: these instead of the settings (ceiling_args); append: add
    to the log (the users phase runs it once per K and round)."""
    argv = [str(BIN / "llama-batched-bench"), "-m", str(model), *(s.llama_args(max(npl)) if args is None else args),
            "-npp", str(npp), "-ntg", str(ntg), "-npl", ",".join(map(str, npl)), "--output-format", "jsonl"]
    r = subprocess.run(argv, capture_output=True, text=True, cwd=paths.ROOT, env=ENV)
    with open(log, "a" if append else "w") as f:
        f.write(" ".join(argv) + "\n" + r.stdout + r.stderr)
    if r.returncode != 0:
        raise RuntimeError(f"llama-batched-bench failed (rc {r.returncode}); see {log}")
    rows = [json.loads(line) for line in (r.stdout + "\n" + r.stderr).splitlines() if line.startswith("{")]
    return rows


def ceiling_args(threads: int, n_seq: int, npp: int, ntg: int) -> list[str]:
    """llama-batched-bench as the engine's ceiling for n_seq users: its defaults but threads,
    one unified KV cache as llama-server's default (-kvu), and a context that holds every
    sequence's prompt and generation (its default, the model's training context, may not:
    a row that does not fit is skipped without a word)."""
    need = n_seq * (npp + ntg)
    return ["-t", str(threads), "-tb", str(threads), "-kvu", "-c", str(max(4096, -(-need // 256) * 256))]
