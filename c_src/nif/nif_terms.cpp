// Erlang terms <-> JSON text. Erlang -> JSON is written by hand (maps, lists, binaries,
// numbers, atoms) with UTF-8, size and depth checks; JSON -> Erlang walks nlohmann's tree
// (the copy llama.cpp vendors), since OTP 25 has no json module.
#include "nif_common.h"

#include <nlohmann/json.hpp>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <set>
#include <vector>

namespace lnif {

thread_local ErlNifEnv * t_caller_env = nullptr;

ERL_NIF_TERM make_binary(ErlNifEnv * env, const char * data, size_t size) {
    ERL_NIF_TERM t;
    unsigned char * p = enif_make_new_binary(env, size, &t);
    if (size) std::memcpy(p, data, size);
    return t;
}

ERL_NIF_TERM reason_term(ErlNifEnv * env, llama_error_t code, const char * detail) noexcept {
    const char * d = detail ? detail : "";
    return enif_make_tuple2(env, code_atom(code), make_binary(env, d, std::strlen(d)));
}

ERL_NIF_TERM error_term(ErlNifEnv * env, llama_error_t code, const char * detail) noexcept {
    return enif_make_tuple2(env, A.error, reason_term(env, code, detail));
}

namespace {

[[noreturn]] void bad(const std::string & msg) { lls::fail(LLAMA_ERROR_INVALID_ARGUMENT, msg); }

// Strict UTF-8: no overlong forms, no surrogates, nothing above U+10FFFF.
bool valid_utf8(const unsigned char * s, size_t n) {
    size_t i = 0;
    while (i < n) {
        unsigned char c = s[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t len;
        unsigned cp;
        if ((c & 0xE0) == 0xC0) { len = 2; cp = c & 0x1F; }
        else if ((c & 0xF0) == 0xE0) { len = 3; cp = c & 0x0F; }
        else if ((c & 0xF8) == 0xF0) { len = 4; cp = c & 0x07; }
        else return false;
        if (i + len > n) return false;
        for (size_t k = 1; k < len; k++) {
            if ((s[i + k] & 0xC0) != 0x80) return false;
            cp = (cp << 6) | (s[i + k] & 0x3F);
        }
        if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
            cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) {
            return false;
        }
        i += len;
    }
    return true;
}

std::string latin1_to_utf8(const char * s, size_t n) {
    std::string out;
    out.reserve(n);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char) s[i];
        if (c < 0x80) {
            out += (char) c;
        } else {
            out += (char) (0xC0 | (c >> 6));
            out += (char) (0x80 | (c & 0x3F));
        }
    }
    return out;
}

// Atom text as UTF-8 (OTP 25's enif_get_atom only speaks Latin-1).
bool atom_text(ErlNifEnv * env, ERL_NIF_TERM t, std::string & out) {
    unsigned len = 0;
    if (!enif_get_atom_length(env, t, &len, ERL_NIF_LATIN1)) return false;
    std::string buf(len + 1, '\0');
    if (!enif_get_atom(env, t, buf.data(), len + 1, ERL_NIF_LATIN1)) return false;
    out = latin1_to_utf8(buf.data(), len);
    return true;
}

const char * kind_of(ErlNifEnv * env, ERL_NIF_TERM t) {
    switch (enif_term_type(env, t)) {
        case ERL_NIF_TERM_TYPE_TUPLE:     return "a tuple";
        case ERL_NIF_TERM_TYPE_PID:       return "a pid";
        case ERL_NIF_TERM_TYPE_PORT:      return "a port";
        case ERL_NIF_TERM_TYPE_REFERENCE: return "a reference";
        case ERL_NIF_TERM_TYPE_FUN:       return "a fun";
        case ERL_NIF_TERM_TYPE_BITSTRING: return "a bitstring";
        default:                          return "this term";
    }
}

class Writer {
  public:
    Writer(ErlNifEnv * env, const char * what) : env_(env), what_(what) {}

