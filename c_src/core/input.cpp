// Task input validation. Every key a task may carry is listed here with its type; the
// numeric ranges guard what llama.cpp would otherwise clamp silently or assert on.
#include "input.h"
#include "grammar_guard.h"
#include "spec.h"

#include <algorithm>
#include <cmath>
#include <map>

namespace lls {

namespace {

// Sampling and generation keys shared by completion, chat and session defaults.
const SpecTable & generation_keys() {
    static const SpecTable m = {
        {"n_predict", {T::integer, -1, 1 << 20}}, {"max_tokens", {T::integer, -1, 1 << 20}},
        {"max_completion_tokens", {T::integer, -1, 1 << 20}},
        {"temperature", {T::num, -1e6, 1e6}}, {"dynatemp_range", {T::num, 0, 1e6}},
        {"dynatemp_exponent", {T::num, -1e6, 1e6}}, {"top_k", {T::integer, -1, 1 << 24}},
        {"top_p", {T::num, 0, 1}}, {"min_p", {T::num, 0, 1}}, {"typical_p", {T::num, 0, 1}},
        {"top_n_sigma", {T::num, -1, 1e6}}, {"xtc_probability", {T::num, 0, 1}},
        {"xtc_threshold", {T::num, 0, 1}}, {"repeat_penalty", {T::num, 0, 1e6}},
        {"repeat_last_n", {T::integer, -1, 1 << 20}}, {"presence_penalty", {T::num, -1e6, 1e6}},
        {"frequency_penalty", {T::num, -1e6, 1e6}}, {"dry_multiplier", {T::num, 0, 1e6}},
        {"dry_base", {T::num, 0, 1e6}}, {"dry_allowed_length", {T::integer, 0, 1 << 20}},
        {"dry_penalty_last_n", {T::integer, -1, 1 << 20}}, {"dry_sequence_breakers", {T::arr}},
        {"mirostat", {T::integer, 0, 2}}, {"mirostat_tau", {T::num, 0, 1e6}},
        {"mirostat_eta", {T::num, 0, 1e6}}, {"seed", {T::integer, -1, 4294967295.0}},
        {"stop", {T::str_or_arr}}, {"ignore_eos", {T::boolean}}, {"n_probs", {T::integer, 0, 100}},
        {"min_keep", {T::integer, 0, 1 << 20}}, {"logit_bias", {T::obj_or_arr}},
        {"grammar", {T::str}}, {"json_schema", {T::obj}}, {"samplers", {T::str_or_arr}},
        {"n_keep", {T::integer, -1, 1 << 20}}, {"cache_prompt", {T::boolean}},
        {"n_indent", {T::integer, 0, 1 << 16}}, {"t_max_predict_ms", {T::integer, -1, 1e12}},
        {"post_sampling_probs", {T::boolean}}, {"return_tokens", {T::boolean}},
        {"timings_per_token", {T::boolean}}, {"verbose", {T::boolean}},
        {"response_fields", {T::arr}}, {"stream", {T::boolean}},
    };
    return m;
}

const SpecTable & chat_only_keys() {
    static const SpecTable m = {
        {"messages", {T::arr}}, {"tools", {T::arr}}, {"tool_choice", {T::any}},
        {"parallel_tool_calls", {T::boolean}}, {"response_format", {T::obj}},
        {"chat_template_kwargs", {T::obj}}, {"add_generation_prompt", {T::boolean}},
        {"reasoning_format", {T::str}}, {"stream_options", {T::obj}}, {"logprobs", {T::boolean}},
        {"top_logprobs", {T::integer, 0, 20}}, {"model", {T::str}},
    };
    return m;
}

const SpecTable & embedding_keys() {
    static const SpecTable m = {
        {"content", {T::any}}, {"input", {T::any}}, {"encoding_format", {T::str}},
        {"embd_normalize", {T::integer, -1, 1000}}, {"model", {T::str}}, {"oaicompat", {T::boolean}},
    };
    return m;
}

const SpecTable & rerank_keys() {
    static const SpecTable m = {
        {"query", {T::str}}, {"documents", {T::arr}}, {"texts", {T::arr}},
        {"top_n", {T::integer, 0, 1 << 24}}, {"return_text", {T::boolean}}, {"model", {T::str}},
        {"sort", {T::boolean}},
    };
    return m;
}

void check_prompt(const json & input) {
    if (!input.contains("prompt")) {
        fail(LLAMA_ERROR_INVALID_ARGUMENT, "completion input needs a \"prompt\"");
    }
    const json & p = input.at("prompt");
    if (p.is_string()) {
        return;
    }
    // one prompt per task: a string, or one sequence of token ids (strings may be mixed in)
    bool has_number = false;
    if (p.is_array()) {
        for (const auto & e : p) {
            if (e.is_number_integer()) {
                has_number = true;
            } else if (!e.is_string()) {
                fail(LLAMA_ERROR_INVALID_ARGUMENT, "\"prompt\" must be a string or one array of token ids "
                     "(one prompt per task)");
            }
        }
    }
    if (!has_number) {
        fail(LLAMA_ERROR_INVALID_ARGUMENT, "\"prompt\" must be a string or one array of token ids "
             "(one prompt per task)");
    }
}

void check_messages(const json & input, bool required) {
    if (!input.contains("messages")) {
        if (required) fail(LLAMA_ERROR_INVALID_ARGUMENT, "chat input needs \"messages\"");
        return;
    }
    const json & msgs = input.at("messages");
    if (!msgs.is_array() || (required && msgs.empty())) {
        fail(LLAMA_ERROR_INVALID_ARGUMENT, "\"messages\" must be a non-empty array");
    }
    for (size_t i = 0; i < msgs.size(); i++) {
        const json & m = msgs.at(i);
        std::string at = "messages[" + std::to_string(i) + "]";
        if (!m.is_object()) fail(LLAMA_ERROR_INVALID_ARGUMENT, at + " must be an object");
        if (!m.contains("role") || !m.at("role").is_string()) {
            fail(LLAMA_ERROR_INVALID_ARGUMENT, at + " needs a string \"role\"");
        }
        if (m.contains("content")) {
            const json & c = m.at("content");
            if (!c.is_string() && !c.is_array() && !c.is_null()) {
                fail(LLAMA_ERROR_INVALID_ARGUMENT, at + ".content must be a string, an array or null");
            }
        }
    }
}

}  // namespace

namespace {
struct KindRow {
    const char * name;
    TaskKind     kind;
    TaskPath     path;
};
const KindRow kKinds[] = {
#define LLS_TASK_KIND_GENERATE(name) {#name, TaskKind::name, TaskPath::generate},
#define LLS_TASK_KIND_POOLED(name) {#name, TaskKind::name, TaskPath::pooled},
#define LLS_TASK_KIND_IMMEDIATE(name) {#name, TaskKind::name, TaskPath::immediate},
#include "task_kinds.def"
#undef LLS_TASK_KIND_GENERATE
#undef LLS_TASK_KIND_POOLED
#undef LLS_TASK_KIND_IMMEDIATE
};
}  // namespace

TaskKind parse_task_kind(const char * t) {
    if (t == nullptr) fail(LLAMA_ERROR_INVALID_ARGUMENT, "task_type is NULL");
    std::string s(t), names;
    for (const KindRow & r : kKinds) {
        if (s == r.name) return r.kind;
        names += std::string(names.empty() ? "" : ", ") + r.name;
    }
    fail(LLAMA_ERROR_INVALID_ARGUMENT, "unknown task type '" + s.substr(0, 64) + "' (expected one of " + names + ")");
}

const char * task_kind_name(TaskKind k) { return kKinds[(int) k].name; }
TaskPath task_path(TaskKind k) { return kKinds[(int) k].path; }

std::string run_immediate(TaskKind kind, const llama_vocab * vocab, const json & input) {
    switch (kind) {
#define LLS_TASK_KIND_GENERATE(name)
#define LLS_TASK_KIND_POOLED(name)
#define LLS_TASK_KIND_IMMEDIATE(name) case TaskKind::name: return run_##name(vocab, input);
#include "task_kinds.def"
#undef LLS_TASK_KIND_GENERATE
#undef LLS_TASK_KIND_POOLED
#undef LLS_TASK_KIND_IMMEDIATE
        default: break;
    }
    fail(LLAMA_ERROR_UNKNOWN, std::string("task kind ") + task_kind_name(kind) + " is not immediate");
}

// A grammar is checked where it enters: its syntax by llama.cpp's parser later, its size first.
void check_grammar_input(const json & obj, const char * what) {
    if (obj.contains("grammar") && obj.at("grammar").is_string()) {
        guard_grammar(obj.at("grammar").get<std::string>(), std::string("'grammar' in ") + what);
    }
}

json without_nulls(const json & obj) {
    json out = json::object();
    for (const auto & item : obj.items()) {
        if (!item.value().is_null()) out[item.key()] = item.value();
    }
    return out;
}

void check_completion(const json & input) {
    static const SpecTable prompt_key = {{"prompt", {T::any}}};
    check_against(input, "completion input", {&generation_keys(), &prompt_key});
    check_grammar_input(input, "completion input");
    check_prompt(input);
}

void check_chat(const json & input) {
    check_against(input, "chat input", {&generation_keys(), &chat_only_keys()});
    check_grammar_input(input, "chat input");
    check_messages(input, true);
}

void check_embedding(const json & input) {
    check_against(input, "embedding input", {&embedding_keys()});
    if (!input.contains("content") && !input.contains("input")) {
        fail(LLAMA_ERROR_INVALID_ARGUMENT, "embedding input needs \"content\" (a string or an array of strings)");
    }
}

void check_rerank(const json & input) {
    check_against(input, "rerank input", {&rerank_keys()});
    if (!input.contains("query")) fail(LLAMA_ERROR_INVALID_ARGUMENT, "rerank input needs \"query\"");
    if (!input.contains("documents") && !input.contains("texts")) {
        fail(LLAMA_ERROR_INVALID_ARGUMENT, "rerank input needs \"documents\"");
    }
}

void validate_task_input(TaskKind kind, const json & input) {
    switch (kind) {
#define LLS_TASK_KIND_ANY(name) case TaskKind::name: check_##name(input); break;
#define LLS_TASK_KIND_GENERATE LLS_TASK_KIND_ANY
#define LLS_TASK_KIND_POOLED LLS_TASK_KIND_ANY
#define LLS_TASK_KIND_IMMEDIATE LLS_TASK_KIND_ANY
#include "task_kinds.def"
#undef LLS_TASK_KIND_GENERATE
#undef LLS_TASK_KIND_POOLED
#undef LLS_TASK_KIND_IMMEDIATE
#undef LLS_TASK_KIND_ANY
    }
}

void validate_session_config(const json & cfg) {
    static const SpecTable session_keys = {
        {"system_prompt", {T::str}}, {"keep_history", {T::boolean}},
        // chat formatting defaults that make sense per conversation
        {"tools", {T::arr}}, {"chat_template_kwargs", {T::obj}}, {"reasoning_format", {T::str}},
    };
    check_against(cfg, "session config", {&session_keys, &generation_keys()});
    check_grammar_input(cfg, "session config");
    if (cfg.contains("stream")) {
        fail(LLAMA_ERROR_INVALID_ARGUMENT, "'stream' cannot be a session default");
    }
}

json session_task_defaults(const json & cfg) {
    json out = json::object();
    for (const auto & item : cfg.items()) {
        if (item.key() != "system_prompt" && item.key() != "keep_history") {
            out[item.key()] = item.value();
        }
    }
    return out;
}

}  // namespace lls
