"""The load rules (c_src/core/load_rules.cpp): what llama.cpp will make of a model and its
configs is checked before it sees the model. Every row is a load that aborted the process
(GGML_ASSERT in llama-context.cpp, GGML_ABORT in common.cpp) in issue 23's fuzzing, run in a
child process: it must now load and serve, or fail with INVALID_ARGUMENT naming the keys."""
from __future__ import annotations

import re

import pytest

from helpers import CODES, MODEL_PATH, run_steps
from llama_nif_tools import paths
from llama_nif_tools.models import embed_models

pytestmark = pytest.mark.model

QWEN = str(MODEL_PATH)
QUIET = {"log_level": "none"}
RERANK = ["run", "rerank", {"query": "a cat", "documents": ["a cat sat", "stock prices"]}]
EMBED = ["run", "embedding", {"input": "hello there"}]


def model(name):
    return QWEN if name == "qwen" else str(embed_models.ensure(name))


# An encoder loaded without "embedding": true is loaded for embeddings (the only thing it can
# do) and says so in status; its task kind then works.
SERVED = {
    "minilm, n_batch 8 = n_ubatch": ({"n_parallel": 1, "n_ctx": 512, "n_threads": 1, "n_batch": 8, "n_ubatch": 8},
                                     "minilm-l6-v2-f16", None, EMBED, False),
    "reranker, n_ctx 64": ({"n_parallel": 1, "n_ctx": 64, "n_threads": 1, "n_batch": 512, "n_ubatch": 512},
                           "tiny-bert-rerank-f32", None, RERANK, True),
    "reranker, null chat_template": ({"n_parallel": 1, "n_ctx": 128, "n_threads": 1, "n_batch": 512, "n_ubatch": 8},
                                     "tiny-bert-rerank-f32", {"chat_template": None}, RERANK, True),
    "reranker, n_batch 8 < n_ubatch": ({"n_parallel": 1, "n_ctx": 512, "n_threads": 1, "n_batch": 8, "n_ubatch": 512},
                                       "tiny-bert-rerank-f32", None, RERANK, True),
}


@pytest.mark.parametrize("name", list(SERVED))
def test_an_encoder_loaded_without_embedding_serves_embeddings(name):
    cfg, model_name, mcfg, task, rerank = SERVED[name]
    out = run_steps([["init", {**cfg, **QUIET}], ["load", model(model_name), mcfg], ["status"], task])
    assert [o[:2] for o in out] == [["init", 0], ["load", 0], ["status", 0], ["run", 0]], out
    m = out[2][2]["model"]
    assert (m["architecture"], m["embedding"], m["embedding_implied"], m["rerank"]) == ("bert", True, True, rerank)
    r = out[3][2]
    assert len(r["results"]) == 2 if rerank else len(r["data"][0]["embedding"]) == 384, r


def test_an_encoder_loaded_with_embedding_does_not_say_implied():
    out = run_steps([["init", {"n_parallel": 1, "n_ctx": 512, **QUIET}],
                     ["load", model("minilm-l6-v2-f16"), {"embedding": True}], ["status"]])
    assert out[2][2]["model"]["embedding_implied"] is False and out[2][2]["model"]["embedding"] is True, out


def test_a_generation_model_is_not_loaded_for_embeddings():
    out = run_steps([["init", {"n_parallel": 1, "n_ctx": 512, **QUIET}], ["load", QWEN, None], ["status"],
                     ["run", "embedding", {"input": "x"}]])
    m = out[2][2]["model"]
    assert (m["architecture"], m["embedding"], m["embedding_implied"]) == ("qwen2", False, False), out
    assert out[3][:2] == ["run", CODES["LLAMA_ERROR_NOT_SUPPORTED"]], out


