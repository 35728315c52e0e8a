// The exported C functions: argument checks, the handle registry, exception fencing and the
// caller-buffer protocol. Everything else lives in core/.
#include "llama_server.h"

#include "server.h"

#include <cstring>
#include <mutex>
#include <new>
#include <unordered_set>

using lls::Server;

namespace {

// Live handles: a stale or foreign pointer is refused instead of dereferenced. (A process
// that exits with live handles is the core's business: core/exit_guard.h.)
std::mutex                    g_handles_mu;
std::unordered_set<Server *>  g_handles;

// Fence: no exception crosses the C boundary; every failure leaves a detail message.
template <typename F>
llama_error_t guarded(F && f) noexcept {
    try {
        llama_error_t rc = f();
        if (rc == LLAMA_SUCCESS) lls::set_last_error("");
        return rc;
    } catch (const lls::Error & e) {
        lls::set_last_error(e.what());
        return e.code;
    } catch (const std::bad_alloc &) {
        lls::set_last_error("out of memory");
        return LLAMA_ERROR_OUT_OF_MEMORY;
    } catch (const std::exception & e) {
        lls::set_last_error(std::string("internal error: ") + e.what());
        return LLAMA_ERROR_UNKNOWN;
    } catch (...) {
        lls::set_last_error("internal error");
        return LLAMA_ERROR_UNKNOWN;
    }
}

// Looks the handle up and registers the call so that destroy waits for it to leave.
struct Call {
    Server * s = nullptr;
    std::unique_ptr<Server::CallGuard> guard;
    explicit Call(void * handle) {
        if (handle == nullptr) lls::fail(LLAMA_ERROR_INVALID_ARGUMENT, "server handle is NULL");
        std::lock_guard<std::mutex> lk(g_handles_mu);
        auto it = g_handles.find(static_cast<Server *>(handle));
        if (it == g_handles.end()) {
            lls::fail(LLAMA_ERROR_INVALID_ARGUMENT, "not a live server handle (destroyed, or never created)");
        }
        s = *it;
        guard = std::make_unique<Server::CallGuard>(*s);
    }
    Server * operator->() const { return s; }
};

void need(const void * p, const char * name) {
    if (p == nullptr) lls::fail(LLAMA_ERROR_INVALID_ARGUMENT, std::string(name) + " is NULL");
}

// Caller-buffer protocol: returns false (too small, "" written) or true (copied + NUL).
bool write_out(const std::string & s, char * buf, size_t size, size_t * actual) {
    if (buf == nullptr && size > 0) lls::fail(LLAMA_ERROR_INVALID_ARGUMENT, "buffer is NULL but buffer_size > 0");
    if (actual) *actual = s.size();
    if (buf == nullptr || size <= s.size()) {
        if (buf && size > 0) buf[0] = '\0';
        return false;
    }
    std::memcpy(buf, s.data(), s.size());
    buf[s.size()] = '\0';
    return true;
}

llama_error_t too_small(size_t needed) {
    lls::set_last_error("buffer too small: the JSON needs " + std::to_string(needed) + " bytes plus the NUL");
    return LLAMA_ERROR_BUFFER_TOO_SMALL;
}

}  // namespace

