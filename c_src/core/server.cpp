// Server lifecycle, sessions and the task API (caller threads). The driver thread's half
// (dispatch and results) is in driver.cpp, request preparation in prepare.cpp, status JSON in
// status.cpp; the registries are task_registry.h and session_registry.h.
#include "chat_template_guard.h"
#include "core.h"
#include "cpu_select.h"
#include "exit_guard.h"
#include "huge_pages.h"
#include "load_rules.h"
#include "memory_rule.h"
#include "template_budget.h"
#include "malloc_policy.h"

#include "gguf.h"
#include "llama.h"

#include <filesystem>
#include <future>
#include <fstream>
#include <pthread.h>

namespace lls {

// Named threads show up as such in top -H, gdb and perf (Linux: at most 15 characters).
static void name_this_thread(const char * name) {
#ifdef __linux__
    pthread_setname_np(pthread_self(), name);
#else
    (void) name;
#endif
}

Task::Task() = default;
Task::~Task() = default;

Server::CallGuard::CallGuard(Server & s) : s(s) { s.callers_++; }
Server::CallGuard::~CallGuard() {
    if (--s.callers_ == 0 && s.stopping_) {
        std::lock_guard<std::mutex> lk(s.callers_mu_);
        s.callers_cv_.notify_all();
    }
}

Server::Server(const ServerConfig & cfg) : cfg_(cfg), slots_(cfg.n_parallel) {
    // before anything reaches ggml: on a CPU below the baseline this is an error, not a SIGILL
    const std::string & cpu_unsupported = cpu::unsupported_reason();
    if (!cpu_unsupported.empty()) fail(LLAMA_ERROR_NOT_SUPPORTED, cpu_unsupported);
    ensure_log_installed();
    if (cfg_.log_level >= 0) set_log_level(cfg_.log_level);   // process-wide; keeps the embedder's callback
    static std::once_flag backend_once;
    std::call_once(backend_once, [] { llama_backend_init(); });
    apply_malloc_policy(cfg_.cache_ram_mib);
    started_at_ = Clock::now();
    exit_guard::add(this);   // last: a constructor that throws has no destructor
}

Server::~Server() {
    shutdown();
    exit_guard::remove(this);
}

// The chat template llama.cpp will use (ours, else the model's), checked and guarded
// before its Jinja engine parses it at load. Returns it ("" when the model has none).
static std::string guard_template(const GgufMeta & meta, common_params & p) {
    if (!p.chat_template.empty()) {
        p.chat_template = guard_chat_template(p.chat_template, "'chat_template' in model config");
        return p.chat_template;
    }
    const std::string tool_use = meta.str("tokenizer.chat_template.tool_use");
    if (!tool_use.empty()) guard_chat_template(tool_use, "the model's tool_use chat template");
    const std::string own = meta.str("tokenizer.chat_template");
    if (own.empty()) return own;
    const std::string guarded = guard_chat_template(own, "the model's chat template");
    if (guarded != own) {
        p.chat_template = guarded;   // same output, with a macro call-depth counter
        if (!tool_use.empty()) {
            log(LLAMA_SERVER_LOG_WARN, "llama_server: the model's chat template defines macros: using it with a call-depth "
                "counter, for every request (its separate tool_use template is not used)\n");
        }
    }
    return guarded;
}

// llama.cpp's load fails, saying why only in its log, when the chat template cannot be used
// (a syntax error, or a render that raises): find out with the steps its load takes.
static void explain_template_failure(const std::string & tmpl, bool from_config) {
    if (tmpl.empty()) return;
    template_budget::Budget budget;
    try {
        auto tmpls = common_chat_templates_init(nullptr, tmpl);
        common_chat_format_example(tmpls.get(), true, {});
    } catch (const std::exception & e) {
        std::string why = e.what();   // the engine's last "Error: " line, without its source excerpt
        const size_t at = why.rfind("Error: ");
        if (at != std::string::npos) why = why.substr(at + 7);
        fail(LLAMA_ERROR_INVALID_ARGUMENT, std::string(from_config ? "'chat_template' in model config" :
             "the model's chat template") + " cannot be used: " + why);
    }
}

void Server::load_model(const std::string & path, const ModelConfig & mc) {
    std::lock_guard<std::mutex> load_lock(load_mu_);   // one load at a time per handle; stop() waits for it
    if (stopping_) fail(LLAMA_ERROR_CANCELLED, "the server is shutting down");
    if (loaded_ || core_) {
        fail(LLAMA_ERROR_MODEL_LOAD_FAILED, "a model is already loaded on this server handle (one model per handle)");
    }
    {
        std::ifstream f(path, std::ios::binary);
        if (!f) {
            fail(LLAMA_ERROR_MODEL_LOAD_FAILED, "cannot open model file '" + path + "'");
        }
        char magic[4] = {0};
        f.read(magic, 4);
        if (f.gcount() != 4 || std::string(magic, 4) != "GGUF") {
            fail(LLAMA_ERROR_MODEL_LOAD_FAILED, "'" + path + "' is not a GGUF file");
        }
    }
    const GgufMeta meta(path);
    const ModelFacts facts = read_model_facts(meta);
    bool embedding_implied = false;
    const ModelConfig used = effective_model_config(facts, mc, embedding_implied);
    auto core = std::make_unique<Core>();
    to_common_params(cfg_, used, path, core->params);
    apply_context_rules(facts, core->params);
    check_kv_memory(meta, facts, core->params);   // before llama.cpp allocates the KV cache
    const std::string chat_template = guard_template(meta, core->params);
    // The loop thread loads the model, then runs the loop. llama.cpp's warmup decode makes an
    // OpenMP team for whichever thread runs it; a second team left on a caller's thread (or a
    // dirty scheduler) makes libgomp count more threads than cores and throttle the spin-wait
    // of the loop's team, whose workers then sleep between tokens (a quarter of the
    // throughput lost at K = 1 with the default OMP_WAIT_POLICY). One thread also keeps the model's
    // allocations in one malloc arena, and gives the load a full-size stack.
    std::promise<bool> load_done;
    std::future<bool> loaded = load_done.get_future();
    server_context * ctx = &core->ctx;
    common_params * params = &core->params;
    // Huge pages: the model's buffers are all made on the loop thread (core/huge_pages.cpp).
    const void * huge_owner = mc.huge_pages ? (const void *) this : nullptr;
    loop_thread_ = std::thread([ctx, params, huge_owner, load_done = std::move(load_done)]() mutable {
        name_this_thread("llama-loop");
        huge_pages::use_for_this_thread(huge_owner);
        bool ok = false;
        try {
            template_budget::Budget budget;   // the load renders the chat template to learn what it can do
            ok = ctx->load_model(*params);
        } catch (...) {
            load_done.set_exception(std::current_exception());
            return;
        }
        load_done.set_value(ok);
        if (ok) ctx->start_loop();
    });
    bool ok = false;
    try {
        ok = loaded.get();
    } catch (...) {
        loop_thread_.join();
        throw;
    }
    if (!ok) {
        loop_thread_.join();
        explain_template_failure(chat_template, !mc.chat_template.empty());
        fail(LLAMA_ERROR_MODEL_LOAD_FAILED, "llama.cpp could not load '" + path +
             "' (corrupt file, unsupported architecture, or not enough memory)");
    }
    core->meta = std::make_unique<server_context_meta>(core->ctx.get_meta());
    core->model = llama_get_model(core->ctx.get_llama_context());
    core->vocab = llama_model_get_vocab(core->model);
    core->n_ctx_slot = core->meta->slot_n_ctx;
    core->embedding = core->params.embedding;
    core->embedding_implied = embedding_implied;
    core->arch = facts.arch;
    core->rerank = core->params.embedding && core->meta->pooling_type == LLAMA_POOLING_TYPE_RANK;
    core->use_mmap = mc.use_mmap;
    core->huge_pages = mc.huge_pages;
    core->huge_page_backed = huge_pages::backed_bytes(this);
    core->queues = std::make_unique<server_response_reader>(core->ctx.get_response_reader());

    {
        // terminate() before start_loop() runs would be lost: wait until the loop answers.
        server_response_reader rd = core->ctx.get_response_reader();
        server_task probe(SERVER_TASK_TYPE_METRICS);
        probe.id = rd.get_new_id();
        rd.post_task(std::move(probe));
        rd.next([] { return false; });
    }
    wake_id_ = core->tasks().get_new_id();
    core->results().add_waiting_task_id(wake_id_);
    core_ = std::move(core);
    loaded_ = true;
    driver_thread_ = std::thread([this] {
        name_this_thread("llama-driver");
        driver_main();
    });
    exit_guard::arm();   // after the load: see exit_guard.cpp
}

// ---- sessions --------------------------------------------------------------------------------

int Server::create_session(const json & given) {
    if (!loaded_) fail(LLAMA_ERROR_MODEL_NOT_LOADED, "load a model before creating sessions");
    const json cfg = without_nulls(given);   // null = not given
    validate_session_config(cfg);
    check_grammar(cfg, "session config");
    Session s;
    s.config = cfg;
    s.defaults = session_task_defaults(cfg);
    s.system_prompt = cfg.value("system_prompt", std::string());
    s.keep_history = cfg.value("keep_history", true);
    if (!s.defaults.empty()) {
        validate_with_core(TaskKind::completion, [&] {
            json probe = s.defaults;
            probe.erase("tools");
            probe.erase("chat_template_kwargs");
            probe.erase("reasoning_format");
            probe["prompt"] = "probe";
            return probe;
        }());
    }
    std::lock_guard<std::mutex> lk(mu_);
    return sessions_.add(std::move(s));
}

void Server::close_session(int session_id) {
    std::vector<std::function<void()>> notify;
    {
        std::lock_guard<std::mutex> lk(mu_);
        Session * s = sessions_.find(session_id);
        if (!s) {
            fail(LLAMA_ERROR_SESSION_NOT_FOUND, "no session " + std::to_string(session_id));
        }
        std::vector<TaskPtr> victims(s->pending.begin(), s->pending.end());
        if (s->running) victims.push_back(s->running);
        for (auto & t : victims) {
            abort_task(t, LLAMA_ERROR_CANCELLED, "cancelled", "session " + std::to_string(session_id) + " was closed", notify);
        }
        sessions_.erase(session_id);
    }
    for (auto & n : notify) n();
    wake();
}

// ---- tasks -----------------------------------------------------------------------------------

// A task's or session's own "grammar" is parsed now, on the caller's thread (its nesting
// was bounded by validation), so that a bad grammar fails the call and not the task later.
void Server::check_grammar(const json & obj, const char * what) const {
    if (!obj.contains("grammar") || !obj.at("grammar").is_string()) return;
    const std::string g = obj.at("grammar").get<std::string>();
    if (g.empty()) return;
    llama_sampler * smpl = llama_sampler_init_grammar(core_->vocab, g.c_str(), "root");
    if (!smpl) {
        fail(LLAMA_ERROR_INVALID_ARGUMENT, std::string("'grammar' in ") + what +
             " is not a valid GBNF grammar with a 'root' rule (llama.cpp's parser logged why)");
    }
    llama_sampler_free(smpl);
}

void Server::check_supported(TaskKind kind) const {
    const bool embd_task = task_path(kind) == TaskPath::pooled;
    if (embd_task && !core_->embedding) {
        fail(LLAMA_ERROR_NOT_SUPPORTED, std::string("this model was not loaded for embeddings: a ") +
             task_kind_name(kind) + " task needs load_model with {\"embedding\": true" +
             (kind == TaskKind::rerank ? ", \"pooling\": \"rank\"}" : "}"));
    }
    if (kind == TaskKind::rerank && !core_->rerank) {
        fail(LLAMA_ERROR_NOT_SUPPORTED, "this model was not loaded for reranking (load_model with "
             "{\"embedding\": true, \"pooling\": \"rank\"})");
    }
    if (kind == TaskKind::embedding && core_->rerank) {
        fail(LLAMA_ERROR_NOT_SUPPORTED, "this model was loaded for reranking, not for embeddings");
    }
    if (!embd_task && core_->embedding) {
        fail(LLAMA_ERROR_NOT_SUPPORTED, std::string("this model was loaded for embeddings; it cannot run a ") +
             task_kind_name(kind) + " task");
    }
}

int Server::create_task(int session_id, TaskKind kind, const json & given, bool stream,
                        std::shared_ptr<TaskListener> listener) {
    if (!loaded_) fail(LLAMA_ERROR_MODEL_NOT_LOADED, "load a model before creating tasks");
    if (stopping_) fail(LLAMA_ERROR_CANCELLED, "the server is shutting down");
    auto t = std::make_shared<Task>();
    t->input = without_nulls(given);   // null = not given, for every key, from here on
    const json & input = t->input;
    validate_task_input(kind, input);
    if (task_path(kind) == TaskPath::immediate) return run_immediate_task(session_id, kind, std::move(t), stream, std::move(listener));
    check_supported(kind);
    check_grammar(input, "task input");
    t->kind = kind;
    t->stream = stream;
    t->listener = std::move(listener);
    t->created = Clock::now();
    const bool pooled = task_path(kind) == TaskPath::pooled;
    // A chat of a busy session depends on the turns still to come: the driver prepares it.
    bool prepare_now = !pooled;
    Snapshot snap;
    {
        std::lock_guard<std::mutex> lk(mu_);
        const Session * s = nullptr;
        if (session_id > 0) {
            s = sessions_.find(session_id);
            if (!s) {
                fail(LLAMA_ERROR_SESSION_NOT_FOUND, "no session " + std::to_string(session_id));
            }
            if (kind == TaskKind::chat && (s->running || !s->pending.empty())) prepare_now = false;
        }
        if (prepare_now) {
            snap = snapshot(*t, s);
            t->ready_version = s ? s->history_version : 0;
        }
    }
    // llama.cpp's own parsers, now: bad values fail here and not later on the driver thread
    if (pooled) {
        t->pre = tokenize_pooled_inputs(kind, input);
    } else if (kind == TaskKind::completion) {
        check_token_ids(t->input);
    }
    if (prepare_now) {
        // render, tokenize, parse sampling here, on the caller's thread, not the driver's
        try {
            t->ready = std::make_unique<PreparedTask>(prepare(*t, snap));
        } catch (const std::exception &) {
        }
    }
    if (!pooled && !t->ready) {
        // Not prepared, or preparing failed: the task's own input gets llama.cpp's parsers
        // (the null-stripped input the driver will see). If that passes, the failure came
        // from the session's defaults or history, and the driver reports it on the task.
        validate_with_core(kind, t->input);
    }

    int id;
    {
        std::lock_guard<std::mutex> lk(mu_);
        if (stopping_) fail(LLAMA_ERROR_CANCELLED, "the server is shutting down");
        Session * s = nullptr;
        if (session_id > 0) {
            s = sessions_.find(session_id);
            if (!s) {
                fail(LLAMA_ERROR_SESSION_NOT_FOUND, "no session " + std::to_string(session_id));
            }
        }
        if (tasks_.unfinished() >= cfg_.max_queued_tasks) {
            fail(LLAMA_ERROR_SERVER_BUSY, std::to_string(tasks_.unfinished()) + " tasks are queued or running (max_queued_tasks = " +
                 std::to_string(cfg_.max_queued_tasks) + "); try again later");
        }
        t->session_id = s ? s->id : 0;
        t->id = tasks_.add(t, true);
        if (s) {
            s->pending.push_back(t);
            s->n_tasks++;
        }
        dispatch_needed_ = true;
        id = t->id;
    }
    wake();   // after unlocking: the woken driver wants the lock at once
    return id;
}

// An immediate kind (tokenize, detokenize) is computed here, on the caller's thread, and
// registered finished: get_result has it at once, a listener hears of it before we return.
int Server::run_immediate_task(int session_id, TaskKind kind, TaskPtr t, bool stream,
                               std::shared_ptr<TaskListener> listener) {
    if (stream) {
        fail(LLAMA_ERROR_INVALID_ARGUMENT, std::string("a ") + task_kind_name(kind) + " task does not stream");
    }
    std::string result = run_immediate(kind, core_->vocab, t->input);
    t->kind = kind;
    t->listener = std::move(listener);
    t->created = t->finished = Clock::now();
    t->state = TaskState::done;
    t->result = std::move(result);
    int id;
    {
        std::lock_guard<std::mutex> lk(mu_);
        if (stopping_) fail(LLAMA_ERROR_CANCELLED, "the server is shutting down");
        if (session_id > 0 && !sessions_.contains(session_id)) {
            fail(LLAMA_ERROR_SESSION_NOT_FOUND, "no session " + std::to_string(session_id));
        }
        t->session_id = session_id;   // accepted for symmetry; the session is not touched
        t->id = tasks_.add(t, false);   // finished already
        id = t->id;
    }
    if (t->listener) t->listener->on_done(id, LLAMA_SUCCESS, t->result);
    return id;
}

bool Server::next_chunks(int task_id, std::deque<StreamChunk> & out, llama_error_t & code, bool & done) {
    std::unique_lock<std::mutex> lk(mu_);
    TaskPtr t = tasks_.find(task_id);
    if (!t) {
        return false;
    }
    t->cv.wait(lk, [&] { return !t->chunks.empty() || t->state == TaskState::done; });
    out.swap(t->chunks);
    code = t->code;
    done = t->state == TaskState::done;
    return true;
}

void Server::forget_task(int task_id) {
    TaskPtr gone;   // freed after the lock is released (a big task's inputs take milliseconds)
    std::lock_guard<std::mutex> lk(mu_);
    gone = tasks_.take(task_id);
}

void Server::cancel_task(int task_id) {
    std::vector<std::function<void()>> notify;
    TaskPtr gone;   // a discarded task is freed after the lock is released
    {
        std::lock_guard<std::mutex> lk(mu_);
        TaskPtr t = tasks_.find(task_id);
        if (!t) {
            fail(LLAMA_ERROR_TASK_NOT_FOUND, "no task " + std::to_string(task_id));
        }
        if (t->state == TaskState::done) {
            if (!t->stream) {   // finished, unfetched: discard the result
                gone = tasks_.take(task_id);
            }
        } else {
            abort_task(t, LLAMA_ERROR_CANCELLED, "cancelled", "cancelled by cancel_task", notify);
        }
    }
    for (auto & n : notify) n();
    wake();
}

// ---- shutdown --------------------------------------------------------------------------------

void Server::stop() {
    std::call_once(stop_once_, [this] {
        // a load under way finishes first (its threads are then joined below); a later one is refused
        std::lock_guard<std::mutex> load_lock(load_mu_);
        stopping_ = true;
        std::vector<std::function<void()>> notify;
        {
            std::lock_guard<std::mutex> lk(mu_);
            for (const TaskPtr & t : tasks_) {
                if (t->state != TaskState::done) {
                    abort_task(t, LLAMA_ERROR_CANCELLED, "cancelled", "the server was destroyed", notify);
                }
            }
        }
        for (auto & n : notify) n();
        if (driver_thread_.joinable()) {
            wake();
            driver_thread_.join();
        }
        if (loop_thread_.joinable()) {
            core_->ctx.terminate();
            loop_thread_.join();
        }
    });
}

void Server::shutdown() {
    std::call_once(shutdown_once_, [this] {
        stop();
        {
            // every waiter has been woken; let them leave the library before freeing what they use
            std::unique_lock<std::mutex> lk(callers_mu_);
            callers_cv_.wait(lk, [&] { return callers_.load() == 0; });
        }
        {
            std::lock_guard<std::mutex> lk(mu_);
            tasks_.clear();
            sessions_.clear();
        }
        if (core_) {
            if (!exit_guard::begin_free()) {   // the process is exiting: leave llama.cpp's objects alone
                (void) core_.release();
                return;
            }
            core_->queues.reset();   // readers must go before the server_context
            core_.reset();
            exit_guard::end_free();
        }
    });
}

}  // namespace lls