    std::string take(ERL_NIF_TERM t) {
        value(t, 0);
        return std::move(out_);
    }

  private:
    ErlNifEnv * env_;
    const char * what_;
    std::string out_;
    std::vector<std::string> path_;   // for messages only

    [[noreturn]] void fail_at(const std::string & msg) {
        std::string where;
        for (auto & p : path_) where += p;
        bad(std::string(what_) + (where.empty() ? "" : " at " + where) + ": " + msg);
    }

    void grew() {
        if (out_.size() > MAX_JSON_BYTES) fail_at("larger than 16 MiB as JSON");
    }

    void string(const unsigned char * s, size_t n) {
        if (n > MAX_JSON_BYTES) fail_at("a string larger than 16 MiB");
        if (!valid_utf8(s, n)) fail_at("a binary that is not valid UTF-8");
        out_ += '"';
        for (size_t i = 0; i < n; i++) {
            unsigned char c = s[i];
            switch (c) {
                case '"':  out_ += "\\\""; break;
                case '\\': out_ += "\\\\"; break;
                case '\n': out_ += "\\n"; break;
                case '\r': out_ += "\\r"; break;
                case '\t': out_ += "\\t"; break;
                default:
                    if (c < 0x20) {
                        char buf[8];
                        std::snprintf(buf, sizeof buf, "\\u%04x", c);
                        out_ += buf;
                    } else {
                        out_ += (char) c;
                    }
            }
        }
        out_ += '"';
        grew();
    }

    void number(ERL_NIF_TERM t) {
        ErlNifSInt64 i;
        ErlNifUInt64 u;
        double d;
        char buf[40];
        if (enif_get_int64(env_, t, &i)) {
            std::snprintf(buf, sizeof buf, "%lld", (long long) i);
        } else if (enif_get_uint64(env_, t, &u)) {
            std::snprintf(buf, sizeof buf, "%llu", (unsigned long long) u);
        } else if (enif_get_double(env_, t, &d)) {
            // shortest text that reads back as the same double; keep it a float in JSON
            std::snprintf(buf, sizeof buf, "%.15g", d);
            if (std::strtod(buf, nullptr) != d) std::snprintf(buf, sizeof buf, "%.17g", d);
            if (!std::strpbrk(buf, ".eEn")) std::strcat(buf, ".0");
        } else {
            fail_at("an integer that does not fit in 64 bits");
        }
        out_ += buf;
    }

    // Map keys: atoms or binaries; duplicates (a => 1 and <<"a">> => 2) are refused.
    std::string key_of(ERL_NIF_TERM k) {
        std::string s;
        if (enif_is_atom(env_, k)) {
            if (!atom_text(env_, k, s)) fail_at("a map key atom that is not Latin-1");
            return s;
        }
        ErlNifBinary b;
        if (enif_is_binary(env_, k) && enif_inspect_binary(env_, k, &b)) {
            if (!valid_utf8(b.data, b.size)) fail_at("a map key that is not valid UTF-8");
            return std::string((const char *) b.data, b.size);
        }
        fail_at(std::string("a map key must be an atom or a binary, not ") +
                (enif_is_number(env_, k) ? "a number" : enif_is_list(env_, k) ? "a list" : kind_of(env_, k)));
    }

    void map(ERL_NIF_TERM t, int depth) {
        struct Iter {
            ErlNifEnv * env;
            ErlNifMapIterator it;
            ~Iter() { enif_map_iterator_destroy(env, &it); }
        } iter{env_, {}};
        if (!enif_map_iterator_create(env_, t, &iter.it, ERL_NIF_MAP_ITERATOR_FIRST)) fail_at("bad map");
        std::set<std::string> seen;
        out_ += '{';
        bool first = true;
        ERL_NIF_TERM k, v;
        while (enif_map_iterator_get_pair(env_, &iter.it, &k, &v)) {
            std::string key = key_of(k);
            if (!seen.insert(key).second) fail_at("duplicate key '" + key + "' (an atom and a binary?)");
            if (!first) out_ += ',';
            first = false;
            string((const unsigned char *) key.data(), key.size());
            out_ += ':';
            path_.push_back("." + key);
            value(v, depth + 1);
            path_.pop_back();
            enif_map_iterator_next(env_, &iter.it);
        }
        out_ += '}';
    }

