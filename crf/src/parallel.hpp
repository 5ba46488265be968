// A small persistent thread pool with a blocking parallel_for (private to the library).
#pragma once

#include <cstdint>
#include <type_traits>
#include <utility>

namespace deeplab::crf::detail {

// A non-owning reference to a callable (no allocation, unlike std::function).
template <class Sig>
class FunctionRef;
template <class R, class... A>
class FunctionRef<R(A...)> {
  public:
    template <class F, class = std::enable_if_t<!std::is_same_v<std::decay_t<F>, FunctionRef>>>
    FunctionRef(F&& f) noexcept  // NOLINT: implicit on purpose
        : obj_(const_cast<void*>(static_cast<const void*>(&f))), call_([](void* o, A... a) -> R {
              return (*static_cast<std::remove_reference_t<F>*>(o))(std::forward<A>(a)...);
          }) {}
    R operator()(A... a) const { return call_(obj_, std::forward<A>(a)...); }

  private:
    void* obj_;
    R (*call_)(void*, A...);
};

// Runs fn(begin, end) over [0, n) split into contiguous chunks of at least `grain` items, on up to
// num_threads() threads (the caller included). Nested calls, and calls made while another thread
// owns the pool, run serially in the calling thread, so the pool never deadlocks or oversubscribes.
void parallel_for(std::int64_t n, std::int64_t grain, FunctionRef<void(std::int64_t, std::int64_t)> fn);

// Same, with exactly one chunk per index (fn(i, i + 1)); used for "one task per image" batches.
void parallel_tasks(std::int64_t n, FunctionRef<void(std::int64_t)> fn);

// True while the calling thread is executing inside a parallel region.
bool in_parallel_region();

}  // namespace deeplab::crf::detail
