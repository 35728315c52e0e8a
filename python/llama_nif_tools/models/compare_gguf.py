"""Dev script: prove the torch-free converter (embed_models.convert) equals llama.cpp's official one.

    PYTHONPATH=python python -m llama_nif_tools.models.compare_gguf --python /path/to/venv/bin/python

--python names an interpreter that has what deps/llama.cpp/convert_hf_to_gguf.py imports: torch
(CPU build; `pip install torch==2.13.0` where a local CPU wheel lies, else PyTorch's CPU index),
transformers, numpy, pyyaml, tqdm, sentencepiece. This script itself only needs numpy + pyyaml.
Not part of CI: it was run once, and its result is recorded in the report for issue 4.

For each model the official converter and ours convert the same HF folder; every metadata key
(name, type, value: tokenizer list, token types, special token ids, pre-tokenizer, hparams, pooling)
and every tensor (name, shape, type, bytes) is compared, and so are the files' sha256.
Expected differences (the point of our rerank conversion, see embed_models.py) are listed as such:
for the rerank models the official converter drops the BERT pooler (no cls.weight / cls.bias) and
writes no pooling type; ours keeps the pooler as `cls` and declares pooling type RANK.
"""
from __future__ import annotations

import argparse
import hashlib
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from .. import paths
from ..build import pins
from . import embed_models

# differences the rerank conversion makes on purpose (official -> ours)
EXPECTED_RERANK = {"tensor only in ours: cls.weight", "tensor only in ours: cls.bias",
                   "key only in ours: bert.pooling_type"}


def _fields(reader):
    out = {}
    for name, f in reader.fields.items():
        if name.startswith("GGUF."):
            continue
        types = tuple(int(t) for t in f.types)
        out[name] = (types, f.contents())
    return out


def compare(a: Path, b: Path) -> tuple[list[str], dict]:
    """Differences between GGUF files a (official) and b (ours), and counts of what was compared."""
    gguf = embed_models._gguf()
    ra, rb = gguf.GGUFReader(a), gguf.GGUFReader(b)
    diffs = []
    fa, fb = _fields(ra), _fields(rb)
    for k in fa.keys() - fb.keys():
        diffs.append(f"key only in official: {k}")
    for k in fb.keys() - fa.keys():
        diffs.append(f"key only in ours: {k}")
    for k in fa.keys() & fb.keys():
        if fa[k] != fb[k]:
            va, vb = fa[k][1], fb[k][1]
            diffs.append(f"key {k}: official {fa[k][0]} {str(va)[:80]} != ours {fb[k][0]} {str(vb)[:80]}")
    if list(k for k in fa if k in fb) != list(k for k in fb if k in fa):
        diffs.append("metadata keys are in a different order")
    ta = {t.name: t for t in ra.tensors}
    tb = {t.name: t for t in rb.tensors}
    for k in ta.keys() - tb.keys():
        diffs.append(f"tensor only in official: {k}")
    for k in tb.keys() - ta.keys():
        diffs.append(f"tensor only in ours: {k}")
    for k in ta.keys() & tb.keys():
        x, y = ta[k], tb[k]
        if list(x.shape) != list(y.shape):
            diffs.append(f"tensor {k}: shape {list(x.shape)} != {list(y.shape)}")
        if x.tensor_type != y.tensor_type:
            diffs.append(f"tensor {k}: type {x.tensor_type.name} != {y.tensor_type.name}")
        if not np.array_equal(np.asarray(x.data).view(np.uint8), np.asarray(y.data).view(np.uint8)):
            diffs.append(f"tensor {k}: bytes differ")
    return diffs, {"keys": len(fa), "tensors": len(ta),
                   "tokens": len(fa.get("tokenizer.ggml.tokens", (0, []))[1])}


def sha256(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--python", required=True, help="interpreter with torch + transformers")
    ap.add_argument("models", nargs="*", default=list(pins.EMBED_MODELS))
    args = ap.parse_args(argv)
    converter = paths.LLAMA_CPP_DIR / "convert_hf_to_gguf.py"
    failed = False
    with tempfile.TemporaryDirectory(prefix="gguf-compare-") as tmp:
        for name in args.models:
            pin = pins.EMBED_MODELS[name]
            src, outtype, rerank = embed_models.SOURCES[name]
            folder = src()
            official, ours = Path(tmp) / f"official-{name}.gguf", Path(tmp) / f"ours-{name}.gguf"
            t0 = time.monotonic()
            r = subprocess.run([args.python, str(converter), str(folder), "--outtype", outtype,
                                "--outfile", str(official)], capture_output=True, text=True)
            t_official = time.monotonic() - t0
            if r.returncode != 0:
                print(r.stdout[-3000:], r.stderr[-3000:])
                print(f"{name}: official converter failed")
                failed = True
                continue
            t0 = time.monotonic()
            embed_models.convert(folder, ours, outtype, rerank)
            t_ours = time.monotonic() - t0
            diffs, n = compare(official, ours)
            unexpected = [d for d in diffs if not (rerank and d in EXPECTED_RERANK)]
            so, su = sha256(official), sha256(ours)
            print(f"== {name}: compared {n['keys']} metadata keys ({n['tokens']} tokens), "
                  f"{n['tensors']} official tensors")
            print(f"   official: {so} ({t_official:.1f} s)\n   ours:     {su} ({t_ours:.1f} s)"
                  f"   pinned: {'yes' if su == pin.sha256 else 'NO'}")
            for d in sorted(diffs):
                print(f"   {'expected' if d not in unexpected else 'DIFF    '}: {d}")
            if not diffs:
                print(f"   EQUAL: every key and tensor; files byte-identical: {so == su}")
            elif not unexpected:
                print("   equal apart from the intended rank-head differences")
            failed |= bool(unexpected)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
