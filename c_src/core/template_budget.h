// A budget for rendering chat templates. llama.cpp's Jinja engine has no limit of its own:
// "{% for i in range(100000000) %}x{% endfor %}" made a hundred million values before its
// first iteration, and range(1000000) rendered for minutes, in load_model and again in every
// chat. A thread that may render arms a Budget; while it is armed, hooks in the engine
// (c_src/link/template_budget_hooks.cpp) count what a render does, and the first hook past a
// limit throws, which the engine reports as a template error. The limits are far above what a
// real template does with a long conversation and many tools.
#pragma once

#include <cstddef>
#include <string>

namespace lls::template_budget {

// Jinja scopes entered (a loop's iteration, a macro call): the work of a render, 10-30 us
// each. The 71 templates of llama.cpp's models/templates render 1,000 messages and 20 tools
// in 3,000-36,000, except Gemma 4's, which walks the conversation once per message (about
// 500 x n^2 / 1000: it reaches the budget near 600 messages, after some 6 s).
constexpr long long MAX_SCOPES = 200000;
// Elements range() may make at once (real templates range over the messages).
constexpr long long MAX_RANGE = 100000;
// Text the engine appends while rendering (output, and strings built by ~, + and *), each
// piece charged its bytes and the 64 of its record: a render copies its text once per
// nesting level, Qwen2.5's template 35 times the prompt's size.
constexpr long long MAX_APPENDED_BYTES = 64ll << 20;
constexpr long long APPEND_PIECE_BYTES = 64;

// Arms this thread for its lifetime (nested Budgets share the outermost one's counts).
class Budget {
public:
    Budget();
    ~Budget();
    Budget(const Budget &) = delete;
    Budget & operator=(const Budget &) = delete;
};

// Called by the hooks. count_scope only counts (its hook, time(), may be called from C
// frames); the others throw std::runtime_error once a limit is passed, on an armed thread.
void count_scope();
void charge_append(size_t bytes);
void check_range(long long elements);
void check();

}  // namespace lls::template_budget
