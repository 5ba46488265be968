#include "parallel.hpp"

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <exception>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "crf/crf.hpp"

#if defined(__unix__) || defined(__APPLE__)
#include <pthread.h>
#endif

namespace deeplab::crf {
namespace detail {
namespace {

thread_local bool t_in_region = false;
thread_local int t_thread_limit = 0;  // set by ThreadScope; 0: the process-wide count

struct RegionGuard {
    bool previous;
    RegionGuard() : previous(t_in_region) { t_in_region = true; }
    ~RegionGuard() { t_in_region = previous; }
};

class ThreadPool {
  public:
    explicit ThreadPool(int threads) { resize(threads); }
    ~ThreadPool() { stop_workers(); }

    int size() const { return static_cast<int>(workers_.size()) + 1; }

    void resize(int threads) {
        std::lock_guard<std::mutex> use(use_mutex_);
        stop_workers();
        stopping_ = false;
        for (int i = 1; i < threads; ++i) workers_.emplace_back([this, i] { worker_loop(i - 1); });
    }

    // Runs chunk_fn on the caller and up to `helpers` workers. Returns false (and runs nothing) when the pool is
    // busy with another caller's job. Workers join while chunks are left; the caller, once it finds none left,
    // closes the job and waits only for the workers that joined: a worker that the OS has not scheduled yet (the
    // cores busy with other work, e.g. a network in the same pipeline) does not hold the caller up.
    bool try_run(std::int64_t n_chunks, int helpers, FunctionRef<void(std::int64_t)> chunk_fn) {
        std::unique_lock<std::mutex> use(use_mutex_, std::try_to_lock);
        if (!use.owns_lock()) return false;
        {
            std::lock_guard<std::mutex> lk(mutex_);
            job_ = &chunk_fn;  // outlives the job: try_run waits for every worker
            n_chunks_ = n_chunks;
            next_chunk_.store(0);
            helpers_ = std::min(helpers, static_cast<int>(workers_.size()));
            open_ = true;
            active_ = 0;
            error_ = nullptr;
            ++generation_;
        }
        cv_.notify_all();
        work_on_job(chunk_fn, n_chunks);
        std::unique_lock<std::mutex> lk(mutex_);
        open_ = false;
        done_cv_.wait(lk, [this] { return active_ == 0; });
        job_ = nullptr;
        if (error_) {
            std::exception_ptr e = error_;
            error_ = nullptr;
            lk.unlock();
            std::rethrow_exception(e);
        }
        return true;
    }

  private:
    void work_on_job(FunctionRef<void(std::int64_t)> fn, std::int64_t n_chunks) {
        RegionGuard guard;
        for (;;) {
            const std::int64_t c = next_chunk_.fetch_add(1);
            if (c >= n_chunks) break;
            try {
                fn(c);
            } catch (...) {  // first error wins; the remaining chunks are skipped
                std::lock_guard<std::mutex> lk(mutex_);
                if (!error_) error_ = std::current_exception();
                next_chunk_.store(n_chunks);
            }
        }
    }

    void worker_loop(int index) {
        std::uint64_t seen = 0;
        for (;;) {
            const FunctionRef<void(std::int64_t)>* job;
            std::int64_t n_chunks;
            {
                std::unique_lock<std::mutex> lk(mutex_);
                cv_.wait(lk, [&] { return stopping_ || generation_ != seen; });
                if (stopping_) return;
                seen = generation_;
                if (index >= helpers_ || !open_) continue;  // fewer threads asked for, or the chunks are all taken
                ++active_;
                job = job_;
                n_chunks = n_chunks_;
            }
            work_on_job(*job, n_chunks);
            {
                std::lock_guard<std::mutex> lk(mutex_);
                if (--active_ == 0) done_cv_.notify_one();
            }
        }
    }

    void stop_workers() {
        {
            std::lock_guard<std::mutex> lk(mutex_);
            stopping_ = true;
        }
        cv_.notify_all();
        for (auto& w : workers_) w.join();
        workers_.clear();
    }

