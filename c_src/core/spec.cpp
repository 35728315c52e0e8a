// Checks of JSON values against their Spec rule; every failure names the key.
#include "spec.h"

#include <cmath>
#include <cstdio>
#include <cstring>

namespace lls {

namespace {

std::string bound(double d) {
    if (std::floor(d) == d && std::fabs(d) < 1e15) return std::to_string((long long) d);
    char buf[32];
    std::snprintf(buf, sizeof buf, "%g", d);
    return buf;
}

std::string choice_list(const char * choices) {
    std::string out;
    for (const char * p = choices; *p; p++) out += *p == '|' ? std::string(", ") : std::string(1, *p);
    return out;
}

}  // namespace

int choice_index(const json & v, const Spec & s) {
    if (s.type == T::tristate) return v.is_boolean() ? (v.get<bool>() ? 1 : 0) : -1;
    const std::string want = v.get<std::string>();
    int i = 0;
    for (const char * p = s.choices; ; i++) {
        const char * end = std::strchr(p, '|');
        const size_t n = end ? (size_t) (end - p) : std::strlen(p);
        if (want.size() == n && want.compare(0, n, p, n) == 0) return i;
        if (!end) return -1;
        p = end + 1;
    }
}

void check_value(const std::string & key, const json & v, const Spec & s, const char * what) {
    auto bad = [&](const std::string & want) {
        fail(LLAMA_ERROR_INVALID_ARGUMENT, "'" + key + "' in " + what + " must be " + want);
    };
    if (v.is_null()) {
        return;
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
                     bound(s.lo) + ".." + bound(s.hi) + ")");
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
        case T::num_arr:
            if (!v.is_array()) bad("an array of numbers");
            for (const auto & e : v) {
                if (!e.is_number() || !std::isfinite(e.get<double>()) || e.get<double>() < s.lo ||
                    e.get<double>() > s.hi) {
                    bad("an array of numbers in " + bound(s.lo) + ".." + bound(s.hi));
                }
            }
            break;
        case T::tristate:
            if (!v.is_boolean() && !(v.is_string() && v.get<std::string>() == "auto")) bad("true, false or \"auto\"");
            break;
        case T::choice:
            if (!v.is_string() || choice_index(v, s) < 0) bad("one of " + choice_list(s.choices));
            break;
        case T::any: break;
    }
}

void check_against(const json & input, const char * what, std::initializer_list<const SpecTable *> tables) {
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

}  // namespace lls
