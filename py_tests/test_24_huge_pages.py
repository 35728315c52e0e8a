"""Where a loaded model's CPU memory lies (core/huge_pages.cpp): by default the weights are read
into buffers of our own, and those buffers, the KV cache and the compute buffers are made in
2 MiB pages (madvise), which status reports and /proc/self/smaps confirms."""
from __future__ import annotations

import pytest

from helpers import MODEL_PATH

pytestmark = pytest.mark.model

THP_ON = ("always", "madvise")
MIB = 1 << 20


def anon_huge_bytes() -> int:
    """AnonHugePages of this process (pytest and the library it loaded through cffi)."""
    with open("/proc/self/smaps_rollup") as f:
        for line in f:
            if line.startswith("AnonHugePages:"):
                return int(line.split()[1]) * 1024
    return 0


def huge(server) -> dict:
    return server.status()["model"]["huge_pages"]


def greedy(server) -> str:
    return server.run(0, "completion", {"prompt": "def fibonacci(n):", "n_predict": 24,
                                        "temperature": 0, "ignore_eos": True})["content"]


def test_default_load_reads_the_weights_into_huge_pages(make_server):
    s = make_server()
    st = s.status()["model"]
    hp = st["huge_pages"]
    assert st["use_mmap"] is False and hp["enabled"] is True
    # the weights (most of the file) plus the KV cache and compute buffers
    assert hp["requested_bytes"] >= 0.9 * MODEL_PATH.stat().st_size, hp
    if hp["system"] in THP_ON:
        # the kernel may fall back to 4 KiB pages for some of it when memory is fragmented
        assert hp["backed_bytes_at_load"] >= hp["requested_bytes"] // 4, hp
        assert anon_huge_bytes() >= hp["backed_bytes_at_load"]
    else:
        assert hp["backed_bytes_at_load"] == 0, hp


def test_huge_pages_off_leaves_buffers_to_ggml(make_server):
    hp = huge(make_server(model_config={"huge_pages": False}))
    assert hp["enabled"] is False
    assert hp["requested_bytes"] == 0 and hp["backed_bytes_at_load"] == 0, hp


def test_mapped_model_keeps_its_weights_in_the_file(make_server):
    s = make_server(model_config={"use_mmap": True})
    st = s.status()["model"]
    assert st["use_mmap"] is True
    # only the KV cache, compute and repacked buffers are ours: well under the file's size
    assert 0 < st["huge_pages"]["requested_bytes"] < 0.5 * MODEL_PATH.stat().st_size, st["huge_pages"]


def test_same_tokens_in_huge_pages_and_in_a_mapped_file(make_server):
    a = make_server()
    b = make_server(model_config={"use_mmap": True, "huge_pages": False})
    assert huge(a)["requested_bytes"] > 0 and huge(b)["requested_bytes"] == 0
    assert greedy(a) == greedy(b)


def test_destroy_returns_the_huge_pages(make_server):
    before = anon_huge_bytes()
    s = make_server()
    backed = huge(s)["backed_bytes_at_load"]
    s.destroy()
    after = anon_huge_bytes()
    # every buffer was unmapped: nothing of ours is left in 2 MiB pages
    assert after <= before, (before, backed, after)
