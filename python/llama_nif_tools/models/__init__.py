"""For the embedding and rerank test models: the torch-free HF -> GGUF converter
(`embed_models`, run by `make model`) and one-off developer scripts that checked it
(`compare_gguf`, `check_llama_embedding`) or computed the tests' references
(`make_reference`). Needs numpy and pyyaml (the `[models]` extra)."""
