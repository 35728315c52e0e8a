// Every decode step streams all of the model's weights through the CPU, hundreds of MiB: in
// 4 KiB pages that is a TLB miss every few cache lines, and how costly those are depends on
// where the pages happen to lie (a page cache that has aged made a mapped model up to 13%
// slower; README, "Huge pages"). ggml makes its CPU buffers (weights read without mmap,
// repacked weights, KV cache, compute buffers) with ggml_aligned_malloc, which we wrap
// (c_src/link/huge_page_buffers.cpp): a buffer of 2 MiB or more made on a thread that asked
// for it gets its own 2 MiB-aligned mapping with madvise(MADV_HUGEPAGE), before anything is
// written to it, so the kernel backs it with 2 MiB pages from the first touch where it can
// (THP "always" or "madvise"; with "never" it stays in 4 KiB pages and works the same).
#include "huge_pages.h"

#include <sys/mman.h>

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <map>
#include <mutex>

namespace lls::huge_pages {

namespace {

constexpr size_t kPage = size_t(2) << 20;   // the x86-64 PMD page; madvise rounds within it

thread_local const void * t_owner = nullptr;

struct Block {
    size_t len;
    const void * owner;
};

// Never destroyed: ggml may free a buffer during exit, after static destructors have run.
std::mutex & mu() {
    static auto * m = new std::mutex;
    return *m;
}
std::map<uintptr_t, Block> & blocks() {
    static auto * b = new std::map<uintptr_t, Block>;
    return *b;
}

size_t round_up(size_t n) { return (n + kPage - 1) & ~(kPage - 1); }

// Whether [lo, hi) lies within blocks of ours: the kernel merges neighbouring mappings with
// the same flags, so one line of smaps may span several of our blocks.
bool covered(const std::map<uintptr_t, size_t> & mine, uintptr_t lo, uintptr_t hi) {
    auto it = mine.upper_bound(lo);
    if (it == mine.begin()) return false;
    --it;
    uintptr_t end = it->first + it->second;
    if (lo >= end) return false;
    while (end < hi) {
        if (++it == mine.end() || it->first != end) return false;
        end += it->second;
    }
    return true;
}

}  // namespace

void use_for_this_thread(const void * owner) { t_owner = owner; }

size_t requested_bytes(const void * owner) {
    std::lock_guard<std::mutex> lk(mu());
    size_t n = 0;
    for (const auto & [start, b] : blocks()) n += b.owner == owner ? b.len : 0;
    return n;
}

size_t backed_bytes(const void * owner) {
    std::map<uintptr_t, size_t> mine;   // start -> len
    {
        std::lock_guard<std::mutex> lk(mu());
        for (const auto & [start, b] : blocks()) if (b.owner == owner) mine[start] = b.len;
    }
    if (mine.empty()) return 0;
    std::ifstream f("/proc/self/smaps");
    std::string line;
    size_t total = 0;
    bool inside = false;   // the current mapping lies within ours
    while (std::getline(f, line)) {
        unsigned long lo = 0, hi = 0;
        if (std::sscanf(line.c_str(), "%lx-%lx ", &lo, &hi) == 2) {
            inside = covered(mine, lo, hi);
        } else if (inside && line.compare(0, 14, "AnonHugePages:") == 0) {
            total += std::strtoull(line.c_str() + 14, nullptr, 10) * 1024;
        }
    }
    return total;
}

const std::string & system_mode() {
    static const std::string mode = [] {
        std::ifstream f("/sys/kernel/mm/transparent_hugepage/enabled");
        std::string s;
        if (!std::getline(f, s)) return std::string("unavailable");
        const size_t a = s.find('['), b = s.find(']');   // "always [madvise] never"
        return a != std::string::npos && b > a ? s.substr(a + 1, b - a - 1) : std::string("unavailable");
    }();
    return mode;
}

void * alloc(size_t size) noexcept {
    const void * owner = t_owner;
    if (owner == nullptr || size < kPage) return nullptr;
    const size_t len = round_up(size);
    // one page more than needed, then the unaligned head and the tail handed back
    char * raw = (char *) mmap(nullptr, len + kPage, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (raw == MAP_FAILED) return nullptr;
    char * start = (char *) round_up((size_t) (uintptr_t) raw);
    if (start > raw) munmap(raw, (size_t) (start - raw));
    if (raw + len + kPage > start + len) munmap(start + len, (size_t) (raw + len + kPage - (start + len)));
#ifdef MADV_HUGEPAGE   // Linux; EINVAL where THP is not built in: 4 KiB pages, same result
    madvise(start, len, MADV_HUGEPAGE);
#endif
    try {
        std::lock_guard<std::mutex> lk(mu());
        blocks()[(uintptr_t) start] = Block{len, owner};
    } catch (...) {
        munmap(start, len);
        return nullptr;
    }
    return start;
}

bool release(void * ptr) noexcept {
    if (ptr == nullptr) return false;
    size_t len = 0;
    {
        std::lock_guard<std::mutex> lk(mu());
        auto it = blocks().find((uintptr_t) ptr);
        if (it == blocks().end()) return false;
        len = it->second.len;
        blocks().erase(it);
    }
    munmap(ptr, len);
    return true;
}

}  // namespace lls::huge_pages
