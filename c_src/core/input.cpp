// Task input validation. Every key a task may carry is listed here with its type; the
// numeric ranges guard what llama.cpp would otherwise clamp silently or assert on.
#include "input.h"
#include "json_check.h"

#include <algorithm>
#include <cmath>
#include <map>

namespace lls {

namespace {

enum class T { num, integer, boolean, str, str_or_arr, arr, obj, obj_or_arr, any };

struct Spec {
    T      type;
    double lo = -1e300;
    double hi = 1e300;
};

// Sampling and generation keys shared by completion, chat and session defaults.
const std::map<std::string, Spec> & generation_keys() {
    static const std::map<std::string, Spec> m = {
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

const std::map<std::string, Spec> & chat_only_keys() {
    static const std::map<std::string, Spec> m = {
        {"messages", {T::arr}}, {"tools", {T::arr}}, {"tool_choice", {T::any}},
        {"parallel_tool_calls", {T::boolean}}, {"response_format", {T::obj}},
        {"chat_template_kwargs", {T::obj}}, {"add_generation_prompt", {T::boolean}},
        {"reasoning_format", {T::str}}, {"stream_options", {T::obj}}, {"logprobs", {T::boolean}},
        {"top_logprobs", {T::integer, 0, 20}}, {"model", {T::str}},
    };
    return m;
}

const std::map<std::string, Spec> & embedding_keys() {
    static const std::map<std::string, Spec> m = {
        {"content", {T::any}}, {"input", {T::any}}, {"encoding_format", {T::str}},
        {"embd_normalize", {T::integer, -1, 1000}}, {"model", {T::str}}, {"oaicompat", {T::boolean}},
    };
    return m;
}

const std::map<std::string, Spec> & rerank_keys() {
    static const std::map<std::string, Spec> m = {
        {"query", {T::str}}, {"documents", {T::arr}}, {"texts", {T::arr}},
        {"top_n", {T::integer, 0, 1 << 24}}, {"return_text", {T::boolean}}, {"model", {T::str}},
        {"sort", {T::boolean}},
    };
    return m;
}

void check_value(const std::string & key, const json & v, const Spec & s, const char * what) {
    auto bad = [&](const char * want) {
        fail(LLAMA_ERROR_INVALID_ARGUMENT, "'" + key + "' in " + what + " must be " + want);
    };
    if (v.is_null()) {
        return;   // null means "not given", as in llama.cpp's server
    }
    switch (s.type) {
        case T::num:
        case T::integer: {
            if (!v.is_number()) bad(s.type == T::num ? "a number" : "an integer");
            double d = v.get<double>();
            if (!std::isfinite(d)) bad("finite");
            if (s.type == T::integer && std::floor(d) != d) bad("an integer");
            if (d < s.lo || d > s.hi) {
                fail(LLAMA_ERROR_INVALID_ARGUMENT, "'" + key + "' in " + what + " is out of range (" +
                     std::to_string((long long) s.lo) + ".." + std::to_string((long long) s.hi) + ")");
            }
            break;
        }
        case T::boolean:    if (!v.is_boolean()) bad("true or false"); break;
        case T::str:        if (!v.is_string()) bad("a string"); break;
        case T::arr:        if (!v.is_array()) bad("an array"); break;
        case T::obj:        if (!v.is_object()) bad("an object"); break;
        case T::obj_or_arr: if (!v.is_object() && !v.is_array()) bad("an object or an array"); break;
        case T::str_or_arr:
            if (v.is_string()) break;
            if (!v.is_array()) bad("a string or an array of strings");
            for (const auto & e : v) {
                if (!e.is_string()) bad("a string or an array of strings");
            }
            break;
        case T::any: break;
    }
}

void check_against(const json & input, const char * what,
                   std::initializer_list<const std::map<std::string, Spec> *> tables) {
    for (const auto & item : input.items()) {
        const Spec * spec = nullptr;
        for (auto * t : tables) {
            auto it = t->find(item.key());
            if (it != t->end()) {
                spec = &it->second;
                break;
            }
        }
        if (!spec) {
            fail(LLAMA_ERROR_INVALID_ARGUMENT, "unknown key '" + item.key() + "' in " + what);
        }
        check_value(item.key(), item.value(), *spec, what);
    }
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

TaskKind parse_task_kind(const char * t) {
    if (t == nullptr) fail(LLAMA_ERROR_INVALID_ARGUMENT, "task_type is NULL");
    std::string s(t);
    if (s == "completion") return TaskKind::completion;
    if (s == "chat")       return TaskKind::chat;
    if (s == "embedding")  return TaskKind::embedding;
    if (s == "rerank")     return TaskKind::rerank;
    fail(LLAMA_ERROR_INVALID_ARGUMENT, "unknown task type '" + s.substr(0, 64) +
         "' (expected completion, chat, embedding or rerank)");
}

const char * task_kind_name(TaskKind k) {
    switch (k) {
        case TaskKind::completion: return "completion";
        case TaskKind::chat:       return "chat";
        case TaskKind::embedding:  return "embedding";
        case TaskKind::rerank:     return "rerank";
    }
    return "?";
}

// Deepest nesting of ( ) in a GBNF grammar, outside string literals and character classes.
// llama.cpp's grammar parser recurses once per level: 30,000 levels overflowed the loop
// thread's stack, and a caller's (an Erlang dirty scheduler's) is smaller still.
int grammar_nesting_depth(const std::string & g) {
    int depth = 0, deepest = 0;
    for (size_t i = 0; i < g.size(); i++) {
        const char c = g[i];
        if (c == '"' || c == '[') {   // skip a literal or a class, with its escapes
            const char end = c == '"' ? '"' : ']';
            for (i++; i < g.size() && g[i] != end; i++) {
                if (g[i] == '\\') i++;
            }
        } else if (c == '#') {        // a comment runs to the end of the line
            while (i < g.size() && g[i] != '\n') i++;
        } else if (c == '(') {
            deepest = std::max(deepest, ++depth);
        } else if (c == ')') {
            depth--;
        }
    }
    return deepest;
}

void check_grammar_depth(const json & obj, const char * what) {
    if (obj.contains("grammar") && obj.at("grammar").is_string() &&
        grammar_nesting_depth(obj.at("grammar").get<std::string>()) > MAX_GRAMMAR_DEPTH) {
        fail(LLAMA_ERROR_INVALID_ARGUMENT, std::string("'grammar' in ") + what + " nests parentheses deeper than " +
             std::to_string(MAX_GRAMMAR_DEPTH) + " levels");
    }
}

json without_nulls(const json & obj) {
    json out = json::object();
    for (const auto & item : obj.items()) {
        if (!item.value().is_null()) out[item.key()] = item.value();
    }
    return out;
}

void validate_task_input(TaskKind kind, const json & input) {
    static const std::map<std::string, Spec> prompt_key = {{"prompt", {T::any}}};
    switch (kind) {
        case TaskKind::completion:
            check_against(input, "completion input", {&generation_keys(), &prompt_key});
            check_grammar_depth(input, "completion input");
            check_prompt(input);
            break;
        case TaskKind::chat:
            check_against(input, "chat input", {&generation_keys(), &chat_only_keys()});
            check_grammar_depth(input, "chat input");
            check_messages(input, true);
            break;
        case TaskKind::embedding:
            check_against(input, "embedding input", {&embedding_keys()});
            if (!input.contains("content") && !input.contains("input")) {
                fail(LLAMA_ERROR_INVALID_ARGUMENT, "embedding input needs \"content\" (a string or an array of strings)");
            }
            break;
        case TaskKind::rerank:
            check_against(input, "rerank input", {&rerank_keys()});
            if (!input.contains("query")) fail(LLAMA_ERROR_INVALID_ARGUMENT, "rerank input needs \"query\"");
            if (!input.contains("documents") && !input.contains("texts")) {
                fail(LLAMA_ERROR_INVALID_ARGUMENT, "rerank input needs \"documents\"");
            }
            break;
    }
}

void validate_session_config(const json & cfg) {
    static const std::map<std::string, Spec> session_keys = {
        {"system_prompt", {T::str}}, {"keep_history", {T::boolean}},
        // chat formatting defaults that make sense per conversation
        {"tools", {T::arr}}, {"chat_template_kwargs", {T::obj}}, {"reasoning_format", {T::str}},
    };
    check_against(cfg, "session config", {&session_keys, &generation_keys()});
    check_grammar_depth(cfg, "session config");
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
