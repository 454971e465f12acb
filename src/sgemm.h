/* One matrix-multiply interface for the whole engine.
 * Row-major C = alpha * op(A) * op(B) + beta * C, op(X) = X or X^T,
 * with op(A) of shape M x K and op(B) of shape K x N (BLAS conventions). */
#ifndef REAGE_SGEMM_H
#define REAGE_SGEMM_H

void sgemm(int trans_a, int trans_b, int M, int N, int K, float alpha,
           const float *A, int lda, const float *B, int ldb, float beta,
           float *C, int ldc);

/* Plain triple loop: the reference every faster kernel is tested against. */
void sgemm_ref(int trans_a, int trans_b, int M, int N, int K, float alpha,
               const float *A, int lda, const float *B, int ldb, float beta,
               float *C, int ldc);

/* Which implementation sgemm() dispatches to ("openblas", "blocked", "wasm-simd"). */
const char *sgemm_backend(void);

#endif
