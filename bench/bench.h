/* Commands of the C bench program (llama_nif_bench); each prints one JSON line on stdout. */
#ifndef BENCH_H
#define BENCH_H

int cmd_gen(void * srv, int stream, int chat, int k, int n_predict, const char * tag, const char * text);
int cmd_overhead(void * srv, int iters, const char * text);
int cmd_embed(void * srv, int rerank, int threads, int n, int docs, const char * text);

#endif
