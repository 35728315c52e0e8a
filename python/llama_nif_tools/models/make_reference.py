"""One-off: compute the reference outputs the tests compare llama.cpp's against, with the original
runtimes (sentence-transformers / transformers on CPU), into py_tests/data/*.json.

Not run by CI or the tests (they only read the JSON). To re-run it, in a separate environment:

    python -m venv /tmp/refvenv
    /tmp/refvenv/bin/pip install torch==2.13.0     # a CPU build: check `pip download --no-deps`
                                                   # first; PyPI's default torch is a CUDA build
    /tmp/refvenv/bin/pip install transformers sentence-transformers numpy pyyaml
    PYTHONPATH=python HF_HUB_OFFLINE=1 /tmp/refvenv/bin/python -m llama_nif_tools.models.make_reference

Models load from the local HF folders that embed_models.py unpacks / generates (nothing is fetched
from a hub). Outputs:

- py_tests/data/embedding_reference.json: all-MiniLM-L6-v2's L2-normalised sentence embeddings
  (sentence-transformers, mean pooling), rounded to 6 decimals, and the HF tokenizer's ids for each
  text ([CLS] ... [SEP]).
- py_tests/data/rerank_reference.json: BertForSequenceClassification logits for (query, document)
  pairs, encoded "[CLS] query [SEP] document [SEP]" (the empty document too), for the tiny
  seeded model and the MiniLM model with a seeded head. token_type_ids are ALL ZEROS: llama.cpp
  adds token-type row 0 to every token (src/models/bert.cpp), while transformers would give the
  document type 1; the scores with transformers' own token types are stored beside them for
  information only (`scores_hf_token_types`): they are NOT what llama.cpp computes.
"""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from .. import paths  # noqa: E402
from ..build import pins  # noqa: E402
from . import embed_models  # noqa: E402

DATA = paths.ROOT / "py_tests" / "data"

SENTENCES = [
    "",
    "The quick brown fox jumps over the lazy dog.",
    "A man is playing a guitar on stage.",
    "HELLO WORLD, Written In Mixed CASE",
    "embedding",
    "Café crème brûlée à la mode: a naïve façade in Zürich.",
    "我喜欢机器学习和自然语言处理。",
    "Привет, как дела? Ελληνικά κείμενα εδώ.",
    "Emoji test: 🦙🚀 llamas love rockets ✅",
    "def add(a, b):\n    return a + b  # sum two numbers",
    "SELECT id, name FROM users WHERE age >= 21 ORDER BY name;",
    "Wait... what?! (Really?) Yes -- #1 @home, 100% [ok] {done} <tag> ~/path/to_file.txt",
    "   leading and trailing whitespace\tand a tab\n ",
    "3.14159 is approximately pi; 2^10 = 1024 and 1e-3 is small.",
    ("Large language models are trained on vast amounts of text and can be adapted to many tasks, "
     "such as translation, summarisation, question answering and code generation. Sentence "
     "embeddings map a whole sentence to a single vector, so that sentences with similar meanings "
     "lie close together and can be compared with a cosine similarity, which is useful for search, "
     "clustering and deduplication of documents in a large collection."),
]

QUERY = "What is the capital of France?"
DOCUMENTS = [
    "Paris is the capital and largest city of France.",
    "The Eiffel Tower is a wrought-iron lattice tower in Paris.",
    "Berlin is the capital of Germany.",
    "France is a country in Western Europe.",
    "Bananas are rich in potassium.",
    "La capitale de la France est Paris.",
    "def capital(country):\n    return {'France': 'Paris'}[country]",
    ("The history of France spans many centuries: the kingdom was unified under the Capetian "
     "dynasty, the revolution of 1789 ended the monarchy, and today the republic's government "
     "sits in its largest city, on the banks of the Seine."),
    "",
]

RERANK_MODELS = ("tiny-bert-rerank-f32", "minilm-l6-v2-rerank-f16")


def _versions():
    import sentence_transformers
    import torch
    import transformers
    return {"torch": torch.__version__, "transformers": transformers.__version__,
            "sentence_transformers": sentence_transformers.__version__}


