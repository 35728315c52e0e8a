# Benchmarks (issue 5): our C API and NIF against llama.cpp's llama-server and
# llama-batched-bench, built from the same pinned source. Not part of `make test`.
# Results: bench-results/ (table, bench.json, bench.png). BENCH_ARGS=--quick for a smoke run.
BENCH_ARGS ?=

.PHONY: bench bench-cpu bench-users

bench: deps build model
	$(TOOL) bench $(BENCH_ARGS)

# Issue 24: K = 1, 4, 8, 16, 32 users arriving together, one streamed chat each, through the
# C API, the NIF and llama-server, every program at its defaults but threads, beside
# llama-batched-bench at B = K. Adds its table to bench/RESULTS.md (newest first).
# BENCH_ARGS: e.g. --users 1,4 --n-predict 16 --repeats 1 --results none (a smoke run).
bench-users: deps build model
	$(TOOL) bench --phases users $(BENCH_ARGS)

# The portable build (the default) against a native build (build-native/) on this machine.
BENCH_CPU_ARGS ?=
bench-cpu: deps build model
	$(TOOL) bench-cpu $(BENCH_CPU_ARGS)
