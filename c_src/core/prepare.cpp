// Turning one of our tasks into a llama.cpp server_task: session defaults, chat history and
// template, tokenization, sampling parameters. create_task prepares on the caller's thread
// when it can; the driver's dispatch_ready (driver.cpp) prepares the rest.
#include "core.h"
#include "grammar_guard.h"
#include "template_budget.h"

#include "server-schema.h"

#include <random>

namespace lls {

// "chatcmpl-" + 32 alphanumerics, as llama.cpp's gen_chatcmplid(), which seeds a fresh
// mt19937 from std::random_device on every call (a syscall per task); seed once per thread.
static std::string completion_id() {
    static const char alphabet[] = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    thread_local std::mt19937_64 gen{std::random_device{}()};
    std::string id = "chatcmpl-";
    for (int i = 0; i < 32; i++) id += alphabet[gen() % (sizeof(alphabet) - 1)];
    return id;
}

static bool is_chat_only_key(const std::string & k) {
    return k == "tools" || k == "chat_template_kwargs" || k == "reasoning_format";
}

json Server::merged_input(const Task & t, const Session * s) const {
    json out = json::object();
    if (s) {
        const bool task_sets_length = t.input.contains("n_predict") || t.input.contains("max_tokens") ||
                                      t.input.contains("max_completion_tokens");
        for (const auto & item : s->defaults.items()) {
            const std::string & k = item.key();
            if (t.kind != TaskKind::chat && is_chat_only_key(k)) continue;
            if (task_sets_length && (k == "n_predict" || k == "max_tokens" || k == "max_completion_tokens")) continue;
            if (!item.value().is_null()) out[k] = item.value();
        }
    }
    for (const auto & item : t.input.items()) {
        if (item.value().is_null()) {
            out.erase(item.key());   // null means "not given", as in llama.cpp's server
        } else {
            out[item.key()] = item.value();
        }
    }
    out.erase("stream");   // we decide how the core streams
    return out;
}

static json chat_messages(const std::string & system_prompt, const json & history, size_t skip,
                          const json & new_messages) {
    json msgs = json::array();
    const bool has_own_system = !new_messages.empty() && new_messages.at(0).is_object() &&
                                new_messages.at(0).value("role", std::string()) == "system";
    if (!system_prompt.empty() && !has_own_system) {
        json sys = json::object();
        sys["role"] = "system";
        sys["content"] = system_prompt;
        msgs.push_back(sys);
    }
    for (size_t i = skip; i < history.size(); i++) msgs.push_back(history.at(i));
    for (const auto & m : new_messages) msgs.push_back(m);
    return msgs;
}

// The earliest history message that starts a turn after dropping at least one message.
static size_t next_turn_start(const json & history, size_t from) {
    size_t i = from + 1;
    while (i < history.size() && history.at(i).value("role", std::string()) != "user") i++;
    return i;
}

// The grammar a task samples under, as llama.cpp's converters made it from a json_schema,
// response_format or tools (a "grammar" of the caller's own was checked on the way in): the
// same limits, before the loop thread parses it.
static task_params with_checked_grammar(task_params p) {
    const common_grammar & g = p.sampling.grammar;
    if (g.type == COMMON_GRAMMAR_TYPE_OUTPUT_FORMAT || g.type == COMMON_GRAMMAR_TYPE_TOOL_CALLS) {
        // a chat's format folds a json_schema and tools into one grammar
        guard_grammar(common_grammar_value(g), "the grammar llama.cpp made of the task's \"json_schema\", \"response_format\" or \"tools\"");
    }
    return p;
}

// llama.cpp would only find these when the slot starts; some of its paths assert on them.
void Server::check_token_ids(const json & input) const {
    const json & prompt = input.at("prompt");
    if (!prompt.is_array()) return;
    const double n_vocab = llama_vocab_n_tokens(core_->vocab);
    for (const auto & e : prompt) {
        if (e.is_number() && (e.get<double>() < 0 || e.get<double>() >= n_vocab)) {
            fail(LLAMA_ERROR_INVALID_ARGUMENT, "\"prompt\" holds token id " + e.dump() +
                 ", outside this model's vocabulary (0.." + std::to_string((long long) n_vocab - 1) + ")");
        }
    }
}

void Server::validate_with_core(TaskKind kind, const json & data) const {
    template_budget::Budget budget;   // a chat renders the template
    try {
        json body = data;
        body.erase("stream");
        if (kind == TaskKind::chat) {
            std::vector<raw_buffer> files;
            json parsed = oaicompat_chat_params_parse(body, core_->meta->chat_params, files);
            if (!files.empty()) {
                fail(LLAMA_ERROR_NOT_SUPPORTED, "this model takes no images or audio");
            }
            with_checked_grammar(server_schema::eval_llama_cmpl_schema(core_->vocab, core_->params, core_->meta->logit_bias_eog, parsed));
        } else if (kind == TaskKind::completion) {
            check_token_ids(body);
            with_checked_grammar(server_schema::eval_llama_cmpl_schema(core_->vocab, core_->params, core_->meta->logit_bias_eog, body));
        }
    } catch (const Error &) {
        throw;
    } catch (const std::exception & e) {
        fail(LLAMA_ERROR_INVALID_ARGUMENT, std::string("invalid ") + task_kind_name(kind) + " input: " + e.what());
    }
}

// Runs on a caller's thread (create_task) or on the driver thread, never under the lock.
PreparedTask Server::prepare(const Task & t, const Snapshot & snap) const {
    PreparedTask out;
    const Core & c = *core_;
    json body;
    server_tokens tokens;
    if (t.kind == TaskKind::chat) {
        const json & new_messages = snap.data.at("messages");
        const int n_predict = snap.data.value("max_tokens", snap.data.value("n_predict", -1));
        // room left for the reply when deciding whether old turns must go
        const int reserve = n_predict > 0 ? std::min(n_predict, c.n_ctx_slot / 2) : std::min(256, c.n_ctx_slot / 4);
        size_t skip = 0;
        while (true) {
            json req = snap.data;
            req["messages"] = chat_messages(snap.system_prompt, snap.history, skip, new_messages);
            std::vector<raw_buffer> files;
            template_budget::Budget budget;   // one render's
            body = oaicompat_chat_params_parse(req, c.meta->chat_params, files);
            if (!files.empty()) fail(LLAMA_ERROR_NOT_SUPPORTED, "this model takes no images or audio");
            tokens = std::move(tokenize_input_prompts(c.vocab, nullptr, body.at("prompt"), true, true, c.init_opt)[0]);
            if ((int) tokens.size() + reserve <= c.n_ctx_slot || skip >= snap.history.size()) {
                break;
            }
            skip = next_turn_start(snap.history, skip);   // oldest turn goes, the system prompt stays
        }
        out.dropped_messages = (int) skip;
        out.new_messages = new_messages;
        out.task.params = with_checked_grammar(server_schema::eval_llama_cmpl_schema(c.vocab, c.params, c.meta->logit_bias_eog, body));
        out.task.params.res_type = TASK_RESPONSE_TYPE_OAI_CHAT;
    } else {
        body = snap.data;
        tokens = std::move(tokenize_input_prompts(c.vocab, nullptr, body.at("prompt"), true, true, c.init_opt)[0]);
        out.task.params = with_checked_grammar(server_schema::eval_llama_cmpl_schema(c.vocab, c.params, c.meta->logit_bias_eog, body));
        out.task.params.res_type = TASK_RESPONSE_TYPE_NONE;
    }
    out.task.type = SERVER_TASK_TYPE_COMPLETION;
    out.task.tokens = std::move(tokens);
    out.task.params.stream = true;   // partials give us progress and the text so far
    out.task.params.oaicompat_cmpl_id = completion_id();
    out.task.params.oaicompat_model = c.meta->model_name;
    out.state = std::make_unique<task_result_state>(out.task.create_state());
    return out;
}

// Under the lock. A completion never reads the history; a chat's session defaults and system
// prompt never change, so the history version says whether a snapshot is still current.
Server::Snapshot Server::snapshot(const Task & t, const Session * s) const {
    Snapshot snap;
    snap.data = merged_input(t, s);
    snap.history = s && s->keep_history && t.kind == TaskKind::chat ? s->history : json::array();
    if (s) snap.system_prompt = s->system_prompt;
    return snap;
}

bool Server::ready_still_valid(const Task & t, const Session * s) const {
    return t.kind != TaskKind::chat || !s || s->history_version == t.ready_version;
}

}  // namespace lls
