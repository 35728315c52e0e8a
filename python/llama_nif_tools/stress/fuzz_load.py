"""The fuzzer's load phase: every model the project builds, crossed with server settings drawn
across their documented ranges (c_src/core/config_keys.def, llama_server.h) and model configs.
Each load that succeeds is followed by one task of each kind the model serves, and one of a
kind it does not serve.

An input of the "load" entry point is a JSON object {"model": name, "server": {...},
"model_config": {...} | null}. Half of the load inputs the mutator makes are fresh draws from
`draw` (structure-aware: every key in and around its range), the other half tree mutations of
earlier inputs (fuzz.py), which also reach values outside the ranges.
"""
from __future__ import annotations

import random

from ..build import pins

MODELS = ["qwen", *pins.EMBED_MODELS]   # the default chat model and the converter's BERT models

TEMPLATES = [None, "chatml", "llama3", "gemma", "mistral-v7", "deepseek3", "no-such-template", "",
             "{% for m in messages %}{{ m.content }}{% endfor %}",
             "{% for i in range(100000000) %}x{% endfor %}",
             "{% for i in range(1000) %}{% for j in range(1000) %}{% endfor %}{% endfor %}",
             "{{ 'x' * 10000000000 }}", "{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}", "{{ raise_exception('x') }}",
             "{% for m in messages %}"]


def log_uniform(rng: random.Random, lo: int, hi: int) -> int:
    return int(round(lo * (hi / lo) ** rng.random()))


def maybe(rng: random.Random, value, p: float = 0.5):
    """The value, or None (the key left out) with probability 1 - p."""
    return value if rng.random() < p else None


def draw_server(rng: random.Random) -> dict:
    edge = rng.random() < 0.3   # the ends of the ranges, where the rules bite
    n_parallel = rng.choice([1, 2, 3, 4, 8, 16, 32]) if not edge else rng.choice([1, 2, 256])
    cfg = {
        "n_parallel": n_parallel,
        "n_ctx": rng.choice([0, 64, 65, 128, 256, 512, 1000, 2048, 4096]),
        "n_batch": maybe(rng, rng.choice([2, 3, 8, n_parallel, max(2, n_parallel - 1)]) if edge else log_uniform(rng, 2, 4096), 0.8),
        "n_ubatch": maybe(rng, rng.choice([1, 2, 3, n_parallel, 8]) if edge else log_uniform(rng, 1, 4096), 0.8),
        "n_threads": maybe(rng, rng.choice([1, 2])),
        "n_threads_batch": maybe(rng, rng.choice([1, 2]), 0.2),
        "flash_attn": maybe(rng, rng.choice([True, False, "auto"])),
        "cont_batching": maybe(rng, rng.choice([True, False]), 0.3),
        "cache_ram_mib": maybe(rng, rng.choice([0, 1, 16, 256])),
        "slot_prompt_similarity": maybe(rng, rng.choice([0, 0.5, 1]), 0.3),
        "max_queued_tasks": maybe(rng, rng.choice([1, 2, 64]), 0.3),
        "timeout_write": maybe(rng, rng.choice([0.001, 600]), 0.1),
        "log_level": "none",
    }
    return {k: v for k, v in cfg.items() if v is not None}


def draw_model_config(rng: random.Random, model: str) -> dict | None:
    if rng.random() < 0.25:
        return None
    encoder = model != "qwen"
    cfg = {
        "embedding": maybe(rng, rng.random() < (0.7 if encoder else 0.3)),
        "pooling": maybe(rng, rng.choice(["none", "mean", "cls", "last", "rank"]), 0.4),
        "chat_template": rng.choice(TEMPLATES) if rng.random() < 0.4 else None,
        "use_mmap": maybe(rng, rng.choice([True, False]), 0.3),
        "huge_pages": maybe(rng, rng.choice([True, False]), 0.3),
        "n_gpu_layers": maybe(rng, rng.choice([-2, -1, 0, 3]), 0.2),
    }
    if "chat_template" in cfg and rng.random() < 0.1:
        cfg["chat_template"] = None   # given as null: "not given"
        return cfg
    return {k: v for k, v in cfg.items() if v is not None}


def draw(rng: random.Random) -> dict:
    model = rng.choice(MODELS)
    return {"model": model, "server": draw_server(rng), "model_config": draw_model_config(rng, model)}


def too_big(server: dict, model: str) -> bool:
    """Valid but huge: a context of more tokens than this machine should be asked to hold in a
    fuzz run (the fault list tests memory exhaustion on its own)."""
    n_par = server.get("n_parallel", 4)
    n_ctx = server.get("n_ctx", 4096)
    if not isinstance(n_par, int) or not isinstance(n_ctx, int) or isinstance(n_par, bool) or isinstance(n_ctx, bool):
        return False
    n_ctx = n_ctx or (32768 if model == "qwen" else 512)   # 0: the model's training context
    big = [v for k, v in server.items() if k in ("n_batch", "n_ubatch") and isinstance(v, int) and v > 8192]
    return n_par * n_ctx > 131072 or bool(big)


# The tasks of each kind a loaded server may serve, small enough for a fuzz run.
TASKS = {
    "completion": {"prompt": "1 2 3", "n_predict": 3},
    "chat": {"messages": [{"role": "user", "content": "Hi"}], "n_predict": 3},
    "embedding": {"input": ["a short text", "another"]},
    "rerank": {"query": "a cat", "documents": ["a cat sat", "stocks fell"]},
    "tokenize": {"content": "hello world"},
}


def kinds_served(model_status: dict) -> list[str]:
    """What get_status says the load serves."""
    if model_status.get("rerank"):
        return ["rerank", "tokenize"]
    if model_status.get("embedding"):
        return ["embedding", "tokenize"]
    return ["completion", "chat", "tokenize"]
