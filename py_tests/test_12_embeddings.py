"""Embedding tasks on all-MiniLM-L6-v2 (f16 GGUF converted from PyPI's copy), checked against
sentence-transformers outputs stored in data/embedding_reference.json (make_reference.py)."""
from __future__ import annotations

import base64
import json
import math
import struct
import threading
from pathlib import Path

import pytest

from helpers import E, SLOWDOWN, wait_until
from llama_nif_tools.binding import LlamaError, Server
from llama_nif_tools.models import embed_models

REF = json.loads((Path(__file__).parent / "data" / "embedding_reference.json").read_text())
ITEMS = REF["items"]
COS_MIN = REF["tolerance"]["cosine_min"]

pytestmark = pytest.mark.model


def cosine(a, b):
    dot = sum(x * y for x, y in zip(a, b))
    return dot / (math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b)))


@pytest.fixture(scope="module")
def embedder():
    path = embed_models.ensure(REF["model"])
    s = Server({"n_parallel": 4, "n_ctx": 512, "log_level": "error"})
    s.load_model(path, {"embedding": True})
    yield s
    s.destroy()


def vectors(result):
    """llama.cpp's /embedding shape: [{"index": i, "embedding": [[...]]}] in input order."""
    assert [r["index"] for r in result] == list(range(len(result)))
    return [r["embedding"][0] for r in result]


@pytest.mark.parametrize("i", range(len(ITEMS)), ids=[repr(it["text"][:24]) for it in ITEMS])
def test_each_sentence_matches_sentence_transformers(embedder, i):
    item = ITEMS[i]
    [vec] = vectors(embedder.run(0, "embedding", {"content": item["text"]}))
    assert len(vec) == REF["n_embd"]
    assert cosine(vec, item["embedding"]) >= COS_MIN


def test_batch_in_one_task_equals_one_by_one(embedder):
    texts = [it["text"] for it in ITEMS]
    batch = vectors(embedder.run(0, "embedding", {"content": texts}))
    assert len(batch) == len(texts)
    for vec, item in zip(batch, ITEMS):
        assert cosine(vec, item["embedding"]) >= COS_MIN


def test_openai_shape_on_request(embedder):
    r = embedder.run(0, "embedding", {"input": ["a cat", "a dog"], "model": "mini"})
    assert r["object"] == "list" and r["model"] == "mini"
    assert [d["index"] for d in r["data"]] == [0, 1]
    assert all(d["object"] == "embedding" and len(d["embedding"]) == 384 for d in r["data"])
    assert r["usage"]["prompt_tokens"] > 0


def test_base64_encoding_decodes_to_the_same_floats(embedder):
    plain = embedder.run(0, "embedding", {"input": "hello"})["data"][0]["embedding"]
    b64 = embedder.run(0, "embedding", {"input": "hello", "encoding_format": "base64"})["data"][0]["embedding"]
    raw = base64.b64decode(b64)
    decoded = struct.unpack(f"<{len(raw) // 4}f", raw)
    assert decoded == pytest.approx(plain, abs=1e-6)


def test_normalisation_off_keeps_direction(embedder):
    [raw] = vectors(embedder.run(0, "embedding", {"content": "hello world", "embd_normalize": -1}))
    [unit] = vectors(embedder.run(0, "embedding", {"content": "hello world"}))
    norm = math.sqrt(sum(x * x for x in raw))
    assert abs(norm - 1.0) > 0.01
    assert math.sqrt(sum(x * x for x in unit)) == pytest.approx(1.0, abs=1e-4)
    assert cosine(raw, unit) > 0.9999


