#include "sgemm.h"
#include "parallel.h"
#include <stdlib.h>
#include <string.h>

void sgemm_ref(int trans_a, int trans_b, int M, int N, int K, float alpha,
               const float *A, int lda, const float *B, int ldb, float beta,
               float *C, int ldc) {
    for (int i = 0; i < M; i++) {
        for (int j = 0; j < N; j++) {
            double acc = 0.0;
            for (int k = 0; k < K; k++) {
                float a = trans_a ? A[(size_t)k * lda + i] : A[(size_t)i * lda + k];
                float b = trans_b ? B[(size_t)j * ldb + k] : B[(size_t)k * ldb + j];
                acc += (double)a * b;
            }
            float *c = &C[(size_t)i * ldc + j];
            *c = (float)(alpha * acc + (beta == 0.0f ? 0.0f : beta * *c));
        }
    }
}

#if defined(REAGE_DNNL)
#include <dnnl.h>
const char *sgemm_backend(void) { return "onednn"; }
void sgemm(int trans_a, int trans_b, int M, int N, int K, float alpha,
           const float *A, int lda, const float *B, int ldb, float beta,
           float *C, int ldc) {
    dnnl_sgemm(trans_a ? 'T' : 'N', trans_b ? 'T' : 'N', M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}
#elif defined(REAGE_OPENBLAS)
#include <cblas.h>
const char *sgemm_backend(void) { return "openblas"; }
void sgemm(int trans_a, int trans_b, int M, int N, int K, float alpha,
           const float *A, int lda, const float *B, int ldb, float beta,
           float *C, int ldc) {
    cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans,
                trans_b ? CblasTrans : CblasNoTrans, M, N, K, alpha, A, lda,
                B, ldb, beta, C, ldc);
}
#else
/* Portable blocked kernel for builds without a BLAS (WebAssembly, a machine
 * without oneDNN or OpenBLAS). Panels of A and B are packed so that a 4x8
 * block of C stays in registers for a whole panel of K. */
#if defined(__wasm_simd128__)
#include <wasm_simd128.h>
const char *sgemm_backend(void) { return "wasm-simd"; }
/* c[4x8] += a[k][0..3] (outer) b[k][0..7] over k; separate multiply and add,
 * since V8 rejects this Emscripten's draft fused multiply-add */
static void kernel_4x8(int kc, const float *a, int astride, const float *b, int bstride, float *c, int ldc) {
    v128_t c00 = wasm_v128_load(c), c01 = wasm_v128_load(c + 4);
    v128_t c10 = wasm_v128_load(c + ldc), c11 = wasm_v128_load(c + ldc + 4);
    v128_t c20 = wasm_v128_load(c + 2 * ldc), c21 = wasm_v128_load(c + 2 * ldc + 4);
    v128_t c30 = wasm_v128_load(c + 3 * ldc), c31 = wasm_v128_load(c + 3 * ldc + 4);
    for (int k = 0; k < kc; k++) {
        const float *ak = a + (size_t)k * astride, *bk = b + (size_t)k * bstride;
        v128_t b0 = wasm_v128_load(bk), b1 = wasm_v128_load(bk + 4);
        v128_t a0 = wasm_f32x4_splat(ak[0]), a1 = wasm_f32x4_splat(ak[1]);
        v128_t a2 = wasm_f32x4_splat(ak[2]), a3 = wasm_f32x4_splat(ak[3]);
        c00 = wasm_f32x4_add(c00, wasm_f32x4_mul(a0, b0)); c01 = wasm_f32x4_add(c01, wasm_f32x4_mul(a0, b1));
        c10 = wasm_f32x4_add(c10, wasm_f32x4_mul(a1, b0)); c11 = wasm_f32x4_add(c11, wasm_f32x4_mul(a1, b1));
        c20 = wasm_f32x4_add(c20, wasm_f32x4_mul(a2, b0)); c21 = wasm_f32x4_add(c21, wasm_f32x4_mul(a2, b1));
        c30 = wasm_f32x4_add(c30, wasm_f32x4_mul(a3, b0)); c31 = wasm_f32x4_add(c31, wasm_f32x4_mul(a3, b1));
    }
    wasm_v128_store(c, c00); wasm_v128_store(c + 4, c01);
    wasm_v128_store(c + ldc, c10); wasm_v128_store(c + ldc + 4, c11);
    wasm_v128_store(c + 2 * ldc, c20); wasm_v128_store(c + 2 * ldc + 4, c21);
    wasm_v128_store(c + 3 * ldc, c30); wasm_v128_store(c + 3 * ldc + 4, c31);
}
#else
const char *sgemm_backend(void) { return "blocked"; }
static void kernel_4x8(int kc, const float *a, int astride, const float *b, int bstride, float *c, int ldc) {
    float acc[4][8];
    for (int r = 0; r < 4; r++) for (int j = 0; j < 8; j++) acc[r][j] = c[(size_t)r * ldc + j];
    for (int k = 0; k < kc; k++)
        for (int r = 0; r < 4; r++)
            for (int j = 0; j < 8; j++) acc[r][j] += a[(size_t)k * astride + r] * b[(size_t)k * bstride + j];
    for (int r = 0; r < 4; r++) for (int j = 0; j < 8; j++) c[(size_t)r * ldc + j] = acc[r][j];
}
#endif

