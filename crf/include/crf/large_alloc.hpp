// Allocator for the CRF's large buffers (lattices, vertex values, probabilities): freed blocks of
// 2 MiB and more are kept in a small process-wide cache (bounded, see set_buffer_cache_limit), so a
// CRF per video frame reuses memory instead of faulting in tens of MiB of fresh pages every time.
// Small blocks use the ordinary operator new.
#pragma once

#include <cstddef>
#include <new>
#include <type_traits>
#include <utility>
#include <vector>

namespace deeplab::crf {

namespace detail {
constexpr std::size_t kLargeBlock = std::size_t{1} << 21;
void* large_allocate(std::size_t bytes);
void large_deallocate(void* p) noexcept;
}  // namespace detail

// Bytes of freed large blocks kept for reuse (default: 1 GiB or a quarter of RAM, the smaller);
// 0 releases the cache and disables it.
void set_buffer_cache_limit(std::size_t bytes);

template <class T>
struct LargeAllocator {
    using value_type = T;

    LargeAllocator() noexcept = default;
    template <class U>
    LargeAllocator(const LargeAllocator<U>&) noexcept {}

    static bool large(std::size_t n) { return n * sizeof(T) >= detail::kLargeBlock; }

    T* allocate(std::size_t n) {
        if (n > static_cast<std::size_t>(-1) / sizeof(T)) throw std::bad_alloc();
        return static_cast<T*>(large(n) ? detail::large_allocate(n * sizeof(T)) : ::operator new(n * sizeof(T)));
    }
    void deallocate(T* p, std::size_t n) noexcept {
        if (large(n))
            detail::large_deallocate(p);
        else
            ::operator delete(p);
    }

    // resize() and the size constructor leave new elements default-initialised (uninitialised for
    // arithmetic types: every user overwrites them, and zeroing tens of MiB is a serial pass);
    // assign(n, value) and the (n, value) constructor still fill.
    template <class U>
    void construct(U* p) noexcept(std::is_nothrow_default_constructible_v<U>) {
        ::new (static_cast<void*>(p)) U;
    }
    template <class U, class... Args>
    void construct(U* p, Args&&... args) {
        ::new (static_cast<void*>(p)) U(std::forward<Args>(args)...);
    }

    template <class U>
    bool operator==(const LargeAllocator<U>&) const noexcept {
        return true;
    }
    template <class U>
    bool operator!=(const LargeAllocator<U>&) const noexcept {
        return false;
    }
};

template <class T>
using LargeVector = std::vector<T, LargeAllocator<T>>;

}  // namespace deeplab::crf
