"""One build for every x86-64-v3 CPU: the library picks its CPU variant at run time, runs a
real model on a CPU without AVX-512 (qemu's Haswell-v4), refuses a CPU without AVX2 with a
clear error instead of SIGILL (qemu's Nehalem, C API and NIF), and holds no AMX instruction."""
from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
from pathlib import Path

import pytest

from helpers import BUILT_LIBS, CODES, HEADER, LIB_DIR, ROOT, sh
from llama_nif_tools.models import embed_models

HERE = Path(__file__).parent
REF = json.loads((HERE / "data" / "rerank_reference.json").read_text())
TINY = "tiny-bert-rerank-f32"
NIF_SO = BUILT_LIBS["llama_nif.so"]
LIBS = list(BUILT_LIBS.values())
QEMU = shutil.which("qemu-x86_64")
AMX = re.compile(r"\s(tilezero|tileloadd|tileloaddt1|tilestored|tilerelease|ldtilecfg|sttilecfg|tdp\w+)\s")

# ggml's x86 variants (c_src/cpu/CMakeLists.txt) by /proc/cpuinfo flag, with ggml's weights:
# an independent reading of which variant this CPU should get
FLAG_WEIGHT = {"fma": 1, "f16c": 2, "sse4_2": 4, "bmi2": 8, "avx": 16, "avx2": 32, "avx_vnni": 64,
               "avx512f": 128, "avx512vbmi": 256, "avx512_bf16": 512, "avx512_vnni": 1024}
V3 = ["sse4_2", "avx", "f16c", "fma", "avx2", "bmi2"]
AVX512 = ["avx512f", "avx512cd", "avx512vl", "avx512dq", "avx512bw"]
VARIANT_FLAGS = {
    "haswell": V3,
    "alderlake": V3 + ["avx_vnni"],
    "skylakex": V3 + AVX512,
    "cascadelake": V3 + AVX512 + ["avx512_vnni"],
    "icelake": V3 + AVX512 + ["avx512vbmi", "avx512_vnni"],
    "zen4": V3 + AVX512 + ["avx512vbmi", "avx512_vnni", "avx512_bf16"],
}


@pytest.fixture(scope="module")
def probe(tmp_path_factory):
    exe = tmp_path_factory.mktemp("probe") / "cpu_probe"
    sh(["gcc", "-std=c99", "-Wall", "-Werror", f"-I{HEADER.parent}", str(HERE / "c" / "cpu_probe.c"),
        f"-L{LIB_DIR}", "-lllama_server", f"-Wl,-rpath,{LIB_DIR}", "-o", str(exe)])
    return exe


@pytest.fixture(scope="module")
def tiny_model():
    return embed_models.ensure(TINY)


def run_probe(exe, model, cpu=None, env=None, task=None):
    """The probe (a rerank of the reference documents unless told otherwise), natively or under qemu."""
    assert cpu is None or QEMU, "qemu-x86_64 is needed (Debian's qemu-user)"
    task = task or {"query": REF["query"], "documents": REF["documents"], "sort": False}
    cmd = ([QEMU, "-cpu", cpu] if cpu else []) + [
        str(exe), str(model), json.dumps({"embedding": True, "pooling": "rank"}), "rerank", json.dumps(task)]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=900, env={**os.environ, **(env or {})})
    # a SIGILL is exactly what this file is about: say so
    assert p.returncode == 0, (f"{' '.join(cmd[:4])} -> {p.returncode}"
                               f"{' (SIGILL)' if p.returncode in (-signal.SIGILL, 128 + signal.SIGILL) else ''}"
                               f"\n{p.stdout[-2000:]}\n{p.stderr[-3000:]}")
    return json.loads(p.stdout)


def assert_reference_scores(out):
    assert out["init"] == 0 and out["rc"] == 0, out
    want = REF["models"][TINY]["scores"]
    got = [e["relevance_score"] for e in out["result"]["results"]]
    assert got == pytest.approx(want, abs=REF["tolerance"]["abs"])


def cpu_flags():
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("flags"):
            return set(line.split(":", 1)[1].split())
    return set()


# ---- what the build contains ----------------------------------------------------------------

