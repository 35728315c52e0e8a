// The counts of template_budget.h: per thread, no locks (a render runs on one thread).
#include "template_budget.h"

#include <stdexcept>

namespace lls::template_budget {

namespace {

struct Counts {
    int armed = 0;
    long long scopes = 0;
    long long appended = 0;
};

thread_local Counts t;

[[noreturn]] void over(const std::string & what) {
    throw std::runtime_error("the template's render went over its budget: " + what +
                             " (a runaway loop? see llama_server.h, load_model)");
}

}  // namespace

Budget::Budget() {
    if (t.armed++ == 0) t.scopes = t.appended = 0;
}

Budget::~Budget() { t.armed--; }

void count_scope() {
    if (t.armed) t.scopes++;
}

void check() {
    if (t.armed && t.scopes > MAX_SCOPES) over("more than " + std::to_string(MAX_SCOPES) + " loop iterations and macro calls");
}

void charge_append(size_t bytes) {
    if (!t.armed) return;
    t.appended += (long long) bytes;
    if (t.appended > MAX_APPENDED_BYTES) over("more than " + std::to_string(MAX_APPENDED_BYTES >> 20) + " MiB of text");
    check();
}

void check_range(long long elements) {
    if (!t.armed) return;
    if (elements > MAX_RANGE) over("range() of " + std::to_string(elements) + " elements (at most " + std::to_string(MAX_RANGE) + ")");
    check();
}

}  // namespace lls::template_budget