def embeddings() -> dict:
    import numpy as np
    from sentence_transformers import SentenceTransformer
    folder = embed_models.hf_dir("minilm-l6-v2-f16")
    model = SentenceTransformer(str(folder), device="cpu")
    vecs = model.encode(SENTENCES, batch_size=1, normalize_embeddings=True, convert_to_numpy=True)
    items = []
    for text, v in zip(SENTENCES, vecs):
        ids = model.tokenizer(text)["input_ids"]
        assert len(ids) < model.max_seq_length, "keep the texts below the truncation length"
        assert abs(float(np.linalg.norm(v)) - 1) < 1e-5
        items.append({"text": text, "token_ids": [int(i) for i in ids],
                      "embedding": [round(float(x), 6) for x in v]})
    pin = pins.EMBED_MODELS["minilm-l6-v2-f16"]
    return {
        "model": pin.name, "gguf": pin.filename, "gguf_sha256": pin.sha256,
        "source": "sentence-transformers/all-MiniLM-L6-v2 from PyPI " + pins.MINILM_WHEEL.requirement,
        "pooling": "mean", "normalize": "L2", "n_embd": int(vecs.shape[1]),
        "reference": "sentence-transformers SentenceTransformer.encode(normalize_embeddings=True), "
                     "float32, CPU; token_ids from its HF tokenizer (with [CLS]/[SEP])",
        "tolerance": {"cosine_min": 0.999},
        "generated_by": "python/llama_nif_tools/models/make_reference.py", "versions": _versions(),
        "items": items,
    }


def rerank() -> dict:
    import torch
    from transformers import AutoTokenizer, BertForSequenceClassification
    torch.manual_seed(0)
    out = {
        "query": QUERY, "documents": DOCUMENTS,
        "input_format": "[CLS] query [SEP] document [SEP] (also for the empty document: "
                        "[CLS] query [SEP] [SEP], as llama.cpp builds it; transformers' "
                        "tokenizer(query, '') would drop the pair)",
        "token_type_ids": "all zeros: llama.cpp adds token-type embedding row 0 to every token "
                          "(src/models/bert.cpp); transformers' own pair encoding gives the "
                          "document type 1, whose scores are in scores_hf_token_types for "
                          "information only (not what llama.cpp computes)",
        "seed": pins.RERANK_SEED,
        "reference": "transformers BertForSequenceClassification logits (1 label), float32, CPU",
        "tolerance": {"abs": 0.01},
        "generated_by": "python/llama_nif_tools/models/make_reference.py", "versions": _versions(),
        "token_ids": None, "models": {},
    }
    for name in RERANK_MODELS:
        folder = embed_models.hf_dir(name)
        tok = AutoTokenizer.from_pretrained(str(folder))
        model = BertForSequenceClassification.from_pretrained(str(folder), torch_dtype=torch.float32)
        model.eval()
        ids, scores, scores_tt = [], [], []
        for doc in DOCUMENTS:
            # [CLS] query [SEP] document [SEP], built explicitly: for an empty document
            # tok(QUERY, "") drops the pair ([CLS] query [SEP]), while llama.cpp (server
            # format_prompt_rerank, llama-embedding) gives [CLS] query [SEP] [SEP]
            q = tok(QUERY, add_special_tokens=False)["input_ids"]
            d = tok(doc, add_special_tokens=False)["input_ids"]
            seq = [tok.cls_token_id, *q, tok.sep_token_id, *d, tok.sep_token_id]
            types = [0] * (len(q) + 2) + [1] * (len(d) + 1)
            if doc:
                enc = tok(QUERY, doc)
                assert enc["input_ids"] == seq and enc["token_type_ids"] == types
            input_ids = torch.tensor([seq])
            with torch.no_grad():
                zeros = model(input_ids=input_ids, attention_mask=torch.ones_like(input_ids),
                              token_type_ids=torch.zeros_like(input_ids)).logits
                hf_tt = model(input_ids=input_ids, attention_mask=torch.ones_like(input_ids),
                              token_type_ids=torch.tensor([types])).logits
            ids.append([int(i) for i in seq])
            scores.append(round(float(zeros[0, 0]), 6))
            scores_tt.append(round(float(hf_tt[0, 0]), 6))
        if out["token_ids"] is None:
            out["token_ids"] = ids
        assert out["token_ids"] == ids, "both models share MiniLM's vocab"
        pin = pins.EMBED_MODELS[name]
        cfg = json.loads((folder / "config.json").read_text())
        out["models"][name] = {
            "gguf": pin.filename, "gguf_sha256": pin.sha256, "source": pin.source,
            "architecture": cfg["architectures"][0],
            "layers": cfg["num_hidden_layers"], "hidden": cfg["hidden_size"],
            "heads": cfg["num_attention_heads"], "intermediate": cfg["intermediate_size"],
            "scores": scores, "scores_hf_token_types": scores_tt,
        }
    return out


def _dump(obj, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(obj, ensure_ascii=False, indent=1)
    path.write_text(text + "\n", encoding="utf-8")
    print(f"wrote {path} ({path.stat().st_size / 1e3:.1f} kB)")


def main() -> int:
    _dump(embeddings(), DATA / "embedding_reference.json")
    _dump(rerank(), DATA / "rerank_reference.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
