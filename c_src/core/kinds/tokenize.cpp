// The "tokenize" task: text to token ids with the model's tokenizer, as llama-server's
// /tokenize. Input: content (a string, or an array of strings and token ids), add_special
// (default false: no BOS), parse_special (default true: "<|im_start|>" is one token),
// with_pieces (default false: then each token is {"id", "piece"}, the piece a string, or its
// bytes when they are not valid UTF-8 alone). Result: {"tokens": [...]}.
#include "input.h"
#include "spec.h"

#include "server-common.h"

namespace lls {

void check_tokenize(const json & input) {
    static const SpecTable keys = {
        {"content", {T::any}}, {"add_special", {T::boolean}}, {"parse_special", {T::boolean}},
        {"with_pieces", {T::boolean}},
    };
    check_against(input, "tokenize input", {&keys});
    if (!input.contains("content")) fail(LLAMA_ERROR_INVALID_ARGUMENT, "tokenize input needs \"content\"");
    const json & c = input.at("content");
    bool ok = c.is_string() || c.is_array();
    for (const auto & e : c.is_array() ? c : json::array()) ok = ok && (e.is_string() || e.is_number_integer());
    if (!ok) {
        fail(LLAMA_ERROR_INVALID_ARGUMENT, "'content' in tokenize input must be a string or an array of "
             "strings and token ids");
    }
}

std::string run_tokenize(const llama_vocab * vocab, const json & input) {
    const int n_vocab = llama_vocab_n_tokens(vocab);
    for (const auto & e : input.at("content").is_array() ? input.at("content") : json::array()) {
        if (e.is_number_integer() && (e.get<long long>() < 0 || e.get<long long>() >= n_vocab)) {
            fail(LLAMA_ERROR_INVALID_ARGUMENT, "'content' in tokenize input: " + e.dump() +
                 " is not a token of this model (vocabulary of " + std::to_string(n_vocab) + ")");
        }
    }
    const llama_tokens tokens = tokenize_mixed(vocab, input.at("content"), input.value("add_special", false),
                                               input.value("parse_special", true));
    json out = json::array();
    if (input.value("with_pieces", false)) {
        for (llama_token t : tokens) {
            const std::string piece = common_token_to_piece(vocab, t);
            json p = piece;
            if (!is_valid_utf8(piece)) {
                p = json::array();
                for (unsigned char ch : piece) p.push_back((int) ch);
            }
            out.push_back({{"id", t}, {"piece", p}});
        }
    } else {
        out = tokens;
    }
    return json{{"tokens", std::move(out)}}.dump_safe();
}

}  // namespace lls
