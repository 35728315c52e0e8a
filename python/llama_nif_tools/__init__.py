"""llama_nif_tools: Python support for libllama_server (llama.cpp's server core as a C library
and an Erlang NIF), split by audience:

- `binding`: the cffi binding of the C API, for applications (needs only cffi);
- `build`: pins, fetching and the CMake driver; `bench`: benchmarks; `models`: the embedding /
  rerank model converter; `stress`: the fuzz harness and the soak (developers of this project);
- `python -m llama_nif_tools` (`__main__`, `demo`): the command line; `paths`, `progress`: shared.
"""
__version__ = "0.1.0"
