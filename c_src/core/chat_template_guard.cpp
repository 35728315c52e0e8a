// Chat template limits and the macro call-depth counter (see chat_template_guard.h). The scan
// follows llama.cpp's Jinja lexer: {{ }}, {% %} and {# #} tags, quoted strings inside tags,
// and '}}' ending an expression only outside braces.
#include "chat_template_guard.h"

#include <algorithm>
#include <cctype>
#include <cstring>
#include <vector>

namespace lls {

namespace {

// A chain of operators is a left-deep tree, evaluated recursively (an operator character or
// keyword counts one; real templates have a few dozen at most).
constexpr int MAX_OPERATORS_PER_TAG = 150;

struct Tag {
    size_t begin = 0, end = 0;        // [begin, end) covers "{%" .. "%}"
    bool trims_before = false;        // "{%-"
    bool trims_after = false;         // "-%}"
    std::string word;                 // first identifier of a statement
};

struct Scan {
    std::vector<Tag> statements;
    int deepest_brackets = 0;
    int most_operators = 0;
};

bool is_ident(char c) { return std::isalnum((unsigned char) c) || c == '_'; }

// One {{ }} or {% %} tag starting at `pos`; returns the index after it.
size_t scan_tag(const std::string & s, size_t pos, bool statement, Scan & out, Tag & tag) {
    tag.begin = pos;
    size_t i = pos + 2;
    if (i < s.size() && (s[i] == '-' || s[i] == '+')) { tag.trims_before = s[i] == '-'; i++; }
    int depth = 0, curly = 0, operators = 0;
    bool first_word = statement;
    while (i < s.size()) {
        const char c = s[i];
        if (c == '\'' || c == '"') {
            for (i++; i < s.size() && s[i] != c; i++) {
                if (s[i] == '\\') i++;
            }
            i++;
            continue;
        }
        if (statement && c == '%' && i + 1 < s.size() && s[i + 1] == '}') {
            tag.trims_after = s[i - 1] == '-';
            i += 2;
            break;
        }
        if (!statement && c == '}' && curly == 0 && i + 1 < s.size() && s[i + 1] == '}') {
            i += 2;
            break;
        }
        if (c == '(' || c == '[' || c == '{') {
            if (c == '{') curly++;
            out.deepest_brackets = std::max(out.deepest_brackets, ++depth);
        } else if (c == ')' || c == ']' || c == '}') {
            if (c == '}') curly--;
            depth--;
        } else if (is_ident(c)) {
            size_t j = i;
            while (j < s.size() && is_ident(s[j])) j++;
            const std::string w = s.substr(i, j - i);
            if (first_word) { tag.word = w; first_word = false; }
            else if (w == "and" || w == "or" || w == "not" || w == "if" || w == "in" || w == "is") operators++;
            i = j;
            continue;
        } else if (std::strchr("+-*/%~|.<>=!", c)) {
            operators++;
        }
        i++;
    }
    tag.end = std::min(i, s.size());
    out.most_operators = std::max(out.most_operators, operators);
    return i;
}

Scan scan(const std::string & s) {
    Scan out;
    size_t i = 0;
    while (true) {
        i = s.find('{', i);
        if (i == std::string::npos || i + 1 >= s.size()) break;
        const char n = s[i + 1];
        if (n == '#') {
            const size_t e = s.find("#}", i + 2);
            if (e == std::string::npos) break;
            i = e + 2;
        } else if (n == '{' || n == '%') {
            Tag tag;
            i = scan_tag(s, i, n == '%', out, tag);
            if (n == '%') out.statements.push_back(tag);
        } else {
            i++;
        }
    }
    return out;
}

bool opens_block(const Tag & t, const std::string & s) {
    if (t.word == "if" || t.word == "for" || t.word == "macro" || t.word == "call" || t.word == "filter") return true;
    // {% set x %} ... {% endset %} is a block; {% set x = ... %} is not
    return t.word == "set" && s.substr(t.begin, t.end - t.begin).find('=') == std::string::npos;
}

void fail_template(const std::string & what, const std::string & why) {
    fail(LLAMA_ERROR_INVALID_ARGUMENT, what + " " + why);
}

}  // namespace

std::string guard_chat_template(const std::string & src, const std::string & what) {
    const Scan sc = scan(src);
    if (sc.deepest_brackets > MAX_TEMPLATE_NESTING) {
        fail_template(what, "nests brackets deeper than " + std::to_string(MAX_TEMPLATE_NESTING) + " levels");
    }
    if (sc.most_operators > MAX_OPERATORS_PER_TAG) {
        fail_template(what, "has a tag with more than " + std::to_string(MAX_OPERATORS_PER_TAG) + " operators");
    }
    // Block nesting; each elif is one more level (llama.cpp parses it as a nested if).
    std::vector<int> open;
    int depth = 0;
    std::vector<std::pair<const Tag *, const Tag *>> macros;   // header, {% endmacro %}
    std::vector<const Tag *> macro_headers;
    for (const Tag & t : sc.statements) {
        if (opens_block(t, src)) {
            open.push_back(1);
            depth++;
            if (t.word == "macro") macro_headers.push_back(&t);
        } else if (t.word == "elif" && !open.empty()) {
            open.back()++;
            depth++;
        } else if (t.word.compare(0, 3, "end") == 0 && !open.empty()) {
            depth -= open.back();
            open.pop_back();
            if (t.word == "endmacro" && !macro_headers.empty()) {
                macros.emplace_back(macro_headers.back(), &t);
                macro_headers.pop_back();
            }
        }
        if (depth > MAX_TEMPLATE_NESTING) {
            fail_template(what, "nests blocks deeper than " + std::to_string(MAX_TEMPLATE_NESTING) + " levels");
        }
    }
    if (macros.empty()) return src;

    // A counter shared by all macros (a namespace is shared by reference in every scope);
    // tags copy the whitespace control of the tags they sit against, so output is unchanged.
    const std::string limit = std::to_string(MAX_TEMPLATE_CALL_DEPTH);
    const std::string enter_guard =
        "{% if __lnif_calls is defined %}{% set __lnif_calls.depth = __lnif_calls.depth + 1 %}"
        "{% if __lnif_calls.depth > " + limit + " %}{{ raise_exception('macro calls nested deeper than " + limit +
        " levels (runaway recursion?)') }}{% endif %}{% endif ";
    const std::string leave_guard =
        " if __lnif_calls is defined %}{% set __lnif_calls.depth = __lnif_calls.depth - 1 %}{% endif %}";
    struct Insert { size_t at; std::string text; };
    std::vector<Insert> inserts;
    const Tag * first = macros.front().first;
    for (const auto & m : macros) {
        if (m.first->begin < first->begin) first = m.first;
        inserts.push_back({m.first->end, enter_guard + (m.first->trims_after ? "-%}" : "%}")});
        inserts.push_back({m.second->begin, std::string(m.second->trims_before ? "{%-" : "{%") + leave_guard});
    }
    inserts.push_back({first->begin, std::string(first->trims_before ? "{%-" : "{%") +
                                     " set __lnif_calls = namespace(depth=0) %}"});
    std::string out = src;
    std::stable_sort(inserts.begin(), inserts.end(), [](const Insert & a, const Insert & b) { return a.at > b.at; });
    for (const auto & ins : inserts) out.insert(ins.at, ins.text);
    return out;
}

}  // namespace lls
