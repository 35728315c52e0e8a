"""The user's build steps as the README gives them (configure, make, make install),
run on this checkout in a separate build folder with a temporary prefix; two consumer
projects outside the repository built against the install tree, one through pkg-config, one
through find_package; and a process that also has an unrelated llama.cpp (shared libraries
built from the same tree) loaded. The build folders live in .cache/ and are reused between
runs (the first run compiles llama.cpp twice more: a few minutes on 2 cores)."""
from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from helpers import MODEL_PATH, sh
from llama_nif_tools import paths

pytestmark = pytest.mark.model

ROOT = paths.ROOT
WORK = ROOT / ".cache" / "install-test"
CONSUMERS = ROOT / "py_tests" / "consumers"
BUILD_TIMEOUT = 3600


def env_without_generator():
    env = dict(os.environ)
    env.pop("CMAKE_GENERATOR", None)   # the README's steps use make
    return env


@pytest.fixture(scope="module")
def prefix(tmp_path_factory):
    """The four lines: mkdir build && cd build && cmake .. && make -j && make install."""
    build = WORK / "build"
    build.mkdir(parents=True, exist_ok=True)
    prefix = tmp_path_factory.mktemp("prefix")
    env = env_without_generator()
    # the NIF is left out: its output folder is the checkout's priv/, which the main build owns
    sh(["cmake", str(ROOT), "-DCMAKE_BUILD_TYPE=Release", f"-DCMAKE_INSTALL_PREFIX={prefix}",
        "-DLLAMA_NIF_BUILD_NIF=OFF"], cwd=build, env=env, timeout=BUILD_TIMEOUT)
    sh(["make", f"-j{os.cpu_count()}"], cwd=build, env=env, timeout=BUILD_TIMEOUT)
    out = sh(["make", "install"], cwd=build, env=env)
    assert "Installing:" in out or "Up-to-date:" in out, out
    return prefix


def test_make_install_installs_the_library_header_and_packages_only(prefix):
    files = sorted(str(p.relative_to(prefix)) for p in prefix.rglob("*") if not p.is_dir())
    assert files == ["include/llama_server.h", "lib/cmake/llama_server/llama_serverConfig.cmake",
                     "lib/cmake/llama_server/llama_serverConfigVersion.cmake",
                     "lib/cmake/llama_server/llama_serverTargets-release.cmake",
                     "lib/cmake/llama_server/llama_serverTargets.cmake",
                     "lib/libllama_server.so", "lib/libllama_server.so.0", "lib/libllama_server.so.0.1.0",
                     "lib/pkgconfig/llama_server.pc"], files
    lib = prefix / "lib"
    assert os.readlink(lib / "libllama_server.so") == "libllama_server.so.0"
    assert os.readlink(lib / "libllama_server.so.0") == "libllama_server.so.0.1.0"
    assert "SONAME               libllama_server.so.0" in sh(["objdump", "-p", str(lib / "libllama_server.so.0.1.0")])


def run_consumer(binary):
    p = subprocess.run([str(binary), str(MODEL_PATH)], capture_output=True, text=True, timeout=300,
                       env={k: v for k, v in os.environ.items() if k != "LD_LIBRARY_PATH"})
    assert p.returncode == 0, p.stdout + p.stderr
    assert p.stdout.startswith("0.1.0 {") and '"content"' in p.stdout, p.stdout


def test_a_consumer_builds_through_pkg_config(prefix, tmp_path):
    shutil.copy(CONSUMERS / "complete.c", tmp_path)
    shutil.copy(CONSUMERS / "pkgconfig" / "Makefile", tmp_path)
    env = dict(os.environ, PKG_CONFIG_PATH=str(prefix / "lib" / "pkgconfig"),
               LDFLAGS=f"-Wl,-rpath,{prefix / 'lib'}")   # a non-standard prefix: say where at run time
    sh(["make"], cwd=tmp_path, env=env)
    run_consumer(tmp_path / "complete")


def test_a_consumer_builds_through_find_package(prefix, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    shutil.copy(CONSUMERS / "complete.c", src)
    shutil.copy(CONSUMERS / "cmake" / "CMakeLists.txt", src)
    env = env_without_generator()
    sh(["cmake", "-S", str(src), "-B", str(tmp_path / "build"), f"-DCMAKE_PREFIX_PATH={prefix}"], env=env)
    sh(["cmake", "--build", str(tmp_path / "build")], env=env)
    run_consumer(tmp_path / "build" / "complete")


@pytest.fixture(scope="module")
def unrelated_llama():
    """llama.cpp from the same tree as shared libraries (libllama.so, libggml*.so)."""
    build = WORK / "shared-llama"
    env = env_without_generator()
    sh(["cmake", "-S", str(paths.LLAMA_CPP_DIR), "-B", str(build), "-DCMAKE_BUILD_TYPE=Release",
        "-DBUILD_SHARED_LIBS=ON", "-DGGML_NATIVE=OFF", "-DLLAMA_BUILD_TESTS=OFF", "-DLLAMA_BUILD_EXAMPLES=OFF",
        "-DLLAMA_BUILD_TOOLS=OFF", "-DLLAMA_BUILD_SERVER=OFF", "-DLLAMA_BUILD_COMMON=OFF", "-DLLAMA_BUILD_APP=OFF",
        "-DLLAMA_OPENSSL=OFF"], env=env, timeout=BUILD_TIMEOUT)
    sh(["cmake", "--build", str(build), "--target", "llama", f"-j{os.cpu_count()}"], env=env, timeout=BUILD_TIMEOUT)
    return build


def test_an_unrelated_llama_cpp_in_the_same_process_keeps_working(unrelated_llama, tmp_path):
    lib_dir = unrelated_llama / "bin"
    assert (lib_dir / "libllama.so").exists() and (lib_dir / "libggml-base.so").exists()
    exe = tmp_path / "clash"
    sh(["cc", "-O1", "-o", str(exe), str(ROOT / "py_tests" / "c" / "clash.c"),
        f"-I{paths.LLAMA_CPP_DIR / 'include'}", f"-I{paths.LLAMA_CPP_DIR / 'ggml' / 'include'}",
        f"-L{lib_dir}", "-lllama", f"-Wl,-rpath,{lib_dir}", "-ldl"])
    out = sh([str(exe), str(MODEL_PATH), str(paths.BUILD / "lib" / "libllama_server.so")], timeout=300)
    assert "ours: {" in out, out
