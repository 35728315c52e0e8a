// The driver thread: puts ready tasks on free slots (dispatch_ready), collects the core's
// results, turns them into stream chunks and final JSON, and enforces timeout_write /
// timeout_read.
//
// One thread serves every task of a handle: it waits on llama.cpp's result queue for the ids
// of all tasks in flight plus a private "wake" id that callers post to when something
// changed (new task, cancel, close), so no thread is parked per task.
#include "core.h"

#include <cassert>

namespace lls {

namespace {
using Notify = std::vector<std::function<void()>>;

void run(Notify & n) {
    for (auto & f : n) f();
    n.clear();
}
}  // namespace

void Server::wake() {
    if (!core_ || wake_id_ < 0) return;
    auto r = std::make_unique<WakeResult>();
    r->id = wake_id_;
    core_->results().send(std::move(r));
}

int Server::pick_slot(const Session * s) const {
    return slots_.pick(s ? s->last_slot : -1, [&](int slot) {
        for (const Session & other : sessions_) {
            if (&other != s && other.last_slot == slot) return true;
        }
        return false;
    });
}

void Server::release_slot(const TaskPtr & t) {
    slots_.release(t->slot, t->id);
    dispatch_needed_ = true;
}

// slot_prompt_similarity: a task with no slot of its own goes to the free slot whose cached
// tokens share the longest prefix with its prompt, if that share exceeds the threshold (as
// llama.cpp's get_available_slot does for unpinned tasks).
void Server::move_to_similar_slot(const TaskPtr & t, server_task & task) {
    const int best = slots_.most_similar(t->slot, task.tokens.get_text_tokens(), cfg_.slot_prompt_similarity);
    if (best == t->slot) return;
    slots_.release(t->slot, t->id);
    slots_.assign(best, t->id);
    t->slot = best;
    task.id_slot = best;
    if (Session * s = sessions_.find(t->session_id)) s->last_slot = best;
}

// Stop listening for the task's core results (and cancel them on the core if still running).
void Server::detach_core(const TaskPtr & t, bool cancel_on_core) {
    std::vector<server_task> cancels;
    for (int id : t->core_ids) {
        if (!tasks_.unlink(id)) continue;   // that part already finished
        core_->results().remove_waiting_task_id(id);
        if (cancel_on_core) {
            server_task cancel(SERVER_TASK_TYPE_CANCEL);   // the vector post() gives it an id
            cancel.id_target = id;
            cancels.push_back(std::move(cancel));
        }
    }
    t->core_ids.clear();
    if (!cancels.empty()) core_->tasks().post(std::move(cancels), true);
}

void Server::finish(const TaskPtr & t, llama_error_t code, std::string result, bool push_error_chunk,
                    Notify & notify) {
    if (t->state != TaskState::done) tasks_.finished();
    t->state = TaskState::done;
    t->code = code;
    t->finished = Clock::now();
    t->result = std::move(result);
    if (push_error_chunk && t->stream) {
        if (t->listener) {
            notify.push_back([l = t->listener, id = t->id, r = t->result] { l->on_chunk(id, r); });
        } else {
            t->chunks.push_back({t->result, true});
        }
    }
    if (t->listener) {
        notify.push_back([l = t->listener, id = t->id, code, r = t->result] { l->on_done(id, code, r); });
    }
    t->cv.notify_all();
}

void Server::abort_task(const TaskPtr & t, llama_error_t code, const std::string & type,
                        const std::string & msg, Notify & notify) {
    if (t->state == TaskState::done) return;
    detach_core(t, true);
    if (Session * s = sessions_.find(t->session_id)) {
        if (s->running == t) {
            s->running = nullptr;
        } else {
            for (auto p = s->pending.begin(); p != s->pending.end(); ++p) {
                if (*p == t) {
                    s->pending.erase(p);
                    break;
                }
            }
        }
    }
    release_slot(t);
    json r = error_json(code, type, msg);
    if (task_path(t->kind) == TaskPath::generate) {
        r["content"] = t->acc_content;   // what was generated before the stop
        r["tokens_predicted"] = t->n_decoded;
    }
    finish(t, code, r.dump_safe(), false, notify);
}

void Server::expire(Notify & notify) {
    const auto now = Clock::now();
    const auto write_limit = std::chrono::duration<double>(cfg_.timeout_write);
    const auto read_limit = std::chrono::duration<double>(cfg_.timeout_read);
    std::vector<int> drop;
    for (const TaskPtr & t : tasks_) {
        if (t->state == TaskState::queued && now - t->created > write_limit) {
            abort_task(t, LLAMA_ERROR_TIMEOUT, "timeout",
                       "task waited longer than timeout_write in the queue", notify);
        } else if (t->state == TaskState::done && !t->stream && now - t->finished > read_limit) {
            drop.push_back(t->id);   // nobody fetched it: do not keep it forever
        }
    }
    for (int id : drop) tasks_.take(id);
}

// Debug builds (NDEBUG off), at each dispatch: the slot table, the task registry and the
// sessions agree. One pass over each; nothing in release builds.
void Server::check_consistency() const {
#ifndef NDEBUG
    slots_.check([&](int id, int slot) {
        const TaskPtr t = tasks_.find(id);
        return t && t->slot == slot && t->state == TaskState::running;
    });
    tasks_.check([](const TaskPtr & t) { return t->state == TaskState::running; },
                 [](const TaskPtr & t) { return t->state != TaskState::done; });
    for (const Session & s : sessions_) {
        assert((!s.running || (s.running->state == TaskState::running && s.running->session_id == s.id)) &&
               "a session's running task is not running, or not its own");
        for (const TaskPtr & t : s.pending) {
            assert(t->state == TaskState::queued && t->session_id == s.id && "a session's pending task is not queued, or not its own");
        }
    }
#endif
}

// Runs on the driver thread: reserves slots under the lock, then releases it to prepare
// (template rendering and tokenizing take milliseconds on long conversations; prepare.cpp),
// and takes it again to hand over to the core.
void Server::dispatch_ready(std::unique_lock<std::mutex> & lk) {
    if (!dispatch_needed_) return;
    dispatch_needed_ = false;
    check_consistency();

    // 1. under the lock: reserve a slot for every ready task, copy what preparing needs
    struct Job {
        TaskPtr  t;
        Snapshot snap;
        std::unique_ptr<PreparedTask> ready;   // prepared by create_task and still valid
        bool     affinity = false;   // back on its session's own slot
    };
    std::vector<Job> jobs;
    for (const TaskPtr & t : tasks_) {
        if (t->state != TaskState::queued) continue;
        Session * s = nullptr;
        if (t->session_id > 0) {
            s = sessions_.find(t->session_id);
            if (!s) continue;
            if (s->running || s->pending.empty() || s->pending.front() != t) continue;   // session order
        }
        if (task_path(t->kind) == TaskPath::pooled) {
            // tokenized already; llama.cpp spreads the inputs over its slots and batches them
            t->state = TaskState::running;
            if (s) {
                s->pending.pop_front();
                s->running = t;
            }
            post_pooled(t);
            continue;
        }
        const int slot = pick_slot(s);
        if (slot < 0) break;   // all slots busy: first come, first served when one frees
        slots_.assign(slot, t->id);
        t->slot = slot;
        t->state = TaskState::running;
        Job j{t, {}, nullptr};
        j.affinity = s && s->last_slot == slot;
        if (t->ready && ready_still_valid(*t, s)) {
            j.ready = std::move(t->ready);
        } else {
            t->ready.reset();
            j.snap = snapshot(*t, s);
        }
        if (s) {
            s->pending.pop_front();
            s->running = t;
            s->last_slot = slot;
        }
        jobs.push_back(std::move(j));
    }
    if (jobs.empty()) return;

    // 2. without the lock: render, tokenize, build the core tasks
    lk.unlock();
    std::vector<std::pair<PreparedTask, std::string>> built;
    built.reserve(jobs.size());
    for (auto & j : jobs) {
        std::pair<PreparedTask, std::string> b;
        try {
            b.first = j.ready ? std::move(*j.ready) : prepare(*j.t, j.snap);
        } catch (const std::exception & e) {
            b.second = e.what();
        }
        built.push_back(std::move(b));
    }
    lk.lock();

    // 3. under the lock: post what is still wanted (a cancel may have come meanwhile)
    std::vector<std::function<void()>> notify;
    for (size_t i = 0; i < jobs.size(); i++) {
        const TaskPtr & t = jobs[i].t;
        PreparedTask & p = built[i].first;
        if (t->state != TaskState::running) continue;
        if (!built[i].second.empty()) {
            abort_task(t, LLAMA_ERROR_INFERENCE_FAILED, "invalid_request_error", built[i].second, notify);
            continue;
        }
        Session * s = p.dropped_messages > 0 ? sessions_.find(t->session_id) : nullptr;
        if (s) {
            int n = std::min<int>(p.dropped_messages, (int) s->history.size());
            for (int k = 0; k < n; k++) {
                if (s->history.at((size_t) 0).value("role", std::string()) == "user") s->dropped_turns++;
                s->history.erase((size_t) 0);
            }
            s->history_version++;
        }
        p.task.id_slot = t->slot;
        if (!jobs[i].affinity && cfg_.slot_prompt_similarity > 0) {
            move_to_similar_slot(t, p.task);
        }
        slots_.set_cache(t->slot, p.task.tokens.get_text_tokens());
        t->chat_state = std::move(p.state);
        t->new_messages = std::move(p.new_messages);
        p.task.id = core_->tasks().get_new_id();
        t->core_ids = {p.task.id};
        tasks_.link(p.task.id, t);
        core_->results().add_waiting_task_id(p.task.id);
        core_->tasks().post(std::move(p.task));
    }
    if (!notify.empty()) {
        lk.unlock();
        for (auto & n : notify) n();
        lk.lock();
    }
}

void Server::driver_main() {
    Notify notify;
    auto last_expire = Clock::now();
    while (true) {
        std::unordered_set<int> ids;
        {
            std::unique_lock<std::mutex> lk(mu_);
            if (stopping_) break;
            try {
                if (Clock::now() - last_expire > std::chrono::milliseconds(200)) {
                    expire(notify);
                    last_expire = Clock::now();
                }
                dispatch_ready(lk);
            } catch (const std::exception & e) {   // out of memory: log, keep serving
                log(LLAMA_SERVER_LOG_ERROR, "llama_server: driver: %s\n", e.what());
            }
            ids.reserve(tasks_.n_linked() + 1);
            ids.insert(wake_id_);
            tasks_.for_each_core_id([&](int id) { ids.insert(id); });
        }
        run(notify);
        auto res = core_->results().recv_with_timeout(ids, 1);
        if (res) {
            try {
                on_result(std::move(res));
            } catch (const std::exception & e) {
                log(LLAMA_SERVER_LOG_ERROR, "llama_server: driver: %s\n", e.what());
            }
        }
    }
}

void Server::on_result(std::unique_ptr<server_task_result> res) {
    Notify notify;
    {
        std::lock_guard<std::mutex> lk(mu_);
        TaskPtr t = tasks_.by_core_id(res->id);
        if (!t) {
            return;   // a wake-up, or a late result of a cancelled task
        }
        try {
            handle_result(t, res, notify);
        } catch (const std::exception & e) {
            // never leave a waiter hanging on a task whose result we could not build
            abort_task(t, LLAMA_ERROR_INFERENCE_FAILED, "server_error", std::string("internal error: ") + e.what(), notify);
        }
    }
    run(notify);
}

void Server::handle_result(const TaskPtr & t, std::unique_ptr<server_task_result> & res,
                           std::vector<std::function<void()>> & notify) {
    auto done_on_core = [&] {
        detach_core(t, res->is_error() && t->core_ids.size() > 1);   // an error stops the other parts
        Session * s = sessions_.find(t->session_id);
        if (s && s->running == t) s->running = nullptr;
        release_slot(t);
    };
    if (res->is_error()) {
        auto * e = static_cast<server_task_result_error *>(res.get());
        done_on_core();
        const char * type = e->err_type == ERROR_TYPE_EXCEED_CONTEXT_SIZE ? "exceed_context_size_error"
                          : e->err_type == ERROR_TYPE_INVALID_REQUEST    ? "invalid_request_error"
                                                                         : "server_error";
        finish(t, LLAMA_ERROR_INFERENCE_FAILED, error_json(LLAMA_ERROR_INFERENCE_FAILED, type, e->err_msg).dump_safe(),
               true, notify);
    } else if (auto * p = dynamic_cast<server_task_result_cmpl_partial *>(res.get())) {
        std::vector<std::string> chunks;
        on_partial(t, *p, chunks);
        for (auto & c : chunks) {
            if (t->listener) {
                notify.push_back([l = t->listener, id = t->id, c] { l->on_chunk(id, c); });
            } else {
                t->chunks.push_back({std::move(c), false});
            }
        }
        if (!chunks.empty()) t->cv.notify_all();
    } else if (task_path(t->kind) == TaskPath::pooled) {
        // one result per input; the task is done when all are in
        tasks_.unlink(res->id);
        core_->results().remove_waiting_task_id(res->id);
        if (res->index < t->parts.size() && t->parts[res->index].is_null()) {
            t->parts[res->index] = res->to_json();
            t->n_parts_done++;
        }
        if (t->n_parts_done == t->parts.size()) {
            std::string out = embedding_result(*t);
            t->parts.clear();
            done_on_core();
            finish(t, LLAMA_SUCCESS, std::move(out), false, notify);
        } else {
            feed_pooled(t);
        }
    } else if (auto * f = dynamic_cast<server_task_result_cmpl_final *>(res.get())) {
        std::vector<std::string> chunks;
        on_final(t, *f, chunks);
        for (size_t i = 0; i < chunks.size(); i++) {
            if (t->listener) {
                notify.push_back([l = t->listener, id = t->id, c = chunks[i]] { l->on_chunk(id, c); });
            } else {
                t->chunks.push_back({std::move(chunks[i]), i + 1 == chunks.size()});
            }
        }
        done_on_core();
        finish(t, LLAMA_SUCCESS, std::move(t->result), false, notify);
    }
}

static void push_json_chunks(const json & j, std::vector<std::string> & out) {
    if (j.is_array()) {
        for (const auto & e : j) out.push_back(e.dump_safe());
    } else if (!j.is_null()) {
        out.push_back(j.dump_safe());
    }
}

void Server::on_partial(const TaskPtr & t, server_task_result_cmpl_partial & p, std::vector<std::string> & chunks) {
    if (p.is_begin || p.is_progress) {
        return;
    }
    t->acc_content += p.content;
    t->acc_tokens.insert(t->acc_tokens.end(), p.tokens.begin(), p.tokens.end());
    t->n_decoded = p.n_decoded;
    if (t->stream) {
        p.update(*t->chat_state);
        push_json_chunks(p.to_json(), chunks);
    }
}

// Keep results small by default (examples/ fetch them into 1 KB buffers):
// the prompt echo, settings and token ids only when asked for.
static void compact_completion(json & r, const json & input) {
    const bool verbose = input.value("verbose", false);
    if (!verbose) {
        r.erase("generation_settings");
        r.erase("prompt");
    }
    if (!input.value("return_tokens", false)) {
        r.erase("tokens");
    }
}

void Server::on_final(const TaskPtr & t, server_task_result_cmpl_final & f, std::vector<std::string> & chunks) {
    // The core ran the task in stream mode (for partial text on cancel and per-token
    // progress); rebuild the non-stream shape from the accumulated text.
    if (t->stream) {
        f.update(*t->chat_state);          // state already holds the streamed text
        json last = f.to_json();
        if (t->kind == TaskKind::completion) compact_completion(last, t->input);
        push_json_chunks(last, chunks);
        f.content = t->acc_content;
    } else {
        f.content = t->acc_content;
        f.stream = false;
        f.update(*t->chat_state);
    }
    f.stream = false;
    if (t->input.value("return_tokens", false)) {
        f.tokens.assign(t->acc_tokens.begin(), t->acc_tokens.end());
    }
    json r = f.to_json();
    if (t->kind == TaskKind::completion) {
        compact_completion(r, t->input);
    }

    const int slot = t->slot;
    if (slot >= 0) {
        slots_.task_finished(slot, f.n_tokens_cached, t->acc_tokens);
    }
    total_tasks_++;
    total_prompt_tokens_ += f.n_prompt_tokens;
    total_generated_tokens_ += f.n_decoded;
    total_gen_ms_ += f.stats.t_gen_ms();
    if (Session * s = sessions_.find(t->session_id)) {
        s->n_prompt_tokens += f.n_prompt_tokens;
        s->n_generated_tokens += f.n_decoded;
        s->tokens_in_context = f.n_tokens_cached;
        s->cached_tokens = f.n_prompt_tokens_cache;
        if (t->kind == TaskKind::chat && s->keep_history) {
            for (const auto & m : t->new_messages) s->history.push_back(m);
            s->history.push_back(r.at("choices").at(0).at("message"));
            s->history_version++;
        }
    }
    t->result = r.dump_safe();
}

}  // namespace lls
