/* Compiles against llama_server.h alone (no library): the header must be self-contained,
 * warning-free C99 and C++17. Prints the header's constants for the test to compare. */
#include "llama_server.h"

#include <stdio.h>

static int on_chunk(const char *chunk, size_t size, int is_final, void *user) {
    (void) chunk; (void) size; (void) is_final; (void) user;
    return 0;
}

static void on_log(int level, const char *text, void *user) {
    (void) level; (void) text; (void) user;
}

int main(void) {
    llama_stream_callback_t cb = on_chunk;
    llama_server_log_callback_t lg = on_log;
    llama_error_t codes[] = {
        LLAMA_SUCCESS, LLAMA_ERROR_INVALID_ARGUMENT, LLAMA_ERROR_OUT_OF_MEMORY,
        LLAMA_ERROR_MODEL_LOAD_FAILED, LLAMA_ERROR_INFERENCE_FAILED, LLAMA_ERROR_SESSION_NOT_FOUND,
        LLAMA_ERROR_SERVER_BUSY, LLAMA_ERROR_TIMEOUT, LLAMA_ERROR_BUFFER_TOO_SMALL,
        LLAMA_ERROR_TASK_NOT_FOUND, LLAMA_ERROR_MODEL_NOT_LOADED, LLAMA_ERROR_CANCELLED,
        LLAMA_ERROR_NOT_SUPPORTED, LLAMA_ERROR_UNKNOWN};
    size_t i;
    (void) cb; (void) lg;
    printf("version %s %d %d.%d.%d\n", LLAMA_SERVER_VERSION_STRING, LLAMA_SERVER_VERSION_NUMBER,
           LLAMA_SERVER_VERSION_MAJOR, LLAMA_SERVER_VERSION_MINOR, LLAMA_SERVER_VERSION_PATCH);
    printf("codes");
    for (i = 0; i < sizeof codes / sizeof codes[0]; i++) {
        printf(" %d", (int) codes[i]);
    }
    printf("\nlog %d %d %d %d %d\n", LLAMA_SERVER_LOG_DEBUG, LLAMA_SERVER_LOG_INFO, LLAMA_SERVER_LOG_WARN,
           LLAMA_SERVER_LOG_ERROR, LLAMA_SERVER_LOG_NONE);
    return 0;
}