extern "C" {

LLAMA_SERVER_API const char * llama_server_version(void) { return LLAMA_SERVER_VERSION_STRING; }
LLAMA_SERVER_API int llama_server_version_number(void) { return LLAMA_SERVER_VERSION_NUMBER; }
LLAMA_SERVER_API const char * llama_server_error_string(llama_error_t code) { return lls::error_string(code); }
LLAMA_SERVER_API const char * llama_server_last_error(void) { return lls::last_error(); }

LLAMA_SERVER_API void llama_server_set_log(int min_level, llama_server_log_callback_t cb, void * user_data) {
    try {
        lls::set_log(min_level, cb, user_data);
    } catch (...) {
    }
}

LLAMA_SERVER_API llama_error_t llama_server_init(void ** server_handle, const char * config_json) {
    return guarded([&] {
        need(server_handle, "server_handle");
        *server_handle = nullptr;
        lls::ServerConfig cfg = lls::parse_server_config(config_json);
        auto * s = new Server(cfg);
        std::lock_guard<std::mutex> lk(g_handles_mu);
        g_handles.insert(s);
        *server_handle = s;
        return LLAMA_SUCCESS;
    });
}

LLAMA_SERVER_API llama_error_t llama_server_load_model(void * server_handle, const char * model_path,
                                                       const char * model_config_json) {
    return guarded([&] {
        Call c(server_handle);
        need(model_path, "model_path");
        lls::ModelConfig mc = lls::parse_model_config(model_config_json);
        c->load_model(model_path, mc);
        return LLAMA_SUCCESS;
    });
}

LLAMA_SERVER_API llama_error_t llama_server_destroy(void * server_handle) {
    return guarded([&] {
        if (server_handle == nullptr) lls::fail(LLAMA_ERROR_INVALID_ARGUMENT, "server handle is NULL");
        Server * s = static_cast<Server *>(server_handle);
        {
            std::lock_guard<std::mutex> lk(g_handles_mu);
            if (!g_handles.erase(s)) {
                lls::fail(LLAMA_ERROR_INVALID_ARGUMENT, "not a live server handle (destroyed twice?)");
            }
        }
        delete s;   // shutdown: cancels, wakes waiters, waits for them to leave
        return LLAMA_SUCCESS;
    });
}

LLAMA_SERVER_API llama_error_t llama_server_create_session(void * server_handle, const char * session_config,
                                                           int * session_id) {
    return guarded([&] {
        Call c(server_handle);
        need(session_id, "session_id");
        *session_id = c->create_session(lls::parse_object(session_config, "session config"));
        return LLAMA_SUCCESS;
    });
}

LLAMA_SERVER_API llama_error_t llama_server_close_session(void * server_handle, int session_id) {
    return guarded([&] {
        Call c(server_handle);
        c->close_session(session_id);
        return LLAMA_SUCCESS;
    });
}

LLAMA_SERVER_API llama_error_t llama_server_create_task(void * server_handle, int session_id, const char * task_type,
                                                        const char * input_json, int * task_id) {
    return guarded([&] {
        Call c(server_handle);
        need(task_id, "task_id");
        need(input_json, "input_json");
        lls::TaskKind kind = lls::parse_task_kind(task_type);
        *task_id = c->create_task(session_id, kind, lls::parse_object(input_json, "task input"), false);
        return LLAMA_SUCCESS;
    });
}

LLAMA_SERVER_API llama_error_t llama_server_get_result(void * server_handle, int task_id, char * result_buffer,
                                                       size_t buffer_size, size_t * actual_size, int timeout_ms) {
    return guarded([&] {
        Call c(server_handle);
        if (result_buffer == nullptr && buffer_size > 0) {
            lls::fail(LLAMA_ERROR_INVALID_ARGUMENT, "result_buffer is NULL but buffer_size > 0");
        }
        if (timeout_ms < 0) lls::fail(LLAMA_ERROR_INVALID_ARGUMENT, "timeout_ms must be >= 0 (0 waits forever)");
        size_t needed = 0;
        llama_error_t rc = c->wait_result(task_id, timeout_ms, [&](llama_error_t, const std::string & r) {
            needed = r.size();
            return write_out(r, result_buffer, buffer_size, actual_size);
        });
        if (rc == LLAMA_ERROR_BUFFER_TOO_SMALL) return too_small(needed);
        if (rc != LLAMA_SUCCESS) {
            lls::set_last_error(std::string("task ") + std::to_string(task_id) + " ended with: " +
                                lls::error_string(rc) + " (details in the result JSON)");
        }
        return rc;
    });
}

LLAMA_SERVER_API llama_error_t llama_server_stream_inference(void * server_handle, int session_id,
                                                             const char * input_json,
                                                             llama_stream_callback_t callback, void * user_data) {
    return guarded([&] {
        Call c(server_handle);
        need(input_json, "input_json");
        if (callback == nullptr) lls::fail(LLAMA_ERROR_INVALID_ARGUMENT, "callback is NULL");
        lls::json input = lls::parse_object(input_json, "stream input");
        lls::TaskKind kind;
        if (input.contains("messages")) {
            kind = lls::TaskKind::chat;
        } else if (input.contains("prompt")) {
            kind = lls::TaskKind::completion;
        } else {
            lls::fail(LLAMA_ERROR_INVALID_ARGUMENT, "stream input needs \"messages\" (chat) or \"prompt\" (completion)");
        }
        const int id = c->create_task(session_id, kind, input, true);
        struct Forget {
            Server * s;
            int id;
            ~Forget() { s->forget_task(id); }
        } forget{c.s, id};
        while (true) {
            std::deque<lls::StreamChunk> chunks;
            llama_error_t code = LLAMA_SUCCESS;
            bool done = false;
            if (!c->next_chunks(id, chunks, code, done)) {
                lls::fail(LLAMA_ERROR_CANCELLED, "the stream was cancelled");
            }
            for (auto & ch : chunks) {
                int stop = callback(ch.json.c_str(), ch.json.size(), ch.is_final ? 1 : 0, user_data);
                if (ch.is_final) {
                    if (code != LLAMA_SUCCESS) lls::fail(code, "the task failed; the final chunk carries the error");
                    return LLAMA_SUCCESS;
                }
                if (stop != 0) {
                    try {
                        c->cancel_task(id);
                    } catch (const lls::Error &) {
                    }
                    lls::fail(LLAMA_ERROR_CANCELLED, "stopped by the stream callback");
                }
            }
            if (done && chunks.empty()) {
                lls::fail(code == LLAMA_SUCCESS ? LLAMA_ERROR_UNKNOWN : code,
                          std::string("the stream ended without a final chunk: ") + lls::error_string(code));
            }
        }
    });
}

LLAMA_SERVER_API llama_error_t llama_server_cancel_task(void * server_handle, int task_id) {
    return guarded([&] {
        Call c(server_handle);
        c->cancel_task(task_id);
        return LLAMA_SUCCESS;
    });
}

LLAMA_SERVER_API llama_error_t llama_server_get_status(void * server_handle, char * status_buffer, size_t buffer_size,
                                                       size_t * actual_size) {
    return guarded([&] {
        Call c(server_handle);
        std::string s = c->status_json();
        return write_out(s, status_buffer, buffer_size, actual_size) ? LLAMA_SUCCESS : too_small(s.size());
    });
}

LLAMA_SERVER_API llama_error_t llama_server_get_session_info(void * server_handle, int session_id, char * info_buffer,
                                                             size_t buffer_size, size_t * actual_size) {
    return guarded([&] {
        Call c(server_handle);
        std::string s = c->session_info_json(session_id);
        return write_out(s, info_buffer, buffer_size, actual_size) ? LLAMA_SUCCESS : too_small(s.size());
    });
}

}  // extern "C"
