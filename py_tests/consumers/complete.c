/* A consumer of the installed library: one completion on the model given as argv[1]. Built
 * by py_tests/test_19_install.py outside the repository, through pkg-config and through
 * find_package, against a `make install` tree. */
#include <llama_server.h>

#include <stdio.h>
#include <string.h>

int main(int argc, char ** argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s MODEL.gguf\n", argv[0]);
        return 2;
    }
    if (llama_server_version_number() != LLAMA_SERVER_VERSION_NUMBER) {
        fprintf(stderr, "header %s, library %s\n", LLAMA_SERVER_VERSION_STRING, llama_server_version());
        return 1;
    }
    void * server = NULL;
    int task = 0;
    char out[8192];
    size_t n = 0;
    if (llama_server_init(&server, "{\"n_parallel\": 1, \"n_ctx\": 512, \"log_level\": \"error\"}") != LLAMA_SUCCESS ||
        llama_server_load_model(server, argv[1], NULL) != LLAMA_SUCCESS ||
        llama_server_create_task(server, 0, "completion",
                                 "{\"prompt\": \"The capital of France is\", \"n_predict\": 4, \"temperature\": 0}",
                                 &task) != LLAMA_SUCCESS ||
        llama_server_get_result(server, task, out, sizeof out, &n, 60000) != LLAMA_SUCCESS) {
        fprintf(stderr, "failed: %s\n", llama_server_last_error());
        llama_server_destroy(server);
        return 1;
    }
    printf("%s %s\n", llama_server_version(), out);
    llama_server_destroy(server);
    return strstr(out, "\"content\"") ? 0 : 1;
}
