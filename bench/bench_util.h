/* Small helpers of the C bench program: clock, JSON string escaping, reading a number out of
 * a result JSON, and a growing get_result buffer. Header-only; one job each. */
#ifndef BENCH_UTIL_H
#define BENCH_UTIL_H

#include "llama_server.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static inline double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double) ts.tv_sec + (double) ts.tv_nsec * 1e-9;
}

/* CPU time of the calling thread: what a call costs, apart from waiting for a core. */
static inline double thread_cpu_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double) ts.tv_sec + (double) ts.tv_nsec * 1e-9;
}

/* Appends s to out (capacity cap) as a JSON string body (no quotes); returns chars written. */
static inline size_t json_escape(char * out, size_t cap, const char * s) {
    size_t n = 0;
    for (; *s && n + 7 < cap; s++) {
        unsigned char c = (unsigned char) *s;
        if (c == '"' || c == '\\') {
            out[n++] = '\\';
            out[n++] = (char) c;
        } else if (c < 0x20) {
            n += (size_t) snprintf(out + n, cap - n, "\\u%04x", c);
        } else {
            out[n++] = (char) c;
        }
    }
    out[n] = '\0';
    return n;
}

/* The number after the first "key": in json, or def when absent (timings are flat numbers). */
static inline double json_num(const char * json, const char * key, double def) {
    char pat[64];
    snprintf(pat, sizeof pat, "\"%s\":", key);
    const char * p = strstr(json, pat);
    if (!p) return def;
    p += strlen(pat);
    while (*p == ' ') p++;
    char * end = NULL;
    double v = strtod(p, &end);
    return end == p ? def : v;
}

/* get_result into *buf (grown as needed, owned by the caller); returns the call's code. */
static inline llama_error_t get_result_grow(void * srv, int task, char ** buf, size_t * cap, int timeout_ms) {
    for (;;) {
        size_t actual = 0;
        llama_error_t rc = llama_server_get_result(srv, task, *buf, *cap, &actual, timeout_ms);
        if (rc != LLAMA_ERROR_BUFFER_TOO_SMALL) return rc;
        *cap = actual + 1;
        *buf = (char *) realloc(*buf, *cap);
    }
}

static int cmp_double(const void * a, const void * b) {
    double x = *(const double *) a, y = *(const double *) b;
    return (x > y) - (x < y);
}

/* Prints "name":{"median":..,"p99":..,"n":..} (microseconds); sorts v in place. */
static inline void print_stats(const char * name, double * v, int n) {
    qsort(v, (size_t) n, sizeof *v, cmp_double);
    double med = n ? (n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2])) : 0;
    double p99 = n ? v[(int) ((n - 1) * 0.99 + 0.5)] : 0;
    printf("\"%s\":{\"median\":%.2f,\"p99\":%.2f,\"min\":%.2f,\"n\":%d}", name, med, p99, n ? v[0] : 0.0, n);
}

#endif
