/* llama_nif_bench: loads one model through libllama_server.so, then runs the commands it
 * reads on stdin, one per line, so that a driver can alternate it with other servers
 * without reloading:
 *
 *   gen K N TAG TEXT         K threads/sessions, N tokens each, create_task + get_result
 *   stream K N TAG TEXT      the same through stream_inference (time to first token)
 *   chat K N TAG TEXT        K sessions, one streamed chat turn each (max_tokens N): users
 *                            arriving together
 *   overhead ITERS TEXT      per-call costs (1-token completions, get_status)
 *   embed T N TEXT           T threads x N embedding tasks
 *   rerank T N D TEXT        T threads x N rerank tasks of D documents
 *   status                   the server's status JSON (which CPU variant runs, ...)
 *   quit
 *
 * usage: llama_nif_bench MODEL SERVER_CONFIG_JSON [MODEL_CONFIG_JSON]
 */
#include "bench.h"
#include "bench_util.h"

static char * rest(char * s) {   /* the text after the parsed fields, without the newline */
    while (*s == ' ') s++;
    s[strcspn(s, "\r\n")] = '\0';
    return s;
}

int main(int argc, char ** argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: %s MODEL SERVER_CONFIG_JSON [MODEL_CONFIG_JSON]\n", argv[0]);
        return 2;
    }
    void * srv = NULL;
    if (llama_server_init(&srv, argv[2]) != LLAMA_SUCCESS ||
        llama_server_load_model(srv, argv[1], argc > 3 ? argv[3] : NULL) != LLAMA_SUCCESS) {
        fprintf(stderr, "bench: %s\n", llama_server_last_error());
        printf("{\"ready\":false,\"error\":\"load failed\"}\n");
        llama_server_destroy(srv);
        return 1;
    }
    printf("{\"ready\":true}\n");
    fflush(stdout);

    static char line[65536];
    while (fgets(line, sizeof line, stdin)) {
        char cmd[32], tag[64];
        int a = 0, b = 0, c = 0, used = 0, bad = 0;
        if (sscanf(line, "%31s", cmd) != 1) continue;
        if (!strcmp(cmd, "quit")) break;
        if ((!strcmp(cmd, "gen") || !strcmp(cmd, "stream") || !strcmp(cmd, "chat")) &&
            sscanf(line, "%*s %d %d %63s%n", &a, &b, tag, &used) == 3) {
            bad = cmd_gen(srv, cmd[0] == 's', cmd[0] == 'c', a, b, tag, rest(line + used));
        } else if (!strcmp(cmd, "overhead") && sscanf(line, "%*s %d%n", &a, &used) == 1) {
            bad = cmd_overhead(srv, a, rest(line + used));
        } else if (!strcmp(cmd, "status")) {
            static char status[1 << 16];
            size_t n = 0;
            bad = llama_server_get_status(srv, status, sizeof status, &n) != LLAMA_SUCCESS;
            if (!bad) {
                printf("%s\n", status);
                fflush(stdout);
            }
        } else if (!strcmp(cmd, "embed") && sscanf(line, "%*s %d %d%n", &a, &b, &used) == 2) {
            bad = cmd_embed(srv, 0, a, b, 1, rest(line + used));
        } else if (!strcmp(cmd, "rerank") && sscanf(line, "%*s %d %d %d%n", &a, &b, &c, &used) == 3) {
            bad = cmd_embed(srv, 1, a, b, c, rest(line + used));
        } else {
            bad = 1;
        }
        if (bad) {
            printf("{\"error\":\"bad command\"}\n");
            fflush(stdout);
        }
    }
    llama_server_destroy(srv);
    return 0;
}
