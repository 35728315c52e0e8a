/*
 * llama_server.h - a C API for serving llama.cpp models to many concurrent users.
 *
 * The library wraps llama.cpp's own server core (tools/server: slots, continuous batching,
 * prompt cache, chat templates) behind plain C calls. Requests and results are JSON strings.
 *
 * Conventions that hold for every function below:
 *
 *  - Threading: every function is thread-safe. Any thread may call any function on the same
 *    handle at the same time. No function blocks longer than its documented wait.
 *  - Errors: every function returns an llama_error_t. After a failed call,
 *    llama_server_last_error() on the same thread says why (which key, which file...).
 *    No C++ exception, abort or assert reachable from bad input crosses this boundary.
 *  - Caller buffers (get_result, get_status, get_session_info): the output is UTF-8 JSON,
 *    always NUL-terminated. *actual_size receives its length WITHOUT the NUL, so the buffer
 *    needs actual_size + 1 bytes. If buffer_size is too small the call returns
 *    LLAMA_ERROR_BUFFER_TOO_SMALL, sets *actual_size, writes "" (when buffer_size > 0) and
 *    keeps the data so the caller can retry with a larger buffer. buffer = NULL with
 *    buffer_size = 0 is a size query (it returns LLAMA_ERROR_BUFFER_TOO_SMALL and the size).
 *    actual_size may be NULL when the caller does not need it.
 *    get_status output is rebuilt on every call and its length can change between a size
 *    query and the retry (counters, uptime): retry until it fits.
 *  - Ownership: the library copies every string it is given before returning; the caller
 *    keeps ownership of its buffers. Handles are owned by the library until
 *    llama_server_destroy().
 *  - Ids: session ids and task ids are > 0 and never reused within a handle's life.
 */
#ifndef LLAMA_SERVER_H
#define LLAMA_SERVER_H

#include <stddef.h>

#define LLAMA_SERVER_VERSION_MAJOR 0
#define LLAMA_SERVER_VERSION_MINOR 1
#define LLAMA_SERVER_VERSION_PATCH 0
#define LLAMA_SERVER_VERSION_STRING "0.1.0"
/* major * 10000 + minor * 100 + patch, compare with llama_server_version_number() */
#define LLAMA_SERVER_VERSION_NUMBER \
    (LLAMA_SERVER_VERSION_MAJOR * 10000 + LLAMA_SERVER_VERSION_MINOR * 100 + LLAMA_SERVER_VERSION_PATCH)

#if defined(_WIN32)
#  define LLAMA_SERVER_API __declspec(dllexport)
#elif defined(LLAMA_SERVER_BUILDING)
#  define LLAMA_SERVER_API __attribute__((visibility("default")))
#else
#  define LLAMA_SERVER_API
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* Codes 0..7 and 99 are the original API's; 8.. were added since (never renumbered). */
typedef enum {
    LLAMA_SUCCESS = 0,
    LLAMA_ERROR_INVALID_ARGUMENT = 1,   /* NULL handle/pointer, bad JSON, unknown key, bad value */
    LLAMA_ERROR_OUT_OF_MEMORY = 2,
    LLAMA_ERROR_MODEL_LOAD_FAILED = 3,  /* missing/corrupt file, second load on one handle */
    LLAMA_ERROR_INFERENCE_FAILED = 4,   /* the task ran and failed (see its error JSON) */
    LLAMA_ERROR_SESSION_NOT_FOUND = 5,
    LLAMA_ERROR_SERVER_BUSY = 6,        /* too many queued tasks (max_queued_tasks) */
    LLAMA_ERROR_TIMEOUT = 7,            /* get_result waited timeout_ms, or timeout_write hit */
    LLAMA_ERROR_BUFFER_TOO_SMALL = 8,   /* *actual_size says how much is needed; data kept */
    LLAMA_ERROR_TASK_NOT_FOUND = 9,     /* unknown, already fetched, or expired (timeout_read) */
    LLAMA_ERROR_MODEL_NOT_LOADED = 10,  /* a task or session before llama_server_load_model */
    LLAMA_ERROR_CANCELLED = 11,         /* cancel_task, close_session, destroy, or callback stop */
    LLAMA_ERROR_NOT_SUPPORTED = 12,     /* e.g. an embedding task on a generation model */
    LLAMA_ERROR_UNKNOWN = 99
} llama_error_t;

/* ---------------------------------------------------------------------------------------- */
/* Library information                                                                      */

/** Runtime version as "MAJOR.MINOR.PATCH"; static string. */
LLAMA_SERVER_API const char * llama_server_version(void);

