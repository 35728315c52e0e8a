/* One task through the C API, for running the library under other CPUs (qemu-x86_64 -cpu X).
 *   cpu_probe MODEL MODEL_CONFIG_JSON TASK_TYPE TASK_JSON
 * Prints one JSON object: {"init": rc, "error": "..."} when init fails, else
 * {"init": 0, "status": <status>, "result": <result>} (result null and "rc" set on failure). */
#include "llama_server.h"

#include <stdio.h>
#include <stdlib.h>

static void print_string(const char * s) {   /* as a JSON string */
    putchar('"');
    for (; *s; s++) {
        if (*s == '"' || *s == '\\') printf("\\%c", *s);
        else if ((unsigned char) *s < 0x20) printf("\\u%04x", *s);
        else putchar(*s);
    }
    putchar('"');
}

int main(int argc, char ** argv) {
    static char status[1 << 16], result[1 << 20];
    void * server = NULL;
    int task = 0;
    size_t n = 0;
    if (argc != 5) {
        fprintf(stderr, "usage: %s MODEL MODEL_CONFIG_JSON TASK_TYPE TASK_JSON\n", argv[0]);
        return 2;
    }
    llama_error_t rc = llama_server_init(&server, "{\"n_parallel\": 1, \"n_ctx\": 512, \"n_threads\": 2, \"log_level\": \"error\"}");
    if (rc != LLAMA_SUCCESS) {
        printf("{\"init\": %d, \"error\": ", (int) rc);
        print_string(llama_server_last_error());
        printf("}\n");
        return 0;
    }
    rc = llama_server_load_model(server, argv[1], argv[2]);
    if (rc == LLAMA_SUCCESS) rc = llama_server_create_task(server, 0, argv[3], argv[4], &task);
    if (rc == LLAMA_SUCCESS) rc = llama_server_get_result(server, task, result, sizeof result, &n, 600000);
    if (llama_server_get_status(server, status, sizeof status, &n) != LLAMA_SUCCESS) return 3;
    printf("{\"init\": 0, \"rc\": %d, \"status\": %s, \"result\": %s, \"error\": ", (int) rc, status,
           rc == LLAMA_SUCCESS ? result : "null");
    print_string(rc == LLAMA_SUCCESS ? "" : llama_server_last_error());
    printf("}\n");
    llama_server_destroy(server);
    return 0;
}
