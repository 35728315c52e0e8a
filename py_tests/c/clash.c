/* One process, two llama.cpps: this program links an unrelated libllama.so (llama.cpp built
 * from the same tree as shared libraries) and dlopens libllama_server.so, which has its own
 * copy inside. Both must work, each bound to its own copy: the library exports only
 * llama_server_* and binds its llama/ggml calls internally. (py_tests/test_19_install.py) */
#include "llama.h"

#include <dlfcn.h>
#include <stdio.h>
#include <string.h>

typedef int (*init_fn)(void **, const char *);
typedef int (*load_fn)(void *, const char *, const char *);
typedef int (*task_fn)(void *, int, const char *, const char *, int *);
typedef int (*result_fn)(void *, int, char *, size_t, size_t *, int);
typedef int (*destroy_fn)(void *);
typedef const char * (*error_fn)(void);

/* the unrelated copy: load, tokenize, decode one batch, the greedy next token */
static int theirs(const char * model_path, const char * text) {
    struct llama_model * model = llama_model_load_from_file(model_path, llama_model_default_params());
    if (!model) return -1;
    const struct llama_vocab * vocab = llama_model_get_vocab(model);
    llama_token toks[64];
    int n = llama_tokenize(vocab, text, (int) strlen(text), toks, 64, true, false);
    struct llama_context_params cp = llama_context_default_params();
    cp.n_ctx = 256;
    struct llama_context * ctx = llama_init_from_model(model, cp);
    int best = -1;
    if (n > 0 && ctx && llama_decode(ctx, llama_batch_get_one(toks, n)) == 0) {
        const float * logits = llama_get_logits_ith(ctx, -1);
        for (int i = 0; i < llama_vocab_n_tokens(vocab); i++) {
            if (best < 0 || logits[i] > logits[best]) best = i;
        }
    }
    if (ctx) llama_free(ctx);
    llama_model_free(model);
    return best;
}

int main(int argc, char ** argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: %s MODEL.gguf path/to/libllama_server.so\n", argv[0]);
        return 2;
    }
    llama_log_set(NULL, NULL);
    llama_backend_init();
    const int before = theirs(argv[1], "The capital of France is");

    void * lib = dlopen(argv[2], RTLD_NOW | RTLD_LOCAL);
    if (!lib) { fprintf(stderr, "dlopen: %s\n", dlerror()); return 1; }
    init_fn init = (init_fn) dlsym(lib, "llama_server_init");
    load_fn load = (load_fn) dlsym(lib, "llama_server_load_model");
    task_fn task = (task_fn) dlsym(lib, "llama_server_create_task");
    result_fn result = (result_fn) dlsym(lib, "llama_server_get_result");
    destroy_fn destroy = (destroy_fn) dlsym(lib, "llama_server_destroy");
    error_fn last_error = (error_fn) dlsym(lib, "llama_server_last_error");
    if (dlsym(lib, "llama_backend_init") || dlsym(lib, "ggml_init")) {
        fprintf(stderr, "libllama_server.so exports llama.cpp's symbols\n");
        return 1;
    }
    void * server = NULL;
    int id = 0;
    char out[8192];
    size_t n = 0;
    if (init(&server, "{\"n_parallel\": 2, \"n_ctx\": 256, \"log_level\": \"error\"}") ||
        load(server, argv[1], NULL) ||
        task(server, 0, "completion", "{\"prompt\": \"The capital of France is\", \"n_predict\": 3, \"temperature\": 0}", &id) ||
        result(server, id, out, sizeof out, &n, 60000)) {
        fprintf(stderr, "ours failed: %s\n", last_error());
        return 1;
    }
    /* the unrelated copy again, with ours loaded and serving */
    const int after = theirs(argv[1], "The capital of France is");
    destroy(server);
    printf("theirs: next token %d before, %d after; ours: %s\n", before, after, out);
    return (before >= 0 && before == after && strstr(out, "\"content\"")) ? 0 : 1;
}
