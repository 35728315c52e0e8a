# Benchmarks (issue 5): our C API and NIF against llama.cpp's llama-server and
# llama-batched-bench, built from the same pinned source. Not part of `make test`.
# Results: bench-results/ (table, bench.json, bench.png). BENCH_ARGS=--quick for a smoke run.
BENCH_ARGS ?=

.PHONY: bench bench-cpu

bench: deps build model
	$(TOOL) bench $(BENCH_ARGS)

# The portable build (the default) against a native build (build-native/) on this machine.
BENCH_CPU_ARGS ?=
bench-cpu: deps build model
	$(TOOL) bench-cpu $(BENCH_CPU_ARGS)
