"""The C side: the header alone compiles as C99 and C++17, versions agree, only llama_server_*
symbols are exported, and the two reference examples (examples/*.c) build and run unchanged."""
import json
import os
import re

import pytest

from helpers import BUILT_LIBS, CODES, HEADER, LIB_DIR, MODEL_PATH, ROOT, ffi, lib, sh

HERE = os.path.dirname(__file__)
INCLUDE = str(HEADER.parent)
COMPILERS = {"c99": ["gcc", "-std=c99", "-pedantic", "-Wall", "-Wextra", "-Werror"],
             "cxx17": ["g++", "-std=c++17", "-pedantic", "-Wall", "-Wextra", "-Werror", "-x", "c++"]}
# the original API's numbers (codes 8.. were added since)
SEED_CODES = {"LLAMA_SUCCESS": 0, "LLAMA_ERROR_INVALID_ARGUMENT": 1, "LLAMA_ERROR_OUT_OF_MEMORY": 2,
              "LLAMA_ERROR_MODEL_LOAD_FAILED": 3, "LLAMA_ERROR_INFERENCE_FAILED": 4,
              "LLAMA_ERROR_SESSION_NOT_FOUND": 5, "LLAMA_ERROR_SERVER_BUSY": 6, "LLAMA_ERROR_TIMEOUT": 7,
              "LLAMA_ERROR_UNKNOWN": 99}



def header_macros():
    text = HEADER.read_text()
    num = {k: int(v) for k, v in re.findall(r"#define LLAMA_SERVER_VERSION_(MAJOR|MINOR|PATCH)\s+(\d+)", text)}
    string = re.search(r'#define LLAMA_SERVER_VERSION_STRING\s+"([^"]+)"', text).group(1)
    return num, string


@pytest.mark.parametrize("lang", list(COMPILERS))
def test_header_compiles_alone(tmp_path, lang):
    exe = tmp_path / "header_only"
    sh(COMPILERS[lang] + [f"-I{INCLUDE}", os.path.join(HERE, "c", "header_only.c"), "-o", str(exe)])
    out = sh([str(exe)]).splitlines()
    num, string = header_macros()
    assert out[0] == "version {} {} {MAJOR}.{MINOR}.{PATCH}".format(
        string, num["MAJOR"] * 10000 + num["MINOR"] * 100 + num["PATCH"], **num)
    order = ["LLAMA_SUCCESS", "LLAMA_ERROR_INVALID_ARGUMENT", "LLAMA_ERROR_OUT_OF_MEMORY",
             "LLAMA_ERROR_MODEL_LOAD_FAILED", "LLAMA_ERROR_INFERENCE_FAILED", "LLAMA_ERROR_SESSION_NOT_FOUND",
             "LLAMA_ERROR_SERVER_BUSY", "LLAMA_ERROR_TIMEOUT", "LLAMA_ERROR_BUFFER_TOO_SMALL",
             "LLAMA_ERROR_TASK_NOT_FOUND", "LLAMA_ERROR_MODEL_NOT_LOADED", "LLAMA_ERROR_CANCELLED",
             "LLAMA_ERROR_NOT_SUPPORTED", "LLAMA_ERROR_UNKNOWN"]
    assert out[1] == "codes " + " ".join(str(CODES[n]) for n in order)
    assert out[2] == "log 0 1 2 3 4"


def test_version_functions_agree_with_the_header():
    num, string = header_macros()
    assert string == "{MAJOR}.{MINOR}.{PATCH}".format(**num)
    assert ffi.string(lib().llama_server_version()).decode() == string
    assert lib().llama_server_version_number() == num["MAJOR"] * 10000 + num["MINOR"] * 100 + num["PATCH"]


def test_seed_error_codes_keep_their_numbers():
    assert {k: CODES[k] for k in SEED_CODES} == SEED_CODES
    assert sorted(v for k, v in CODES.items() if k not in SEED_CODES) == list(range(8, 8 + len(CODES) - 9))


