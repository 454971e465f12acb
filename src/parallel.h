/* The engine's one way to spread a loop over the cores, natively (OpenMP)
 * and in the browser (the threaded WebAssembly build: helper threads the
 * page starts, sharing the module's memory).
 *
 * parallel_for(n, grain, body, ctx) calls body(ctx, begin, end, thread) on
 * ranges that cover [0, n) once each, in any order and on any thread, and
 * returns when all are done: ranges of `grain` items (more where that would
 * make over 4,096 of them), or [0, n) whole on one thread. `thread` is the
 * running thread's index below parallel_threads(), for per-thread scratch.
 * A body must give each index the same result whatever range it comes in,
 * so that the result does not depend on the number of threads; it must not
 * allocate (the browser's allocator is not shared between threads), nor so
 * call sgemm (whose packing buffers grow). A parallel_for inside a body runs
 * on its caller's thread alone. */
#pragma once

/* the most threads any build uses (per-thread scratch is sized by it) */
#define PARALLEL_MAX_THREADS 16

typedef void (*parallel_body)(void *ctx, int begin, int end, int thread);

void parallel_for(int n, int grain, parallel_body body, void *ctx);

/* how many threads a parallel_for called here may use: OpenMP's team
 * natively, in the browser the helper threads plus the caller; 1 inside a
 * parallel loop */
int parallel_threads(void);

/* How many threads to use (1: the caller's alone). In the threaded
 * WebAssembly build, each helper thread (index 1 and up) sleeps on the word
 * at parallel_job_word() and, each time it changes, calls parallel_help,
 * which takes its share of the loop running then, if any. */
void parallel_set_threads(int threads);
int *parallel_job_word(void);
void parallel_help(int thread);
