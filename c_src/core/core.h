// The llama.cpp objects behind one Server: kept out of server.h so that only the core's
// .cpp files see llama.cpp's server headers.
#pragma once

#include "server.h"

#include "server-common.h"
#include "server-context.h"
#include "server-queue.h"
#include "server-task.h"
#include "mtmd-helper.h"

namespace lls {

struct Server::Core {
    common_params params;                          // as load_model adjusted them
    server_context ctx;
    std::unique_ptr<server_context_meta> meta;
    const llama_vocab * vocab = nullptr;
    const llama_model * model = nullptr;
    mtmd_helper_init_opt init_opt = mtmd_helper_init_opt_default();
    // the reader only lends us the two queues; it never posts, so its destructor is a no-op
    std::unique_ptr<server_response_reader> queues;
    server_queue & tasks() { return queues->queue_tasks; }
    server_response & results() { return queues->queue_results; }
    int n_ctx_slot = 0;
    bool embedding = false;
    bool embedding_implied = false;               // an encoder loaded without "embedding": true
    std::string arch;                              // general.architecture
    bool rerank = false;
    bool use_mmap = false;
    bool huge_pages = false;
    size_t huge_page_backed = 0;                   // of our buffers, read once after the load
};

// Embedding/rerank inputs, tokenized when the task is created.
struct PreTokenized {
    std::vector<server_tokens> inputs;
    std::vector<std::string>   documents;   // rerank: for return_text
};

// What preparing a completion or chat needs, copied from the task and its session.
struct Server::Snapshot {
    json        data;             // input merged over the session's defaults
    json        history;          // the session's conversation so far
    std::string system_prompt;
};

// A completion or chat made ready for llama.cpp: rendered, tokenized, sampling parsed.
struct PreparedTask {
    server_task task;
    std::unique_ptr<task_result_state> state;
    json        new_messages = json::array();
    int         dropped_messages = 0;   // oldest history messages left out to fit the slot
};

// A no-op result that wakes the driver out of its wait on the results queue.
struct WakeResult : server_task_result {
    json to_json() override { return nullptr; }
};

}  // namespace lls
