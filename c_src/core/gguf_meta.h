// A GGUF file's metadata, read without loading tensors (llama.cpp's gguf reader, which checks
// the file's structure): what the load rules need to know before llama.cpp loads the model.
// One object per load_model; every getter answers "absent" when the file could not be read.
#pragma once

#include "gguf.h"

#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

namespace lls {

class GgufMeta {
public:
    explicit GgufMeta(const std::string & path) {
        gguf_init_params gp = {/* no_alloc */ true, /* ctx */ nullptr};
        g_ = gguf_init_from_file(path.c_str(), gp);
    }
    ~GgufMeta() { if (g_) gguf_free(g_); }
    GgufMeta(const GgufMeta &) = delete;
    GgufMeta & operator=(const GgufMeta &) = delete;

    bool ok() const { return g_ != nullptr; }
    bool has(const std::string & key) const { return find(key) >= 0; }
    bool has_prefix(const std::string & prefix) const {
        for (int64_t i = 0; g_ && i < gguf_get_n_kv(g_); i++) {
            if (std::string(gguf_get_key(g_, i)).rfind(prefix, 0) == 0) return true;
        }
        return false;
    }
    std::string str(const std::string & key) const {   // "" when absent
        const int64_t k = find(key);
        return k >= 0 && gguf_get_kv_type(g_, k) == GGUF_TYPE_STRING ? gguf_get_val_str(g_, k) : "";
    }
    // An integer, or an array of them (one per layer): n_layer values, empty when absent, of
    // another type, or an array of another length.
    std::vector<uint64_t> per_layer(const std::string & key, uint32_t n_layer) const {
        const int64_t k = find(key);
        if (k < 0) return {};
        const gguf_type t = gguf_get_kv_type(g_, k);
        if (t == GGUF_TYPE_ARRAY) {
            const gguf_type at = gguf_get_arr_type(g_, k);
            if (gguf_get_arr_n(g_, k) != n_layer || (at != GGUF_TYPE_UINT32 && at != GGUF_TYPE_INT32)) return {};
            const auto * v = static_cast<const int32_t *>(gguf_get_arr_data(g_, k));
            std::vector<uint64_t> out;
            for (uint32_t i = 0; i < n_layer; i++) out.push_back(v[i] > 0 ? (uint64_t) v[i] : 0);
            return out;
        }
        uint64_t v;
        switch (t) {
            case GGUF_TYPE_UINT32: v = gguf_get_val_u32(g_, k); break;
            case GGUF_TYPE_INT32:  v = (uint64_t) std::max(0, gguf_get_val_i32(g_, k)); break;
            case GGUF_TYPE_UINT64: v = gguf_get_val_u64(g_, k); break;
            default: return {};
        }
        return std::vector<uint64_t>(n_layer, v);
    }
    long long scalar(const std::string & key) const {   // -1 when absent
        const auto v = per_layer(key, 1);
        return v.empty() ? -1 : (long long) std::min<uint64_t>(v[0], INT64_MAX);
    }

private:
    int64_t find(const std::string & key) const { return g_ ? gguf_find_key(g_, key.c_str()) : -1; }
    gguf_context * g_ = nullptr;
};

}  // namespace lls
