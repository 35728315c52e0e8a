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
    bool rerank = false;
};

// Inputs tokenized when the task is created: a completion's prompt, a stateless chat's
// rendered prompt, embedding/rerank inputs.
struct PreTokenized {
    std::vector<server_tokens> inputs;
    std::vector<std::string>   documents;   // rerank: for return_text
    json chat_body;                         // stateless chat: the request as the template rendered it
};

// A no-op result that wakes the driver out of its wait on the results queue.
struct WakeResult : server_task_result {
    json to_json() override { return nullptr; }
};

}  // namespace lls