    std::mutex use_mutex_;  // one job at a time
    std::mutex mutex_;
    std::condition_variable cv_, done_cv_;
    std::vector<std::thread> workers_;
    const FunctionRef<void(std::int64_t)>* job_ = nullptr;
    std::int64_t n_chunks_ = 0;
    std::atomic<std::int64_t> next_chunk_{0};
    std::exception_ptr error_;
    int active_ = 0, helpers_ = 0;  // active_: workers that joined the current job and have not finished
    bool open_ = false;             // workers may still join the current job
    std::uint64_t generation_ = 0;
    bool stopping_ = false;
};

int default_threads() {
    const unsigned hc = std::thread::hardware_concurrency();
    return hc == 0 ? 1 : static_cast<int>(std::min(hc, 256u));
}

std::mutex g_pool_mutex;
std::shared_ptr<ThreadPool> g_pool;
std::atomic<int> g_threads{0};

// After fork() the child has the pool object but not its threads: forget it (without destroying
// it) so the child starts a fresh one. g_pool_mutex is held across fork so it is consistent.
void install_fork_handlers() {
#if defined(__unix__) || defined(__APPLE__)
    static const int once = pthread_atfork([] { g_pool_mutex.lock(); }, [] { g_pool_mutex.unlock(); },
                                           [] {
                                               new std::shared_ptr<ThreadPool>(std::move(g_pool));  // leaked on purpose
                                               g_pool_mutex.unlock();
                                           });
    (void)once;
#endif
}

std::shared_ptr<ThreadPool> pool() {
    install_fork_handlers();
    std::lock_guard<std::mutex> lk(g_pool_mutex);
    if (!g_pool) {
        int n = g_threads.load();
        if (n <= 0) n = default_threads();
        g_threads.store(n);
        g_pool = std::make_shared<ThreadPool>(n);
    }
    return g_pool;
}

}  // namespace

bool in_parallel_region() {
    return t_in_region;
}

void parallel_for(std::int64_t n, std::int64_t grain, FunctionRef<void(std::int64_t, std::int64_t)> fn) {
    if (n <= 0) return;
    grain = std::max<std::int64_t>(grain, 1);
    const int threads = (t_in_region || n <= grain) ? 1 : num_threads();
    if (threads <= 1) {
        fn(0, n);
        return;
    }
    // A few chunks per thread balance uneven work without much scheduling overhead.
    std::int64_t n_chunks = std::min<std::int64_t>((n + grain - 1) / grain, std::int64_t{threads} * 4);
    const std::int64_t step = (n + n_chunks - 1) / n_chunks;
    n_chunks = (n + step - 1) / step;
    const auto chunk = [&](std::int64_t c) { fn(c * step, std::min(n, (c + 1) * step)); };
    auto p = pool();
    if (!p->try_run(n_chunks, threads - 1, chunk)) fn(0, n);
}

void parallel_tasks(std::int64_t n, FunctionRef<void(std::int64_t)> fn) {
    if (n <= 0) return;
    const int threads = num_threads();
    if (t_in_region || n == 1 || threads <= 1) {
        for (std::int64_t i = 0; i < n; ++i) fn(i);
        return;
    }
    auto p = pool();
    if (!p->try_run(n, threads - 1, fn))
        for (std::int64_t i = 0; i < n; ++i) fn(i);
}

}  // namespace detail

void set_num_threads(int n) {
    if (n <= 0) n = detail::default_threads();
    n = std::min(n, 1024);
    std::lock_guard<std::mutex> lk(detail::g_pool_mutex);
    detail::g_threads.store(n);
    if (detail::g_pool && detail::g_pool->size() != n) detail::g_pool = std::make_shared<detail::ThreadPool>(n);
}

int num_threads() {
    int n = detail::g_threads.load();
    if (n <= 0) n = detail::default_threads();
    return detail::t_thread_limit > 0 ? std::min(n, detail::t_thread_limit) : n;
}

ThreadScope::ThreadScope(int threads) : previous_(detail::t_thread_limit) {
    if (threads > 0) detail::t_thread_limit = threads;
}

ThreadScope::~ThreadScope() {
    detail::t_thread_limit = previous_;
}

}  // namespace deeplab::crf
