/* concurrent_multi_session.c: the API's reference example as originally specified, unchanged but for the model path (LLAMA_MODEL). */
#include "llama_server.h"
#include <stdio.h>
#include <stdlib.h>
#include <pthread.h>

typedef struct {
    void* server;
    int session_id;
    int thread_id;
} thread_data_t;

void* worker_thread(void* arg) {
    thread_data_t* data = (thread_data_t*)arg;
    
    // Create inference task in this session
    char input[256];
    snprintf(input, sizeof(input), 
             "{\"prompt\": \"Hello from thread %d\", \"n_predict\": 30}", 
             data->thread_id);
    
    int task_id;
    llama_error_t err = llama_server_create_task(data->server, data->session_id, 
                                                "completion", input, &task_id);
    if (err != LLAMA_SUCCESS) {
        printf("Thread %d: Failed to create task\n", data->thread_id);
        return NULL;
    }
    
    // Get result
    char result[1024];
    size_t result_size;
    err = llama_server_get_result(data->server, task_id, result, sizeof(result), 
                                 &result_size, 30000);
    if (err == LLAMA_SUCCESS) {
        printf("Thread %d result: %s\n", data->thread_id, result);
    } else {
        printf("Thread %d: Failed to get result: %d\n", data->thread_id, err);
    }
    
    return NULL;
}

int main() {
    void* server = NULL;
    llama_error_t err;
    
    // Initialize server with 4 parallel slots for concurrency
    const char* config = "{\"n_parallel\": 4, \"n_ctx\": 2048, \"cont_batching\": true}";
    err = llama_server_init(&server, config);
    if (err != LLAMA_SUCCESS) {
        printf("Failed to init server: %d\n", err);
        return 1;
    }
    
    // Load model
    err = llama_server_load_model(server, getenv("LLAMA_MODEL") /* the one change: model path from the environment */, NULL);
    if (err != LLAMA_SUCCESS) {
        printf("Failed to load model: %d\n", err);
        llama_server_destroy(server);
        return 1;
    }
    
    // Create multiple sessions and threads
    const int num_threads = 4;
    pthread_t threads[num_threads];
    thread_data_t thread_data[num_threads];
    
    // Create sessions for each thread
    for (int i = 0; i < num_threads; i++) {
        thread_data[i].server = server;
        thread_data[i].thread_id = i;
        
        err = llama_server_create_session(server, NULL, &thread_data[i].session_id);
        if (err != LLAMA_SUCCESS) {
            printf("Failed to create session %d: %d\n", i, err);
            // Cleanup and exit
            for (int j = 0; j < i; j++) {
                llama_server_close_session(server, thread_data[j].session_id);
            }
            llama_server_destroy(server);
            return 1;
        }
    }
    
    // Start concurrent inference
    for (int i = 0; i < num_threads; i++) {
        pthread_create(&threads[i], NULL, worker_thread, &thread_data[i]);
    }
    
    // Wait for all threads to complete
    for (int i = 0; i < num_threads; i++) {
        pthread_join(threads[i], NULL);
    }
    
    // Cleanup all sessions
    for (int i = 0; i < num_threads; i++) {
        llama_server_close_session(server, thread_data[i].session_id);
    }
    
    llama_server_destroy(server);
    return 0;
}
