"""init + load + destroy in a loop must not leak: anonymous RSS stays flat over 20 cycles."""
import re

import pytest

from llama_nif_tools import binding, paths
from llama_nif_tools.build import pins

MODEL = paths.MODELS / pins.DEFAULT_MODEL.filename


def rss_anon_mib() -> float:
    status = open("/proc/self/status").read()
    return int(re.search(r"RssAnon:\s+(\d+)", status).group(1)) / 1024


def one_cycle() -> None:
    with binding.Server({"n_parallel": 2, "n_ctx": 512}) as s:
        s.load_model(MODEL)
        session = s.create_session()
        session.complete("Hello", n_predict=4)


@pytest.mark.model
def test_init_load_destroy_20_cycles_keeps_rss_flat():
    for _ in range(3):          # warm-up: allocator arenas, ggml's global state
        one_cycle()
    base = rss_anon_mib()
    samples = []
    for _ in range(20):
        one_cycle()
        samples.append(rss_anon_mib())
    # RssAnon flips between two levels ~25 MiB apart from cycle to cycle (where glibc's heap
    # happens to end), so compare floors: the lowest of the first half with the lowest of the
    # second. A leak lifts every sample of the second half, ~11 cycles' worth; the flip none.
    growth = min(samples[10:]) - min([base, *samples[:10]])
    # a leaked KV cache alone would be ~12 MiB per cycle here, ~130 MiB between the floors
    assert growth < 16, f"RssAnon floor grew {growth:.1f} MiB over 20 cycles: base {base:.0f}, {[round(x) for x in samples]}"
