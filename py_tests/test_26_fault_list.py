"""Issue 23's fault list: damaged model files, a model without a chat template, a prompt far
beyond the context, a KV cache beyond the memory, stream callbacks that stop, cancel, close or
race destroy. Each fault must give a clear error code with a detail message (or, where the
fault may legitimately go unnoticed, a result), the process must survive, and the library must
serve on: every case ends with a normal task on the same handle or a fresh one in the same
process. Faults that could kill the process run in a child (helpers.run_steps/run_script);
damaged copies of the models are written to tmp_path.
"""
from __future__ import annotations

import json
import math
import os
import random
import re
import shutil
import struct
from typing import NamedTuple

import pytest

from helpers import CODES, E, LONG, MODEL_PATH, assert_code, cstr, ffi, lib, run_script, run_steps, wait_until
from llama_nif_tools.binding import LlamaError
from llama_nif_tools.models import embed_models

pytestmark = pytest.mark.model

QWEN = str(MODEL_PATH)
SMALL = {"n_parallel": 1, "n_ctx": 512, "log_level": "none"}
LOAD_FAILED = CODES["LLAMA_ERROR_MODEL_LOAD_FAILED"]
RERANK = ["run", "rerank", {"query": "a cat", "documents": ["a dog", "a kitten"]}]
# the test models: (GGUF path, model config, a task it serves)
MODELS = {
    "tiny-bert": (lambda: str(embed_models.ensure("tiny-bert-rerank-f32")), {"embedding": True, "pooling": "rank"},
                  RERANK),
    "minilm": (lambda: str(embed_models.ensure("minilm-l6-v2-f16")), {"embedding": True},
               ["run", "embedding", {"input": "hello"}]),
    "qwen": (lambda: QWEN, None, ["run", "completion", {"prompt": "Hello", "n_predict": 2}]),
}



@pytest.fixture(autouse=True)
def _drop_copies(tmp_path):
    """The damaged copies of the default model take gigabytes: gone when their test ends."""
    yield
    for f in tmp_path.glob("*.gguf"):
        if f.is_file():
            f.unlink()


# ---- GGUF layout: where each part of a file lies, to damage one precisely -------------------

SCALAR_SIZES = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}   # gguf_type -> bytes
STRING, ARRAY = 8, 9
F32 = 0


class Tensor(NamedTuple):
    name: str
    at: int          # its name's length field
    offset_at: int   # its offset field
    offset: int      # its data's offset from the data section's start
    dims: tuple
    type: int


