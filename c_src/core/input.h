// Whitelist and type checks for task input and session defaults, before anything reaches
// llama.cpp (some malformed fields reach a GGML_ASSERT on the loop thread there).
#pragma once

#include "lls_common.h"

namespace lls {

enum class TaskKind { completion, chat, embedding, rerank };

// "completion" | "chat" | "embedding" | "rerank"; throws INVALID_ARGUMENT otherwise.
TaskKind parse_task_kind(const char * task_type);
const char * task_kind_name(TaskKind k);

// Throws INVALID_ARGUMENT naming the key. Session-only keys are rejected here.
void validate_task_input(TaskKind kind, const json & input);

// Session config: system_prompt, keep_history and any sampling key a task accepts.
void validate_session_config(const json & cfg);

// Keys of a session config that are defaults for tasks (all but the session-only ones).
json session_task_defaults(const json & cfg);

}  // namespace lls