    void list(ERL_NIF_TERM t, int depth) {
        out_ += '[';
        ERL_NIF_TERM head, tail = t;
        size_t i = 0;
        while (enif_get_list_cell(env_, tail, &head, &tail)) {
            if (i) out_ += ',';
            path_.push_back("[" + std::to_string(i) + "]");
            value(head, depth + 1);
            path_.pop_back();
            i++;
        }
        if (!enif_is_empty_list(env_, tail)) fail_at("an improper list");
        out_ += ']';
    }

    void value(ERL_NIF_TERM t, int depth) {
        if (depth > MAX_JSON_DEPTH) fail_at("nested deeper than 64 levels");
        if (enif_is_map(env_, t)) {
            map(t, depth);
        } else if (enif_is_list(env_, t)) {   // lists are arrays; text must be a binary
            list(t, depth);
        } else if (enif_is_binary(env_, t)) {
            ErlNifBinary b;
            if (!enif_inspect_binary(env_, t, &b)) fail_at("bad binary");
            string(b.data, b.size);
        } else if (enif_is_number(env_, t)) {
            number(t);
        } else if (enif_is_atom(env_, t)) {
            if (enif_is_identical(t, A.true_)) out_ += "true";
            else if (enif_is_identical(t, A.false_)) out_ += "false";
            else if (enif_is_identical(t, A.null) || enif_is_identical(t, A.nil)) out_ += "null";
            else {
                std::string s;
                if (!atom_text(env_, t, s)) fail_at("an atom that is not Latin-1");
                string((const unsigned char *) s.data(), s.size());
            }
        } else {
            fail_at(std::string(kind_of(env_, t)) + " cannot be converted to JSON");
        }
    }
};

void decode(ErlNifEnv * env, const nlohmann::json & j, const Format & f, ERL_NIF_TERM & out) {
    using V = nlohmann::json::value_t;
    switch (j.type()) {
        case V::null:            out = f.null_atom ? f.null_atom : A.null; return;
        case V::boolean:         out = j.get<bool>() ? A.true_ : A.false_; return;
        case V::number_integer:  out = enif_make_int64(env, j.get<int64_t>()); return;
        case V::number_unsigned: out = enif_make_uint64(env, j.get<uint64_t>()); return;
        case V::number_float: {
            double d = j.get<double>();
            out = std::isfinite(d) ? enif_make_double(env, d) : (f.null_atom ? f.null_atom : A.null);
            return;
        }
        case V::string: {
            const auto & s = j.get_ref<const std::string &>();
            out = make_binary(env, s);
            return;
        }
        case V::array: {
            std::vector<ERL_NIF_TERM> items(j.size());
            size_t i = 0;
            for (const auto & e : j) decode(env, e, f, items[i++]);
            out = enif_make_list_from_array(env, items.data(), (unsigned) items.size());
            return;
        }
        case V::object: {
            std::vector<ERL_NIF_TERM> keys, vals;
            keys.reserve(j.size());
            vals.reserve(j.size());
            for (auto it = j.begin(); it != j.end(); ++it) {
                keys.push_back(make_binary(env, it.key()));
                ERL_NIF_TERM v;
                decode(env, it.value(), f, v);
                vals.push_back(v);
            }
            if (!enif_make_map_from_arrays(env, keys.data(), vals.data(), keys.size(), &out)) {
                lls::fail(LLAMA_ERROR_UNKNOWN, "duplicate keys in result JSON");
            }
            return;
        }
        default: out = f.null_atom ? f.null_atom : A.null; return;   // binary/discarded: not produced by the core
    }
}

}  // namespace