/** Runtime version as LLAMA_SERVER_VERSION_NUMBER; compare with the header's macro. */
LLAMA_SERVER_API int llama_server_version_number(void);

/** Static English name of an error code ("invalid argument", ...); never NULL. */
LLAMA_SERVER_API const char * llama_server_error_string(llama_error_t code);

/**
 * Detail message of the last call on this thread that failed ("unknown key 'n_ctxx' in
 * server config", "cannot open model file '/x.gguf'"), or "" if the last call succeeded.
 * The string is owned by the library and valid until the next llama_server_* call on the
 * same thread.
 */
LLAMA_SERVER_API const char * llama_server_last_error(void);

/** Log levels for llama_server_set_log. */
typedef enum {
    LLAMA_SERVER_LOG_DEBUG = 0,
    LLAMA_SERVER_LOG_INFO = 1,
    LLAMA_SERVER_LOG_WARN = 2,
    LLAMA_SERVER_LOG_ERROR = 3,
    LLAMA_SERVER_LOG_NONE = 4
} llama_server_log_level_t;

/** Receives one log line (NUL-terminated, may end with '\n'). Called from library threads. */
typedef void (*llama_server_log_callback_t)(int level, const char * text, void * user_data);

/**
 * Route the log of the library and of llama.cpp (process-wide). Messages below min_level are
 * dropped; callback NULL writes to stderr. Default: LLAMA_SERVER_LOG_WARN to stderr.
 * Thread-safe; takes effect for all handles.
 */
LLAMA_SERVER_API void llama_server_set_log(int min_level, llama_server_log_callback_t callback,
                                           void * user_data);

/* ---------------------------------------------------------------------------------------- */
/* Server management                                                                        */

/**
 * Create a server handle. No model is loaded yet.
 * @param server_handle [out] receives the handle (set to NULL on failure)
 * @param config_json   [in]  JSON object or NULL for defaults. Keys (all optional):
 *   n_parallel (int, 1..256, default 4): slots, i.e. sequences decoded together
 *   n_ctx (int, 0 or 64..1048576, default 4096): context PER SLOT (0 = model's training ctx)
 *   n_batch (int, 2.., at least n_parallel, default 512), n_ubatch (int, default 512; at most
 *     n_batch). For an embedding model n_batch becomes n_ubatch (an encoder takes each input in
 *     one micro-batch), which must then be at least 2 and at least n_parallel: else
 *     load_model fails with LLAMA_ERROR_INVALID_ARGUMENT
 *   n_threads (int, 1..1024, default: number of cores), n_threads_batch (1..1024, default n_threads)
 *   n_gpu_layers (int, -1 = all; a GPU build only, see get_status "devices"),
 *   main_gpu (int, 0..127, default 0), split_mode ("none", "layer" or "row", default
 *     "layer"), tensor_split (array of numbers >= 0, one share per GPU): as llama.cpp's
 *     -mg, -sm and -ts; ignored without a GPU
 *   flash_attn (true, false or "auto", default "auto"),
 *   cont_batching (bool, default true)
 *   timeout_read (seconds, default 600): unfetched finished results are dropped after this
 *   timeout_write (seconds, default 600): a task still queued after this fails with TIMEOUT
 *   slot_prompt_similarity (0..1, default 0): reuse a slot whose cache shares this much prompt
 *   max_queued_tasks (int, default 256): create_task beyond this returns SERVER_BUSY
 *   cache_ram_mib (int, default 256): host-memory prompt cache, 0 disables. The first
 *     server with a cache fixes glibc's mmap threshold at 1 MiB for the process (mallopt),
 *     so that the cache's freed state buffers go back to the system; the environment
 *     variable LLAMA_SERVER_MALLOC=keep, or a threshold in GLIBC_TUNABLES, prevents it.
 *   log_level ("debug","info","warn","error","none"): the process-wide level of
 *     llama_server_set_log (the callback set there is kept)
 * The first init of a process picks the build of ggml's CPU code that suits this CPU (the
 * best of the library's variants: x86-64-v3 baseline up to AVX-512 VNNI/BF16); the
 * environment variable LLAMA_NIF_CPU_VARIANT=<name> forces one. get_status says which runs.
 * @return LLAMA_SUCCESS; LLAMA_ERROR_INVALID_ARGUMENT for NULL server_handle, invalid JSON,
 *         unknown key, wrong type or out-of-range value (last_error names the key);
 *         LLAMA_ERROR_NOT_SUPPORTED when no variant runs on this CPU (last_error names the
 *         missing features, e.g. AVX2 on a CPU older than x86-64-v3) or LLAMA_NIF_CPU_VARIANT
 *         names one that is not built in or that this CPU cannot run;
 *         LLAMA_ERROR_OUT_OF_MEMORY.
 */
