// The rule of one JSON key (type, range, choices) and its check: shared by task input,
// session config (input.cpp) and server/model config (config_keys.def).
#pragma once

#include "lls_common.h"

#include <map>

namespace lls {

enum class T {
    num, integer, boolean, str, str_or_arr, arr, obj, obj_or_arr, any,
    num_arr,    // array of numbers
    tristate,   // true, false or "auto"
    choice,     // one of the '|'-separated strings in Spec::choices
};

struct Spec {
    T            type;
    double       lo = -1e300;
    double       hi = 1e300;
    const char * choices = nullptr;
};

using SpecTable = std::map<std::string, Spec>;

// Throws INVALID_ARGUMENT naming the key and `what` ("server config", "chat input", ...).
// null passes: it means "not given", as in llama.cpp's server.
void check_value(const std::string & key, const json & v, const Spec & s, const char * what);

// Every member of `input` must be in one of the tables and pass its rule.
void check_against(const json & input, const char * what, std::initializer_list<const SpecTable *> tables);

// The position of a checked T::choice value in its list; of a T::tristate: 1, 0, -1 (auto).
int choice_index(const json & v, const Spec & s);

}  // namespace lls
