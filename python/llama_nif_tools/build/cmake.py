"""Configure and build the C core, libllama_server.so and the NIF with CMake (incremental)."""
import os
import shutil
import subprocess
from pathlib import Path

from .. import paths
from ..progress import say
from . import fetch

# CPU options (CMakeLists.txt), taken from the environment when set, e.g.
# `LLAMA_NIF_NATIVE=ON make build`; unset, a build folder keeps what it was configured with.
CPU_OPTIONS = ("LLAMA_NIF_NATIVE", "LLAMA_NIF_AMX", "LLAMA_NIF_CPU_VARIANTS")


def cuda_options(archs: str | None = None) -> dict[str, str]:
    """The CUDA build's CMake options (c_src/cuda.cmake), cuBLAS fetched when missing."""
    opts = {"LLAMA_NIF_CUDA": "ON", "LLAMA_NIF_CUBLAS_DIR": str(fetch.cublas_dir())}
    archs = archs or os.environ.get("LLAMA_NIF_CUDA_ARCHITECTURES")
    if archs:
        opts["LLAMA_NIF_CUDA_ARCHITECTURES"] = archs
    return opts


def cpu_options_from_env() -> dict[str, str]:
    return {k: os.environ[k] for k in CPU_OPTIONS if os.environ.get(k)}


def cached_options(build_dir: Path) -> dict[str, str]:
    cache = build_dir / "CMakeCache.txt"
    out = {}
    if cache.exists():
        for line in cache.read_text(errors="replace").splitlines():
            name, sep, value = line.partition("=")
            if sep and ":" in name:
                out[name.split(":", 1)[0]] = value
    return out


def _same(a: str, b: str) -> bool:
    truthy = {"ON", "1", "TRUE", "YES", "Y"}
    if a.upper() in truthy | {"OFF", "0", "FALSE", "NO", "N", ""}:
        return (a.upper() in truthy) == (b.upper() in truthy)
    return a == b


def configure(extra: list[str] | None = None, build_dir: Path = paths.BUILD,
              options: dict[str, str] | None = None) -> None:
    src = fetch.llama_cpp_source()
    gen = ["-G", "Ninja"] if shutil.which("ninja") else []
    opts = {**cpu_options_from_env(), **(options or {})}
    cached = cached_options(build_dir)
    if cached and not extra and all(_same(v, cached.get(k, "")) for k, v in opts.items()):
        return   # already configured: cmake re-runs itself when CMakeLists change
    cmd = ["cmake", "-S", str(paths.ROOT), "-B", str(build_dir), *gen,
           "-DCMAKE_BUILD_TYPE=Release", f"-DLLAMA_CPP_DIR={src}",
           *[f"-D{k}={v}" for k, v in opts.items()], *(extra or [])]
    say("configuring: " + " ".join(cmd))
    subprocess.run(cmd, check=True)


def build(targets: list[str] | None = None, build_dir: Path = paths.BUILD,
          options: dict[str, str] | None = None) -> None:
    configure(build_dir=build_dir, options=options)
    targets = targets or ["llama_server"]
    jobs = os.environ.get("LLAMA_NIF_JOBS", str(os.cpu_count() or 2))
    say(f"building {', '.join(targets)} in {build_dir} (a first build of llama.cpp takes ~5 min on 2 cores)")
    subprocess.run(["cmake", "--build", str(build_dir), "-j", jobs, "--target", *targets], check=True)
