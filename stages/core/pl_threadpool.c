// Persistent pthread pool with dynamic task distribution (see pl_threadpool.h).
#define _GNU_SOURCE   // sched_getaffinity, CPU_COUNT
#include "pl_threadpool.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define PL_CPU_RELAX() _mm_pause()
#else
#define PL_CPU_RELAX() ((void)0)
#endif

// Spin iterations before a waiting thread sleeps (a few µs): longer spins only burn CPU that other
// processes need when the machine is shared (measured: 200000 spins halved CPU efficiency under load).
#define PL_POOL_SPIN 4000

typedef struct PlPoolWorker {
    PlThreadPool *pool;
    int index;
} PlPoolWorker;

struct PlThreadPool {
    int threads;
    pthread_t *handles;
    PlPoolWorker *workers;
    int started;                  // worker threads successfully created
    pthread_mutex_t mutex;
    pthread_cond_t wake;          // workers wait here for a new generation
    pthread_cond_t done;          // the caller waits here for the workers
    atomic_uint generation;       // bumped for every run
    atomic_int next_task;
    atomic_int busy;              // workers still inside the current run
    int stop;
    PlPoolFn fn;
    void *ctx;
    int ntasks;
};

static void pl_pool_drain(PlThreadPool *pool, int thread) {
    for (;;) {
        int t = atomic_fetch_add_explicit(&pool->next_task, 1, memory_order_relaxed);
        if (t >= pool->ntasks) break;
        pool->fn(pool->ctx, t, thread);
    }
}

static void *pl_pool_main(void *arg) {
    PlPoolWorker *w = arg;
    PlThreadPool *pool = w->pool;
    unsigned seen = 0;
    for (;;) {
        unsigned gen = atomic_load_explicit(&pool->generation, memory_order_acquire);
        for (int spin = 0; gen == seen && spin < PL_POOL_SPIN; spin++) {
            PL_CPU_RELAX();
            gen = atomic_load_explicit(&pool->generation, memory_order_acquire);
        }
        if (gen == seen) {
            pthread_mutex_lock(&pool->mutex);
            while ((gen = atomic_load_explicit(&pool->generation, memory_order_acquire)) == seen && !pool->stop)
                pthread_cond_wait(&pool->wake, &pool->mutex);
            int stop = pool->stop;
            pthread_mutex_unlock(&pool->mutex);
            if (stop && gen == seen) return NULL;
        }
        seen = gen;
        pl_pool_drain(pool, w->index);
        if (atomic_fetch_sub_explicit(&pool->busy, 1, memory_order_acq_rel) == 1) {
            pthread_mutex_lock(&pool->mutex);
            pthread_cond_signal(&pool->done);
            pthread_mutex_unlock(&pool->mutex);
        }
    }
}

int pl_threadpool_cores_available(void) {
    cpu_set_t set;
    CPU_ZERO(&set);
    if (sched_getaffinity(0, sizeof set, &set) == 0) {
        int n = CPU_COUNT(&set);
        if (n > 0) return n;
    }
    return 1;
}

PlStatus pl_threadpool_create(int threads, PlThreadPool **out) {
    *out = NULL;
    if (threads < 1 || threads > 1024) return PL_FAIL(PL_ERR_ARG, "thread count %d out of range 1..1024", threads);
    PlThreadPool *pool = pl_calloc(1, sizeof *pool);
    if (!pool) return PL_ERR_NOMEM;
    pool->threads = threads;
    atomic_init(&pool->generation, 0);
    atomic_init(&pool->next_task, 0);
    atomic_init(&pool->busy, 0);
    if (pthread_mutex_init(&pool->mutex, NULL) != 0) {
        free(pool);
        return PL_FAIL(PL_ERR_INTERNAL, "pthread_mutex_init failed");
    }
    pthread_cond_init(&pool->wake, NULL);
    pthread_cond_init(&pool->done, NULL);
    if (threads > 1) {
        pool->handles = pl_calloc((size_t)threads - 1, sizeof *pool->handles);
        pool->workers = pl_calloc((size_t)threads - 1, sizeof *pool->workers);
        if (!pool->handles || !pool->workers) {
            pl_threadpool_destroy(pool);
            return PL_ERR_NOMEM;
        }
        for (int i = 0; i < threads - 1; i++) {
            pool->workers[i].pool = pool;
            pool->workers[i].index = i + 1;
            int rc = pthread_create(&pool->handles[i], NULL, pl_pool_main, &pool->workers[i]);
            if (rc != 0) {
                pl_threadpool_destroy(pool);
                return PL_FAIL(PL_ERR_INTERNAL, "cannot start worker thread %d of %d: %s", i + 1, threads, strerror(rc));
            }
            pool->started++;
        }
    }
    *out = pool;
    return PL_OK;
}

