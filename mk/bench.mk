# Benchmarks (issue 5): our C API and NIF against llama.cpp's llama-server and
# llama-batched-bench, built from the same pinned source. Not part of `make test`.
# Results: bench-results/ (table, bench.json, bench.png). BENCH_ARGS=--quick for a smoke run.
BENCH_ARGS ?=

.PHONY: bench

bench: deps build model
	$(TOOL) bench $(BENCH_ARGS)
