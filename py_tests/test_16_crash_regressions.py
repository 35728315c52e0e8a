"""Inputs that once killed the process (issue 9's fuzzing), each run in a child process so that
a regression fails its own test instead of the whole suite: the child must survive and give a
clear error code (or a result), never an abort or a signal."""
from __future__ import annotations

import pytest

from helpers import CODES, MODEL_PATH, run_steps
from llama_nif_tools.models import embed_models

pytestmark = pytest.mark.model


def code(name):
    return CODES["LLAMA_ERROR_" + name]


# ---- null means "not given" (was UNKNOWN: json type_error 302) --------------------------------

def test_null_system_prompt_is_not_given():
    out = run_steps([["init", {"n_parallel": 1, "n_ctx": 512, "log_level": "error"}],
                     ["load", str(MODEL_PATH), None], ["session", {"system_prompt": None}]])
    assert out[-1][:2] == ["session", 0], out


def test_null_encoding_format_is_not_given():
    out = run_steps([["init", {"n_parallel": 1, "n_ctx": 512, "log_level": "error"}],
                     ["load", str(embed_models.ensure("minilm-l6-v2-f16")), {"embedding": True}],
                     ["run", "embedding", {"input": ["a", "b"], "encoding_format": None}]])
    op, rc, r = out[-1]
    assert rc == 0 and len(r["data"]) == 2, out


def test_null_rerank_query_is_a_missing_query():
    out = run_steps([["init", {"n_parallel": 1, "n_ctx": 512, "log_level": "error"}],
                     ["load", str(embed_models.ensure("tiny-bert-rerank-f32")), {"embedding": True, "pooling": "rank"}],
                     ["run", "rerank", {"query": None, "texts": ["a"]}]])
    op, rc, detail = out[-1]
    assert rc == code("INVALID_ARGUMENT") and "query" in detail, out


# ---- config relations llama.cpp asserts on (were GGML_ASSERT / abort in load_model) ----------

QWEN = str(MODEL_PATH)


@pytest.mark.parametrize("model", ["tiny-bert-rerank-f32", "qwen"])
def test_n_batch_below_n_parallel_is_refused_at_init(model):
    path = QWEN if model == "qwen" else str(embed_models.ensure(model))
    out = run_steps([["init", {"n_batch": 1, "log_level": "error"}], ["load", path, None]])
    assert out[0][:2] == ["init", code("INVALID_ARGUMENT")] and "n_batch" in out[0][2], out
    out = run_steps([["init", {"n_batch": 3, "n_parallel": 4, "log_level": "error"}], ["load", path, None]])
    assert out[0][:2] == ["init", code("INVALID_ARGUMENT")], out
    assert "'n_batch' (3)" in out[0][2] and "'n_parallel' (4)" in out[0][2], out


def test_n_batch_of_one_is_refused_even_with_one_slot():
    # was: common.cpp get_sub_batch "failed to add token 0 at index 1" (abort) in the warmup
    out = run_steps([["init", {"n_parallel": 1, "n_ctx": 512, "n_batch": 1, "n_ubatch": 8, "log_level": "error"}],
                     ["load", QWEN, None]])
    assert out[0][:2] == ["init", code("INVALID_ARGUMENT")] and "n_batch" in out[0][2], out
    # the smallest batch that is accepted works
    out = run_steps([["init", {"n_parallel": 1, "n_ctx": 512, "n_batch": 2, "log_level": "error"}],
                     ["load", QWEN, None], ["run", "completion", {"prompt": "Hello", "n_predict": 3}]])
    assert out[-1][1] == 0, out


@pytest.mark.parametrize("cfg", [{"n_batch": 8, "n_ubatch": 1}, {"n_ubatch": 1}, {"n_ubatch": 2, "n_parallel": 3}])
@pytest.mark.parametrize("model,mcfg", [("minilm-l6-v2-rerank-f16", {"embedding": True, "pooling": "rank"}),
                                        ("minilm-l6-v2-f16", {"embedding": True})])
def test_an_embedding_model_with_a_micro_batch_below_the_slots_is_refused_at_load(cfg, model, mcfg):
    # an encoder takes an input whole in one micro-batch: n_batch becomes n_ubatch (as in
    # llama-server), which must still hold a token of every slot (was GGML_ASSERT in load)
    out = run_steps([["init", {**cfg, "log_level": "error"}], ["load", str(embed_models.ensure(model)), mcfg]])
    assert out[-1][:2] == ["load", code("INVALID_ARGUMENT")], out
    assert "n_ubatch" in out[-1][2] and "n_parallel" in out[-1][2], out


