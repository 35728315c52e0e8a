// get_status and get_session_info: built from the driver's own bookkeeping, so they never
// wait for the loop thread.
#include "core.h"
#include "cpu_select.h"
#include "huge_pages.h"

#include "ggml-backend.h"

namespace lls {

namespace {

// What runs: the CPU variant chosen for this machine, the features found, and the ggml
// backends with the features their code was built with, as llama.cpp's system info line
// (llama_print_system_info, made here without its shared static buffer). Fixed for the
// process: built and serialised once, then spliced into every status (copying and dumping
// it each time was a third of get_status's cost).
const std::string & backend_text() {
    static const std::string text = [] {
        const cpu::Info ci = cpu::info();
        json b = json::object();
        b["cpu_variant"] = ci.variant;
        b["cpu_build"] = ci.native ? "native" : "portable";
        b["cpu_variants_built"] = ci.built;
        b["cpu_features"] = ci.detected;
        std::string sys;
        json names = json::array();
        for (size_t i = 0; i < ggml_backend_reg_count(); i++) {
            ggml_backend_reg_t reg = ggml_backend_reg_get(i);
            names.push_back(ggml_backend_reg_name(reg));
            auto get = (ggml_backend_get_features_t) ggml_backend_reg_get_proc_address(reg, "ggml_backend_get_features");
            sys += std::string(sys.empty() ? "" : " ") + ggml_backend_reg_name(reg) + " :";
            for (auto * f = get ? get(reg) : nullptr; f && f->name; f++) {
                sys += std::string(" ") + f->name + " = " + f->value + " |";
            }
        }
        b["backends"] = names;
        b["system_info"] = sys;
        return b.dump_safe();
    }();
    return text;
}

// Every device ggml can compute on (the CPU; GPUs in a GPU build that finds a driver and a
// GPU), with its memory now: asked each time, outside the lock.
json devices_json(int * n_gpus) {
    json out = json::array();
    *n_gpus = 0;
    for (size_t i = 0; i < ggml_backend_dev_count(); i++) {
        ggml_backend_dev_t dev = ggml_backend_dev_get(i);
        size_t free = 0, total = 0;
        ggml_backend_dev_memory(dev, &free, &total);
        const enum ggml_backend_dev_type type = ggml_backend_dev_type(dev);
        const char * kind = type == GGML_BACKEND_DEVICE_TYPE_CPU ? "cpu"
                          : type == GGML_BACKEND_DEVICE_TYPE_GPU ? "gpu"
                          : type == GGML_BACKEND_DEVICE_TYPE_IGPU ? "igpu" : "accel";
        if (type == GGML_BACKEND_DEVICE_TYPE_GPU || type == GGML_BACKEND_DEVICE_TYPE_IGPU) (*n_gpus)++;
        out.push_back({{"name", ggml_backend_dev_name(dev)}, {"description", ggml_backend_dev_description(dev)},
                       {"type", kind}, {"memory_total", total}, {"memory_free", free}});
    }
    return out;
}

}  // namespace

std::string Server::status_json() {
    int n_gpus = 0;
    json devices = devices_json(&n_gpus);
    std::lock_guard<std::mutex> lk(mu_);
    json j = json::object();
    j["state"] = loaded_ ? (stopping_ ? "stopping" : "ready") : "no_model";
    j["version"] = LLAMA_SERVER_VERSION_STRING;
    if (core_) {
        const auto & m = *core_->meta;
        json model = json::object();
        model["name"] = m.model_name;
        model["path"] = m.model_path;
        model["size"] = m.model_size;
        model["n_params"] = m.model_n_params;
        model["n_ctx_train"] = m.model_n_ctx_train;
        model["n_embd"] = m.model_n_embd_inp;
        model["n_vocab"] = m.model_vocab_n_tokens;
        model["ftype"] = m.model_ftype;
        model["architecture"] = core_->arch;
        model["embedding"] = core_->embedding;
        model["embedding_implied"] = core_->embedding_implied;   // an encoder, loaded without "embedding": true
        model["rerank"] = core_->rerank;
        // as llama.cpp places them: the last n_gpu_layers of n_layer + 1 (the output layer)
        const int n_layer = llama_model_n_layer(core_->model);
        const int want = core_->params.n_gpu_layers < 0 ? n_layer + 1 : core_->params.n_gpu_layers;
        model["n_layer"] = n_layer;
        model["gpu_layers"] = n_gpus > 0 ? std::min(want, n_layer + 1) : 0;
        // where its CPU memory lies: the weights mapped from the file or read into our own
        // buffers, and how much of those the kernel backs with 2 MiB pages (core/huge_pages.cpp)
        model["use_mmap"] = core_->use_mmap;
        model["huge_pages"] = {{"enabled", core_->huge_pages}, {"system", huge_pages::system_mode()},
                               {"requested_bytes", huge_pages::requested_bytes(this)},
                               {"backed_bytes_at_load", core_->huge_page_backed}};
        j["model"] = model;
        j["n_ctx_slot"] = core_->n_ctx_slot;
    } else {
        j["model"] = nullptr;
    }
    j["n_parallel"] = cfg_.n_parallel;
    j["devices"] = std::move(devices);

    std::map<int, int> session_of_task;
    for (const TaskPtr & t : tasks_) session_of_task[t->id] = t->session_id;
    json slots = json::array();
    for (int i = 0; i < slots_.size(); i++) {
        json s = json::object();
        s["id"] = i;
        const int tid = slots_.task(i);
        s["busy"] = tid != 0;
        s["task"] = tid != 0 ? shown_task_id(tid) : json(nullptr);
        const int sid = tid != 0 ? session_of_task[tid] : 0;
        s["session"] = sid > 0 ? json(sid) : json(nullptr);
        s["tokens_cached"] = slots_.tokens_cached(i);
        slots.push_back(s);
    }
    j["slots"] = slots;

    int queued = 0, running = 0, unfetched = 0;
    for (const TaskPtr & tp : tasks_) {
        const Task & t = *tp;
        // running = handed to the core (on a slot), so counts agree with "slots"
        switch (t.state) {
            case TaskState::done:    unfetched++; break;
            case TaskState::running: running++;   break;
            case TaskState::queued:  queued++;    break;
        }
    }
    json tasks = json::object();
    tasks["queued"] = queued;
    tasks["running"] = running;
    tasks["unfetched"] = unfetched;
    tasks["max_queued"] = cfg_.max_queued_tasks;
    j["tasks"] = tasks;
    j["sessions"] = (int) sessions_.size();

    json totals = json::object();
    totals["tasks_completed"] = total_tasks_;
    totals["prompt_tokens"] = total_prompt_tokens_;
    totals["generated_tokens"] = total_generated_tokens_;
    // per-sequence generation speed, as llama-server's predicted_tokens_seconds
    totals["tokens_per_second"] = total_gen_ms_ > 0 ? total_generated_tokens_ / (total_gen_ms_ / 1000.0) : 0.0;
    totals["uptime_s"] = std::chrono::duration<double>(Clock::now() - started_at_).count();
    j["totals"] = totals;
    std::string out = j.dump_safe();   // an object: ends in '}'
    out.insert(out.size() - 1, ",\"backend\":" + backend_text());
    return out;
}

json Server::shown_task_id(int task_id) const {
    const TaskPtr t = tasks_.find(task_id);
    if (!t) return task_id;
    const long long pub = t->listener ? t->listener->public_id() : 0;
    return pub > 0 ? json(pub) : json(task_id);
}

std::string Server::session_info_json(int session_id) {
    std::lock_guard<std::mutex> lk(mu_);
    const Session * sp = sessions_.find(session_id);
    if (!sp) {
        fail(LLAMA_ERROR_SESSION_NOT_FOUND, "no session " + std::to_string(session_id));
    }
    const Session & s = *sp;
    json j = json::object();
    j["id"] = s.id;
    j["config"] = s.config;
    j["keep_history"] = s.keep_history;
    j["message_count"] = (int) s.history.size();
    j["tokens_in_context"] = s.tokens_in_context;
    j["cached_tokens"] = s.cached_tokens;
    j["prompt_tokens"] = s.n_prompt_tokens;
    j["generated_tokens"] = s.n_generated_tokens;
    j["task_count"] = s.n_tasks;
    j["queued_tasks"] = (int) s.pending.size();
    j["running_task"] = s.running ? shown_task_id(s.running->id) : json(nullptr);
    j["dropped_turns"] = s.dropped_turns;
    const bool on_slot = s.last_slot >= 0 && s.running && slots_.task(s.last_slot) == s.running->id;
    j["slot"] = on_slot || (s.last_slot >= 0 && slots_.is_free(s.last_slot)) ? json(s.last_slot) : json(nullptr);
    return j.dump_safe();
}

}  // namespace lls
