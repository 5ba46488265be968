// A small persistent thread pool with a blocking parallel_for (private to the library).
#pragma once

#include <cstdint>
#include <functional>

namespace deeplab::crf::detail {

// Runs fn(begin, end) over [0, n) split into contiguous chunks of at least `grain` items, on up to
// num_threads() threads (the caller included). Nested calls, and calls made while another thread
// owns the pool, run serially in the calling thread, so the pool never deadlocks or oversubscribes.
void parallel_for(std::int64_t n, std::int64_t grain, const std::function<void(std::int64_t, std::int64_t)>& fn);

// Same, with exactly one chunk per index (fn(i, i + 1)); used for "one task per image" batches.
void parallel_tasks(std::int64_t n, const std::function<void(std::int64_t)>& fn);

// True while the calling thread is executing inside a parallel region.
bool in_parallel_region();

}  // namespace deeplab::crf::detail
