// Whitelist and type checks for task input and session defaults, before anything reaches
// llama.cpp (some malformed fields reach a GGML_ASSERT on the loop thread there).
#pragma once

#include "lls_common.h"

struct llama_vocab;

namespace lls {

#define LLS_TASK_KINDS_ALL(name) name,
#define LLS_TASK_KIND_GENERATE LLS_TASK_KINDS_ALL
#define LLS_TASK_KIND_POOLED LLS_TASK_KINDS_ALL
#define LLS_TASK_KIND_IMMEDIATE LLS_TASK_KINDS_ALL
enum class TaskKind {
#include "task_kinds.def"
};
#undef LLS_TASK_KIND_GENERATE
#undef LLS_TASK_KIND_POOLED
#undef LLS_TASK_KIND_IMMEDIATE
#undef LLS_TASK_KINDS_ALL

enum class TaskPath { generate, pooled, immediate };

// A row's name; throws INVALID_ARGUMENT (listing the kinds) for anything else.
TaskKind parse_task_kind(const char * task_type);
const char * task_kind_name(TaskKind k);
TaskPath task_path(TaskKind k);

// Each kind's input check (kinds' own files, or input.cpp for the built-in four).
#define LLS_TASK_KINDS_CHECK(name) void check_##name(const json & input);
#define LLS_TASK_KIND_GENERATE LLS_TASK_KINDS_CHECK
#define LLS_TASK_KIND_POOLED LLS_TASK_KINDS_CHECK
#define LLS_TASK_KIND_IMMEDIATE(name) LLS_TASK_KINDS_CHECK(name) \
    std::string run_##name(const llama_vocab * vocab, const json & input);
#include "task_kinds.def"
#undef LLS_TASK_KIND_GENERATE
#undef LLS_TASK_KIND_POOLED
#undef LLS_TASK_KIND_IMMEDIATE
#undef LLS_TASK_KINDS_CHECK

// The result JSON of an immediate kind; throws INVALID_ARGUMENT for input the vocabulary refuses.
std::string run_immediate(TaskKind kind, const llama_vocab * vocab, const json & input);

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
