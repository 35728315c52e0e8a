// Embedding and rerank tasks: one core task per input, tokenized when the task is created
// (so that an over-long input fails at once with a clear error), batched by llama.cpp's
// slots, and gathered into llama.cpp server's result shapes.
#include "core.h"

#include <algorithm>
#include <unordered_set>

namespace lls {

// The longest input a pooled (non-causal) model can take: it must fit one physical batch
// and one slot's context.
static int pooled_limit(const common_params & p, int n_ctx_slot) {
    return std::min(p.n_ubatch, n_ctx_slot);
}

static std::vector<std::string> string_list(const json & v, const char * key) {
    std::vector<std::string> out;
    if (v.is_string()) {
        out.push_back(v.get<std::string>());
        return out;
    }
    if (!v.is_array()) {
        fail(LLAMA_ERROR_INVALID_ARGUMENT, std::string("\"") + key + "\" must be a string or an array of strings");
    }
    for (size_t i = 0; i < v.size(); i++) {
        if (!v.at(i).is_string()) {
            fail(LLAMA_ERROR_INVALID_ARGUMENT, std::string("\"") + key + "\"[" + std::to_string(i) + "] must be a string");
        }
        out.push_back(v.at(i).get<std::string>());
    }
    return out;
}

std::unique_ptr<PreTokenized> Server::tokenize_pooled_inputs(TaskKind kind, const json & input) const {
    const Core & c = *core_;
    auto pre = std::make_unique<PreTokenized>();
    const int limit = pooled_limit(c.params, c.n_ctx_slot);
    auto check_len = [&](const server_tokens & toks, size_t i, const char * what) {
        if (toks.empty()) {
            fail(LLAMA_ERROR_INVALID_ARGUMENT, std::string(what) + " " + std::to_string(i) + " is empty after tokenization");
        }
        if ((int) toks.size() > limit) {
            fail(LLAMA_ERROR_INVALID_ARGUMENT, std::string(what) + " " + std::to_string(i) + " has " +
                 std::to_string(toks.size()) + " tokens; the limit is " + std::to_string(limit) +
                 " (n_ubatch and the per-slot context): split it or raise n_ubatch/n_ctx");
        }
    };
    if (kind == TaskKind::embedding) {
        const char * key = input.contains("input") ? "input" : "content";
        std::vector<std::string> texts = string_list(input.at(key), key);
        if (texts.empty()) {
            fail(LLAMA_ERROR_INVALID_ARGUMENT, std::string("\"") + key + "\" must not be an empty array");
        }
        if (input.contains("encoding_format")) {
            const std::string f = input.at("encoding_format").get<std::string>();
            if (f != "float" && f != "base64") {
                fail(LLAMA_ERROR_INVALID_ARGUMENT, "\"encoding_format\" must be \"float\" or \"base64\"");
            }
        }
        for (size_t i = 0; i < texts.size(); i++) {
            pre->inputs.push_back(tokenize_input_subprompt(c.vocab, nullptr, json(texts[i]), true, true, c.init_opt));
            check_len(pre->inputs.back(), i, "input");
        }
    } else {
        const std::string query = input.at("query").get<std::string>();
        const char * key = input.contains("documents") ? "documents" : "texts";
        pre->documents = string_list(input.at(key), key);
        if (!input.at(key).is_array() || pre->documents.empty()) {
            fail(LLAMA_ERROR_INVALID_ARGUMENT, std::string("\"") + key + "\" must be a non-empty array of strings");
        }
        for (size_t i = 0; i < pre->documents.size(); i++) {
            pre->inputs.push_back(format_prompt_rerank(c.model, c.vocab, nullptr, query, pre->documents[i], c.init_opt));
            check_len(pre->inputs.back(), i, "document");
        }
    }
    return pre;
}

// Inputs go to the core a window at a time, topped up as results come back (feed_pooled):
// llama.cpp scans its whole queue for every cancel, so 20,000 queued inputs made a cancel
// take 23-32 s; with a window it touches at most that many, and the slots stay just as busy.
size_t Server::pooled_window() const { return std::max<size_t>(16, 4 * (size_t) cfg_.n_parallel); }

void Server::post_pooled(const TaskPtr & t) {
    t->parts.assign(t->pre->inputs.size(), json());
    t->n_parts_done = 0;
    t->next_part = 0;
    feed_pooled(t);
}

void Server::feed_pooled(const TaskPtr & t) {
    const size_t in_flight = t->next_part - t->n_parts_done;
    if (in_flight >= pooled_window() || t->next_part == t->pre->inputs.size()) return;
    const size_t n = std::min(t->pre->inputs.size() - t->next_part, pooled_window() - in_flight);
    std::vector<server_task> tasks;
    tasks.reserve(n);
    std::unordered_set<int> ids;
    const bool oai = t->input.contains("input") || t->input.value("oaicompat", false);
    const int normalize = t->input.value("embd_normalize", core_->params.embd_normalize);
    for (size_t k = 0; k < n; k++) {
        const size_t i = t->next_part++;
        server_task task(t->kind == TaskKind::embedding ? SERVER_TASK_TYPE_EMBEDDING : SERVER_TASK_TYPE_RERANK);
        task.id = core_->tasks().get_new_id();
        task.index = i;
        task.tokens = std::move(t->pre->inputs[i]);
        task.params.res_type = oai && t->kind == TaskKind::embedding ? TASK_RESPONSE_TYPE_OAI_EMBD : TASK_RESPONSE_TYPE_NONE;
        task.params.embd_normalize = normalize;
        t->core_ids.push_back(task.id);
        tasks_.link(task.id, t);
        ids.insert(task.id);
        tasks.push_back(std::move(task));
    }
    core_->results().add_waiting_task_ids(ids);
    core_->tasks().post(std::move(tasks));
}

std::string Server::embedding_result(const Task & t) const {
    json parts = json::array();
    for (const auto & p : t.parts) parts.push_back(p);
    const std::string & model = core_->meta->model_name;
    if (t.kind == TaskKind::embedding) {
        const bool oai = t.input.contains("input") || t.input.value("oaicompat", false);
        if (!oai) return parts.dump_safe();   // llama.cpp's /embedding: [{index, embedding}]
        const bool b64 = t.input.value("encoding_format", std::string("float")) == "base64";
        return format_embeddings_response_oaicompat(t.input, model, parts, b64).dump_safe();
    }
    // rerank: llama.cpp's /rerank shape, sorted by score (top_n); "sort": false keeps document order
    std::vector<std::string> docs = t.pre->documents;
    const int top_n = t.input.value("top_n", (int) docs.size());
    if (t.input.value("sort", true)) {
        json r = format_response_rerank(t.input, model, parts, false, docs, top_n);
        if (t.input.value("return_text", false)) {
            for (auto & e : r.at("results")) e["text"] = t.pre->documents[e.at("index").get<int>()];
        }
        return r.dump_safe();
    }
    json results = json::array();
    int n_tokens = 0;
    for (const auto & p : parts) {
        json e = json::object();
        e["index"] = p.at("index");
        e["relevance_score"] = p.at("score");
        if (t.input.value("return_text", false)) e["text"] = t.pre->documents[p.at("index").get<int>()];
        n_tokens += p.value("tokens_evaluated", 0);
        results.push_back(e);
    }
    json usage = json::object();
    usage["prompt_tokens"] = n_tokens;
    usage["total_tokens"] = n_tokens;
    json r = json::object();
    r["model"] = t.input.value("model", model);
    r["object"] = "list";
    r["usage"] = usage;
    r["results"] = results;
    return r.dump_safe();
}

}  // namespace lls
