/* Per-call costs of the C API (one thread) and embedding / rerank throughput (T threads).
 * Prints one JSON line per command; times in microseconds. */
#include "bench.h"
#include "bench_util.h"

#include <pthread.h>
#include <unistd.h>

/* create_task + get_result of a 1-token completion; "overhead" is the round trip minus the
 * engine's own prompt_ms + predicted_ms, i.e. queueing, wake-ups, sampling and JSON. */
int cmd_overhead(void * srv, int iters, const char * text) {
    char input[4096];
    int n = snprintf(input, sizeof input, "{\"prompt\":\"");
    n += (int) json_escape(input + n, sizeof input - (size_t) n - 64, text);
    snprintf(input + n, sizeof input - (size_t) n, "\",\"n_predict\":1,\"temperature\":0}");

    int n_ready = iters / 10 < 20 ? 20 : iters / 10;
    double * create = calloc((size_t) iters, sizeof(double)), * rt = calloc((size_t) iters, sizeof(double));
    double * over = calloc((size_t) iters, sizeof(double)), * status = calloc((size_t) iters, sizeof(double));
    double * create_cpu = calloc((size_t) iters, sizeof(double));
    double * ready = calloc((size_t) n_ready, sizeof(double));
    size_t cap = 65536;
    char * buf = malloc(cap);
    int task = 0, fails = 0;

    for (int i = -5; i < iters; i++) {              /* 5 warm-up rounds, not recorded */
        double c0 = thread_cpu_s(), t0 = now_s();
        fails += llama_server_create_task(srv, 0, "completion", input, &task) != LLAMA_SUCCESS;
        double t1 = now_s(), c1 = thread_cpu_s();
        fails += get_result_grow(srv, task, &buf, &cap, 0) != LLAMA_SUCCESS;
        double t2 = now_s();
        if (i < 0) continue;
        double engine_ms = json_num(buf, "prompt_ms", 0) + json_num(buf, "predicted_ms", 0);
        create[i] = (t1 - t0) * 1e6;
        create_cpu[i] = (c1 - c0) * 1e6;
        rt[i] = (t2 - t0) * 1e6;
        over[i] = rt[i] - engine_ms * 1e3;
    }
    /* get_result on a finished task: wait well past the usual round trip first */
    double sorted_rt = 0;
    for (int i = 0; i < iters; i++) sorted_rt += rt[i];
    useconds_t nap = (useconds_t) (3 * sorted_rt / (iters ? iters : 1));
    if (nap < 20000) nap = 20000;
    for (int i = 0; i < n_ready; i++) {
        fails += llama_server_create_task(srv, 0, "completion", input, &task) != LLAMA_SUCCESS;
        usleep(nap);
        double t0 = now_s();
        fails += get_result_grow(srv, task, &buf, &cap, 0) != LLAMA_SUCCESS;
        ready[i] = (now_s() - t0) * 1e6;
    }
    for (int i = 0; i < iters; i++) {
        size_t actual = 0;
        double t0 = now_s();
        fails += llama_server_get_status(srv, buf, cap, &actual) != LLAMA_SUCCESS;
        status[i] = (now_s() - t0) * 1e6;
    }
    printf("{\"cmd\":\"overhead\",\"fails\":%d,", fails);
    print_stats("create_task_us", create, iters);
    printf(",");
    print_stats("create_task_cpu_us", create_cpu, iters);
    printf(",");
    print_stats("roundtrip_us", rt, iters);
    printf(",");
    print_stats("overhead_us", over, iters);
    printf(",");
    print_stats("get_result_ready_us", ready, n_ready);
    printf(",");
    print_stats("get_status_us", status, iters);
    printf("}\n");
    fflush(stdout);
    free(create); free(create_cpu); free(rt); free(over); free(status); free(ready); free(buf);
    return 0;
}

typedef struct {
    void * srv;
    int idx, n, docs, rerank, fails;
    const char * text;
    pthread_barrier_t * start;
} ework_t;

static void * run_embed(void * arg) {
    ework_t * w = (ework_t *) arg;
    size_t cap = 65536;
    char * buf = malloc(cap);
    char esc[2048], input[65536];
    json_escape(esc, sizeof esc, w->text);
    pthread_barrier_wait(w->start);
    for (int i = 0; i < w->n; i++) {
        int n = 0;
        if (w->rerank) {
            n = snprintf(input, sizeof input, "{\"query\":\"%s\",\"documents\":[", esc);
            for (int d = 0; d < w->docs && n < (int) sizeof input - 4200; d++) {
                n += snprintf(input + n, sizeof input - (size_t) n, "%s\"doc %d of %d-%d: %s\"", d ? "," : "", d, w->idx, i, esc);
            }
            snprintf(input + n, sizeof input - (size_t) n, "]}");
        } else {
            snprintf(input, sizeof input, "{\"content\":\"[%d-%d] %s\"}", w->idx, i, esc);
        }
        int task = 0;
        llama_error_t rc = llama_server_create_task(w->srv, 0, w->rerank ? "rerank" : "embedding", input, &task);
        if (rc == LLAMA_SUCCESS) rc = get_result_grow(w->srv, task, &buf, &cap, 0);
        if (rc != LLAMA_SUCCESS) {
            if (!w->fails) fprintf(stderr, "bench: %s: %s\n", w->rerank ? "rerank" : "embedding", llama_server_last_error());
            w->fails++;
        }
    }
    free(buf);
    return NULL;
}

/* T threads, each n requests in a row (rerank: docs documents per request). */
int cmd_embed(void * srv, int rerank, int threads, int n, int docs, const char * text) {
    if (threads < 1 || threads > 256) return 1;
    ework_t * ws = calloc((size_t) threads, sizeof *ws);
    pthread_t * th = calloc((size_t) threads, sizeof *th);
    pthread_barrier_t start;
    pthread_barrier_init(&start, NULL, (unsigned) threads + 1);
    for (int i = 0; i < threads; i++) {
        ws[i] = (ework_t) {.srv = srv, .idx = i, .n = n, .docs = docs, .rerank = rerank, .text = text, .start = &start};
        pthread_create(&th[i], NULL, run_embed, &ws[i]);
    }
    double t0 = now_s();
    pthread_barrier_wait(&start);
    int fails = 0;
    for (int i = 0; i < threads; i++) {
        pthread_join(th[i], NULL);
        fails += ws[i].fails;
    }
    double wall = now_s() - t0;
    printf("{\"cmd\":\"%s\",\"threads\":%d,\"requests\":%d,\"items\":%d,\"wall_s\":%.6f,\"fails\":%d}\n",
           rerank ? "rerank" : "embed", threads, threads * n, threads * n * (rerank ? docs : 1), wall, fails);
    fflush(stdout);
    pthread_barrier_destroy(&start);
    free(ws);
    free(th);
    return 0;
}
