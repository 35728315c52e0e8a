"""llama_nif_tools: build tooling, cffi reference binding and conformance suite support for
libllama_server (llama.cpp's server core as a C library and an Erlang NIF)."""
__version__ = "0.1.0"
