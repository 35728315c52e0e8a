// The hooks of core/template_budget.h in llama.cpp's Jinja engine (common/jinja/). Every
// object linked into our libraries calls these instead (-Wl,--wrap, c_src/CMakeLists.txt):
// - time(): the engine's context constructor calls it for every scope (a loop iteration, a
//   macro call); counted only, as C code calls time() too and nothing may throw through it;
// - jinja::global_builtins(): looked up for every identifier the engine evaluates; we hand
//   out a copy whose range() refuses a range beyond the budget before making it;
// - jinja::string::append(): every piece of text a render puts together.
// The last two throw once the budget is spent, inside the engine, which reports a template
// error. py_tests/test_16 checks that looping templates are stopped; if a new llama.cpp
// renames one of these, that test fails instead of the budget silently going away.
#include "template_budget.h"

#include "jinja/string.h"
#include "jinja/value.h"

#include <algorithm>
#include <ctime>

namespace tb = lls::template_budget;

extern "C" time_t __real_time(time_t * t);
extern "C" time_t __wrap_time(time_t * t) {
    tb::count_scope();
    return __real_time(t);
}

// jinja::global_builtins()
extern "C" const jinja::func_builtins & __real__ZN5jinja15global_builtinsB5cxx11Ev();
extern "C" const jinja::func_builtins & __wrap__ZN5jinja15global_builtinsB5cxx11Ev() {
    static const jinja::func_builtins ours = [] {
        jinja::func_builtins b = __real__ZN5jinja15global_builtinsB5cxx11Ev();
        jinja::func_handler range = b.at("range");
        b["range"] = [range](const jinja::func_args & args) -> jinja::value {
            // range(stop), range(start, stop), range(start, stop, step), as the engine reads them
            const size_t n = args.count();
            long long v[3] = {0, 0, 1};
            for (size_t i = 0; i < n && i < 3; i++) {
                const jinja::value a = args.get_pos(i);
                if (!jinja::is_val<jinja::value_int>(a)) return range(args);   // the engine's own error
                v[n == 1 ? 1 : i] = (long long) a->as_int();
            }
            const long double span = (long double) v[1] - v[0], step = v[2];
            if (n >= 1 && n <= 3 && step != 0 && span / step > 0) tb::check_range((long long) std::min<long double>(span / step + 1, 9e18L));
            return range(args);
        };
        return b;
    }();
    tb::check();
    return ours;
}

// jinja::string::append(const jinja::string &)
extern "C" jinja::string & __real__ZN5jinja6string6appendERKS0_(jinja::string * self, const jinja::string & other);
extern "C" jinja::string & __wrap__ZN5jinja6string6appendERKS0_(jinja::string * self, const jinja::string & other) {
    size_t bytes = 0;
    for (const auto & p : other.parts) bytes += p.val.size() + tb::APPEND_PIECE_BYTES;
    tb::charge_append(bytes);
    return __real__ZN5jinja6string6appendERKS0_(self, other);
}
