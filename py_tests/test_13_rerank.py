"""Rerank tasks on two real-architecture BERT cross-encoders (seeded heads, see
embed_models.py), checked against transformers' BertForSequenceClassification logits stored in
data/rerank_reference.json. Token types are all 0 there, as llama.cpp computes them."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from helpers import E
from llama_nif_tools.binding import LlamaError, Server
from llama_nif_tools.models import embed_models

REF = json.loads((Path(__file__).parent / "data" / "rerank_reference.json").read_text())
TOL = REF["tolerance"]["abs"]
QUERY, DOCS = REF["query"], REF["documents"]

pytestmark = pytest.mark.model


@pytest.fixture(scope="module", params=sorted(REF["models"]))
def reranker(request):
    name = request.param
    s = Server({"n_parallel": 4, "n_ctx": 512, "log_level": "error"})
    s.load_model(embed_models.ensure(name), {"embedding": True, "pooling": "rank"})
    yield name, s
    s.destroy()


def test_scores_match_transformers_and_order_is_the_same(reranker):
    name, s = reranker
    want = REF["models"][name]["scores"]
    r = s.run(0, "rerank", {"query": QUERY, "documents": DOCS})
    got = {e["index"]: e["relevance_score"] for e in r["results"]}
    assert sorted(got) == list(range(len(DOCS)))
    for i, score in got.items():
        assert score == pytest.approx(want[i], abs=TOL), (name, i)
    order = [e["index"] for e in r["results"]]
    assert order == sorted(range(len(DOCS)), key=lambda i: -want[i])
    assert r["object"] == "list" and r["usage"]["prompt_tokens"] > 0


def test_top_n_keeps_the_best(reranker):
    name, s = reranker
    want = REF["models"][name]["scores"]
    r = s.run(0, "rerank", {"query": QUERY, "documents": DOCS, "top_n": 3})
    assert [e["index"] for e in r["results"]] == sorted(range(len(DOCS)), key=lambda i: -want[i])[:3]


def test_unsorted_with_text_on_request(reranker):
    _, s = reranker
    r = s.run(0, "rerank", {"query": QUERY, "documents": DOCS[:4], "sort": False, "return_text": True})
    assert [e["index"] for e in r["results"]] == [0, 1, 2, 3]
    assert [e["text"] for e in r["results"]] == DOCS[:4]


def test_bad_rerank_input_is_rejected(reranker):
    _, s = reranker
    for bad in ({"query": QUERY, "documents": []}, {"documents": ["a"]}, {"query": QUERY},
                {"query": 3, "documents": ["a"]}, {"query": QUERY, "documents": "a"},
                {"query": QUERY, "documents": ["a", 2]}, {"query": QUERY, "documents": ["a"], "top_n": -1}):
        with pytest.raises(LlamaError) as e:
            s.create_task(0, "rerank", bad)
        assert e.value.code == E("INVALID_ARGUMENT"), bad


def test_document_longer_than_the_context_is_rejected(reranker):
    _, s = reranker
    with pytest.raises(LlamaError) as e:
        s.create_task(0, "rerank", {"query": QUERY, "documents": ["fine", "long " * 2000]})
    assert e.value.code == E("INVALID_ARGUMENT") and "document 1" in e.value.detail
    assert len(s.run(0, "rerank", {"query": QUERY, "documents": DOCS[:2]})["results"]) == 2


def test_embedding_on_a_rerank_model_is_not_supported(reranker):
    _, s = reranker
    with pytest.raises(LlamaError) as e:
        s.create_task(0, "embedding", {"content": "x"})
    assert e.value.code == E("NOT_SUPPORTED")
