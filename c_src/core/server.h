// The server core: one llama.cpp server_context, its loop thread, and one driver thread that
// schedules our tasks onto slots and collects their results. Shared by the C API and the NIF.
#pragma once

#include "config.h"
#include "input.h"
#include "lls_common.h"
#include "session_registry.h"
#include "slot_table.h"
#include "task_registry.h"

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

struct server_context;
struct server_task;
struct server_context_meta;
struct server_task_result;
struct server_task_result_cmpl_partial;
struct server_task_result_cmpl_final;
struct server_task_result_error;
struct task_result_state;
struct server_queue;
struct server_response;
struct llama_vocab;

namespace lls {

using Clock = std::chrono::steady_clock;

// Receives a task's events on the driver thread (no lock held). Used by the NIF to
// enif_send; must not block.
struct TaskListener {
    virtual ~TaskListener() = default;
    virtual void on_chunk(int task_id, const std::string & chunk_json) = 0;
    virtual void on_done(int task_id, llama_error_t code, const std::string & result_json) = 0;
    // The id the caller knows the task by, shown by status and session info (the NIF's ids
    // are unique in the VM); 0: the core's own id.
    virtual long long public_id() const { return 0; }
};

enum class TaskState { queued, running, done };

struct StreamChunk {
    std::string json;
    bool        is_final;
};

struct PreparedTask;

struct Task {
    int       id = 0;
    int       session_id = 0;        // 0: stateless
    TaskKind  kind = TaskKind::completion;
    json      input;                 // validated input (session defaults not merged yet)
    bool      stream = false;        // caller wants chunks
    TaskState state = TaskState::queued;
    Clock::time_point created, finished;

    // while on the core: one core task for generation, one per input for embedding/rerank
    std::vector<int> core_ids;
    std::unique_ptr<struct PreTokenized> pre;   // embedding/rerank inputs, tokenized at create
    // Prepared by create_task on the caller's thread when nothing it depends on can change
    // before it starts: valid while its session's history_version is still ready_version.
    std::unique_ptr<PreparedTask> ready;
    unsigned long long ready_version = 0;
    std::vector<json> parts;                    // embedding/rerank results by input index
    size_t n_parts_done = 0;
    size_t next_part = 0;                       // inputs handed to the core so far
    int  slot = -1;
    std::unique_ptr<task_result_state> chat_state;
    json new_messages;               // chat: the turn(s) this task adds to its session
    std::string acc_content;         // generated so far (partials)
    std::vector<int> acc_tokens;
    int n_decoded = 0;

    // outcome
    llama_error_t code = LLAMA_SUCCESS;
    std::string   result;            // JSON

    std::deque<StreamChunk>       chunks;   // for stream_inference's thread
    std::condition_variable       cv;
    std::shared_ptr<TaskListener> listener;

    Task();
    ~Task();
};
using TaskPtr = std::shared_ptr<Task>;

struct Session {
    int         id = 0;
    json        config;
    json        defaults;            // task keys from the session config
    std::string system_prompt;
    bool        keep_history = true;
    json        history = json::array();
    unsigned long long history_version = 0;   // bumped on every change of history
    int         dropped_turns = 0;
    std::deque<TaskPtr> pending;     // queued, in submission order
    TaskPtr     running;
    int         last_slot = -1;
    // statistics
    long long n_tasks = 0, n_prompt_tokens = 0, n_generated_tokens = 0;
    int       tokens_in_context = 0, cached_tokens = 0;
};

class Server {
  public:
    // Listed for the exit handler (exit_guard.h) from construction to the end of destruction.
    explicit Server(const ServerConfig & cfg);
    ~Server();   // shutdown(): cancels everything, wakes every waiter

    void load_model(const std::string & path, const ModelConfig & mc);
    bool loaded() const { return loaded_.load(); }

    int  create_session(const json & cfg);
    void close_session(int session_id);

    // Validates and queues; returns the task id.
    int create_task(int session_id, TaskKind kind, const json & input, bool stream,
                    std::shared_ptr<TaskListener> listener = nullptr);

    // Wait up to timeout_ms (0 = forever) for the task; on completion hand the result to
    // `take` (under the lock), which returns false when the caller's buffer is too small:
    // the task is then kept and BUFFER_TOO_SMALL returned. Otherwise the task is released and
    // its code returned. Throws TIMEOUT and TASK_NOT_FOUND.
    template <typename Take>
    llama_error_t wait_result(int task_id, int timeout_ms, Take take);

    // Blocks until the next stream chunks of a stream task are there; moves them out.
    // Returns false when the task is gone (cancelled/destroyed with no final chunk).
    bool next_chunks(int task_id, std::deque<StreamChunk> & out, llama_error_t & code, bool & done);
    void forget_task(int task_id);

    void cancel_task(int task_id);
    std::string status_json();
    std::string session_info_json(int session_id);

    // Cancels every task (waiters wake with CANCELLED) and joins the driver and llama.cpp's
    // loop thread. Idempotent. Enough before a process exits: nothing computes any more.
    void stop();
    // stop(), then waits for every API call to leave and frees the model. Idempotent.
    void shutdown();