LLAMA_SERVER_API llama_error_t llama_server_init(void ** server_handle, const char * config_json);

/**
 * Load the model (one per handle) and start serving. Blocks while loading (seconds).
 * @param model_path        [in] path of a GGUF file
 * @param model_config_json [in] JSON object or NULL. Keys: n_gpu_layers (int), use_mmap (bool,
 *   default false: the weights are read into memory of the library's own; true maps the file,
 *   as llama.cpp does by default), huge_pages (bool, default true: on Linux the weights read
 *   into memory, the KV cache and the compute buffers are made in 2 MiB pages, madvise
 *   MADV_HUGEPAGE; get_status reports how much the kernel backed),
 *   use_mlock (bool), embedding (bool: load for embedding/rerank instead of generation),
 *   pooling ("none","mean","cls","last","rank"), chat_template (string: a Jinja template or
 *   a built-in template name). A chat template (given, else the model's) may nest brackets
 *   and blocks at most 100 deep, hold at most 150 operators in one tag, and nest macro calls
 *   at most 64 deep while rendering (deeper raises a template error, not a stack overflow).
 *   Each render has a budget: 200,000 loop iterations and macro calls, range() of at most
 *   100,000 elements, 64 MiB of text put together (real templates render 1,000 messages in
 *   3,000-36,000 iterations; Gemma 4's, quadratic in the messages, reaches it near 600).
 *   An encoder (BERT and the other architectures of c_src/core/memoryless_archs.def) can only
 *   embed: it is loaded for embeddings without "embedding": true too, and get_status says
 *   model.embedding_implied. Loaded for embeddings, a model takes each input as one
 *   micro-batch: n_batch becomes n_ubatch, which must be at least 2 and at least n_parallel.
 * @return LLAMA_SUCCESS; LLAMA_ERROR_INVALID_ARGUMENT (NULL, bad JSON/key/value, a chat
 *         template beyond those limits or that cannot render a conversation, server config
 *         the model cannot run with: last_error names the keys);
 *         LLAMA_ERROR_MODEL_LOAD_FAILED (missing or invalid file, already loaded);
 *         LLAMA_ERROR_OUT_OF_MEMORY (the KV cache of n_ctx x n_parallel needs more than the
 *         memory available: MemAvailable, or what is left of the cgroup's limit; checked
 *         before anything is allocated, last_error gives both sizes);
 *         LLAMA_ERROR_NOT_SUPPORTED (an architecture llama.cpp's server cannot run: a
 *         diffusion model, an audio decoder).
 */
LLAMA_SERVER_API llama_error_t llama_server_load_model(void * server_handle,
                                                       const char * model_path,
                                                       const char * model_config_json);

/**
 * Destroy a handle: cancels queued and running tasks, wakes every thread blocked in
 * get_result or stream_inference on it (they return LLAMA_ERROR_CANCELLED), waits for them
 * to leave the library, frees everything. Using the handle afterwards is undefined (like
 * free()). Must not be called from a stream callback of the same handle.
 * A process may also exit (exit(), return from main) with handles alive: an atexit handler
 * cancels their tasks and stops their threads before llama.cpp's globals are torn down.
 * @return LLAMA_SUCCESS; LLAMA_ERROR_INVALID_ARGUMENT for NULL (a no-op).
 */
LLAMA_SERVER_API llama_error_t llama_server_destroy(void * server_handle);

/* ---------------------------------------------------------------------------------------- */
/* Sessions                                                                                 */

/**
 * Create a session: one conversation. Its chat tasks carry the history (system_prompt +
 * earlier turns are prepended, the reply is appended); its tasks run in submission order,
 * one at a time; its KV cache follows it (slot affinity, then the host prompt cache).
 * @param session_config [in] JSON object or NULL. Keys: system_prompt (string),
 *   keep_history (bool, default true), cache_prompt (bool), n_keep (int), and any sampling
 *   key a task accepts (temperature, top_p, top_k, min_p, seed, n_predict, stop, ...) as
 *   this session's default; a task's own keys override them.
 * @param session_id [out] the new id (> 0)
 * @return LLAMA_SUCCESS; LLAMA_ERROR_INVALID_ARGUMENT; LLAMA_ERROR_MODEL_NOT_LOADED.
 */
