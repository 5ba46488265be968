#include "crf/large_alloc.hpp"

#include <algorithm>
#include <cstdlib>
#include <map>
#include <mutex>
#include <unordered_map>

#if defined(__linux__)
#include <unistd.h>
#endif

namespace deeplab::crf {
namespace detail {
namespace {

struct BlockCache {
    std::mutex mutex;
    std::multimap<std::size_t, void*> free_blocks;  // size -> block
    std::unordered_map<void*, std::size_t> sizes;   // every live or cached block
    std::size_t cached = 0, limit = default_limit();

    static std::size_t default_limit() {
        std::size_t limit = std::size_t{1} << 30;
#if defined(__linux__)
        const long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
        if (pages > 0 && page > 0) limit = std::min(limit, static_cast<std::size_t>(pages) * page / 4);
#endif
        return limit;
    }

    void trim() {  // with the mutex held: drop the largest blocks until under the limit
        while (cached > limit && !free_blocks.empty()) {
            auto it = std::prev(free_blocks.end());
            cached -= it->first;
            sizes.erase(it->second);
            std::free(it->second);
            free_blocks.erase(it);
        }
    }
};

BlockCache& cache() {
    static BlockCache* c = new BlockCache;  // never destroyed: blocks may be freed during exit
    return *c;
}

}  // namespace

void* large_allocate(std::size_t bytes) {
    const std::size_t size = (bytes + kLargeBlock - 1) / kLargeBlock * kLargeBlock;
    BlockCache& c = cache();
    {
        std::lock_guard<std::mutex> lk(c.mutex);
        auto it = c.free_blocks.lower_bound(size);  // smallest cached block that fits, if not too big
        if (it != c.free_blocks.end() && it->first <= 2 * size) {
            void* p = it->second;
            c.cached -= it->first;
            c.free_blocks.erase(it);
            return p;
        }
    }
    void* p = std::aligned_alloc(kLargeBlock, size);
    if (!p) throw std::bad_alloc();
    std::lock_guard<std::mutex> lk(c.mutex);
    c.sizes[p] = size;
    return p;
}

void large_deallocate(void* p) noexcept {
    if (!p) return;
    BlockCache& c = cache();
    std::lock_guard<std::mutex> lk(c.mutex);
    const auto it = c.sizes.find(p);
    if (it == c.sizes.end()) return;
    c.free_blocks.emplace(it->second, p);
    c.cached += it->second;
    c.trim();
}

}  // namespace detail

void set_buffer_cache_limit(std::size_t bytes) {
    detail::BlockCache& c = detail::cache();
    std::lock_guard<std::mutex> lk(c.mutex);
    c.limit = bytes;
    c.trim();
}

}  // namespace deeplab::crf