@pytest.mark.parametrize("path", LIBS, ids=lambda p: p.name)
def test_no_amx_instruction_in_the_default_build(path):
    # ggml's AMX kernels SIGILL on some AMX machines: they stay out unless LLAMA_NIF_AMX=ON
    asm = sh(["objdump", "-d", "--no-show-raw-insn", str(path)], timeout=900)
    assert len(asm) > 1_000_000, "objdump printed almost nothing"
    found = sorted({m.group(1) for m in AMX.finditer(asm)})
    assert found == [], f"AMX instructions in {path.name}: {found}"


def test_the_amx_check_would_see_amx(tmp_path):
    # the pattern above against objdump's own spelling of real AMX code
    src = tmp_path / "amx.c"
    src.write_text('#include <immintrin.h>\nvoid f(void *p, void *cfg) {\n'
                   '  _tile_loadconfig(cfg); _tile_zero(0); _tile_loadd(1, p, 64);\n'
                   '  _tile_dpbssd(0, 1, 2); _tile_stored(0, p, 64); _tile_release(); }\n')
    obj = tmp_path / "amx.o"
    sh(["gcc", "-O2", "-mamx-tile", "-mamx-int8", "-c", str(src), "-o", str(obj)])
    found = {m.group(1) for m in AMX.finditer(sh(["objdump", "-d", "--no-show-raw-insn", str(obj)]))}
    assert {"ldtilecfg", "tilezero", "tileloadd", "tdpbssd", "tilestored", "tilerelease"} <= found


@pytest.mark.parametrize("path", LIBS, ids=lambda p: p.name)
def test_the_library_needs_no_other_llama_cpp_library(path):
    # everything of llama.cpp and ggml is inside: nothing to find at run time, nothing to clash
    needed = re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]", sh(["readelf", "-d", str(path)]))
    assert not [n for n in needed if re.search(r"ggml|llama", n)], needed


def test_the_nif_exports_nif_init_only():
    # like libllama_server.so (test_10): the CPU variants and llama.cpp stay hidden inside
    out = sh(["nm", "-D", "--defined-only", str(NIF_SO)])
    assert {line.split()[-1] for line in out.splitlines() if line.strip()} == {"nif_init"}


# ---- which variant runs -----------------------------------------------------------------------

@pytest.mark.model
def test_this_cpu_gets_its_best_variant(probe, tiny_model):
    out = run_probe(probe, tiny_model)
    assert_reference_scores(out)
    backend = out["status"]["backend"]
    assert backend["cpu_build"] == "portable"
    built = backend["cpu_variants_built"]
    assert built[0] == "haswell" and set(built) == set(VARIANT_FLAGS)
    flags = cpu_flags()
    fits = [v for v, need in VARIANT_FLAGS.items() if set(need) <= flags]
    assert fits, f"this machine is below x86-64-v3? flags: {sorted(flags)}"
    best = max(fits, key=lambda v: sum(FLAG_WEIGHT.get(f, 0) for f in VARIANT_FLAGS[v]))
    assert backend["cpu_variant"] == best
    # the CPU backend says what its code was built with, llama.cpp's system-info style
    assert backend["backends"] == ["CPU"]
    built_with = dict(re.findall(r"(\w+) = (\w+)", backend["system_info"]))
    assert backend["system_info"].startswith("CPU :") and built_with.get("AVX2") == "1"
    assert ("AVX512" in built_with) == ("avx512f" in VARIANT_FLAGS[best])
    assert "AVX2" in backend["cpu_features"]


@pytest.mark.model
def test_a_forced_variant_runs_with_the_same_scores(probe, tiny_model):
    out = run_probe(probe, tiny_model, env={"LLAMA_NIF_CPU_VARIANT": "haswell"})
    assert_reference_scores(out)
    assert out["status"]["backend"]["cpu_variant"] == "haswell"


@pytest.mark.model
def test_a_forced_variant_that_is_not_built_in_is_refused(probe, tiny_model):
    out = run_probe(probe, tiny_model, env={"LLAMA_NIF_CPU_VARIANT": "pentium4"})
    assert out["init"] == CODES["LLAMA_ERROR_NOT_SUPPORTED"]
    assert "pentium4" in out["error"] and "haswell" in out["error"], out["error"]


# ---- other CPUs, under qemu -------------------------------------------------------------------

