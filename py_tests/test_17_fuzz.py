"""The fuzz harness (python/llama_nif_tools/stress/fuzz.py, `make fuzz`): every seed input of
fuzz/corpus once, then a short mutation run, each in a child process with the real models.
A crash, an undocumented code or a task that outlives its cancel fails the run."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from llama_nif_tools import paths

pytestmark = pytest.mark.model


def fuzz(*args):
    env = dict(os.environ, PYTHONPATH=str(paths.ROOT / "python"))
    p = subprocess.run([sys.executable, "-m", "llama_nif_tools.stress.fuzz", *args], capture_output=True, text=True,
                       env=env, cwd=paths.ROOT, timeout=900)
    assert p.returncode == 0, f"fuzz {args} ended with {p.returncode}:\n{p.stdout[-3000:]}\n{p.stderr[-3000:]}"
    return p.stdout


def test_every_seed_input_runs_within_its_contract():
    out = fuzz("--seeds-only")
    seeds = sum(1 for _ in (paths.ROOT / "fuzz" / "corpus").glob("*/*"))
    assert f"[fuzz] {seeds} executions" in out, out


def test_a_short_mutation_run_finds_nothing():
    out = fuzz("--runs", "1500", "--seed", "17", "--minutes", "10")
    assert "[fuzz] 1500 executions" in out and "no crash, no broken contract" in out, out
