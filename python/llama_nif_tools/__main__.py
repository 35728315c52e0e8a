"""python -m llama_nif_tools <command>: the project's build, fetch, demo and bench tooling."""
import argparse
import os
import sys
from pathlib import Path

from . import paths
from .build import cmake, fetch


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="llama_nif_tools")
    sub = ap.add_subparsers(dest="cmd", required=True)
    sub.add_parser("source", help="fetch + verify + unpack the pinned llama.cpp source")
    m = sub.add_parser("model", help="fetch + verify a model into models/")
    m.add_argument("name", nargs="?", help="model name (default: the default chat model); "
                   "embedding/rerank models (converted to GGUF): "
                   + ", ".join(fetch.pins.EMBED_MODELS) + ", or 'embed-all' for all of them")
    b = sub.add_parser("build", help="build the C library (and other targets)")
    b.add_argument("targets", nargs="*")
    b.add_argument("--native", action="store_true",
                   help="CPU code for this machine only (-march=native; LLAMA_NIF_NATIVE=ON)")
    b.add_argument("--portable", action="store_true",
                   help="CPU code for any x86-64-v3 CPU, best variant at run time (the default)")
    b.add_argument("--amx", action="store_true",
                   help="include ggml's AMX kernels (LLAMA_NIF_AMX=ON): only on a machine you have checked")
    b.add_argument("--cuda", action="store_true",
                   help="with ggml's CUDA backend (LLAMA_NIF_CUDA=ON; cuBLAS fetched from PyPI)")
    b.add_argument("--cuda-arch", help="CUDA architectures, e.g. '90;89' (default 90: H100/H200)")
    b.add_argument("--build-dir", help="build folder (default build/)")
    b.add_argument("--option", action="append", default=[], metavar="NAME=VALUE",
                   help="one more CMake cache option (repeatable)")
    sub.add_parser("paths", help="print where things are")
    d = sub.add_parser("demo", help="concurrent chat demo on the default model")
    d.add_argument("--sessions", type=int, default=4)
    bn = sub.add_parser("bench", help="C API, NIF and llama-server side by side (bench-results/)")
    bn.add_argument("--quick", action="store_true", help="16 tokens, 1 round: a smoke run")
    bn.add_argument("--repeats", type=int, help="rounds per K (median taken)")
    bn.add_argument("--n-predict", type=int, help="tokens per session (default 128; users phase 96)")
    bn.add_argument("--ks", help="concurrent sessions, comma-separated (default 1,4,8)")
    bn.add_argument("--parallel", type=int, help="n_parallel / -np (default 4)")
    bn.add_argument("--threads", type=int, help="n_threads / -t (default 2; users phase: our default, the cores)")
    bn.add_argument("--phases", default="gen,engine,embed",
                    help="subset of gen,engine,embed,users (users: K users arriving together, every "
                         "program at its defaults; `make bench-users`)")
    bn.add_argument("--users", help="users phase: users arriving together, comma-separated (default 1,4,8,16,32)")
    bn.add_argument("--results", help="users phase: the file its table is added to (default bench/RESULTS.md; "
                                      "not with --quick unless given; 'none': not recorded)")
    bn.add_argument("--no-build", action="store_true", help="use the binaries already in build/")
    bn.add_argument("--omp-wait-policy", default="default", choices=["passive", "active", "default"],
                    help="OMP_WAIT_POLICY of every process (default: left as users get it; see bench.bench_procs.ENV)")
    bn.add_argument("--out", help="results folder (default bench-results/)")
    bn.add_argument("--control", action="store_true",
                    help="a second C API process in the throughput rounds: C/C2 shows the noise floor")
    bn.add_argument("--server-huge-pages", action="store_true",
                    help="llama-server with our default's memory: -lm none and GLIBC_TUNABLES=glibc.malloc.hugetlb=1")
    bn.add_argument("--generations", type=int,
                    help="start fresh processes this many times, --repeats rounds in each (default 1)")
    bc = sub.add_parser("bench-cpu", help="the portable build against a native build on this machine")
    bc.add_argument("--repeats", type=int, default=3, help="rounds (median taken)")
    bc.add_argument("--n-predict", type=int, default=64, help="tokens per session")
    bc.add_argument("--no-build", action="store_true", help="use the binaries already built")
    bc.add_argument("--omp-wait-policy", default="default", choices=["passive", "active", "default"],
                    help="OMP_WAIT_POLICY of every process (default: as users get it)")
    args = ap.parse_args(argv)

    if args.cmd == "source":
        print(fetch.llama_cpp_source())
    elif args.cmd == "model":
        if args.name in fetch.pins.EMBED_MODELS or args.name == "embed-all":
            from .models import embed_models
            names = list(fetch.pins.EMBED_MODELS) if args.name == "embed-all" else [args.name]
            for name in names:
                print(embed_models.ensure(name))
        else:
            print(fetch.model(args.name))
    elif args.cmd == "build":
        opts = {}
        if args.native or args.portable:
            opts["LLAMA_NIF_NATIVE"] = "ON" if args.native else "OFF"
        if args.amx:
            opts["LLAMA_NIF_AMX"] = "ON"
        if args.cuda or os.environ.get("LLAMA_BACKEND", "").lower() == "cuda":
            opts.update(cmake.cuda_options(args.cuda_arch))
        opts.update(o.split("=", 1) for o in args.option)
        cmake.build(args.targets or None, Path(args.build_dir).resolve() if args.build_dir else paths.BUILD, opts)
    elif args.cmd == "paths":
        for k in ("ROOT", "LLAMA_CPP_DIR", "MODELS", "BUILD"):
            print(f"{k}={getattr(paths, k)}")
        print(f"DEFAULT_MODEL={paths.MODELS / fetch.pins.DEFAULT_MODEL.filename}")
    elif args.cmd == "demo":
        from . import demo
        return demo.main(args.sessions)
    elif args.cmd == "bench":
        from .bench import bench
        return bench.main(bench.plan_from_args(args), args.no_build, args.phases, args.omp_wait_policy,
                          Path(args.out).resolve() if args.out else None, bench.results_from_args(args),
                          bench.command_line(list(argv if argv is not None else sys.argv[1:])))
    elif args.cmd == "bench-cpu":
        from .bench import bench_cpu, bench_procs
        bench_procs.set_omp_wait_policy(args.omp_wait_policy)
        return bench_cpu.main(args.repeats, args.n_predict, args.no_build)
    return 0


if __name__ == "__main__":
    sys.exit(main())