def test_qemu_haswell_really_has_no_avx512(tmp_path):
    # what makes the tests below mean something: AVX-512 code dies there with SIGILL
    assert QEMU, "qemu-x86_64 is needed (Debian's qemu-user)"
    src = tmp_path / "zmm.c"
    src.write_text('#include <immintrin.h>\n#include <stdio.h>\nint main(int argc, char **argv) {\n'
                   '  (void) argv; __m512 x = _mm512_set1_ps((float) argc);\n'
                   '  printf("%f\\n", _mm512_reduce_add_ps(_mm512_add_ps(x, x))); return 0; }\n')
    exe = tmp_path / "zmm"
    sh(["gcc", "-O1", "-mavx512f", str(src), "-o", str(exe)])
    p = subprocess.run([QEMU, "-cpu", "Haswell-v4", str(exe)], capture_output=True, text=True, timeout=60)
    assert p.returncode in (-signal.SIGILL, 128 + signal.SIGILL), (p.returncode, p.stdout, p.stderr[-500:])


@pytest.mark.model
def test_a_haswell_cpu_runs_the_baseline_under_qemu(probe, tiny_model):
    # qemu's Haswell-v4: AVX2, FMA, F16C, BMI2 and no AVX-512 at all
    out = run_probe(probe, tiny_model, cpu="Haswell-v4")
    assert_reference_scores(out)
    backend = out["status"]["backend"]
    assert backend["cpu_variant"] == "haswell"
    assert "AVX2" in backend["cpu_features"]
    assert not [f for f in backend["cpu_features"] if f.startswith("AVX-512") or f.startswith("AVX512")]


@pytest.mark.model
def test_a_variant_this_cpu_lacks_is_refused_not_run(probe, tiny_model):
    out = run_probe(probe, tiny_model, cpu="Haswell-v4", env={"LLAMA_NIF_CPU_VARIANT": "zen4"})
    assert out["init"] == CODES["LLAMA_ERROR_NOT_SUPPORTED"]
    assert "lacks AVX-512" in out["error"], out["error"]


@pytest.mark.model
def test_a_cpu_without_avx2_gets_a_clear_error_not_sigill(probe, tiny_model):
    out = run_probe(probe, tiny_model, cpu="Nehalem")
    assert out["init"] == CODES["LLAMA_ERROR_NOT_SUPPORTED"], out
    # names what is missing, and what is needed
    for feature in ("AVX2", "FMA", "F16C", "x86-64-v3"):
        assert feature in out["error"], out["error"]


def erlang_emulator():
    """beam.smp and the arguments erl would give it, to run the emulator itself under qemu
    (erl's launcher execs beam.smp, and qemu-user does not follow an exec). The JIT's
    double-mapped code memory crashes qemu-user; -JPperf map makes it single-mapped."""
    out = sh(["erl", "-emu_args_exit"], timeout=60).split()
    root = out[out.index("-root") + 1]
    bindir = out[out.index("-bindir") + 1]
    return [str(Path(bindir) / "beam.smp"), "-JPperf", "map", *out], {
        "ROOTDIR": root, "BINDIR": bindir, "EMU": "beam", "PROGNAME": "erl"}


def test_the_nif_refuses_to_load_on_a_cpu_without_avx2_and_the_vm_stays_up(tmp_path):
    assert NIF_SO.is_file(), f"{NIF_SO} missing: `make nif`"
    assert QEMU, "qemu-x86_64 is needed (Debian's qemu-user)"
    sh(["erlc", "-o", str(tmp_path), str(ROOT / "src" / "llama_nif.erl")], timeout=120)
    beam, env = erlang_emulator()
    script = ('R = code:ensure_loaded(llama_nif), '
              'io:format("~nLOAD ~p~nSTILL UP ~p~n", [R, lists:sum([20, 22])]), '
              'init:stop(0).')
    cmd = [QEMU, "-cpu", "Nehalem", *beam, "-noshell", "-pa", str(tmp_path), "-eval", script]
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                         env={**os.environ, **env, "LLAMA_NIF_SO": str(NIF_SO)})
    try:
        out, _ = p.communicate(timeout=900)
    finally:
        p.kill()
        Path(f"/tmp/perf-{p.pid}.map").unlink(missing_ok=True)   # -JPperf map's file
    assert p.returncode == 0, f"the VM died: {p.returncode}\n{out[-3000:]}"
    assert "LOAD {error,on_load_failure}" in out and "STILL UP 42" in out, out[-3000:]
    # the reason, logged in full by the module, and returned by its on_load
    assert re.search(r"llama_nif cannot run on this CPU: this CPU lacks [^\n]*AVX2[^\n]*x86-64-v3", out), out[-3000:]
    assert "{error,{not_supported," in out, out[-3000:]
