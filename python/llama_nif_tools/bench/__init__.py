"""For people measuring performance: `make bench` (`bench`: our C API and NIF against
llama.cpp's llama-server, with `bench_http`, `bench_procs`, `bench_report`) and
`make bench-cpu` (`bench_cpu`). Run from a checkout, through the CLI."""