def test_an_embedding_model_with_a_smaller_micro_batch_works():
    out = run_steps([["init", {"n_parallel": 2, "n_batch": 512, "n_ubatch": 64, "log_level": "error"}],
                     ["load", str(embed_models.ensure("minilm-l6-v2-f16")), {"embedding": True}],
                     ["run", "embedding", {"input": ["a short text", "another one"]}]])
    assert out[-1][1] == 0 and len(out[-1][2]["data"]) == 2, out


# ---- grammars: nesting bounded, parsed by create_task ----------------------------------------

def nested_grammar(levels):
    return "root ::= " + "(" * levels + '"a"' + ")" * levels


def test_a_deeply_nested_grammar_is_refused_by_create_task_not_a_crash():
    # 100,000 levels overflowed the loop thread's stack in llama.cpp's grammar parser
    out = run_steps([["init", {"n_parallel": 1, "n_ctx": 512, "log_level": "error"}], ["load", QWEN, None],
                     ["run", "chat", {"messages": [{"role": "user", "content": "x"}], "n_predict": 2,
                                      "grammar": nested_grammar(100000)}],
                     ["session", {"grammar": nested_grammar(101)}],
                     ["run", "completion", {"prompt": "x", "n_predict": 2, "grammar": nested_grammar(100)}]])
    assert out[2][:2] == ["run", code("INVALID_ARGUMENT")] and "100 levels" in out[2][2], out
    assert out[3][:2] == ["session", code("INVALID_ARGUMENT")], out
    assert out[4][1] == 0 and out[4][2]["content"].startswith("a"), out   # 100 levels: allowed, and obeyed


def test_a_bad_grammar_fails_create_task():
    out = run_steps([["init", {"n_parallel": 1, "n_ctx": 512, "log_level": "error"}], ["load", QWEN, None],
                     ["run", "completion", {"prompt": "x", "n_predict": 2, "grammar": "root ::= ("}],
                     ["run", "completion", {"prompt": "x", "n_predict": 2, "grammar": 'start ::= "a"'}],
                     ["session", {"grammar": "root ::= [a-"}]])
    assert [o[:2] for o in out[2:]] == [["run", code("INVALID_ARGUMENT")], ["run", code("INVALID_ARGUMENT")],
                                        ["session", code("INVALID_ARGUMENT")]], out
    assert "grammar" in out[2][2]


# ---- chat templates: nesting and recursion bounded (was SIGSEGV in load_model) -------------

TAIL = "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
MSGS = "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}" + TAIL


def recursion(n):
    return "{% macro f(n) %}{% if n > 0 %}{{ f(n-1) }}{% else %}x{% endif %}{% endmacro %}" + MSGS + "{{ f(%d) }}" % n


TOO_DEEP = {
    "recursion without end": ("{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}", "macro calls nested deeper than 64"),
    "recursion 65 deep": (recursion(64), "macro calls nested deeper than 64"),
    "brackets": (MSGS + "{{ " + "(" * 100000 + "1" + ")" * 100000 + " }}", "nests brackets deeper than 100"),
    "blocks": ("{% if true %}" * 100000 + MSGS + "{% endif %}" * 100000, "nests blocks deeper than 100"),
    "elif chain": ("{% if false %}a" + "{% elif false %}b" * 100000 + "{% else %}" + MSGS + "{% endif %}",
                   "nests blocks deeper than 100"),
    "operator chain": (MSGS + "{{ 1" + "+1" * 100000 + " }}", "more than 150 operators"),
}


@pytest.mark.parametrize("name", list(TOO_DEEP))
def test_a_chat_template_nested_or_recursing_too_deep_is_refused_at_load(name):
    template, why = TOO_DEEP[name]
    out = run_steps([["init", {"n_parallel": 1, "n_ctx": 512, "log_level": "none"}],
                     ["load", QWEN, {"chat_template": template}]])
    assert out[-1][:2] == ["load", code("INVALID_ARGUMENT")], out
    assert out[-1][2].startswith("'chat_template' in model config") and why in out[-1][2], out


