"""Where things live in a checkout. Everything here but the repo itself is git-ignored."""
import os
from pathlib import Path

ROOT = Path(os.environ.get("LLAMA_NIF_ROOT", Path(__file__).resolve().parents[2]))
CACHE = ROOT / ".cache" / "downloads"
DEPS = ROOT / "deps"
LLAMA_CPP_DIR = Path(os.environ.get("LLAMA_CPP_DIR", DEPS / "llama.cpp"))
MODELS = Path(os.environ.get("LLAMA_NIF_MODELS", ROOT / "models"))
BUILD = ROOT / "build"
PRIV = ROOT / "priv"
