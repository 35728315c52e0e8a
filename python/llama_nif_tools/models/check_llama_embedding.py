"""Dev script: check the converted GGUFs with llama.cpp's own `llama-embedding` tool against the
reference JSON (py_tests/data/*_reference.json), independently of this project's C core.

    cmake -S deps/llama.cpp -B /tmp/emb-build -G Ninja -DLLAMA_BUILD_TESTS=OFF \\
          -DLLAMA_USE_PREBUILT_UI=OFF -DLLAMA_OPENSSL=OFF -DBUILD_SHARED_LIBS=OFF
    cmake --build /tmp/emb-build --target llama-embedding -j1
    PYTHONPATH=python python -m llama_nif_tools.models.check_llama_embedding --bin /tmp/emb-build/bin/llama-embedding

Embeddings: `--pooling mean --embd-normalize 2`, cosine with the sentence-transformers vector must be
>= the JSON's tolerance (0.999). Rerank: `--pooling rank --embd-normalize -1`, prompts
"query<#seq#>document" (llama-embedding then tokenizes "query[SEP]document" with [CLS] ... [SEP]
added), |score - transformers logit| <= the JSON's tolerance (0.01). Token ids printed by
--verbose-prompt are compared with the HF tokenizer's.
"""
from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys

import numpy as np

from .. import paths
from . import embed_models

DATA = paths.ROOT / "py_tests" / "data"
SEP, SEQ = "<#sep#>", "<#seq#>"
TOKEN_LINE = re.compile(r"^\s*(\d+) -> '")


def run(binary: str, model, prompts: list[str], extra: list[str]) -> tuple[np.ndarray, list[list[int]]]:
    # This llama.cpp's llama-embedding sometimes exits before its asynchronous logger has written
    # all of stdout (common/log.cpp: the logger is never flushed at exit), losing the result lines:
    # try again a few times.
    for attempt in range(1, 6):
        try:
            return _run_once(binary, model, prompts, extra)
        except IncompleteOutput as e:
            print(f"   (llama-embedding output incomplete, attempt {attempt}: {e})")
    raise RuntimeError("llama-embedding kept losing its output")


class IncompleteOutput(Exception):
    pass


def _run_once(binary: str, model, prompts: list[str], extra: list[str]):
    cmd = [binary, "-m", str(model), "-t", "2", "--embd-separator", SEP, "--cls-separator", SEQ,
           "--embd-output-format", "raw", "--verbose-prompt", "-p", SEP.join(prompts), *extra]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[:6])}... failed:\n{r.stderr[-3000:]}")
    rows = [line for line in r.stdout.splitlines()
            if line.strip() and re.fullmatch(r"[-0-9.e ]+", line.strip())]
    values = np.array([[float(x) for x in line.split()] for line in rows], dtype=np.float64)
    if values.ndim != 2 or len(values) != len(prompts):
        raise IncompleteOutput(f"expected {len(prompts)} output rows, got {values.shape}")
    # --verbose-prompt: "number of tokens in prompt = N" goes to the log (stderr), the N
    # "   id -> 'piece'" lines to stdout, prompt after prompt
    counts = [int(n) for n in re.findall(r"number of tokens in prompt = (\d+)", r.stderr)]
    toks = [int(m.group(1)) for m in map(TOKEN_LINE.match, r.stdout.splitlines()) if m]
    if len(counts) != len(prompts) or sum(counts) != len(toks):
        raise IncompleteOutput(f"{len(counts)} prompts, {sum(counts)} tokens; {len(toks)} token lines")
    ids, at = [], 0
    for n in counts:
        ids.append(toks[at:at + n])
        at += n
    return values, ids


def check_embeddings(binary: str) -> bool:
    ref = json.loads((DATA / "embedding_reference.json").read_text(encoding="utf-8"))
    model = embed_models.ensure(ref["model"])
    texts = [it["text"] for it in ref["items"]]
    got, ids = run(binary, model, texts, ["--pooling", "mean", "--embd-normalize", "2"])
    assert got.shape == (len(texts), ref["n_embd"]), got.shape
    ok = True
    print(f"== {ref['model']}: cosine(llama-embedding, sentence-transformers), tolerance "
          f">= {ref['tolerance']['cosine_min']}")
    for it, vec, toks in zip(ref["items"], got, ids):
        want = np.array(it["embedding"])
        cos = float(vec @ want / (np.linalg.norm(vec) * np.linalg.norm(want)))
        tok_ok = toks == it["token_ids"]
        good = cos >= ref["tolerance"]["cosine_min"]
        ok &= good
        print(f"   cos {cos:.6f} {'ok ' if good else 'BAD'} tokens {'same' if tok_ok else 'DIFFER'}"
              f"  {it['text'][:48]!r}")
        if not tok_ok:
            print(f"      hf   {it['token_ids']}\n      llama {toks}")
    return ok


def check_rerank(binary: str) -> bool:
    ref = json.loads((DATA / "rerank_reference.json").read_text(encoding="utf-8"))
    prompts = [ref["query"] + SEQ + d for d in ref["documents"]]
    ok = True
    for name, m in ref["models"].items():
        model = embed_models.ensure(name)
        got, ids = run(binary, model, prompts, ["--pooling", "rank", "--embd-normalize", "-1"])
        scores = got[:, 0]
        print(f"== {name}: llama-embedding score vs transformers logit (token types 0), "
              f"tolerance {ref['tolerance']['abs']}")
        for doc, s, want, toks, want_ids in zip(ref["documents"], scores, m["scores"], ids, ref["token_ids"]):
            d = abs(s - want)
            good = d <= ref["tolerance"]["abs"]
            ok &= good
            print(f"   llama {s:+.6f}  hf {want:+.6f}  |diff| {d:.6f} {'ok ' if good else 'BAD'}"
                  f" tokens {'same' if toks == want_ids else 'DIFFER'}  {doc[:40]!r}")
            if toks != want_ids:
                print(f"      hf   {want_ids}\n      llama {toks}")
    return ok


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bin", required=True, help="path to llama.cpp's llama-embedding")
    args = ap.parse_args(argv)
    ok = check_embeddings(args.bin)
    ok &= check_rerank(args.bin)
    print("ALL OK" if ok else "SOME CHECKS FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
