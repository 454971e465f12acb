/* The elementwise inner loops of the layers: one interface, a WASM SIMD
 * version where the build has it, and the scalar reference that the tests
 * compare it with (*_ref). Matrix multiplication lives in sgemm.h. */
#ifndef REAGE_KERNELS_H
#define REAGE_KERNELS_H
#include <stddef.h>

/* y[i] = x[i] * a + b */
void kernel_scale_shift(float *y, const float *x, float a, float b, size_t n);
void kernel_scale_shift_ref(float *y, const float *x, float a, float b, size_t n);
/* y[i] = x[i] > 0 ? x[i] : slope * x[i]  (slope 0: ReLU) */
void kernel_leaky(float *y, const float *x, float slope, size_t n);
void kernel_leaky_ref(float *y, const float *x, float slope, size_t n);
/* dx[i] += x[i] > 0 ? dy[i] : slope * dy[i]  (the gradient of kernel_leaky) */
void kernel_leaky_backward(float *dx, const float *dy, const float *x, float slope, size_t n);
void kernel_leaky_backward_ref(float *dx, const float *dy, const float *x, float slope, size_t n);
/* *s += sum of dy[i] and, if x, *sx += sum of dy[i] * x[i], in double: the
 * reductions of the normalisation and modulation backward passes */
void kernel_sums(const float *dy, const float *x, size_t n, double *s, double *sx);
void kernel_sums_ref(const float *dy, const float *x, size_t n, double *s, double *sx);
/* mean and biased variance of x[0..n) */
void kernel_mean_var(const float *x, size_t n, float *mean, float *var);
void kernel_mean_var_ref(const float *x, size_t n, float *mean, float *var);
/* one output row pair of nearest-neighbour 2x upsampling: y[2j] = y[2j+1] = x[j] */
void kernel_upsample_row(float *y, const float *x, int w);
void kernel_upsample_row_ref(float *y, const float *x, int w);
/* one output row of a 3x3 depthwise convolution at stride 1 with zero
 * padding: y[j] = bias + sum over a, b of k[3a+b] * r_a[j-1+b], where
 * r_a[-1] and r_a[w] read as zero (r0/r2 point at a zero row at the edges) */
void kernel_dw3_row(float *y, const float *r0, const float *r1, const float *r2,
                    const float *k, float bias, int w);
void kernel_dw3_row_ref(float *y, const float *r0, const float *r1, const float *r2,
                        const float *k, float bias, int w);
/* which implementation the non-_ref kernels run: "wasm-simd" or "vector-c" */
const char *kernel_backend(void);
#endif