# Settings no model config makes servable: refused at load, naming the keys.
REFUSED = {
    "reranker, n_ubatch 1 < n_parallel 2": ({"n_parallel": 2, "n_ctx": 512, "n_threads": 1, "n_batch": 512, "n_ubatch": 1},
                                            "tiny-bert-rerank-f32", {"chat_template": "chatml"}, ["'n_ubatch' (1)", "'n_parallel' (2)"]),
    "minilm, n_ubatch 1": ({"n_parallel": 1, "n_ctx": 128, "n_threads": 1, "n_batch": 512, "n_ubatch": 1},
                           "minilm-l6-v2-f16", None, ["'n_ubatch' (1)", "at least 2", "bert, an encoder"]),
    "qwen for embeddings, n_ubatch 1": ({"n_parallel": 1, "n_ctx": 512, "n_threads": 1, "n_batch": 512, "n_ubatch": 1},
                                        "qwen", {"embedding": True}, ["'n_ubatch' (1)", "at least 2"]),
}


@pytest.mark.parametrize("name", list(REFUSED))
def test_settings_an_embedding_load_cannot_run_are_refused_at_load(name):
    cfg, model_name, mcfg, mentions = REFUSED[name]
    out = run_steps([["init", {**cfg, **QUIET}], ["load", model(model_name), mcfg]])
    assert out[-1][:2] == ["load", CODES["LLAMA_ERROR_INVALID_ARGUMENT"]], out
    for m in mentions:
        assert m in out[-1][2], out


def test_a_small_micro_batch_works_for_an_encoder_and_a_decoder():
    for name, mcfg in [("minilm-l6-v2-f16", None), ("qwen", {"embedding": True})]:
        out = run_steps([["init", {"n_parallel": 2, "n_ctx": 256, "n_batch": 512, "n_ubatch": 4, **QUIET}],
                         ["load", model(name), mcfg], ["run", "embedding", {"input": "a"}],
                         ["run", "embedding", {"input": "a sentence of more than two tokens"}]])
        assert out[2][:2] == ["run", 0], out
        # an input longer than the micro-batch is refused by create_task, not an abort
        assert out[3][:2] == ["run", CODES["LLAMA_ERROR_INVALID_ARGUMENT"]] and "n_ubatch" in out[3][2], out


# ---- memoryless_archs.def agrees with the pinned llama.cpp ----------------------------------

def test_the_memoryless_architecture_table_matches_llama_cpp():
    src = paths.LLAMA_CPP_DIR
    model_cpp = (src / "src" / "llama-model.cpp").read_text()
    body = model_cpp[model_cpp.index("llama_model::create_memory("):]
    block = body[body.index("switch (arch)"):body.index("res = nullptr")]
    enums = re.findall(r"case (LLM_ARCH_\w+):", block)
    names = dict(re.findall(r'\{ (LLM_ARCH_\w+),\s*"([^"]+)"\s*\}', (src / "src" / "llama-arch.cpp").read_text()))
    theirs = {names[e] for e in enums}
    table = (paths.ROOT / "c_src" / "core" / "memoryless_archs.def").read_text()
    ours = set(re.findall(r'^LLS_MEMORYLESS_ARCH\("([^"]+)"', table, re.M))
    assert enums and ours == theirs, f"llama.cpp has {sorted(theirs - ours)} we lack, we list {sorted(ours - theirs)}"


@pytest.mark.parametrize("model_name,mcfg", [("minilm-l6-v2-f16", None), ("tiny-bert-rerank-f32", {"embedding": True, "pooling": "mean"}),
                                             ("qwen", {"embedding": True, "pooling": "mean"})])
def test_a_mean_pooled_load_with_a_micro_batch_not_a_multiple_of_the_slots_works(model_name, mcfg):
    # was GGML_ASSERT(ggml_can_mul_mat(a, b)) in llama.cpp's worst-case graph (found by the load phase of make fuzz)
    out = run_steps([["init", {"n_parallel": 16, "n_ctx": 256, "n_batch": 35, "n_ubatch": 90, **QUIET}],
                     ["load", model(model_name), mcfg], ["run", "embedding", {"input": ["a b c", "d"]}]])
    assert [o[:2] for o in out] == [["init", 0], ["load", 0], ["run", 0]], out
    assert len(out[2][2]["data"]) == 2, out