std::string arg_to_json(ErlNifEnv * env, ERL_NIF_TERM term, const char * what) {
    if (enif_is_identical(term, A.null) || enif_is_identical(term, A.nil) || enif_is_identical(term, A.undefined)) {
        return std::string();
    }
    if (enif_is_map(env, term)) {
        return Writer(env, what).take(term);
    }
    ErlNifBinary b;
    if (enif_is_binary(env, term) && enif_inspect_binary(env, term, &b)) {
        if (b.size > MAX_JSON_BYTES) bad(std::string(what) + " is larger than 16 MiB");
        if (std::memchr(b.data, '\0', b.size)) bad(std::string(what) + " contains a NUL byte");
        if (!valid_utf8(b.data, b.size)) bad(std::string(what) + " is not valid UTF-8");
        if (lls::json_nesting_depth((const char *) b.data, b.size) > MAX_JSON_DEPTH) {
            bad(std::string(what) + " is nested deeper than 64 levels");
        }
        return std::string((const char *) b.data, b.size);
    }
    bad(std::string(what) + " must be a map, a JSON binary or string, or null");
}

std::string arg_to_string(ErlNifEnv * env, ERL_NIF_TERM term, const char * what, size_t max_bytes) {
    std::string s;
    ErlNifBinary b;
    if (enif_is_atom(env, term)) {
        if (!atom_text(env, term, s)) bad(std::string(what) + " is an atom that is not Latin-1");
    } else if (enif_is_binary(env, term) && enif_inspect_binary(env, term, &b)) {
        if (b.size > max_bytes) bad(std::string(what) + " is too long");
        s.assign((const char *) b.data, b.size);
    } else {
        bad(std::string(what) + " must be an atom, a binary or a string");
    }
    if (s.empty()) bad(std::string(what) + " is empty");
    if (s.size() > max_bytes) bad(std::string(what) + " is too long");
    if (s.find('\0') != std::string::npos) bad(std::string(what) + " contains a NUL byte");
    if (!valid_utf8((const unsigned char *) s.data(), s.size())) bad(std::string(what) + " is not valid UTF-8");
    return s;
}

long long arg_to_int(ErlNifEnv * env, ERL_NIF_TERM term, const char * what, long long lo, long long hi) {
    ErlNifSInt64 v;
    if (!enif_get_int64(env, term, &v) || v < lo || v > hi) {
        bad(std::string(what) + " must be an integer in " + std::to_string(lo) + ".." + std::to_string(hi));
    }
    return (long long) v;
}

Format arg_to_format(ErlNifEnv * env, ERL_NIF_TERM format, ERL_NIF_TERM null_atom) {
    Format f;
    if (enif_is_identical(format, A.json)) f.raw = true;
    else if (!enif_is_identical(format, A.map)) bad("format must be map or json");
    if (!enif_is_atom(env, null_atom)) bad("the null option must be an atom (null or nil)");
    f.null_atom = null_atom;
    return f;
}

ERL_NIF_TERM json_to_term(ErlNifEnv * env, const std::string & text, const Format & f) {
    if (f.raw) return make_binary(env, text);
    nlohmann::json j = nlohmann::json::parse(text, nullptr, false);
    if (j.is_discarded()) lls::fail(LLAMA_ERROR_UNKNOWN, "the core produced invalid JSON");
    ERL_NIF_TERM out;
    decode(env, j, f, out);
    return out;
}

std::string error_message_of(const std::string & result_json) {
    nlohmann::json j = nlohmann::json::parse(result_json, nullptr, false);
    if (j.is_object() && j.contains("error")) {
        const auto & e = j["error"];
        if (e.is_object() && e.contains("message") && e["message"].is_string()) return e["message"].get<std::string>();
        if (e.is_string()) return e.get<std::string>();
    }
    return result_json;
}

}  // namespace lnif
