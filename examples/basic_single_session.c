/* basic_single_session.c: the API's reference example as originally specified, unchanged but for the model path (LLAMA_MODEL). */
#include "llama_server.h"
#include <stdio.h>
#include <stdlib.h>

int main() {
    void* server = NULL;
    llama_error_t err;
    
    // 1. Initialize server with 4 parallel slots
    const char* config = "{\"n_parallel\": 4, \"n_ctx\": 2048}";
    err = llama_server_init(&server, config);
    if (err != LLAMA_SUCCESS) {
        printf("Failed to init server: %d\n", err);
        return 1;
    }
    
    // 2. Load model
    err = llama_server_load_model(server, getenv("LLAMA_MODEL") /* the one change: model path from the environment */, NULL);
    if (err != LLAMA_SUCCESS) {
        printf("Failed to load model: %d\n", err);
        llama_server_destroy(server);
        return 1;
    }
    
    // 3. Create a session
    int session_id;
    const char* session_config = "{\"cache_prompt\": true, \"temperature\": 0.7}";
    err = llama_server_create_session(server, session_config, &session_id);
    if (err != LLAMA_SUCCESS) {
        printf("Failed to create session: %d\n", err);
        llama_server_destroy(server);
        return 1;
    }
    
    // 4. Create inference task
    const char* input = "{\"prompt\": \"Hello\", \"n_predict\": 50}";
    int task_id;
    err = llama_server_create_task(server, session_id, "completion", input, &task_id);
    if (err != LLAMA_SUCCESS) {
        printf("Failed to create task: %d\n", err);
        llama_server_close_session(server, session_id);
        llama_server_destroy(server);
        return 1;
    }
    
    // 5. Get result
    char result[4096];
    size_t result_size;
    err = llama_server_get_result(server, task_id, result, sizeof(result), 
                                 &result_size, 10000);
    if (err == LLAMA_SUCCESS) {
        printf("Result: %s\n", result);
    }
    
    // 6. Cleanup
    llama_server_close_session(server, session_id);
    llama_server_destroy(server);
    return 0;
}
