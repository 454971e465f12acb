#include "parallel.h"

/* ranges of `grain` items; at most this many, so that a tiny grain over a long loop does not queue
 * millions of calls */
#define MAX_CHUNKS 4096

static int chunk_count(int n, int *grain) {
    if (*grain < 1) *grain = 1;
    if ((n + *grain - 1) / *grain > MAX_CHUNKS) *grain = (n + MAX_CHUNKS - 1) / MAX_CHUNKS;
    return (n + *grain - 1) / *grain;
}

#if defined(__wasm__) && defined(__wasm_atomics__)
/* The threaded browser build. Helper threads are further instances of this
 * module on the same memory, started by web/reage.js; each sleeps (in
 * JavaScript) on the word parallel_job_word() until a loop is posted, then
 * calls parallel_help. Chunks are taken from one counter, so a helper that
 * is slow to wake (or never starts) only leaves more of them to the others:
 * the caller takes chunks too and waits only for chunks already taken.
 * Nothing here waits with memory.atomic.wait32: V8's baseline compiler in
 * Node.js 20 loses the caller's live values across it (the caller spins for
 * the last chunks instead, which take one chunk's time at most). */
static struct {
    int threads;   /* what the host asked for */
    int job;       /* bumped for each loop; the helpers sleep on it */
    int limit;     /* the loop's number in the high 16 bits, its number of chunks in the low 16 */
    int next;      /* the loop's number in the high 16 bits, its next chunk in the low 16 */
    int done;      /* chunks finished */
    int busy;      /* a loop is running: a parallel_for inside it runs on its own thread */
    int n, grain;
    parallel_body body;
    void *ctx;
} pool = {.threads = 1};

static int load(int *p) { return __atomic_load_n(p, __ATOMIC_SEQ_CST); }

void parallel_set_threads(int threads) {
    __atomic_store_n(&pool.threads, threads < 1 ? 1 : threads > PARALLEL_MAX_THREADS ? PARALLEL_MAX_THREADS : threads,
                     __ATOMIC_SEQ_CST);
}

int parallel_threads(void) { return load(&pool.busy) ? 1 : load(&pool.threads); }

int *parallel_job_word(void) { return &pool.job; }

/* Takes chunks until none is left. A ticket names its loop: one taken from a loop that has ended (a helper
 * that woke late) is no chunk, and one from the loop after it is that loop's chunk, whose details were
 * written before its tickets were. */
static void take_chunks(int thread) {
    for (;;) {
        int ticket = __atomic_fetch_add(&pool.next, 1, __ATOMIC_SEQ_CST), limit = load(&pool.limit);
        int c = ticket & 0xffff;
        if ((ticket >> 16) != (limit >> 16) || c >= (limit & 0xffff)) return;
        int begin = c * pool.grain, end = begin + pool.grain < pool.n ? begin + pool.grain : pool.n;
        pool.body(pool.ctx, begin, end, thread);
        __atomic_fetch_add(&pool.done, 1, __ATOMIC_SEQ_CST);
    }
}

void parallel_help(int thread) {
    if (thread > 0 && thread < load(&pool.threads)) take_chunks(thread);
}

void parallel_for(int n, int grain, parallel_body body, void *ctx) {
    if (n <= 0) return;
    int chunks = chunk_count(n, &grain);
    if (chunks == 1 || parallel_threads() == 1) { body(ctx, 0, n, 0); return; }
    int job = (load(&pool.job) + 1) & 0x7fff;
    pool.n = n, pool.grain = grain, pool.body = body, pool.ctx = ctx;
    __atomic_store_n(&pool.busy, 1, __ATOMIC_SEQ_CST);
    __atomic_store_n(&pool.limit, job << 16 | chunks, __ATOMIC_SEQ_CST);
    __atomic_store_n(&pool.done, 0, __ATOMIC_SEQ_CST);
    __atomic_store_n(&pool.next, job << 16, __ATOMIC_SEQ_CST);
    __atomic_store_n(&pool.job, job, __ATOMIC_SEQ_CST);
    __builtin_wasm_memory_atomic_notify(&pool.job, PARALLEL_MAX_THREADS);
    take_chunks(0);
    while (load(&pool.done) < chunks) {}
    __atomic_store_n(&pool.busy, 0, __ATOMIC_SEQ_CST);
}

#else
/* Natively: OpenMP's team (one thread where OpenMP is off or already busy
 * in an enclosing loop). */
#ifdef _OPENMP
#include <omp.h>
#endif

static int cap; /* 0: OpenMP's own count */

void parallel_set_threads(int threads) { cap = threads < 1 ? 0 : threads > PARALLEL_MAX_THREADS ? PARALLEL_MAX_THREADS : threads; }

int parallel_threads(void) {
#ifdef _OPENMP
    int t = cap ? cap : omp_get_max_threads();
    return omp_in_parallel() ? 1 : t > PARALLEL_MAX_THREADS ? PARALLEL_MAX_THREADS : t;
#else
    return 1;
#endif
}

void parallel_help(int thread) { (void)thread; }
int *parallel_job_word(void) { return 0; }

void parallel_for(int n, int grain, parallel_body body, void *ctx) {
    if (n <= 0) return;
    int chunks = chunk_count(n, &grain), threads = parallel_threads();
    if (chunks == 1 || threads == 1) { body(ctx, 0, n, 0); return; }
#ifdef _OPENMP
    _Pragma("omp parallel for schedule(dynamic) num_threads(threads)")
    for (int c = 0; c < chunks; c++) {
        int begin = c * grain, end = begin + grain < n ? begin + grain : n;
        body(ctx, begin, end, omp_get_thread_num());
    }
#endif
}
#endif
