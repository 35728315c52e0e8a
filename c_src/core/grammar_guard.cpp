// The GBNF limits of grammar_guard.h. The walk follows llama.cpp's parser
// (src/llama-grammar.cpp, parse_sequence and handle_repetitions): the item a repetition
// applies to is the last literal, class, token, rule name or group, and S{m,n} becomes m
// copies of S plus n - m optional rules of S (one when there is no maximum; a maximum above
// the parser's threshold of 2000 counts as none).
#include "grammar_guard.h"

#include <algorithm>
#include <vector>

namespace lls {

namespace {

constexpr unsigned long long REPETITION_THRESHOLD = 2000;   // llama-grammar.cpp's
constexpr unsigned long long SATURATED = 1ull << 62;

unsigned long long add(unsigned long long a, unsigned long long b) { return std::min(SATURATED, a + std::min(b, SATURATED)); }
unsigned long long mul(unsigned long long a, unsigned long long b) {
    if (a == 0 || b == 0) return 0;
    return a > SATURATED / b ? SATURATED : a * b;
}

bool is_word_char(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_'; }
bool is_digit(char c) { return c >= '0' && c <= '9'; }

struct Walk {
    const std::string & s;
    size_t i = 0;
    GrammarCost out;
    // per open group: the size (in elements) of the last item, which a repetition copies
    std::vector<unsigned long long> last{0};

    explicit Walk(const std::string & s) : s(s) {}

    // characters up to `end` (a closing quote or bracket), escapes skipped; returns the count
    // of code points, an upper bound on the elements the parser makes of them
    unsigned long long span(char end) {
        unsigned long long n = 0;
        while (i < s.size() && s[i] != end) {
            if (s[i] == '\\') i++;
            else if (((unsigned char) s[i] & 0xC0) != 0x80) n++;
            i++;
        }
        i++;   // the closing character
        return std::max(1ull, n);
    }

    unsigned long long number() {
        unsigned long long v = 0;
        while (i < s.size() && is_digit(s[i])) v = add(mul(v, 10), (unsigned long long) (s[i++] - '0'));
        return v;
    }

    void space() { while (i < s.size() && (s[i] == ' ' || s[i] == '\t')) i++; }

    void item(unsigned long long size) {
        last.back() = size;
        out.elements = add(out.elements, size);
    }

    void repeat(unsigned long long min, unsigned long long max, bool has_max, size_t at) {
        if (has_max && max < min && out.inverted.empty()) {
            out.inverted = s.substr(at, i - at);
            out.inverted_at = at;
        }
        if (min > REPETITION_THRESHOLD) return;   // the parser refuses it
        if (has_max && max > REPETITION_THRESHOLD) has_max = false;
        const unsigned long long item = last.back();
        const unsigned long long n_opt = !has_max ? 1 : max >= min ? max - min : SATURATED;
        const unsigned long long copies = min > 0 ? mul(min - 1, item) : 0;
        out.elements = add(out.elements, add(copies, mul(n_opt, item + 3)));
        last.back() = add(mul(min, item), n_opt > 0 ? 1 : 0);   // a following repetition copies all of it
    }

    // {m}, {m,}, {m,n}; anything else is the parser's syntax error
    void braces() {
        const size_t at = i++;
        space();
        if (i >= s.size() || !is_digit(s[i])) return;
        const unsigned long long min = number();
        space();
        unsigned long long max = min;
        bool has_max = true;
        if (i < s.size() && s[i] == ',') {
            i++;
            space();
            has_max = i < s.size() && is_digit(s[i]);
            if (has_max) max = number();
            space();
        }
        if (i >= s.size() || s[i] != '}') return;
        i++;
        repeat(min, max, has_max, at);
    }

    void run() {
        while (i < s.size()) {
            const char c = s[i];
            if (c == '#') {
                while (i < s.size() && s[i] != '\n' && s[i] != '\r') i++;
            } else if (c == '"') {
                i++;
                item(span('"'));
            } else if (c == '[') {
                i++;
                item(span(']'));
            } else if (c == '<' || (c == '!' && i + 1 < s.size() && s[i + 1] == '<')) {
                i = s.find('>', i);
                i = i == std::string::npos ? s.size() : i + 1;
                item(1);
            } else if (is_word_char(c)) {
                while (i < s.size() && is_word_char(s[i])) i++;
                item(1);
            } else if (c == '.') {
                i++;
                item(1);
            } else if (c == '(') {
                i++;
                last.push_back(0);
                out.deepest = std::max(out.deepest, (int) last.size() - 1);
            } else if (c == ')') {
                i++;
                if (last.size() > 1) last.pop_back();
                item(1);   // the reference to the group's rule
            } else if (c == '*' || c == '+' || c == '?') {
                const size_t at = i++;
                repeat(c == '+' ? 1 : 0, 1, c == '?', at);
            } else if (c == '{') {
                braces();
            } else {
                // '|', "::=", spaces; a new line outside parentheses ends a rule
                if (c == '|' || ((c == '\n' || c == '\r') && last.size() == 1) || c == ':') last.back() = 0;
                if (c == '|' || c == '\n') out.elements = add(out.elements, 1);   // ALT / END
                i++;
            }
        }
    }
};

}  // namespace

GrammarCost grammar_cost(const std::string & gbnf) {
    Walk w(gbnf);
    w.run();
    return w.out;
}

void guard_grammar(const std::string & gbnf, const std::string & what) {
    const GrammarCost c = grammar_cost(gbnf);
    if (c.deepest > MAX_GRAMMAR_DEPTH) {
        fail(LLAMA_ERROR_INVALID_ARGUMENT, what + " nests parentheses deeper than " + std::to_string(MAX_GRAMMAR_DEPTH) + " levels");
    }
    if (!c.inverted.empty()) {
        fail(LLAMA_ERROR_INVALID_ARGUMENT, what + " has the repetition " + c.inverted + " (at byte " +
             std::to_string(c.inverted_at) + ") whose maximum is below its minimum");
    }
    if (c.elements > MAX_GRAMMAR_ELEMENTS) {
        fail(LLAMA_ERROR_INVALID_ARGUMENT, what + " expands to more than " + std::to_string(MAX_GRAMMAR_ELEMENTS) +
             " rule elements (its repetitions copy too much); write long repetitions as x* or x+, or repeat a rule "
             "name instead of a long literal");
    }
}

}  // namespace lls