int pl_threadpool_size(const PlThreadPool *pool) { return pool ? pool->threads : 1; }

void pl_threadpool_run(PlThreadPool *pool, PlPoolFn fn, void *ctx, int ntasks) {
    if (ntasks <= 0) return;
    if (!pool || pool->threads == 1 || ntasks == 1) {
        for (int t = 0; t < ntasks; t++) fn(ctx, t, 0);
        return;
    }
    pool->fn = fn;
    pool->ctx = ctx;
    pool->ntasks = ntasks;
    atomic_store_explicit(&pool->next_task, 0, memory_order_relaxed);
    atomic_store_explicit(&pool->busy, pool->started, memory_order_relaxed);
    pthread_mutex_lock(&pool->mutex);
    atomic_fetch_add_explicit(&pool->generation, 1, memory_order_release);
    pthread_cond_broadcast(&pool->wake);
    pthread_mutex_unlock(&pool->mutex);
    pl_pool_drain(pool, 0);
    for (int spin = 0; spin < PL_POOL_SPIN; spin++) {
        if (atomic_load_explicit(&pool->busy, memory_order_acquire) == 0) return;
        PL_CPU_RELAX();
    }
    pthread_mutex_lock(&pool->mutex);
    while (atomic_load_explicit(&pool->busy, memory_order_acquire) != 0) pthread_cond_wait(&pool->done, &pool->mutex);
    pthread_mutex_unlock(&pool->mutex);
}

// pl_threadpool_run_checked: the lowest failing task so far, its status and its message (copied in the worker).
typedef struct PoolChecked {
    PlPoolCheckedFn fn;
    void *ctx;
    atomic_int first_failed;      // ntasks while none failed
    pthread_mutex_t mutex;        // guards the three fields below and the lowering of first_failed
    PlStatus status;
    char message[PL_ERROR_MESSAGE_MAX];
} PoolChecked;

static void pool_checked_task(void *vctx, int task, int thread) {
    PoolChecked *c = vctx;
    if (task > atomic_load_explicit(&c->first_failed, memory_order_relaxed)) return;   // cannot be the lowest
    pl_error_clear();   // a task that fails without a message must not report this thread's previous one
    PlStatus st = c->fn(c->ctx, task, thread);
    if (st == PL_OK) return;
    pthread_mutex_lock(&c->mutex);
    if (task < atomic_load_explicit(&c->first_failed, memory_order_relaxed)) {
        c->status = st;
        snprintf(c->message, sizeof c->message, "%s", pl_error_message());
        atomic_store_explicit(&c->first_failed, task, memory_order_relaxed);
    }
    pthread_mutex_unlock(&c->mutex);
}

PlStatus pl_threadpool_run_checked(PlThreadPool *pool, PlPoolCheckedFn fn, void *ctx, int ntasks) {
    if (ntasks <= 0) return PL_OK;
    PoolChecked c = {.fn = fn, .ctx = ctx, .status = PL_OK};
    atomic_init(&c.first_failed, ntasks);
    if (pthread_mutex_init(&c.mutex, NULL) != 0) return PL_FAIL(PL_ERR_INTERNAL, "pthread_mutex_init failed");
    pl_threadpool_run(pool, pool_checked_task, &c, ntasks);   // returns after every worker left the run
    pthread_mutex_destroy(&c.mutex);
    if (atomic_load_explicit(&c.first_failed, memory_order_relaxed) == ntasks) return PL_OK;
    if (!c.message[0]) return PL_FAIL(c.status, "task %d failed (%s) without a message",
                                      atomic_load_explicit(&c.first_failed, memory_order_relaxed),
                                      pl_status_name(c.status));
    return PL_FAIL(c.status, "%s", c.message);
}

void pl_threadpool_destroy(PlThreadPool *pool) {
    if (!pool) return;
    pthread_mutex_lock(&pool->mutex);
    pool->stop = 1;
    pthread_cond_broadcast(&pool->wake);
    pthread_mutex_unlock(&pool->mutex);
    for (int i = 0; i < pool->started; i++) pthread_join(pool->handles[i], NULL);
    pthread_cond_destroy(&pool->wake);
    pthread_cond_destroy(&pool->done);
    pthread_mutex_destroy(&pool->mutex);
    free(pool->handles);
    free(pool->workers);
    free(pool);
}
