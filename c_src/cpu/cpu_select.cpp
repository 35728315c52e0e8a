// Chooses the CPU variant of ggml's CPU backend once per process and gives it to ggml's
// registry: this file defines ggml_backend_cpu_reg(), which the registry calls, and forwards
// it to the chosen variant's renamed copy (ggml_backend_cpu_reg.cpu_<variant>).
#include "cpu_select.h"

#include "ggml-backend.h"
#include "lls_cpu_variants.h"   // LLS_CPU_VARIANTS, written by c_src/cpu/CMakeLists.txt

#include <cpuid.h>
#include <cstdint>
#include <cstdlib>
#include <string>

namespace lls::cpu {
namespace {

// Features, weighted as ggml's cpu-feats.cpp scores them: the best variant is the one whose
// features this CPU has and whose weight is highest.
enum Feature : uint32_t {
    F_FMA = 1u << 0, F_F16C = 1u << 1, F_SSE42 = 1u << 2, F_BMI2 = 1u << 3, F_AVX = 1u << 4,
    F_AVX2 = 1u << 5, F_AVX_VNNI = 1u << 6, F_AVX512 = 1u << 7, F_AVX512_VBMI = 1u << 8,
    F_AVX512_BF16 = 1u << 9, F_AVX512_VNNI = 1u << 10, F_AMX_INT8 = 1u << 11, F_AMX_TILE = 1u << 12,
};

struct FeatureName { uint32_t bit; const char * name; };
const FeatureName kNames[] = {
    {F_SSE42, "SSE4.2"}, {F_AVX, "AVX"}, {F_F16C, "F16C"}, {F_FMA, "FMA"}, {F_BMI2, "BMI2"},
    {F_AVX2, "AVX2"}, {F_AVX_VNNI, "AVX-VNNI"}, {F_AVX512, "AVX-512 (F, CD, VL, DQ, BW)"},
    {F_AVX512_VBMI, "AVX512-VBMI"}, {F_AVX512_VNNI, "AVX512-VNNI"}, {F_AVX512_BF16, "AVX512-BF16"},
    {F_AMX_TILE, "AMX-TILE"}, {F_AMX_INT8, "AMX-INT8"},
};

// What the CPU offers and the OS has enabled (XCR0): a CPU with AVX-512 under an OS or
// hypervisor that does not save ZMM state must not run AVX-512 code.
uint32_t detect() {
    unsigned a, b, c, d;
    uint32_t f = 0;
    if (!__get_cpuid(1, &a, &b, &c, &d)) return 0;
    if (c & bit_SSE4_2) f |= F_SSE42;
    const bool osxsave = c & bit_OSXSAVE;
    uint64_t xcr0 = 0;
    if (osxsave) {
        unsigned lo, hi;
        __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
        xcr0 = ((uint64_t) hi << 32) | lo;
    }
    const bool os_ymm = (xcr0 & 0x6) == 0x6;                // SSE + AVX state
    const bool os_zmm = os_ymm && (xcr0 & 0xe0) == 0xe0;    // opmask, ZMM_Hi256, Hi16_ZMM
    const bool os_amx = (xcr0 & 0x60000) == 0x60000;        // XTILECFG, XTILEDATA
    if (os_ymm && (c & bit_AVX)) f |= F_AVX;
    if (os_ymm && (c & bit_FMA)) f |= F_FMA;
    if (os_ymm && (c & bit_F16C)) f |= F_F16C;
    if (__get_cpuid_max(0, nullptr) >= 7) {
        __cpuid_count(7, 0, a, b, c, d);
        if (b & bit_BMI2) f |= F_BMI2;
        if (os_ymm && (b & bit_AVX2)) f |= F_AVX2;
        const unsigned avx512 = bit_AVX512F | bit_AVX512CD | bit_AVX512VL | bit_AVX512DQ | bit_AVX512BW;
        if (os_zmm && (b & avx512) == avx512) f |= F_AVX512;
        if (os_zmm && (c & bit_AVX512VBMI)) f |= F_AVX512_VBMI;
        if (os_zmm && (c & bit_AVX512VNNI)) f |= F_AVX512_VNNI;
        if (os_amx && (d & (1u << 24))) f |= F_AMX_TILE;
        if (os_amx && (d & (1u << 25))) f |= F_AMX_INT8;
        const unsigned max_sub = a;
        if (max_sub >= 1) {
            __cpuid_count(7, 1, a, b, c, d);
            if (os_ymm && (a & (1u << 4))) f |= F_AVX_VNNI;
            if (os_zmm && (a & (1u << 5))) f |= F_AVX512_BF16;
        }
    }
    return f;
}

std::string names(uint32_t bits) {
    std::string s;
    for (const auto & n : kNames) {
        if (bits & n.bit) s += (s.empty() ? "" : ", ") + std::string(n.name);
    }
    return s;
}

// The variants built into this library (LLS_CPU_VARIANTS, written by c_src/cpu/CMakeLists.txt
// as X(name, features)X(...)), each with the renamed registry entry of its ggml-cpu copy.
#define X(v, feats) extern "C" ggml_backend_reg_t reg_##v() __asm__("ggml_backend_cpu_reg.cpu_" #v);
LLS_CPU_VARIANTS
#undef X

struct Variant { const char * name; uint32_t features; ggml_backend_reg_t (*reg)(); };
const Variant kVariants[] = {
#define X(v, feats) {#v, (feats), reg_##v},
    LLS_CPU_VARIANTS
#undef X
};

struct Choice {
    const Variant * variant = nullptr;
    std::string     reason;
    uint32_t        detected = 0;
};

uint32_t weight(uint32_t features) { return features + 1; }   // ggml's bit weights, summed

Choice choose() {
    Choice ch;
    ch.detected = detect();
    const char * forced = std::getenv("LLAMA_NIF_CPU_VARIANT");
    if (forced && *forced) {
        for (const auto & v : kVariants) {
            if (std::string(v.name) != forced) continue;
            const uint32_t missing = v.features & ~ch.detected;
            if (missing) {
                ch.reason = std::string("LLAMA_NIF_CPU_VARIANT=") + forced + ": this CPU lacks " + names(missing);
            } else {
                ch.variant = &v;
            }
            return ch;
        }
        std::string all;
        for (const auto & v : kVariants) all += (all.empty() ? "" : ", ") + std::string(v.name);
        ch.reason = std::string("LLAMA_NIF_CPU_VARIANT=") + forced + ": no such CPU variant in this build (built: " + all + ")";
        return ch;
    }
    for (const auto & v : kVariants) {
        if ((v.features & ~ch.detected) == 0 && (!ch.variant || weight(v.features) > weight(ch.variant->features))) {
            ch.variant = &v;
        }
    }
    if (!ch.variant) {
        const Variant & base = kVariants[0];   // the baseline comes first
        ch.reason = "this CPU lacks " + names(base.features & ~ch.detected) +
                    ": llama_nif's CPU backend needs x86-64-v3 at least (" + names(base.features) + ")";
    }
    return ch;
}

const Choice & chosen() {
    static const Choice ch = choose();   // thread-safe, once per process
    return ch;
}

}  // namespace

const std::string & unsupported_reason() { return chosen().reason; }

Info info() {
    Info in;
    const Choice & ch = chosen();
    in.variant = ch.variant ? ch.variant->name : "";
#ifdef LLS_CPU_NATIVE
    in.native = true;
#else
    in.native = false;
#endif
    for (const auto & v : kVariants) in.built.push_back(v.name);
    for (const auto & n : kNames) {
        if (ch.detected & n.bit) in.detected.push_back(n.name);
    }
    return in;
}

}  // namespace lls::cpu

// ggml's registry registers the CPU backend through this call. With no usable variant it
// gets NULL (which it skips); llama_server_init has refused before that can happen.
extern "C" ggml_backend_reg_t ggml_backend_cpu_reg(void) {
    const auto & ch = lls::cpu::chosen();
    return ch.variant ? ch.variant->reg() : nullptr;
}
