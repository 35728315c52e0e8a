// The "detokenize" task: token ids to text, as llama-server's /detokenize. Input: tokens (an
// array of ids of this model's vocabulary). Result: {"content": "..."}.
#include "input.h"
#include "spec.h"

#include "server-common.h"

namespace lls {

void check_detokenize(const json & input) {
    static const SpecTable keys = {{"tokens", {T::num_arr, 0, 2147483647.0}}};
    check_against(input, "detokenize input", {&keys});
    if (!input.contains("tokens")) fail(LLAMA_ERROR_INVALID_ARGUMENT, "detokenize input needs \"tokens\"");
    for (const auto & t : input.at("tokens")) {
        if (!t.is_number_integer()) fail(LLAMA_ERROR_INVALID_ARGUMENT, "'tokens' in detokenize input must be token ids (integers)");
    }
}

std::string run_detokenize(const llama_vocab * vocab, const json & input) {
    const llama_tokens tokens = input.at("tokens").get<llama_tokens>();
    const int n_vocab = llama_vocab_n_tokens(vocab);
    for (size_t i = 0; i < tokens.size(); i++) {
        if (tokens[i] >= n_vocab) {
            fail(LLAMA_ERROR_INVALID_ARGUMENT, "'tokens' in detokenize input: " + std::to_string(tokens[i]) +
                 " at index " + std::to_string(i) + " is not a token of this model (vocabulary of " +
                 std::to_string(n_vocab) + ")");
        }
    }
    return json{{"content", tokens_to_str(vocab, tokens)}}.dump_safe();
}

}  // namespace lls
