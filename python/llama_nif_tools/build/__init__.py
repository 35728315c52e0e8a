"""For building the libraries from a checkout: the pinned downloads (`pins`), fetching and
checking them (`fetch`), and the CMake driver (`cmake`). Used by the CLI, `make` and CMake
(`python -m llama_nif_tools source`); needs cmake and ninja (the `[build]` extra)."""