AT_THE_LIMITS = {
    "recursion 64 deep": recursion(63),
    "brackets 100 deep": MSGS + "{{ " + "(" * 100 + "1" + ")" * 100 + " }}",
    "blocks 100 deep": "{% if true %}" * 99 + MSGS + "{% endif %}" * 99,
    "150 operators": MSGS + "{{ 1" + "+1" * 149 + " }}",
}


@pytest.mark.parametrize("name", list(AT_THE_LIMITS))
def test_a_chat_template_at_the_limits_works(name):
    out = run_steps([["init", {"n_parallel": 1, "n_ctx": 512, "log_level": "none"}],
                     ["load", QWEN, {"chat_template": AT_THE_LIMITS[name]}],
                     ["run", "chat", {"messages": [{"role": "user", "content": "hi"}], "n_predict": 1}]])
    assert out[-1][:2] == ["run", 0], out


# Each macro template renders (in Python's jinja2 with trim_blocks and lstrip_blocks, as
# llama.cpp's) exactly as its inline twin: the call-depth counter put into macros must not
# change a byte of the prompt, whatever whitespace control the macro's tags use.
MACRO_TWINS = {
    "dashes": ("{%- macro turn(m) -%}\n  <|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{%- endmacro %}\n"
               "{% for m in messages %}\n{{ turn(m) }}\n{% endfor %}\n" + TAIL,
               "{% for m in messages %}\n<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}\n" + TAIL),
    "plain": ("{% macro turn(m) %}\n    <|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n    {% endmacro %}\n"
              "{% for m in messages %}{{ turn(m) }}\n{% endfor %}" + TAIL,
              "{% for m in messages %}    <|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n\n{% endfor %}" + TAIL),
    "nested": ("{% macro role(m) %}<|im_start|>{{ m.role }}{% endmacro %}\n"
               "  {%- macro turn(m) -%}\n {{ role(m) }}\n{{ m.content }}<|im_end|>\n {%- endmacro -%}\n\n"
               "{% for m in messages %}{{ turn(m) }}\n{% endfor %}" + TAIL,
               "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}" + TAIL),
}


@pytest.mark.parametrize("name", list(MACRO_TWINS))
def test_the_macro_counter_leaves_the_prompt_unchanged(name):
    chat = {"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Say hi"}],
            "n_predict": 6, "temperature": 0}
    seen = []
    for template in MACRO_TWINS[name]:
        out = run_steps([["init", {"n_parallel": 1, "n_ctx": 512, "log_level": "none"}],
                         ["load", QWEN, {"chat_template": template}], ["run", "chat", chat]])
        assert out[-1][:2] == ["run", 0], out
        r = out[-1][2]
        seen.append((r["usage"]["prompt_tokens"], r["choices"][0]["message"]["content"]))
    assert seen[0] == seen[1]


# ---- grammars that expand without end (was: 24 GB, then the OOM killer; issue 23) ----------

CHAT = {"messages": [{"role": "user", "content": "Hi"}], "n_predict": 4}
TOOLS = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object", "properties": {}}}}]
INVERTED = {
    "{5,2}": ('root ::= "a"{5,2}', "{5,2}"),
    "{5,0}": ('root ::= "a"{5,0}', "{5,0}"),
    "{500,2}": ('root ::= "a"{500,2}', "{500,2}"),
    "nested": ('root ::= ("a" ("b" [c-d]{7,3})+)?', "{7,3}"),
    "in a later rule": ('root ::= x\nx ::= "a" | "b"{ 9 , 8 }', "{ 9 , 8 }"),
}


@pytest.mark.parametrize("name", list(INVERTED))
def test_a_repetition_whose_maximum_is_below_its_minimum_is_refused(name):
    grammar, shown = INVERTED[name]
    out = run_steps([["init", {"n_parallel": 1, "n_ctx": 512, "log_level": "none"}], ["load", QWEN, None],
                     ["run", "chat", {**CHAT, "grammar": grammar}],
                     ["run", "chat", {**CHAT, "grammar": grammar, "tools": TOOLS}],
                     ["run", "completion", {"prompt": "x", "n_predict": 2, "grammar": grammar}],
                     ["session", {"grammar": grammar}]])
    for o, where in zip(out[2:], ["chat input", "chat input", "completion input", "session config"]):
        assert o[1] == code("INVALID_ARGUMENT"), out
        assert f"'grammar' in {where}" in o[2] and shown in o[2] and "maximum is below its minimum" in o[2], out


