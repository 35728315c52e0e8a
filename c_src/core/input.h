// Whitelist and type checks for task input and session defaults, before anything reaches
// llama.cpp (some malformed fields reach a GGML_ASSERT on the loop thread there).
#pragma once

#include "lls_common.h"

namespace lls {

enum class TaskKind { completion, chat, embedding, rerank };

// "completion" | "chat" | "embedding" | "rerank"; throws INVALID_ARGUMENT otherwise.
TaskKind parse_task_kind(const char * task_type);
const char * task_kind_name(TaskKind k);

// GBNF grammars ("grammar" of a task or session) may nest parentheses this deep, no deeper:
// llama.cpp's parser recurses once per level on whichever thread parses it.
constexpr int MAX_GRAMMAR_DEPTH = 100;
int grammar_nesting_depth(const std::string & gbnf);

// A copy of a JSON object without its null members: null means "not given" for every key of
// task input and session config, as in llama.cpp's server.
json without_nulls(const json & obj);

// Throws INVALID_ARGUMENT naming the key. Session-only keys are rejected here.
void validate_task_input(TaskKind kind, const json & input);

// Session config: system_prompt, keep_history and any sampling key a task accepts.
void validate_session_config(const json & cfg);

// Keys of a session config that are defaults for tasks (all but the session-only ones).
json session_task_defaults(const json & cfg);

}  // namespace lls