LLAMA_SERVER_API llama_error_t llama_server_create_session(void * server_handle,
                                                           const char * session_config,
                                                           int * session_id);

/**
 * Close a session: its queued and running tasks are cancelled (their waiters get
 * LLAMA_ERROR_CANCELLED); afterwards the id gives LLAMA_ERROR_SESSION_NOT_FOUND.
 * @return LLAMA_SUCCESS; LLAMA_ERROR_INVALID_ARGUMENT; LLAMA_ERROR_SESSION_NOT_FOUND.
 */
LLAMA_SERVER_API llama_error_t llama_server_close_session(void * server_handle, int session_id);

/* ---------------------------------------------------------------------------------------- */
/* Inference                                                                                */

/**
 * Queue a task and return at once; fetch its result with llama_server_get_result().
 * @param session_id [in] a session, or <= 0 for a stateless one-shot task
 * @param task_type  [in] "completion" (input as llama.cpp's /completion: prompt, n_predict,
 *   temperature, stop, ...), "chat" (as /v1/chat/completions: messages, max_tokens or
 *   n_predict, ...), "embedding" (content: string or array), "rerank" (query, documents, top_n),
 *   "tokenize" (content: a string, or an array of strings and token ids; add_special, default
 *   false; parse_special, default true; with_pieces, default false) giving {"tokens": [ids]}
 *   or, with pieces, {"tokens": [{"id", "piece"}]} (a piece that is not valid UTF-8 alone is
 *   an array of its bytes), and "detokenize" (tokens: [ids]) giving {"content": text}, as
 *   llama-server's /tokenize and /detokenize. tokenize and detokenize need only the model's
 *   vocabulary: they are computed by this call (no slot, no queue; they do not stream).
 * @param input_json [in] JSON object. Validated here: unknown keys and wrong types fail now;
 *   a null value means the key is not given. A "grammar" (GBNF, with a "root" rule, nesting
 *   parentheses at most 100 deep, no repetition {m,n} with n < m, expanding to at most
 *   4,194,304 rule elements) is parsed here too; so is the grammar llama.cpp makes of a
 *   "json_schema", "response_format" or "tools", under the same limits. A chat renders the
 *   chat template here, under the budget described at llama_server_load_model.
 * @param task_id    [out] the new id (> 0)
 * @return LLAMA_SUCCESS; LLAMA_ERROR_INVALID_ARGUMENT (NULL, bad JSON, unknown task type or
 *   key, a grammar that does not parse or is beyond those limits, a render over the
 *   template budget, a token id outside the model's vocabulary); LLAMA_ERROR_SESSION_NOT_FOUND;
 *   LLAMA_ERROR_MODEL_NOT_LOADED;
 *   LLAMA_ERROR_NOT_SUPPORTED (task type the loaded model cannot do);
 *   LLAMA_ERROR_SERVER_BUSY (max_queued_tasks unfinished tasks already).
 */
LLAMA_SERVER_API llama_error_t llama_server_create_task(void * server_handle,
                                                        int session_id,
                                                        const char * task_type,
                                                        const char * input_json,
                                                        int * task_id);

/**
 * Wait for a task's result and copy it into the caller's buffer.
 * Chat results have the OpenAI chat.completion shape; completion, embedding and rerank the
 * shape of llama.cpp's server. Bulky fields (generation_settings, prompt, token ids,
 * probabilities) appear only when the input asked for them ("verbose": true,
 * "return_tokens": true, "n_probs": N).
 * @param timeout_ms [in] longest wait in milliseconds; 0 waits forever.
 * @return LLAMA_SUCCESS: the result was copied and the task id released (a second call
 *         gives LLAMA_ERROR_TASK_NOT_FOUND).
 *         LLAMA_ERROR_TIMEOUT: not finished yet; the task goes on, call again later.
 *         LLAMA_ERROR_BUFFER_TOO_SMALL: see the buffer convention above; nothing released.
 *         LLAMA_ERROR_INFERENCE_FAILED / LLAMA_ERROR_TIMEOUT (queued too long) /
 *         LLAMA_ERROR_CANCELLED: the task ended without success; the buffer holds
 *         {"error": {"code": <llama_error_t>, "type":..., "message":...}}; a cancelled
 *         generation task also carries "content" (the text generated before the cancel) and
 *         "tokens_predicted". The id is released. (A bad "grammar" fails create_task.)
 *         LLAMA_ERROR_TASK_NOT_FOUND; LLAMA_ERROR_INVALID_ARGUMENT.
 */
