"""The tokenize and detokenize task kinds: the model's tokenizer through create_task, as
llama-server's /tokenize and /detokenize; computed by create_task, no slot or queue."""
import json

import pytest

from helpers import OK, E, assert_code, create_task_raw, get_result_raw

pytestmark = pytest.mark.model

TEXT = "Hello, llama_nif! Ünïcödé and 日本語 and a llama 🦙."


def run(server, kind, inp, session=0):
    rc, tid = create_task_raw(server, session, kind, inp)
    assert rc == OK, f"{kind} {inp}: {rc}"
    rc, text, _ = get_result_raw(server, tid, timeout_ms=1)   # finished by create_task
    assert rc == OK, text
    return json.loads(text)


def test_tokenize_then_detokenize_gives_the_text_back(server):
    ids = run(server, "tokenize", {"content": TEXT})["tokens"]
    assert len(ids) > 10 and all(isinstance(i, int) for i in ids)
    assert run(server, "detokenize", {"tokens": ids}) == {"content": TEXT}


def test_pieces_are_the_text_in_order_with_bytes_where_a_piece_is_not_utf8(server):
    plain = run(server, "tokenize", {"content": TEXT})["tokens"]
    pieces = run(server, "tokenize", {"content": TEXT, "with_pieces": True})["tokens"]
    assert [p["id"] for p in pieces] == plain
    raw = b"".join(p["piece"].encode() if isinstance(p["piece"], str) else bytes(p["piece"]) for p in pieces)
    assert raw == TEXT.encode()
    # the llama emoji is 4 bytes the byte-level tokenizer splits: some piece is bytes alone
    assert any(isinstance(p["piece"], list) for p in pieces)


def test_special_tokens_are_parsed_unless_told_not_to(server):
    special = run(server, "tokenize", {"content": "<|im_start|>user"})["tokens"]
    literal = run(server, "tokenize", {"content": "<|im_start|>user", "parse_special": False})["tokens"]
    assert len(special) == 2 and len(literal) > 2
    assert run(server, "detokenize", {"tokens": special})["content"] == "<|im_start|>user"


def test_content_may_mix_strings_and_token_ids(server):
    hello = run(server, "tokenize", {"content": "Hello"})["tokens"]
    mixed = run(server, "tokenize", {"content": ["Hello", hello[0], " world"]})["tokens"]
    assert mixed[:len(hello)] == hello and mixed[len(hello)] == hello[0]


def test_a_session_id_is_accepted_and_the_session_is_untouched(server):
    session = server.create_session({})
    before = session.info()
    assert run(server, "tokenize", {"content": "x"}, session=session.id)["tokens"]
    assert session.info() == before
    session.close()


BAD = [
    ("tokenize", {}, "content"),
    ("tokenize", {"content": 5}, "content"),
    ("tokenize", {"content": [{"a": 1}]}, "content"),
    ("tokenize", {"content": "x", "with_pieces": "yes"}, "with_pieces"),
    ("tokenize", {"content": "x", "n_predict": 3}, "n_predict"),
    ("tokenize", {"content": [999999999]}, "999999999"),
    ("detokenize", {}, "tokens"),
    ("detokenize", {"tokens": "1 2"}, "tokens"),
    ("detokenize", {"tokens": [1, 2.5]}, "tokens"),
    ("detokenize", {"tokens": [-1]}, "tokens"),
    ("detokenize", {"tokens": [151936]}, "151936"),   # one past Qwen2.5's vocabulary
]


@pytest.mark.parametrize("kind,inp,key", BAD, ids=[f"{k}-{json.dumps(i)}" for k, i, _ in BAD])
def test_bad_input_fails_the_call(server, kind, inp, key):
    rc, _ = create_task_raw(server, 0, kind, inp)
    assert_code(rc, "INVALID_ARGUMENT", key)


def test_an_unknown_session_fails_the_call(server):
    rc, _ = create_task_raw(server, 987654, "tokenize", {"content": "x"})
    assert_code(rc, "SESSION_NOT_FOUND")


def test_the_result_is_fetched_once_like_any_task(server):
    rc, tid = create_task_raw(server, 0, "detokenize", {"tokens": []})
    assert rc == OK
    assert server.status()["tasks"]["unfetched"] >= 1
    rc, text, _ = get_result_raw(server, tid)
    assert rc == OK and json.loads(text) == {"content": ""}
    rc, _, _ = get_result_raw(server, tid)
    assert rc == E("TASK_NOT_FOUND")


def test_without_a_model_it_is_model_not_loaded(make_server):
    s = make_server(load=False)
    rc, _ = create_task_raw(s, 0, "tokenize", {"content": "x"})
    assert_code(rc, "MODEL_NOT_LOADED")


def test_the_binding_wraps_both(server):
    ids = server.tokenize(TEXT)
    assert server.detokenize(ids) == TEXT
    assert [p["id"] for p in server.tokenize(TEXT, with_pieces=True)] == ids
    assert len(server.tokenize("<|im_start|>", parse_special=False)) > 1