def error_code_rows():
    """(C name, text, Erlang atom) of every row of c_src/core/error_codes.def, in order."""
    text = (ROOT / "c_src" / "core" / "error_codes.def").read_text()
    return re.findall(r'^LLS_ERROR_CODE\((\w+),\s*"([^"]*)",\s*(\w+)\)', text, re.M)


def test_the_error_code_table_agrees_with_the_header():
    rows = error_code_rows()
    assert [name for name, _, _ in rows] == sorted(CODES, key=CODES.get), "one row per enumerator, in order"
    for name, text, atom in rows:
        assert ffi.string(lib().llama_server_error_string(CODES[name])).decode() == text
        assert atom == name.replace("LLAMA_ERROR_", "").replace("LLAMA_", "").lower()
    assert len({text for _, text, _ in rows}) == len(rows)


def test_only_llama_server_symbols_are_exported():
    out = sh(["nm", "-D", "--defined-only", str(LIB_DIR / "libllama_server.so")])
    names = {line.split()[-1] for line in out.splitlines() if line.strip()}
    assert names, "no symbols?"
    assert {n for n in names if not n.startswith("llama_server_")} == set()
    declared = set(re.findall(r"LLAMA_SERVER_API[^;]*?\b(llama_server_\w+)\s*\(", HEADER.read_text()))
    assert len(declared) == 16 and declared <= names


@pytest.mark.parametrize("lib", list(BUILT_LIBS))
def test_no_call_to_the_process_wide_localtime_buffer(lib):
    # templates render on many threads at once: llama.cpp's localtime() calls are wrapped
    # into a per-thread buffer (c_src/link/thread_safe_localtime.cpp; TSan found the race)
    path = BUILT_LIBS[lib]
    undefined = {line.split()[-1].split("@")[0] for line in
                 sh(["nm", "-D", "--undefined-only", str(path)]).splitlines() if line.strip()}
    assert "localtime_r" in undefined and "localtime" not in undefined


@pytest.mark.parametrize("lib", list(BUILT_LIBS))
def test_every_decode_runs_inline_on_the_loop_thread(lib):
    # llama.cpp hands the queue to a worker thread around each decode; ours runs it inline
    # (c_src/link/decode_inline.cpp). A llama.cpp that renames the function fails here.
    path = BUILT_LIBS[lib]
    asm = sh(["objdump", "-d", "--no-show-raw-insn", str(path)], timeout=900)
    calls = re.findall(r"\bcall\s+[0-9a-f]+ <([^>]*yield_to_queue[^>]*)>", asm)
    assert calls, "no call to server_queue::yield_to_queue found: was it renamed?"
    assert set(calls) == {"__wrap__ZN12server_queue14yield_to_queueEOSt8functionIFvvEE"}, set(calls)


EXAMPLES = {"basic_single_session": 1, "concurrent_multi_session": 4}


@pytest.mark.model
@pytest.mark.parametrize("lang", ["c99", "cxx17"])
@pytest.mark.parametrize("example", list(EXAMPLES))
def test_design_document_example_builds_and_runs(tmp_path, example, lang):
    exe = tmp_path / example
    std = ["gcc", "-std=c99"] if lang == "c99" else ["g++", "-x", "c++", "-std=c++17"]
    sh(std + [f"-I{INCLUDE}", str(ROOT / "examples" / f"{example}.c"), "-x", "none", "-o", str(exe),
              f"-L{LIB_DIR}", "-lllama_server", "-lpthread"])
    env = {**os.environ, "LLAMA_MODEL": str(MODEL_PATH), "LD_LIBRARY_PATH": str(LIB_DIR)}
    out = sh([str(exe)], env=env, timeout=600)
    if EXAMPLES[example] == 1:
        lines = [ln for ln in out.splitlines() if ln.startswith("Result: {")]
        assert len(lines) == 1, out
        assert "content" in json.loads(lines[0][len("Result: "):])
    else:
        got = {}
        for ln in out.splitlines():
            m = re.match(r"Thread (\d) result: (\{.*)$", ln)
            if m:
                got[int(m.group(1))] = json.loads(m.group(2))
        assert sorted(got) == [0, 1, 2, 3], out
        assert all("content" in r and 0 < r["tokens_predicted"] <= 30 for r in got.values())
