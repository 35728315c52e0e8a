// Limits for GBNF grammars, checked before llama.cpp's grammar parser sees one. That parser
// recurses once per nesting level, expands every repetition into rules at parse time, and
// computes a repetition's optional copies as max - min in unsigned arithmetic: "a"{5,2}
// added rules until the process was killed for memory (upstream issue 23108). A grammar
// enters from a task's or session's "grammar" and from llama.cpp's own converters (a
// "json_schema", a chat's tools); every one is checked here first.
#pragma once

#include "lls_common.h"

namespace lls {

// Parentheses may nest this deep, no deeper (the parser recurses once per level on whichever
// thread parses: the loop thread, or a caller's such as an Erlang dirty scheduler).
constexpr int MAX_GRAMMAR_DEPTH = 100;
// The rule elements (8 bytes each) a grammar may expand to: 32 MiB, parsed in well under a
// second. A schema with a hundred maxLength-2000 strings needs under a million.
constexpr unsigned long long MAX_GRAMMAR_ELEMENTS = 1ull << 22;

struct GrammarCost {
    int deepest = 0;                   // deepest ( ) nesting
    unsigned long long elements = 0;   // rule elements the parser would make (an upper bound)
    std::string inverted;              // the first {m,n} with n < m, as written, or ""
    size_t inverted_at = 0;            // its byte offset
};

// What llama.cpp's parser would make of `gbnf`, read the way it reads it (comments, string
// literals and character classes with escapes, groups, tokens, repetitions). Syntax errors
// are left to llama.cpp's parser, which reports them.
GrammarCost grammar_cost(const std::string & gbnf);

// Throws INVALID_ARGUMENT naming `what` (e.g. "'grammar' in task input") when the grammar
// nests too deep, has an inverted repetition range, or expands beyond MAX_GRAMMAR_ELEMENTS.
void guard_grammar(const std::string & gbnf, const std::string & what);

}  // namespace lls
