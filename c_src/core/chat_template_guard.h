// Limits for chat templates, checked before llama.cpp's Jinja engine sees one. The engine
// recurses on the stack once per nesting level while parsing and once per macro call while
// rendering, with no limit of its own: a macro that calls itself without end was a SIGSEGV
// in load_model, and rendering also runs on callers' threads (an Erlang dirty scheduler has
// a few hundred KiB of stack).
#pragma once

#include "lls_common.h"

namespace lls {

// Brackets inside tags and blocks ({% if %} ... {% endif %}) may nest this deep, no deeper.
constexpr int MAX_TEMPLATE_NESTING = 100;
// A macro may be entered this many times at once (recursion in tool-schema templates is as
// deep as the schema, and task JSON nests at most MAX_JSON_DEPTH).
constexpr int MAX_TEMPLATE_CALL_DEPTH = 64;

// Throws INVALID_ARGUMENT (naming `what`) when the template nests deeper than allowed.
// Returns the template to hand to llama.cpp: the same text when it defines no macro, else
// the text with a call-depth counter in every macro, so that runaway recursion raises a
// template error instead of overflowing the stack. The output of a render is unchanged.
std::string guard_chat_template(const std::string & src, const std::string & what);

}  // namespace lls
