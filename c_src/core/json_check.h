// Typed, range-checked reads of JSON config keys; every failure names the key.
#pragma once

#include "lls_common.h"

#include <cmath>
#include <initializer_list>
#include <set>

namespace lls {

inline void check_known_keys(const json & obj, const std::set<std::string> & allowed, const char * what) {
    for (const auto & item : obj.items()) {
        if (!allowed.count(item.key())) {
            fail(LLAMA_ERROR_INVALID_ARGUMENT, "unknown key '" + item.key() + "' in " + what);
        }
    }
}

inline int get_int(const json & obj, const char * key, int def, long long lo, long long hi, const char * what) {
    if (!obj.contains(key) || obj.at(key).is_null()) {
        return def;
    }
    const json & v = obj.at(key);
    if (!v.is_number()) {
        fail(LLAMA_ERROR_INVALID_ARGUMENT, std::string("'") + key + "' in " + what + " must be an integer");
    }
    double d = v.get<double>();
    if (std::floor(d) != d) {
        fail(LLAMA_ERROR_INVALID_ARGUMENT, std::string("'") + key + "' in " + what + " must be an integer");
    }
    if (d < (double) lo || d > (double) hi) {
        fail(LLAMA_ERROR_INVALID_ARGUMENT, std::string("'") + key + "' in " + what + " must be in " +
             std::to_string(lo) + ".." + std::to_string(hi));
    }
    return (int) d;
}

inline double get_num(const json & obj, const char * key, double def, double lo, double hi, const char * what) {
    if (!obj.contains(key) || obj.at(key).is_null()) {
        return def;
    }
    const json & v = obj.at(key);
    if (!v.is_number()) {
        fail(LLAMA_ERROR_INVALID_ARGUMENT, std::string("'") + key + "' in " + what + " must be a number");
    }
    double d = v.get<double>();
    if (!(d >= lo && d <= hi)) {
        fail(LLAMA_ERROR_INVALID_ARGUMENT, std::string("'") + key + "' in " + what + " must be in " +
             std::to_string(lo) + ".." + std::to_string(hi));
    }
    return d;
}

inline bool get_bool(const json & obj, const char * key, bool def, const char * what) {
    if (!obj.contains(key) || obj.at(key).is_null()) {
        return def;
    }
    if (!obj.at(key).is_boolean()) {
        fail(LLAMA_ERROR_INVALID_ARGUMENT, std::string("'") + key + "' in " + what + " must be true or false");
    }
    return obj.at(key).get<bool>();
}

inline std::string get_str(const json & obj, const char * key, const std::string & def, const char * what) {
    if (!obj.contains(key) || obj.at(key).is_null()) {
        return def;
    }
    if (!obj.at(key).is_string()) {
        fail(LLAMA_ERROR_INVALID_ARGUMENT, std::string("'") + key + "' in " + what + " must be a string");
    }
    return obj.at(key).get<std::string>();
}

}  // namespace lls