def test_a_json_schema_with_inverted_bounds_is_refused_not_expanded():
    # llama.cpp's converter writes minLength 5, maxLength 2 as char{5,2}
    out = run_steps([["init", {"n_parallel": 1, "n_ctx": 512, "log_level": "none"}], ["load", QWEN, None],
                     ["run", "chat", {**CHAT, "json_schema": {"type": "string", "minLength": 5, "maxLength": 2}}],
                     ["run", "completion", {"prompt": "x", "n_predict": 2,
                                            "json_schema": {"type": "array", "minItems": 9, "maxItems": 3}}],
                     ["run", "chat", {**CHAT, "response_format": {"type": "json_schema", "json_schema": {
                         "schema": {"type": "string", "minLength": 7, "maxLength": 1}}}}],
                     ["session", {"json_schema": {"type": "string", "minLength": 5, "maxLength": 2}}]])
    for o in out[2:]:
        assert o[1] == code("INVALID_ARGUMENT") and "maximum is below its minimum" in o[2], out
        assert "json_schema" in o[2], out


def test_a_grammar_that_copies_too_much_is_refused_and_one_below_the_bound_works():
    big = 'root ::= "' + "x" * 50000 + '"{1999}'       # 100 M elements: 800 MB of rules
    fits = 'root ::= "' + "ab" * 200 + '"{1,1000}'      # 400 K elements
    out = run_steps([["init", {"n_parallel": 1, "n_ctx": 512, "log_level": "none"}], ["load", QWEN, None],
                     ["run", "completion", {"prompt": "x", "n_predict": 2, "grammar": big}],
                     ["run", "completion", {"prompt": "x", "n_predict": 3, "grammar": fits, "temperature": 0}],
                     ["run", "completion", {"prompt": "x", "n_predict": 3, "grammar": 'root ::= "a"{2,5}'}]])
    assert out[2][1] == code("INVALID_ARGUMENT") and "rule elements" in out[2][2], out
    assert out[3][1] == 0 and "ab".startswith(out[3][2]["content"][:2]), out
    assert out[4][1] == 0 and out[4][2]["content"] in ("a", "aa", "aaa", "aaaa", "aaaaa"), out


# ---- chat templates that render without end (was: minutes of CPU per load and per chat) ----

RUNAWAY = {
    "range(100000000)": ("{% for i in range(100000000) %}x{% endfor %}", "range() of 100000001 elements"),
    "range(1000000)": ("{% for i in range(1000000) %}x{% endfor %}", "range() of 1000001 elements"),
    "nested loops": ("{% for i in range(1000) %}{% for j in range(1000) %}{% endfor %}{% endfor %}" + MSGS,
                     "loop iterations"),
    "string repetition": ("{{ 'x' * 10000000000 }}" + MSGS, "MiB of text"),
}


@pytest.mark.parametrize("name", list(RUNAWAY))
@pytest.mark.parametrize("model", ["qwen", "minilm-l6-v2-f16"])
def test_a_chat_template_that_renders_without_end_is_refused_at_load(name, model):
    template, why = RUNAWAY[name]
    path, mcfg = (QWEN, {}) if model == "qwen" else (str(embed_models.ensure(model)), {"embedding": True})
    out = run_steps([["init", {"n_parallel": 1, "n_ctx": 512, "log_level": "none"}],
                     ["load", path, {**mcfg, "chat_template": template}]])
    assert out[-1][:2] == ["load", code("INVALID_ARGUMENT")], out
    assert out[-1][2].startswith("'chat_template' in model config") and "over its budget" in out[-1][2], out
    assert why in out[-1][2], out


def test_a_chat_template_that_runs_away_on_a_task_fails_that_task_and_serves_on():
    # renders the example conversations of the load; loops on a long message
    template = ("{% for m in messages %}{% for i in range(m.content|length * 10000) %}{% endfor %}"
                "<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}" + TAIL)
    out = run_steps([["init", {"n_parallel": 1, "n_ctx": 512, "log_level": "none"}],
                     ["load", QWEN, {"chat_template": template}],
                     ["run", "chat", {"messages": [{"role": "user", "content": "x" * 20}], "n_predict": 1}],
                     ["run", "chat", {"messages": [{"role": "user", "content": "hi"}], "n_predict": 1}]])
    assert out[2][1] == code("INVALID_ARGUMENT") and "over its budget" in out[2][2], out
    assert out[3][1] == 0, out
