// One log sink for the library and llama.cpp, process-wide, quiet by default (warnings+).
#include "lls_common.h"

#include "llama.h"
#include "log.h"   // llama.cpp common_log: the server core's own messages

#include <atomic>
#include <cstdarg>
#include <cstdio>
#include <mutex>

namespace lls {

namespace {
std::mutex                  g_mu;
std::atomic<int>            g_min_level{LLAMA_SERVER_LOG_WARN};
llama_server_log_callback_t g_cb   = nullptr;
void *                      g_user = nullptr;

int from_ggml(enum ggml_log_level level) {
    switch (level) {
        case GGML_LOG_LEVEL_DEBUG: return LLAMA_SERVER_LOG_DEBUG;
        case GGML_LOG_LEVEL_INFO:  return LLAMA_SERVER_LOG_INFO;
        case GGML_LOG_LEVEL_WARN:  return LLAMA_SERVER_LOG_WARN;
        case GGML_LOG_LEVEL_ERROR: return LLAMA_SERVER_LOG_ERROR;
        default:                   return LLAMA_SERVER_LOG_DEBUG;   // NONE/CONT: continuation lines
    }
}

void emit(int level, const char * text) {
    if (level < g_min_level.load(std::memory_order_relaxed)) {
        return;
    }
    std::lock_guard<std::mutex> lk(g_mu);
    if (g_cb) {
        g_cb(level, text, g_user);
    } else {
        fputs(text, stderr);
    }
}

void llama_sink(enum ggml_log_level level, const char * text, void *) { emit(from_ggml(level), text); }

// common_log (the server core's SRV_*/SLT_* lines) has no callback; it only takes a threshold.
int common_threshold(int level) {
    switch (level) {
        case LLAMA_SERVER_LOG_DEBUG: return LOG_LEVEL_DEBUG;
        case LLAMA_SERVER_LOG_INFO:  return LOG_LEVEL_INFO;
        case LLAMA_SERVER_LOG_WARN:  return LOG_LEVEL_WARN;
        case LLAMA_SERVER_LOG_ERROR: return LOG_LEVEL_ERROR;
        default:                     return -1;
    }
}
}  // namespace

void set_log(int min_level, llama_server_log_callback_t cb, void * user) {
    {
        std::lock_guard<std::mutex> lk(g_mu);
        g_cb = cb;
        g_user = user;
    }
    g_min_level = min_level;
    common_log_set_verbosity_thold(common_threshold(min_level));
    llama_log_set(llama_sink, nullptr);
}

void set_log_level(int min_level) {
    g_min_level = min_level;
    common_log_set_verbosity_thold(common_threshold(min_level));
}

void ensure_log_installed() {
    static std::once_flag once;
    std::call_once(once, [] {
        common_log_set_verbosity_thold(common_threshold(g_min_level));
        llama_log_set(llama_sink, nullptr);
    });
}

void log(int level, const char * fmt, ...) {
    if (level < g_min_level.load(std::memory_order_relaxed)) {
        return;
    }
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    emit(level, buf);
}

}  // namespace lls