    // Counts API calls inside the library, so that shutdown waits for them to leave.
    struct CallGuard {
        Server & s;
        explicit CallGuard(Server & s);
        ~CallGuard();
    };

  private:
    struct Core;                     // llama.cpp objects (server_context, meta, queues)

    // driver thread
    void driver_main();
    void dispatch_ready(std::unique_lock<std::mutex> & lk);
    void check_consistency() const;   // debug builds: slots, tasks and sessions agree
    struct Snapshot;                 // what preparing a task needs, copied under the lock
    PreparedTask prepare(const Task & t, const Snapshot & snap) const;
    Snapshot snapshot(const Task & t, const Session * s) const;
    bool ready_still_valid(const Task & t, const Session * s) const;
    void on_result(std::unique_ptr<server_task_result> res);
    void handle_result(const TaskPtr & t, std::unique_ptr<server_task_result> & res,
                       std::vector<std::function<void()>> & notify);
    void on_partial(const TaskPtr & t, server_task_result_cmpl_partial & p,
                    std::vector<std::string> & chunks_out);
    void on_final(const TaskPtr & t, server_task_result_cmpl_final & f,
                  std::vector<std::string> & chunks_out);
    std::string embedding_result(const Task & t) const;         // embedding.cpp
    std::unique_ptr<PreTokenized> tokenize_pooled_inputs(TaskKind kind, const json & input) const;
    void post_pooled(const TaskPtr & t);                        // embedding/rerank: no slot
    void feed_pooled(const TaskPtr & t);                        // top its window of inputs up
    size_t pooled_window() const;
    void expire(std::vector<std::function<void()>> & notify);
    void wake();

    // state changes, all under mu_
    void finish(const TaskPtr & t, llama_error_t code, std::string result, bool push_error_chunk,
                std::vector<std::function<void()>> & notify);
    void abort_task(const TaskPtr & t, llama_error_t code, const std::string & type,
                    const std::string & msg, std::vector<std::function<void()>> & notify);
    void release_slot(const TaskPtr & t);
    void detach_core(const TaskPtr & t, bool cancel_on_core);
    int  pick_slot(const Session * s) const;
    void move_to_similar_slot(const TaskPtr & t, server_task & task);
    void check_supported(TaskKind kind) const;
    int  run_immediate_task(int session_id, TaskKind kind, TaskPtr t, bool stream,
                            std::shared_ptr<TaskListener> listener);
    void check_grammar(const json & obj, const char * what) const;
    void validate_with_core(TaskKind kind, const json & data) const;
    void check_token_ids(const json & input) const;   // completion: ids inside the vocabulary
    json merged_input(const Task & t, const Session * s) const;
    json shown_task_id(int task_id) const;   // under mu_: the id status shows (see TaskListener)

    ServerConfig cfg_;
    std::unique_ptr<Core> core_;
    std::atomic<bool> loaded_{false};
    std::atomic<bool> stopping_{false};
    std::once_flag stop_once_, shutdown_once_;
    std::thread loop_thread_, driver_thread_;
    int wake_id_ = -1;

    mutable std::mutex mu_;          // guards the registries, the slot table and the tasks
    SessionRegistry<Session> sessions_;
    TaskRegistry<Task> tasks_;
    SlotTable slots_;
    bool dispatch_needed_ = false;

    // totals
    long long total_prompt_tokens_ = 0, total_generated_tokens_ = 0, total_tasks_ = 0;
    double    total_gen_ms_ = 0;
    Clock::time_point started_at_;

    std::mutex load_mu_;
    std::atomic<int> callers_{0};
    std::mutex callers_mu_;
    std::condition_variable callers_cv_;
};

template <typename Take>
llama_error_t Server::wait_result(int task_id, int timeout_ms, Take take) {
    std::unique_lock<std::mutex> lk(mu_);
    TaskPtr t = tasks_.find(task_id);
    if (!t || t->stream) {
        fail(LLAMA_ERROR_TASK_NOT_FOUND, "no task " + std::to_string(task_id) +
             " (never created, already fetched, cancelled and fetched, or expired)");
    }
    auto done = [&] { return t->state == TaskState::done; };
    if (timeout_ms <= 0) {
        t->cv.wait(lk, done);
    } else if (!t->cv.wait_for(lk, std::chrono::milliseconds(timeout_ms), done)) {
        fail(LLAMA_ERROR_TIMEOUT, "task " + std::to_string(task_id) + " not finished after " +
             std::to_string(timeout_ms) + " ms; it goes on, fetch it later");
    }
    if (!tasks_.contains(task_id)) {
        fail(LLAMA_ERROR_TASK_NOT_FOUND, "task " + std::to_string(task_id) + " was fetched by another thread");
    }
    if (!take(t->code, t->result)) {
        return LLAMA_ERROR_BUFFER_TOO_SMALL;   // kept for a retry with a larger buffer
    }
    tasks_.take(task_id);
    const llama_error_t code = t->code;
    lk.unlock();   // t may be the last owner: a big task's inputs are freed outside the lock
    return code;
}

}  // namespace lls