class Layout:
    """A GGUF file (v2/v3, little-endian): magic, u32 version, u64 n_tensors, u64 n_kv, the
    metadata pairs (u64 key length, key, u32 type, value), the tensor infos (u64 name length,
    name, u32 n_dims, u64 dims[n_dims], u32 type, u64 offset), padding, the data.
    kv[key] = (at, value_at, end): `at` is the key's length field, value_at the value (a
    string's length field); tensors: [Tensor]."""

    def __init__(self, path):
        with open(path, "rb") as f:
            self.raw = f.read(32 << 20)   # the metadata and tensor infos (Qwen's: 6 MB)
        self.pos = 24
        assert self.raw[:4] == b"GGUF"
        self.version, self.n_tensors, self.n_kv = struct.unpack_from("<IQQ", self.raw, 4)
        self.kv = {}
        for _ in range(self.n_kv):
            at = self.pos
            key = self._string()
            (t,) = self._take("<I")
            value_at = self.pos
            self._value(t)
            self.kv[key] = (at, value_at, self.pos)
        self.tensors = []
        for _ in range(self.n_tensors):
            at = self.pos
            name = self._string()
            (n_dims,) = self._take("<I")
            *dims, t = self._take(f"<{n_dims}QI")
            offset_at = self.pos
            (offset,) = self._take("<Q")
            self.tensors.append(Tensor(name, at, offset_at, offset, tuple(dims), t))
        self.info_end = self.pos
        self.alignment = 32
        if "general.alignment" in self.kv:
            self.alignment = struct.unpack_from("<I", self.raw, self.kv["general.alignment"][1])[0]
        self.data_start = -(-self.info_end // self.alignment) * self.alignment
        del self.raw

    def _take(self, fmt):
        v = struct.unpack_from(fmt, self.raw, self.pos)
        self.pos += struct.calcsize(fmt)
        return v

    def _string(self):
        (n,) = self._take("<Q")
        self.pos += n
        return self.raw[self.pos - n:self.pos].decode("utf-8", "replace")

    def _value(self, t):
        if t == STRING:
            self._string()
        elif t == ARRAY:
            et, n = self._take("<IQ")
            if et in (STRING, ARRAY):
                for _ in range(n):
                    self._value(et)
            else:
                self.pos += SCALAR_SIZES[et] * n
        else:
            self.pos += SCALAR_SIZES[t]

    def tensor(self, name):
        return next(t for t in self.tensors if t.name == name)


def damaged(src, dst, size=None, patches=()):
    """A copy of src at dst, cut to `size` bytes, with each (offset, bytes) patch written over it."""
    shutil.copyfile(src, dst)
    with open(dst, "r+b") as f:
        if size is not None:
            f.truncate(size)
        for offset, data in patches:
            f.seek(offset)
            f.write(data)
    return str(dst)


def with_string_value(src, dst, key, value):
    """A copy of src whose metadata string `key` holds `value` (None: the pair is removed); the
    tensor infos and data follow at their new place."""
    lay = Layout(src)
    at, value_at, end = lay.kv[key]
    with open(src, "rb") as f:
        head = f.read(lay.info_end)
        f.seek(lay.data_start)
        assert struct.unpack_from("<I", head, value_at - 4)[0] == STRING
        pair = b"" if value is None else head[at:value_at] + u64(len(value.encode())) + value.encode()
        out = head[:16] + u64(lay.n_kv - (value is None)) + head[24:at] + pair + head[end:]
        out += b"\0" * (-len(out) % lay.alignment)
        with open(dst, "wb") as g:
            g.write(out)
            shutil.copyfileobj(f, g, 16 << 20)
    return str(dst)


def u32(v):
    return struct.pack("<I", v)


def u64(v):
    return struct.pack("<Q", v)


def assert_loads_fail_and_serves_on(model, bad_files):
    """In one child: each damaged file fails load_model with MODEL_LOAD_FAILED and a message
    naming it; then the good model loads on the same handle and serves its task."""
    path, mcfg, task = MODELS[model]
    out = run_steps([["init", SMALL]] + [["load", bad, mcfg] for bad in bad_files.values()] +
                    [["load", path(), mcfg], task])
    assert len(out) == len(bad_files) + 3, out
    for (why, bad), (op, code, detail) in zip(bad_files.items(), out[1:-2]):
        assert op == "load" and code == LOAD_FAILED, f"{why}: {out}"
        assert bad in detail, f"{why}: the message should name the file: {detail!r}"
    assert [o[:2] for o in out[-2:]] == [["load", 0], ["run", 0]], out
    return out


def assert_result_or_error_and_serves_on(model, files):
    """Damage the checks cannot see (the tensor data): each file may load and serve its task
    (any result) or fail with a clear code; no crash, and a fresh server in the same process
    then loads the good model and serves."""
    path, mcfg, task = MODELS[model]
    steps = [["init", SMALL]]
    for bad in files.values():
        steps += [["load", bad, mcfg], task, ["init", SMALL]]
    out = run_steps(steps + [["load", path(), mcfg], task])
    seen = {}
    rest = out[1:]
    for why in files:
        load = rest.pop(0)
        assert load[0] == "load" and load[1] in (0, LOAD_FAILED), f"{why}: {out}"
        if load[1] == 0:
            run = rest.pop(0)
            assert run[1] in (0, E("INFERENCE_FAILED")), f"{why}: {out}"
            assert run[1] == 0 or run[2], f"{why}: an error without a message: {out}"
            seen[why] = run[2]
        else:
            assert load[2], out
            seen[why] = load[2]
        assert rest.pop(0)[:2] == ["init", 0], out
    assert [o[:2] for o in rest] == [["load", 0], ["run", 0]], out
    return seen


# ---- 1. truncated model files --------------------------------------------------------------

def truncations(src, tmp_path):
    lay, size = Layout(src), os.path.getsize(src)
    _, tokens_value, tokens_end = lay.kv["tokenizer.ggml.tokens"]
    points = {
        "in the header (n_kv)": 20,
        "in the first metadata key": lay.kv["general.architecture"][0] + 10,
        "in the vocabulary array": (tokens_value + tokens_end) // 2,
        "in the tensor infos": lay.tensors[len(lay.tensors) // 2].at + 5,
        "at the start of the data": lay.data_start,
        "in the middle of the data": (lay.data_start + size) // 2,
        "one byte short": size - 1,
    }
    return {why: damaged(src, tmp_path / f"cut{n}.gguf", size=at) for n, (why, at) in enumerate(points.items())}


@pytest.mark.parametrize("model", list(MODELS))
def test_a_truncated_model_fails_to_load_and_the_handle_serves_on(model, tmp_path):
    assert_loads_fail_and_serves_on(model, truncations(MODELS[model][0](), tmp_path))


# ---- 2. corrupt model files ------------------------------------------------------------------

def header_faults(src):
    """{what: patches}: bit flips in the header, the metadata and the tensor infos."""
    lay = Layout(src)
    arch_at, arch_value, arch_end = lay.kv["general.architecture"]
    first, second, last = lay.tensors[0], lay.tensors[1], lay.tensors[-1]
    n_dims_at = first.at + 8 + len(first.name.encode())
    return {
        "version 0": [(4, u32(0))],
        "version 1 (GGUFv1)": [(4, u32(1))],
        "version 99": [(4, u32(99))],
        "version byte-swapped": [(4, u32(3 << 24))],
        "tensor count + 1": [(8, u64(lay.n_tensors + 1))],
        "tensor count 2^62": [(8, u64(1 << 62))],
        "metadata count + 1": [(16, u64(lay.n_kv + 1))],
        "metadata count 2^62": [(16, u64(1 << 62))],
        "key length 2^40": [(arch_at, u64(1 << 40))],
        "key length 0": [(arch_at, u64(0))],
        "key length + 1": [(arch_at, u64(len("general.architecture") + 1))],
        "string length 2^40": [(arch_value, u64(1 << 40))],
        "string length + 1": [(arch_value, u64(arch_end - arch_value - 8 + 1))],
        "value type 77": [(arch_value - 4, u32(77))],
        "tensor n_dims 9": [(n_dims_at, u32(9))],
        "tensor dimension 2^40": [(n_dims_at + 4, u64(1 << 40))],
        "tensor type 200": [(first.offset_at - 4, u32(200))],
        "tensor offset 2^50": [(first.offset_at, u64(1 << 50))],
        "tensor offset unaligned": [(first.offset_at, u64(3))],
        "tensor offset of another tensor": [(second.offset_at, u64(first.offset))],
        "last tensor's offset past the end": [(last.offset_at, u64(os.path.getsize(src)))],
    }


@pytest.mark.parametrize("model", ["tiny-bert", "minilm"])
def test_bit_flips_in_the_header_and_tensor_infos_fail_to_load(model, tmp_path):
    src = MODELS[model][0]()
    faults = header_faults(src)
    bad = {why: damaged(src, tmp_path / f"flip{n}.gguf", patches=p) for n, (why, p) in enumerate(faults.items())}
    assert_loads_fail_and_serves_on(model, bad)


def test_bit_flips_in_the_default_models_header_and_tensor_infos_fail_to_load(tmp_path):
    faults = header_faults(QWEN)
    some = ["version 99", "tensor count + 1", "string length 2^40", "tensor offset of another tensor"]
    bad = {why: damaged(QWEN, tmp_path / f"flip{n}.gguf", patches=faults[why]) for n, why in enumerate(some)}
    assert_loads_fail_and_serves_on("qwen", bad)


NAN32 = b"\x00\x00\xc0\x7f"


def data_faults(src, tmp_path, norm):
    """Damage in the tensor data: NaNs over a norm weight (f32), 64 random bit flips, and a
    tensor count one short (the data section then starts one tensor info early)."""
    lay = Layout(src)
    t = lay.tensor(norm)
    assert t.type == F32
    rng = random.Random(23)
    size = os.path.getsize(src)
    with open(src, "rb") as f:
        flips = []
        for at in sorted(rng.randrange(lay.data_start, size) for _ in range(64)):
            f.seek(at)
            flips.append((at, bytes([f.read(1)[0] ^ (1 << rng.randrange(8))])))
    return {
        f"NaN over {norm}": damaged(src, tmp_path / "nan.gguf",
                                    patches=[(lay.data_start + t.offset, NAN32 * math.prod(t.dims))]),
        "64 random bit flips in the data": damaged(src, tmp_path / "flips.gguf", patches=flips),
        "tensor count - 1 (the data read 1 info early)": damaged(src, tmp_path / "fewer.gguf",
                                                                 patches=[(8, u64(lay.n_tensors - 1))]),
    }


@pytest.mark.parametrize("model,norm", [("tiny-bert", "token_embd_norm.weight"),
                                        ("minilm", "token_embd_norm.weight"), ("qwen", "output_norm.weight")])
def test_damaged_tensor_data_gives_a_result_or_an_error(model, norm, tmp_path):
    seen = assert_result_or_error_and_serves_on(model, data_faults(MODELS[model][0](), tmp_path, norm))
    # NaN weights load (llama.cpp does not validate the data) and give NaN, which JSON writes as null
    nan = seen[f"NaN over {norm}"]
    if model == "tiny-bert":
        assert [r["relevance_score"] for r in nan["results"]] == [None, None], nan
    elif model == "minilm":
        assert set(nan["data"][0]["embedding"]) == {None}, nan
    else:
        assert nan["tokens_predicted"] == 2, nan


# ---- 3. files that are not GGUF, and a directory ---------------------------------------------

def test_a_file_that_is_not_gguf_or_a_directory_fails_to_load_and_the_handle_serves_on(tmp_path):
    (tmp_path / "dir.gguf").mkdir()
    files = {
        "text": tmp_path / "model.txt", "empty": tmp_path / "empty.gguf", "random bytes": tmp_path / "random.gguf",
        "a directory": tmp_path / "dir.gguf", "the magic alone": tmp_path / "magic.gguf",
        "the magic and random bytes": tmp_path / "magic_random.gguf",
    }
    rng = random.Random(23)
    files["text"].write_text("This is not a model.\n" * 100)
    files["empty"].write_bytes(b"")
    files["random bytes"].write_bytes(rng.randbytes(100_000))
    files["the magic alone"].write_bytes(b"GGUF")
    files["the magic and random bytes"].write_bytes(b"GGUF" + rng.randbytes(100_000))
    out = assert_loads_fail_and_serves_on("qwen", {k: str(v) for k, v in files.items()})
    details = dict(zip(files, (o[2] for o in out[1:])))
    for why in ("text", "empty", "random bytes", "a directory"):
        assert details[why] == f"'{files[why]}' is not a GGUF file", details
    for why in ("the magic alone", "the magic and random bytes"):
        assert details[why].startswith(f"llama.cpp could not load '{files[why]}'"), details


# ---- 4. a generation model without a chat template, used for chat ---------------------------

# no system message: Qwen's own template adds one of its own, ChatML does not
CHAT = {"messages": [{"role": "user", "content": "Hi"}], "n_predict": 2, "temperature": 0, "verbose": True}
CHATML = "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"


def chat_prompt(path):
    out = run_steps([["init", SMALL], ["load", path, None], ["run", "chat", CHAT]])
    assert [o[:2] for o in out] == [["init", 0], ["load", 0], ["run", 0]], out
    return out[-1][2]["__verbose"]["prompt"]


@pytest.mark.parametrize("how", ["key removed", "empty string"])
def test_a_model_without_a_chat_template_chats_in_chatml(how, tmp_path):
    """llama.cpp's fallback (common_chat_templates_init): a model without a template chats
    with the ChatML template, exactly; not the model's own prompt."""
    path = with_string_value(QWEN, tmp_path / "no_template.gguf", "tokenizer.chat_template",
                             None if how == "key removed" else "")
    kv = Layout(path).kv
    if how == "key removed":
        assert "tokenizer.chat_template" not in kv
    else:
        _, value_at, end = kv["tokenizer.chat_template"]
        assert end == value_at + 8            # a string of length 0
    assert chat_prompt(path) == CHATML


def test_the_default_models_own_template_differs_from_the_fallback():
    # the control of the test above: Qwen's own template renders another prompt
    own = chat_prompt(QWEN)
    assert own.startswith("<|im_start|>system\nYou are Qwen") and own.endswith(CHATML), own


def test_a_blank_chat_template_renders_a_prompt_without_the_conversation(tmp_path):
    """A template of spaces is a template (llama.cpp uses it as given): the prompt is its text,
    the messages are not in it. Not refused at load: the example conversation renders."""
    at, value_at, end = Layout(QWEN).kv["tokenizer.chat_template"]
    n = end - value_at - 8
    path = damaged(QWEN, tmp_path / "blank.gguf", patches=[(value_at + 8, b" " * n)])
    assert chat_prompt(path) == " " * n


# ---- 5. a prompt of 100,000 tokens on a small context ----------------------------------------

def test_a_prompt_of_100000_tokens_fails_its_task_and_the_server_serves_on(make_server):
    s = make_server({"n_parallel": 2, "n_ctx": 512})
    text = " hello" * 100_000
    assert len(s.tokenize(text)) == 100_000
    ses = s.create_session()
    cases = {
        "completion": (0, "completion", {"prompt": text, "n_predict": 4}),
        "completion of token ids": (0, "completion", {"prompt": list(range(1000, 101_000)), "n_predict": 4}),
        "chat": (0, "chat", {"messages": [{"role": "user", "content": text}], "n_predict": 4}),
        "chat in a session": (ses.id, "chat", {"messages": [{"role": "user", "content": text}], "n_predict": 4}),
    }
    for why, (sid, kind, inp) in cases.items():
        with pytest.raises(LlamaError) as ei:
            s.run(sid, kind, inp)
        assert ei.value.code == E("INFERENCE_FAILED") and ei.value.detail, why
        err = ei.value.result["error"]
        assert err["code"] == E("INFERENCE_FAILED") and err["type"] == "exceed_context_size_error", (why, err)
        n = int(re.search(r"request \((\d+) tokens\) exceeds the available context size \(512 tokens\)",
                          err["message"]).group(1))
        assert n >= 100_000, (why, err)
    chunks = []
    cb = ffi.callback("int(const char *, size_t, int, void *)",
                      lambda c, n, final, u: chunks.append((json.loads(ffi.string(c, n)), final)) or 0)
    rc = lib().llama_server_stream_inference(s.handle, 0, cstr({"prompt": text, "n_predict": 4}), cb, ffi.NULL)
    assert_code(rc, "INFERENCE_FAILED", "final chunk")
    assert len(chunks) == 1 and chunks[0][1] == 1 and chunks[0][0]["error"]["type"] == "exceed_context_size_error"
    # the failed turn did not join the session; the server and the session serve on
    assert ses.info()["message_count"] == 0
    assert ses.chat("Hi", n_predict=2)["usage"]["completion_tokens"] >= 1
    assert ses.info()["message_count"] == 2
    assert s.run(0, "completion", {"prompt": "Hi", "n_predict": 2, "ignore_eos": True})["tokens_predicted"] == 2


# ---- 6. a KV cache far beyond the memory -----------------------------------------------------

def mem_available():
    with open("/proc/meminfo") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith("MemAvailable:"))


QWEN_KV_CELL = 24 * 2 * (2 * 64) * 2   # bytes a token takes in Qwen's cache: layers x (K + V) x f16


def beyond_the_memory():
    """n_ctx and n_parallel whose KV cache needs twice the memory available now (within the keys' ranges)."""
    tokens = 2 * mem_available() // QWEN_KV_CELL
    n_parallel = min(256, -(-tokens // (1 << 20)))
    return min(1 << 20, -(-tokens // n_parallel)), n_parallel


@pytest.mark.parametrize("sizes", ["the largest the keys allow", "twice the memory available"])
def test_a_kv_cache_beyond_the_memory_is_refused_before_it_is_allocated(sizes):
    n_ctx, n_parallel = (1 << 20, 256) if sizes == "the largest the keys allow" else beyond_the_memory()
    # The child's address space is capped (4 GiB; a normal load with 2 threads needs under 2):
    # were the check missing, llama.cpp's allocations would fail instead of waking the OOM killer.
    out = run_steps([["init", {"n_parallel": n_parallel, "n_ctx": n_ctx, "n_threads": 2, "log_level": "none"}],
                     ["load", QWEN, None], ["init", {**SMALL, "n_threads": 2}], ["load", QWEN, None],
                     ["run", "completion", {"prompt": "Hi", "n_predict": 2}]], max_address_space=4 << 30)
    assert out[1][:2] == ["load", E("OUT_OF_MEMORY")], out
    detail = out[1][2]
    assert f"'n_ctx' ({n_ctx}) x 'n_parallel' ({n_parallel})" in detail and "GiB" in detail, detail
    assert re.search(r"memory available \((MemAvailable|what is left of the cgroup)", detail), detail
    assert [o[:2] for o in out[2:]] == [["init", 0], ["load", 0], ["run", 0]], out


# ---- 7. a stream callback that stops at once -------------------------------------------------

@pytest.mark.parametrize("kind", ["completion", "chat in a session"])
def test_a_callback_that_stops_at_the_first_chunk(make_server, kind):
    s = make_server({"n_parallel": 2})
    ses = s.create_session()
    sid, inp = ((0, {"prompt": "Count: 1, 2,", "n_predict": 100}) if kind == "completion" else
                (ses.id, {"messages": [{"role": "user", "content": "Count to 100."}], "n_predict": 100}))
    calls = []
    cb = ffi.callback("int(const char *, size_t, int, void *)", lambda c, n, final, u: calls.append(final) or 1)
    rc = lib().llama_server_stream_inference(s.handle, sid, cstr(inp), cb, ffi.NULL)
    assert_code(rc, "CANCELLED", "stopped by the stream callback")
    assert calls == [0]                                    # one call, no final one
    wait_until(lambda: not any(sl["busy"] for sl in s.status()["slots"]), "the slot to be freed")
    assert s.status()["tasks"]["running"] == 0
    assert ses.info()["message_count"] == 0               # a stopped turn does not join the history
    assert ses.chat("Hi", n_predict=2)["usage"]["completion_tokens"] >= 1
    assert s.run(0, "completion", {"prompt": "Hi", "n_predict": 2, "ignore_eos": True})["tokens_predicted"] == 2


# ---- 8. a stream callback that cancels its own task or closes its own session ----------------

ACT_FROM_CALLBACK = """
from helpers import LONG, MODEL_PATH, NAMES, cstr, ffi, last_error, lib, wait_until
from llama_nif_tools.binding import LlamaError, Server

ACTION, KIND = {action!r}, {kind!r}
s = Server({{"n_parallel": 2, "n_ctx": 512, "log_level": "none"}})
s.load_model(MODEL_PATH)
ses = s.create_session()
calls, acted = [], {{}}

def on_chunk(chunk, size, is_final, user):
    calls.append(is_final)
    if len(calls) == 2:     # the task holds a slot and decodes
        if ACTION == "cancel_task":
            task = next(sl["task"] for sl in s.status()["slots"] if sl["session"] == ses.id)
            rc = lib().llama_server_cancel_task(s.handle, task)
        else:
            rc = lib().llama_server_close_session(s.handle, ses.id)
        acted.update(rc=NAMES[rc], detail=last_error())
    return 0

cb = ffi.callback("int(const char *, size_t, int, void *)", on_chunk)
inp = dict(LONG) if KIND == "completion" else {{"messages": [{{"role": "user", "content": "Count to 1000."}}],
                                               "n_predict": 900, "ignore_eos": True}}
rc = lib().llama_server_stream_inference(s.handle, ses.id, cstr(inp), cb, ffi.NULL)
res = dict(rc=NAMES[rc], detail=last_error(), calls=len(calls), finals=sum(calls), acted=acted)
wait_until(lambda: not any(sl["busy"] for sl in s.status()["slots"]), "the slot to be freed")
res["tasks"] = s.status()["tasks"]
try:
    res["messages"] = ses.info()["message_count"]
except LlamaError as e:
    res["messages"] = e.name
# the server serves on: the session (where it still exists), a new one, a stateless task
if ACTION == "cancel_task":
    res["same_session"] = ses.chat("Hi", n_predict=2)["usage"]["completion_tokens"]
res["new_session"] = s.create_session().chat("Hi", n_predict=2)["usage"]["completion_tokens"]
res["stateless"] = s.run(0, "completion", {{"prompt": "Hi", "n_predict": 2, "ignore_eos": True}})["tokens_predicted"]
s.destroy()
print(json.dumps(res))
"""


@pytest.mark.parametrize("kind", ["completion", "chat"])
@pytest.mark.parametrize("action", ["cancel_task", "close_session"])
def test_a_callback_that_cancels_its_own_task_or_closes_its_session(action, kind):
    # every function is thread-safe and may be called from a callback (only destroy may not):
    # the call succeeds, the stream ends CANCELLED without a final chunk, nothing deadlocks
    res = run_script(ACT_FROM_CALLBACK.format(action=action, kind=kind), timeout=240)
    assert res["acted"] == {"rc": "LLAMA_SUCCESS", "detail": ""}, res
    assert res["rc"] == "LLAMA_ERROR_CANCELLED" and res["detail"] == "the stream ended without a final chunk: cancelled", res
    assert res["finals"] == 0 and 2 <= res["calls"] < LONG["n_predict"], res
    assert res["tasks"]["running"] == 0 and res["tasks"]["queued"] == 0, res
    if action == "cancel_task":
        assert res["messages"] == 0 and res["same_session"] >= 1, res    # the cancelled turn left no trace
    else:
        assert res["messages"] == "LLAMA_ERROR_SESSION_NOT_FOUND", res
    assert res["new_session"] >= 1 and res["stateless"] == 2, res


# ---- 9. destroy from another thread while stream callbacks run --------------------------------

DESTROY_DURING_CALLBACKS = """
from helpers import E, LONG, MODEL_PATH, NAMES, cstr, ffi, last_error, lib, wait_until
from llama_nif_tools.binding import Server

s = Server({"n_parallel": 2, "n_ctx": 512, "log_level": "none"})
s.load_model(MODEL_PATH)
h = s.handle
chat = {"messages": [{"role": "user", "content": "Count to 1000."}], "n_predict": 900, "ignore_eos": True}
streams = [(0, dict(LONG)), (s.create_session().id, chat)]
inside = [threading.Event() for _ in streams]
res = [{"calls": 0} for _ in streams]

def callback(i):
    def on_chunk(chunk, size, is_final, user):
        res[i]["calls"] += 1
        if res[i]["calls"] == 2:
            inside[i].set()
            # stay in the callback until destroy has begun on the main thread: the handle has
            # then left the registry and is refused (destroy waits for this call to return)
            n = ffi.new("size_t *")
            wait_until(lambda: lib().llama_server_get_status(h, ffi.NULL, 0, n) == E("INVALID_ARGUMENT"),
                       "destroy to begin")
            res[i]["refused"] = last_error()
        return 0
    return ffi.callback("int(const char *, size_t, int, void *)", on_chunk)

cbs = [callback(i) for i in range(len(streams))]

def stream(i):
    sid, inp = streams[i]
    rc = lib().llama_server_stream_inference(h, sid, cstr(inp), cbs[i], ffi.NULL)
    res[i].update(rc=NAMES[rc], detail=last_error())

threads = [threading.Thread(target=stream, args=(i,)) for i in range(len(streams))]
for t in threads:
    t.start()
assert all(e.wait(120) for e in inside), "the streams did not start"
s.handle = None
destroyed = NAMES[lib().llama_server_destroy(h)]      # while both callbacks run
for t in threads:
    t.join(120)
alive = [t.is_alive() for t in threads]
# a fresh server in the same process serves
s2 = Server({"n_parallel": 1, "n_ctx": 512, "log_level": "none"})
s2.load_model(MODEL_PATH)
after = s2.run(0, "completion", {"prompt": "Hi", "n_predict": 2, "ignore_eos": True})["tokens_predicted"]
s2.destroy()
print(json.dumps({"destroy": destroyed, "alive": alive, "streams": res, "after": after}))
"""


def test_destroy_while_stream_callbacks_run():
    res = run_script(DESTROY_DURING_CALLBACKS, timeout=240)
    assert res["destroy"] == "LLAMA_SUCCESS" and res["alive"] == [False, False], res
    for st in res["streams"]:
        assert st["refused"] == "not a live server handle (destroyed, or never created)", res
        assert st["rc"] == "LLAMA_ERROR_CANCELLED" and "cancelled" in st["detail"], res
        assert 2 <= st["calls"] < LONG["n_predict"], res
    assert res["after"] == 2, res
