// The persistent worker pool (fork/join) and the bandwidth probe.
#include "CKernels.h"
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#if defined(__x86_64__)
#include <immintrin.h>
#define LFM_PAUSE() _mm_pause()
#elif defined(__aarch64__)
#define LFM_PAUSE() __asm__ volatile("yield")
#else
#define LFM_PAUSE() ((void)0)
#endif

// ---------------------------------------------------------------------------------------------
// Worker pool: fork/join with a generation counter; workers spin briefly, then sleep on a condvar.

struct lfm_pool {
    int n;
    pthread_t *threads;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    // one job at a time: callers from several conversations take turns job by job, first come first served (a
    // ticket lock: a plain mutex lets a thread that issues jobs back to back starve the others)
    pthread_mutex_t run_mu;
    pthread_cond_t run_cv;
    unsigned long next_ticket, serving;
    atomic_int generation;
    atomic_int pending;
    atomic_int stop;
    void (*fn)(void *, int, int);
    void *ctx;
};

struct worker_arg {
    lfm_pool *p;
    int ith;
};

static void *worker_main(void *arg) {
    struct worker_arg *wa = (struct worker_arg *)arg;
    lfm_pool *p = wa->p;
    int ith = wa->ith;
    free(wa);
    int seen = 0;
    for (;;) {
        int spins = 0;
        while (atomic_load_explicit(&p->generation, memory_order_acquire) == seen && !atomic_load(&p->stop)) {
            ++spins;
            if (spins < 4000) {
                LFM_PAUSE();
                continue;
            }
            if (spins < 24000) {
                sched_yield();
                continue;
            } // let a descheduled peer run on a busy machine
            pthread_mutex_lock(&p->mu);
            while (atomic_load_explicit(&p->generation, memory_order_acquire) == seen && !atomic_load(&p->stop))
                pthread_cond_wait(&p->cv, &p->mu);
            pthread_mutex_unlock(&p->mu);
        }
        if (atomic_load(&p->stop)) return NULL;
        seen = atomic_load_explicit(&p->generation, memory_order_acquire);
        p->fn(p->ctx, ith, p->n);
        atomic_fetch_sub_explicit(&p->pending, 1, memory_order_acq_rel);
    }
}

lfm_pool *lfm_pool_create(int nthreads) {
    if (nthreads < 1) nthreads = 1;
    lfm_pool *p = calloc(1, sizeof(lfm_pool));
    p->n = nthreads;
    pthread_mutex_init(&p->mu, NULL);
    pthread_mutex_init(&p->run_mu, NULL);
    pthread_cond_init(&p->run_cv, NULL);
    pthread_cond_init(&p->cv, NULL);
    atomic_init(&p->generation, 0);
    atomic_init(&p->pending, 0);
    atomic_init(&p->stop, 0);
    p->threads = calloc((size_t)nthreads, sizeof(pthread_t));
    for (int i = 1; i < nthreads; i++) {
        struct worker_arg *wa = malloc(sizeof *wa);
        wa->p = p;
        wa->ith = i;
        pthread_create(&p->threads[i], NULL, worker_main, wa);
    }
    return p;
}

int lfm_pool_size(const lfm_pool *p) { return p->n; }

static void run_enter(lfm_pool *p) {
    pthread_mutex_lock(&p->run_mu);
    unsigned long mine = p->next_ticket++;
    while (p->serving != mine) pthread_cond_wait(&p->run_cv, &p->run_mu);
    pthread_mutex_unlock(&p->run_mu);
}

static void run_exit(lfm_pool *p) {
    pthread_mutex_lock(&p->run_mu);
    p->serving++;
    int waiting = p->next_ticket != p->serving;
    pthread_mutex_unlock(&p->run_mu);
    if (waiting) pthread_cond_broadcast(&p->run_cv);
}

void lfm_pool_run(lfm_pool *p, void (*fn)(void *, int, int), void *ctx) {
    // Several conversations share one pool: a second caller waits (asleep) for the running job, so no more than
    // n threads compute at once. A job must not start another job (it would wait on itself).
    run_enter(p);
    if (p->n == 1) {
        fn(ctx, 0, 1);
        run_exit(p);
        return;
    }
    p->fn = fn;
    p->ctx = ctx;
    atomic_store_explicit(&p->pending, p->n - 1, memory_order_release);
    pthread_mutex_lock(&p->mu);
    atomic_fetch_add_explicit(&p->generation, 1, memory_order_acq_rel);
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
    fn(ctx, 0, p->n);
    int spins = 0;
    while (atomic_load_explicit(&p->pending, memory_order_acquire) > 0) {
        if (++spins < 4000) {
            LFM_PAUSE();
        } else {
            sched_yield();
        }
    }
    run_exit(p);
}

void lfm_pool_solo(lfm_pool *p, void (*fn)(void *, int, int), void *ctx) {
    run_enter(p);
    fn(ctx, 0, 1);
    run_exit(p);
}

void lfm_pool_destroy(lfm_pool *p) {
    if (!p) return;
    pthread_mutex_lock(&p->mu);
    atomic_store(&p->stop, 1);
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
    for (int i = 1; i < p->n; i++) pthread_join(p->threads[i], NULL);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->cv);
    pthread_mutex_destroy(&p->run_mu);
    pthread_cond_destroy(&p->run_cv);
    free(p->threads);
    free(p);
}

// Sixteen independent accumulators: vectorized by the compiler on every target, fast enough to saturate memory.
float lfm_sum_f32(const float *x, size_t n) {
    float a[16] = {0};
    size_t i = 0;
    for (; i + 16 <= n; i += 16)
        for (int k = 0; k < 16; k++) a[k] += x[i + k];
    for (; i < n; i++) a[0] += x[i];
    float s = 0;
    for (int k = 0; k < 16; k++) s += a[k];
    return s;
}
