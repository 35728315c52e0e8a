"""Shared fixtures of the conformance suite for libllama_server (real library, real model)."""
from __future__ import annotations

import pytest

from helpers import MODEL_PATH
from llama_nif_tools.binding import Server

# Small slots keep the suite fast on a 2-core CPU; "error" keeps llama.cpp's warnings quiet.
BASE_CONFIG = {"n_parallel": 2, "n_ctx": 1024, "log_level": "error"}


def pytest_configure(config):
    config.addinivalue_line(
        "markers", f"model: needs the default GGUF model ({MODEL_PATH.name}); fails if it is missing")


def require_model():
    # CI must never pass by skipping: a missing model is a failure with a clear message.
    if not MODEL_PATH.is_file():
        pytest.fail(f"model file missing: {MODEL_PATH} (fetch it with `make model`)", pytrace=False)


@pytest.fixture(autouse=True)
def _model_guard(request):
    if request.node.get_closest_marker("model"):
        require_model()


def new_server(config=None, load=True, model_config=None) -> Server:
    s = Server({**BASE_CONFIG, **(config or {})})
    if load:
        require_model()
        try:
            s.load_model(MODEL_PATH, model_config)
        except Exception:
            s.destroy()
            raise
    return s


@pytest.fixture
def make_server():
    """Factory for fresh servers (tests that disturb the server); destroyed at teardown."""
    made = []

    def make(config=None, load=True, model_config=None):
        s = new_server(config, load, model_config)
        made.append(s)
        return s

    yield make
    for s in made:
        if s.handle is not None:
            s.destroy()


@pytest.fixture(scope="module")
def server():
    """One loaded server per module, for tests that leave it as they found it."""
    s = new_server({"n_parallel": 4})
    yield s
    s.destroy()
