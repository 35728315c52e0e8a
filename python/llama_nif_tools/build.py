"""Configure and build the C core, libllama_server.so and the NIF with CMake (incremental)."""
import os
import shutil
import subprocess

from . import fetch, paths
from .progress import say


def configure(extra: list[str] | None = None) -> None:
    src = fetch.llama_cpp_source()
    gen = ["-G", "Ninja"] if shutil.which("ninja") else []
    cache = paths.BUILD / "CMakeCache.txt"
    if cache.exists() and not extra:
        return   # already configured: cmake re-runs itself when CMakeLists change
    cmd = ["cmake", "-S", str(paths.ROOT), "-B", str(paths.BUILD), *gen,
           "-DCMAKE_BUILD_TYPE=Release", f"-DLLAMA_CPP_DIR={src}", *(extra or [])]
    say("configuring: " + " ".join(cmd))
    subprocess.run(cmd, check=True)


def build(targets: list[str] | None = None) -> None:
    configure()
    targets = targets or ["llama_server"]
    jobs = os.environ.get("LLAMA_NIF_JOBS", str(os.cpu_count() or 2))
    say(f"building {', '.join(targets)} (a first build of llama.cpp takes ~4 min on 2 cores)")
    subprocess.run(["cmake", "--build", str(paths.BUILD), "-j", jobs, "--target", *targets], check=True)