enum { KC = 256, NC = 512 };

/* Packed panels: Ap holds alpha*op(A)[0:M, 0:K] column-major by k, in
 * panels of KC; each thread's Bp holds op(B)[k0:k0+kc, n0:n0+nc] row-major.
 * Both only grow, so steady-state calls allocate nothing. */
static float *Ap, *Bp[PARALLEL_MAX_THREADS];
static size_t ap_cap;

typedef struct {
    int trans_b, M, N, K, Mp, ldb, ldc;
    const float *B;
    float *C;
} Panels;

/* columns [8 * g0, 8 * g1) of C; each element sums its k in the same order whatever the columns around it */
static void sgemm_columns(void *ctx, int g0, int g1, int thread) {
    const Panels *q = ctx;
    int M = q->M, Mp = q->Mp, end = 8 * g1 < q->N ? 8 * g1 : q->N;
    float *bp = Bp[thread];
    for (int n0 = 8 * g0; n0 < end; n0 += NC) {
        int nc = end - n0 < NC ? end - n0 : NC;
        for (int k0 = 0; k0 < q->K; k0 += KC) {
            int kc = q->K - k0 < KC ? q->K - k0 : KC;
            const float *ap = Ap + (size_t)k0 * Mp;
            for (int k = 0; k < kc; k++) {
                float *dst = bp + (size_t)k * nc;
                if (q->trans_b) for (int j = 0; j < nc; j++) dst[j] = q->B[(size_t)(n0 + j) * q->ldb + k0 + k];
                else memcpy(dst, q->B + (size_t)(k0 + k) * q->ldb + n0, sizeof(float) * nc);
            }
            for (int i = 0; i < M; i += 4) {
                int rows = M - i < 4 ? M - i : 4, j0 = 0;
                float *c = q->C + (size_t)i * q->ldc + n0;
                if (rows == 4)
                    for (; j0 + 8 <= nc; j0 += 8) kernel_4x8(kc, ap + i, Mp, bp + j0, nc, c + j0, q->ldc);
                /* the last rows and columns that do not fill a block */
                for (int r = 0; r < rows; r++)
                    for (int k = 0; k < kc; k++) {
                        float a = ap[(size_t)k * Mp + i + r];
                        const float *b = bp + (size_t)k * nc;
                        float *cr = c + (size_t)r * q->ldc;
                        for (int j = j0; j < nc; j++) cr[j] += a * b[j];
                    }
            }
        }
    }
}

void sgemm(int trans_a, int trans_b, int M, int N, int K, float alpha,
           const float *A, int lda, const float *B, int ldb, float beta,
           float *C, int ldc) {
    for (int i = 0; i < M; i++) {
        float *c = C + (size_t)i * ldc;
        if (beta == 0.0f) memset(c, 0, sizeof(float) * N);
        else if (beta != 1.0f) for (int j = 0; j < N; j++) c[j] *= beta;
    }
    if (M == 0 || N == 0 || K == 0) return;
    int Mp = (M + 3) & ~3, threads = parallel_threads(), groups = (N + 7) / 8;
    if ((size_t)K * Mp > ap_cap) {
        free(Ap);
        ap_cap = (size_t)K * Mp;
        Ap = malloc(sizeof(float) * ap_cap);
    }
    int ok = Ap != NULL;
    for (int t = 0; t < threads; t++)
        if (!Bp[t]) ok &= (Bp[t] = malloc(sizeof(float) * (size_t)KC * NC)) != NULL;
    if (!ok) { ap_cap = 0; sgemm_ref(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, 1.0f, C, ldc); return; }
    for (int k = 0; k < K; k++)
        for (int i = 0; i < Mp; i++)
            Ap[(size_t)k * Mp + i] = i >= M ? 0.0f : alpha * (trans_a ? A[(size_t)k * lda + i] : A[(size_t)i * lda + k]);
    Panels q = {trans_b, M, N, K, Mp, ldb, ldc, B, C};
    /* about two ranges of columns a thread (each packed NC columns at a time); small products stay on one thread */
    int grain = (groups + 2 * threads - 1) / (2 * threads);
    if ((double)M * N * K < (1 << 20)) grain = groups;
    parallel_for(groups, grain < 4 ? 4 : grain, sgemm_columns, &q);
}
#endif
