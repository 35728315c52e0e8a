// A minimal harness for the model-free unit tests of our bookkeeping (c_src/tests/*_test.cpp,
// run by py_tests/test_22_*.py): CASE(name) { ... EXPECT_EQ(a, b); ... } and UNIT_TEST_MAIN().
// Prints "ok <case>" per case and "<n> cases passed" at the end; exits 1 on the first failure.
#pragma once

#include <cstdio>
#include <cstdlib>
#include <vector>

#define EXPECT_EQ(a, b)                                                                         \
    do {                                                                                        \
        const long long _a = (a), _b = (b);                                                     \
        if (_a != _b) {                                                                         \
            std::printf("FAIL %s:%d: %s == %lld, expected %lld\n", __FILE__, __LINE__, #a, _a, _b); \
            std::exit(1);                                                                       \
        }                                                                                       \
    } while (0)

struct Case { const char * name; void (*fn)(); };
inline std::vector<Case> & cases() { static std::vector<Case> c; return c; }

#define CASE(name) static void name(); struct name##_reg { name##_reg() { cases().push_back({#name, name}); } } name##_r; static void name()

#define UNIT_TEST_MAIN()                           \
    int main() {                                   \
        int n = 0;                                 \
        for (const Case & c : cases()) {           \
            c.fn();                                \
            n++;                                   \
            std::printf("ok %s\n", c.name);        \
        }                                          \
        std::printf("%d cases passed\n", n);       \
        return 0;                                  \
    }