LLAMA_SERVER_API llama_error_t llama_server_get_result(void * server_handle,
                                                       int task_id,
                                                       char * result_buffer,
                                                       size_t buffer_size,
                                                       size_t * actual_size,
                                                       int timeout_ms);

/**
 * Streaming callback. chunk is one JSON object (NUL-terminated; chunk_size excludes the NUL)
 * valid only during the call: the OpenAI chat.completion.chunk shape for chat, llama.cpp's
 * stream shape for completion. is_final = 1 on the last call, which carries "timings" (and,
 * for chat, "usage" when the input sets "stream_options": {"include_usage": true}), or
 * {"error": ...} if the task failed. Return 0 to continue, non-zero to stop.
 * Runs on the thread that called llama_server_stream_inference.
 */
typedef int (*llama_stream_callback_t)(const char * chunk, size_t chunk_size,
                                       int is_final, void * user_data);

/**
 * Run one task and stream it through callback; blocks until it ends. Input with "messages"
 * is a chat task, with "prompt" a completion task. It runs in the session's order like any
 * task (session_id <= 0: stateless).
 * @return LLAMA_SUCCESS after the final chunk; LLAMA_ERROR_CANCELLED if the callback returned
 *   non-zero (no further calls are made), or the task was cancelled by close_session or
 *   destroy; LLAMA_ERROR_INFERENCE_FAILED (the final chunk carried the error); the
 *   create_task codes for bad input; LLAMA_ERROR_INVALID_ARGUMENT for a NULL callback.
 */
LLAMA_SERVER_API llama_error_t llama_server_stream_inference(void * server_handle,
                                                             int session_id,
                                                             const char * input_json,
                                                             llama_stream_callback_t callback,
                                                             void * user_data);

/**
 * Cancel a queued or running task, from any thread. A thread waiting in get_result wakes
 * with LLAMA_ERROR_CANCELLED. Cancelling a finished, unfetched task discards its result.
 * @return LLAMA_SUCCESS; LLAMA_ERROR_TASK_NOT_FOUND; LLAMA_ERROR_INVALID_ARGUMENT.
 */
LLAMA_SERVER_API llama_error_t llama_server_cancel_task(void * server_handle, int task_id);

/* ---------------------------------------------------------------------------------------- */
/* Status                                                                                   */

/**
 * Server status JSON: state ("no_model", "ready"), model facts (with architecture;
 * embedding, embedding_implied (an encoder loaded without "embedding": true) and rerank;
 * n_layer and gpu_layers, the layers offloaded to GPUs; use_mmap; huge_pages: enabled, system (the kernel's setting:
 * "always", "madvise", "never" or "unavailable"), requested_bytes (the buffers made in 2 MiB
 * pages) and backed_bytes_at_load (how much of them the kernel backed with 2 MiB pages right
 * after the load)), devices (each device ggml computes on: name, description,
 * type "cpu"/"gpu"/"igpu"/"accel", memory_total and memory_free in bytes), every slot (id, busy,
 * session, task, tokens cached), session count, task counts (queued: waiting for a slot;
 * running: handed to the core, where a completion or chat holds a slot; unfetched: finished,
 * result not yet read), totals (prompt tokens, generated tokens, tokens per second), and
 * backend: cpu_variant (the build of ggml's CPU code in use), cpu_build ("portable" or
 * "native"), cpu_variants_built, cpu_features (x86 features this CPU and OS offer), backends
 * (the ggml backends' names) and system_info (each backend with the features its code was
 * built with, as llama.cpp's llama_print_system_info prints them). Buffer convention above.
 * @return LLAMA_SUCCESS; LLAMA_ERROR_BUFFER_TOO_SMALL; LLAMA_ERROR_INVALID_ARGUMENT.
 */
LLAMA_SERVER_API llama_error_t llama_server_get_status(void * server_handle,
                                                       char * status_buffer,
                                                       size_t buffer_size,
                                                       size_t * actual_size);

/**
 * Session info JSON: id, config, message count, tokens in context, cached tokens, prompt and
 * generated token totals, task count, dropped turns, slot (or null). Buffer convention above.
 * @return LLAMA_SUCCESS; LLAMA_ERROR_BUFFER_TOO_SMALL; LLAMA_ERROR_SESSION_NOT_FOUND;
 *         LLAMA_ERROR_INVALID_ARGUMENT.
 */
LLAMA_SERVER_API llama_error_t llama_server_get_session_info(void * server_handle,
                                                             int session_id,
                                                             char * info_buffer,
                                                             size_t buffer_size,
                                                             size_t * actual_size);

#ifdef __cplusplus
}
#endif

#endif /* LLAMA_SERVER_H */