def test_one_thousand_inputs_in_one_task(embedder):
    texts = [f"sentence number {i} about topic {i % 7}" for i in range(1000)]
    vecs = vectors(embedder.run(0, "embedding", {"content": texts}))
    assert len(vecs) == 1000
    assert all(abs(math.sqrt(sum(x * x for x in v)) - 1.0) < 1e-3 for v in vecs)
    # identical texts give identical vectors, different ones do not
    again = vectors(embedder.run(0, "embedding", {"content": [texts[3], texts[500]]}))
    assert cosine(again[0], vecs[3]) > 0.99999 and cosine(again[1], vecs[500]) > 0.99999
    assert cosine(vecs[3], vecs[500]) < 0.9999


def test_empty_array_is_a_clear_error(embedder):
    with pytest.raises(LlamaError) as e:
        embedder.create_task(0, "embedding", {"content": []})
    assert e.value.code == E("INVALID_ARGUMENT") and "empty" in e.value.detail


def test_input_longer_than_the_context_is_rejected_and_the_server_goes_on(embedder):
    with pytest.raises(LlamaError) as e:
        embedder.create_task(0, "embedding", {"content": ["short", "word " * 3000]})
    assert e.value.code == E("INVALID_ARGUMENT")
    assert "input 1" in e.value.detail and "limit is 512" in e.value.detail
    [vec] = vectors(embedder.run(0, "embedding", {"content": ITEMS[1]["text"]}))
    assert cosine(vec, ITEMS[1]["embedding"]) >= COS_MIN


def test_wrong_types_are_rejected(embedder):
    for bad in ({"content": 5}, {"content": ["a", 3]}, {"content": "a", "encoding_format": "hex"},
                {"content": "a", "embd_normalize": "two"}, {"prompt": "a"}):
        with pytest.raises(LlamaError) as e:
            embedder.create_task(0, "embedding", bad)
        assert e.value.code == E("INVALID_ARGUMENT"), bad


def test_generation_tasks_on_an_embedding_model_are_not_supported(embedder):
    for kind, inp in (("chat", {"messages": [{"role": "user", "content": "hi"}]}),
                      ("completion", {"prompt": "hi"}),
                      ("rerank", {"query": "q", "documents": ["d"]})):
        with pytest.raises(LlamaError) as e:
            embedder.create_task(0, kind, inp)
        assert e.value.code == E("NOT_SUPPORTED"), kind


def test_cancelling_a_huge_task_leaves_the_server_serving(embedder):
    # 20,000 inputs go to the core a window at a time: the cancel drops the rest (it took
    # 23-32 s when all were queued in llama.cpp, which scans its queue once per cancelled id)
    tid = embedder.create_task(0, "embedding", {"input": [f"text {i}" for i in range(20000)]})
    wait_until(lambda: embedder.status()["tasks"]["running"] == 1, "the task to start")
    embedder.cancel(tid)
    with pytest.raises(LlamaError) as ei:
        embedder.get_result(tid, 1000)
    assert ei.value.code == E("CANCELLED")   # 20,000 inputs take minutes: it was still running
    st = embedder.status()
    assert st["tasks"]["queued"] == st["tasks"]["running"] == 0
    vecs = vectors(embedder.run(0, "embedding", {"content": ["after the cancel", "still works"]}))
    assert len(vecs) == 2


def test_many_threads_and_sessions_share_the_slots(embedder):
    """8 threads, each on its own session, embed concurrently; every answer is its own."""
    sessions = [embedder.create_session() for _ in range(8)]
    results, errors = {}, []

    def work(k):
        try:
            texts = [ITEMS[(k + j) % len(ITEMS)]["text"] for j in range(5)]
            results[k] = (texts, vectors(embedder.run(sessions[k].id, "embedding", {"content": texts})))
        except Exception as exc:  # reported below, with the thread's index
            errors.append((k, exc))

    threads = [threading.Thread(target=work, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300 * SLOWDOWN)
    assert not errors and len(results) == 8
    by_text = {it["text"]: it["embedding"] for it in ITEMS}
    for texts, vecs in results.values():
        for text, vec in zip(texts, vecs):
            assert cosine(vec, by_text[text]) >= COS_MIN
