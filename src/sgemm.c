#include "sgemm.h"
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
 * without OpenBLAS). Operands are packed so that the inner loop runs over
 * contiguous rows of B and C, which compilers vectorise (and which the WASM
 * build replaces with explicit SIMD in sgemm_wasm.c). */
const char *sgemm_backend(void) { return "blocked"; }
/* C[i, 0:n] += a * B[k, 0:n] for a 4-row strip: the micro-kernel. */
static void axpy_rows4(int n, const float *a4, int astride, const float *b,
                       float *c, int ldc) {
    float a0 = a4[0], a1 = a4[astride], a2 = a4[2 * astride], a3 = a4[3 * astride];
    float *c0 = c, *c1 = c + ldc, *c2 = c + 2 * ldc, *c3 = c + 3 * ldc;
    for (int j = 0; j < n; j++) {
        float bj = b[j];
        c0[j] += a0 * bj; c1[j] += a1 * bj; c2[j] += a2 * bj; c3[j] += a3 * bj;
    }
}

enum { KC = 256, NC = 512 };

void sgemm(int trans_a, int trans_b, int M, int N, int K, float alpha,
           const float *A, int lda, const float *B, int ldb, float beta,
           float *C, int ldc) {
    for (int i = 0; i < M; i++) {
        float *c = C + (size_t)i * ldc;
        if (beta == 0.0f) memset(c, 0, sizeof(float) * N);
        else if (beta != 1.0f) for (int j = 0; j < N; j++) c[j] *= beta;
    }
    if (M == 0 || N == 0 || K == 0) return;
    /* Packed panels: Ap holds alpha*op(A)[0:M, k0:k0+kc] column-major by k,
     * Bp holds op(B)[k0:k0+kc, n0:n0+nc] row-major. */
    int Mp = (M + 3) & ~3;
    /* Packing buffers only grow, so steady-state calls allocate nothing. */
    static float *Ap, *Bp;
    static size_t ap_cap;
    if ((size_t)KC * Mp > ap_cap) {
        free(Ap);
        ap_cap = (size_t)KC * Mp;
        Ap = malloc(sizeof(float) * ap_cap);
    }
    if (!Bp) Bp = malloc(sizeof(float) * (size_t)KC * NC);
    if (!Ap || !Bp) { ap_cap = 0; sgemm_ref(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, 1.0f, C, ldc); return; }
    for (int k0 = 0; k0 < K; k0 += KC) {
        int kc = K - k0 < KC ? K - k0 : KC;
        for (int k = 0; k < kc; k++)
            for (int i = 0; i < Mp; i++)
                Ap[(size_t)k * Mp + i] = i >= M ? 0.0f
                    : alpha * (trans_a ? A[(size_t)(k0 + k) * lda + i] : A[(size_t)i * lda + k0 + k]);
        for (int n0 = 0; n0 < N; n0 += NC) {
            int nc = N - n0 < NC ? N - n0 : NC;
            for (int k = 0; k < kc; k++) {
                float *dst = Bp + (size_t)k * nc;
                if (trans_b) for (int j = 0; j < nc; j++) dst[j] = B[(size_t)(n0 + j) * ldb + k0 + k];
                else memcpy(dst, B + (size_t)(k0 + k) * ldb + n0, sizeof(float) * nc);
            }
            for (int i = 0; i < M; i += 4) {
                int rows = M - i < 4 ? M - i : 4;
                float *c = C + (size_t)i * ldc + n0;
                if (rows == 4) {
                    for (int k = 0; k < kc; k++)
                        axpy_rows4(nc, Ap + (size_t)k * Mp + i, 1, Bp + (size_t)k * nc, c, ldc);
                } else {
                    for (int r = 0; r < rows; r++)
                        for (int k = 0; k < kc; k++) {
                            float a = Ap[(size_t)k * Mp + i + r];
                            const float *b = Bp + (size_t)k * nc;
                            float *cr = c + (size_t)r * ldc;
                            for (int j = 0; j < nc; j++) cr[j] += a * b[j];
                        }
                }
            }
        }
    }
}
#endif
