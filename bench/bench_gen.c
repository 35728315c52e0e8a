/* Generation runs of the C bench program: K threads, each with its own session, all released
 * at once by a barrier. "gen" uses create_task + get_result (throughput), "stream" uses
 * stream_inference (time to first token), "chat" streams one chat turn per session (users
 * arriving together: `make bench-users`). Prints one JSON line per run. */
#include "bench.h"
#include "bench_util.h"

#include <pthread.h>

typedef struct {
    void * srv;
    int idx, n_predict, stream, chat;
    const char * tag, * text;
    pthread_barrier_t * start;
    double t0;                       /* set by the main thread just before the barrier */
    double submit, first, done;      /* seconds after t0 */
    double prompt_n, predicted_n, prompt_ms, predicted_ms, cache_n;
    int rc;
} worker_t;

static void take_timings(worker_t * w, const char * json) {
    w->prompt_n     = json_num(json, "prompt_n", -1);
    w->predicted_n  = json_num(json, "predicted_n", -1);
    w->prompt_ms    = json_num(json, "prompt_ms", -1);
    w->predicted_ms = json_num(json, "predicted_ms", -1);
    w->cache_n      = json_num(json, "cache_n", 0);     /* prompt tokens taken from a cache */
}

static int on_chunk(const char * chunk, size_t size, int is_final, void * user) {
    (void) size;
    worker_t * w = (worker_t *) user;
    if (w->first < 0) w->first = now_s() - w->t0;
    if (is_final) take_timings(w, chunk);
    return 0;
}

static void * run_worker(void * arg) {
    worker_t * w = (worker_t *) arg;
    char input[8192];
    int n = snprintf(input, sizeof input, w->chat ? "{\"messages\":[{\"role\":\"user\",\"content\":\"[%s-%d] "
                                                  : "{\"prompt\":\"[%s-%d] ", w->tag, w->idx);
    n += (int) json_escape(input + n, sizeof input - (size_t) n - 128, w->text);
    snprintf(input + n, sizeof input - (size_t) n,
             w->chat ? "\"}],\"max_tokens\":%d,\"temperature\":0,\"ignore_eos\":true}"
                     : "\",\"n_predict\":%d,\"temperature\":0,\"ignore_eos\":true}", w->n_predict);

    int session = 0;
    w->rc = llama_server_create_session(w->srv, NULL, &session);
    pthread_barrier_wait(w->start);
    if (w->rc != LLAMA_SUCCESS) return NULL;

    w->submit = now_s() - w->t0;
    if (w->stream) {
        w->rc = llama_server_stream_inference(w->srv, session, input, on_chunk, w);
    } else {
        int task = 0;
        w->rc = llama_server_create_task(w->srv, session, "completion", input, &task);
        if (w->rc == LLAMA_SUCCESS) {
            size_t cap = 65536;
            char * buf = (char *) malloc(cap);
            w->rc = get_result_grow(w->srv, task, &buf, &cap, 0);
            w->first = -1;   /* not known without streaming */
            if (w->rc == LLAMA_SUCCESS) take_timings(w, buf);
            free(buf);
        }
    }
    w->done = now_s() - w->t0;
    if (w->rc != LLAMA_SUCCESS) fprintf(stderr, "bench: task %d: %s\n", w->idx, llama_server_last_error());
    llama_server_close_session(w->srv, session);
    return NULL;
}

int cmd_gen(void * srv, int stream, int chat, int k, int n_predict, const char * tag, const char * text) {
    if (k < 1 || k > 256) return 1;
    worker_t * ws = (worker_t *) calloc((size_t) k, sizeof *ws);
    pthread_t * th = (pthread_t *) calloc((size_t) k, sizeof *th);
    pthread_barrier_t start;
    pthread_barrier_init(&start, NULL, (unsigned) k + 1);
    for (int i = 0; i < k; i++) {
        ws[i] = (worker_t) {.srv = srv, .idx = i, .n_predict = n_predict, .stream = stream || chat, .chat = chat,
                            .tag = tag, .text = text, .start = &start, .first = -1};
        pthread_create(&th[i], NULL, run_worker, &ws[i]);
    }
    /* sessions are created before the barrier, so t0 is the moment all may submit */
    double t0 = now_s();
    for (int i = 0; i < k; i++) ws[i].t0 = t0;
    pthread_barrier_wait(&start);
    for (int i = 0; i < k; i++) pthread_join(th[i], NULL);
    pthread_barrier_destroy(&start);

    printf("{\"cmd\":\"%s\",\"k\":%d,\"n_predict\":%d,\"per\":[", chat ? "chat" : stream ? "stream" : "gen", k, n_predict);
    int failed = 0;
    for (int i = 0; i < k; i++) {
        worker_t * w = &ws[i];
        failed |= w->rc != LLAMA_SUCCESS;
        printf("%s{\"rc\":%d,\"submit_s\":%.6f,\"first_s\":%.6f,\"done_s\":%.6f,\"prompt_n\":%.0f,"
               "\"predicted_n\":%.0f,\"prompt_ms\":%.3f,\"predicted_ms\":%.3f,\"cache_n\":%.0f}",
               i ? "," : "", w->rc, w->submit, w->first, w->done, w->prompt_n, w->predicted_n,
               w->prompt_ms, w->predicted_ms, w->cache_n);
    }
    printf("]%s%s%s}\n", failed ? ",\"error\":\"" : "", failed ? "a task failed" : "", failed ? "\"" : "");
    fflush(stdout);
    free(ws);
    free(th);
    return 0;
}
