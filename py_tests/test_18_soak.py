"""The C API soak (python/llama_nif_tools/stress/soak.py, `make soak-c` for the long run) for 30
seconds in a child process: 8 threads, every task kind, cancels, short timeouts, tiny
buffers, sessions closed under running tasks, streams stopped early. It fails on a lost or
duplicated result, an undocumented code, a hung thread, or servers not idle at the end."""
from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from llama_nif_tools import paths

pytestmark = pytest.mark.model


@pytest.mark.parametrize("cache", ["0", "64"])
def test_a_short_soak_accounts_for_every_task(cache):
    env = dict(os.environ, PYTHONPATH=str(paths.ROOT / "python"))
    p = subprocess.run([sys.executable, "-m", "llama_nif_tools.stress.soak", "--minutes", "0.5", "--threads", "8",
                        "--cache-ram-mib", cache, "--seed", cache], capture_output=True, text=True, env=env, timeout=900)
    assert p.returncode == 0, f"soak ended with {p.returncode}:\n{p.stdout[-4000:]}\n{p.stderr[-3000:]}"
    m = re.search(r"(\d+) tasks/streams ended, lost 0, duplicated 0, undocumented codes 0, hung threads 0, "
                  r"servers idle at the end: True", p.stdout)
    assert m and int(m.group(1)) >= 20, p.stdout
    for kind in ("chat ok", "completion ok", "embedding ok", "rerank ok", "stream ok"):
        assert kind in p.stdout, p.stdout
