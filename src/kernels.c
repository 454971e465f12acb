#include "kernels.h"

void kernel_scale_shift_ref(float *y, const float *x, float a, float b, size_t n) {
    for (size_t i = 0; i < n; i++) y[i] = x[i] * a + b;
}
void kernel_leaky_ref(float *y, const float *x, float slope, size_t n) {
    for (size_t i = 0; i < n; i++) y[i] = x[i] > 0.0f ? x[i] : slope * x[i];
}
void kernel_leaky_backward_ref(float *dx, const float *dy, const float *x, float slope, size_t n) {
    for (size_t i = 0; i < n; i++) dx[i] += x[i] > 0.0f ? dy[i] : slope * dy[i];
}
void kernel_sums_ref(const float *dy, const float *x, size_t n, double *s, double *sx) {
    double a = 0.0, b = 0.0;
    for (size_t i = 0; i < n; i++) a += dy[i];
    if (x) for (size_t i = 0; i < n; i++) b += (double)dy[i] * x[i];
    *s += a;
    if (x) *sx += b;
}
void kernel_mean_var_ref(const float *x, size_t n, float *mean, float *var) {
    double s = 0.0, sq = 0.0;
    for (size_t i = 0; i < n; i++) s += x[i];
    double mu = s / n;
    for (size_t i = 0; i < n; i++) { double d = x[i] - mu; sq += d * d; }
    *mean = (float)mu;
    *var = (float)(sq / n);
}
void kernel_upsample_row_ref(float *y, const float *x, int w) {
    for (int j = 0; j < w; j++) y[2 * j] = y[2 * j + 1] = x[j];
}

/* one output column of kernel_dw3_row */
static float dw3_at(const float *r0, const float *r1, const float *r2, const float *k, float bias,
                    int w, int j) {
    const float *r[3] = {r0, r1, r2};
    float acc = bias;
    for (int a = 0; a < 3; a++)
        for (int b = 0; b < 3; b++) {
            int x = j - 1 + b;
            if (x >= 0 && x < w) acc += k[3 * a + b] * r[a][x];
        }
    return acc;
}
void kernel_dw3_row_ref(float *y, const float *r0, const float *r1, const float *r2,
                        const float *k, float bias, int w) {
    for (int j = 0; j < w; j++) y[j] = dw3_at(r0, r1, r2, k, bias, w, j);
}

#if defined(__wasm_simd128__)
#include <wasm_simd128.h>
const char *kernel_backend(void) { return "wasm-simd"; }

void kernel_scale_shift(float *y, const float *x, float a, float b, size_t n) {
    v128_t va = wasm_f32x4_splat(a), vb = wasm_f32x4_splat(b);
    size_t i = 0;
    for (; i + 4 <= n; i += 4) wasm_v128_store(y + i, wasm_f32x4_add(wasm_f32x4_mul(wasm_v128_load(x + i), va), vb));
    for (; i < n; i++) y[i] = x[i] * a + b;
}

void kernel_leaky(float *y, const float *x, float slope, size_t n) {
    v128_t zero = wasm_f32x4_splat(0.0f), vs = wasm_f32x4_splat(slope);
    size_t i = 0;
    for (; i + 4 <= n; i += 4) {
        v128_t v = wasm_v128_load(x + i);
        /* max(v, 0) + slope * min(v, 0) */
        wasm_v128_store(y + i, wasm_f32x4_add(wasm_f32x4_pmax(v, zero), wasm_f32x4_mul(vs, wasm_f32x4_pmin(v, zero))));
    }
    for (; i < n; i++) y[i] = x[i] > 0.0f ? x[i] : slope * x[i];
}

/* four float lanes, each summing a quarter of the terms, then double at the end */
void kernel_mean_var(const float *x, size_t n, float *mean, float *var) {
    v128_t acc = wasm_f32x4_splat(0.0f);
    size_t i = 0;
    for (; i + 4 <= n; i += 4) acc = wasm_f32x4_add(acc, wasm_v128_load(x + i));
    double s = (double)wasm_f32x4_extract_lane(acc, 0) + wasm_f32x4_extract_lane(acc, 1) +
               wasm_f32x4_extract_lane(acc, 2) + wasm_f32x4_extract_lane(acc, 3);
    for (; i < n; i++) s += x[i];
    float mu = (float)(s / n);
    v128_t vm = wasm_f32x4_splat(mu), sq = wasm_f32x4_splat(0.0f);
    for (i = 0; i + 4 <= n; i += 4) {
        v128_t d = wasm_f32x4_sub(wasm_v128_load(x + i), vm);
        sq = wasm_f32x4_add(sq, wasm_f32x4_mul(d, d));
    }
    double q = (double)wasm_f32x4_extract_lane(sq, 0) + wasm_f32x4_extract_lane(sq, 1) +
               wasm_f32x4_extract_lane(sq, 2) + wasm_f32x4_extract_lane(sq, 3);
    for (; i < n; i++) { double d = x[i] - mu; q += d * d; }
    *mean = mu;
    *var = (float)(q / n);
}

/* training-only: the browser never runs a backward pass */
void kernel_leaky_backward(float *dx, const float *dy, const float *x, float slope, size_t n) {
    kernel_leaky_backward_ref(dx, dy, x, slope, n);
}
void kernel_sums(const float *dy, const float *x, size_t n, double *s, double *sx) { kernel_sums_ref(dy, x, n, s, sx); }

void kernel_upsample_row(float *y, const float *x, int w) {
    int j = 0;
    for (; j + 4 <= w; j += 4) {
        v128_t v = wasm_v128_load(x + j);
        wasm_v128_store(y + 2 * j, wasm_i32x4_shuffle(v, v, 0, 0, 1, 1));
        wasm_v128_store(y + 2 * j + 4, wasm_i32x4_shuffle(v, v, 2, 2, 3, 3));
    }
    for (; j < w; j++) y[2 * j] = y[2 * j + 1] = x[j];
}

/* Interior columns four at a time from unaligned loads at j-1, j, j+1; the
 * two edge columns (which read the padding) go through the reference. */
void kernel_dw3_row(float *y, const float *r0, const float *r1, const float *r2,
                    const float *k, float bias, int w) {
    if (w < 6) { kernel_dw3_row_ref(y, r0, r1, r2, k, bias, w); return; }
    const float *r[3] = {r0, r1, r2};
    v128_t kv[9];
    for (int i = 0; i < 9; i++) kv[i] = wasm_f32x4_splat(k[i]);
    v128_t vb = wasm_f32x4_splat(bias);
    int j = 1;
    for (; j + 4 <= w - 1; j += 4) {
        v128_t acc = vb;
        for (int a = 0; a < 3; a++) {
            const float *ra = r[a] + j - 1;
            acc = wasm_f32x4_add(acc, wasm_f32x4_mul(kv[3 * a], wasm_v128_load(ra)));
            acc = wasm_f32x4_add(acc, wasm_f32x4_mul(kv[3 * a + 1], wasm_v128_load(ra + 1)));
            acc = wasm_f32x4_add(acc, wasm_f32x4_mul(kv[3 * a + 2], wasm_v128_load(ra + 2)));
        }
        wasm_v128_store(y + j, acc);
    }
    y[0] = dw3_at(r0, r1, r2, k, bias, w, 0);
    for (; j < w; j++) y[j] = dw3_at(r0, r1, r2, k, bias, w, j);
}
#else
/* Natively plain C that the compiler vectorises (the matrix work, which
 * dominates, runs in oneDNN or OpenBLAS). It will not vectorise a loop with a
 * branch, nor reorder a floating-point sum: so selects are written as two
 * masked terms, and sums run in LANES independent double accumulators. */
const char *kernel_backend(void) { return "vector-c"; }
void kernel_scale_shift(float *y, const float *x, float a, float b, size_t n) { kernel_scale_shift_ref(y, x, a, b, n); }

/* the same results as the reference (a NaN stays NaN) */
void kernel_leaky(float *y, const float *x, float slope, size_t n) {
    for (size_t i = 0; i < n; i++) {
        float v = x[i], pos = v > 0.0f ? v : 0.0f, neg = v > 0.0f ? 0.0f : v;
        y[i] = pos + slope * neg;
    }
}
void kernel_leaky_backward(float *dx, const float *dy, const float *x, float slope, size_t n) {
    for (size_t i = 0; i < n; i++) {
        float g = dy[i], pos = x[i] > 0.0f ? g : 0.0f, neg = x[i] > 0.0f ? 0.0f : g;
        dx[i] += pos + slope * neg;
    }
}

#define LANES 8
static double lanes_total(const double *acc) {
    double t = 0.0;
    for (int k = 0; k < LANES; k++) t += acc[k];
    return t;
}
void kernel_sums(const float *dy, const float *x, size_t n, double *s, double *sx) {
    double a[LANES] = {0}, b[LANES] = {0};
    size_t i = 0, body = n / LANES * LANES;
    if (x) {
        for (; i < body; i += LANES)
            for (int k = 0; k < LANES; k++) { a[k] += dy[i + k]; b[k] += (double)dy[i + k] * x[i + k]; }
    } else {
        for (; i < body; i += LANES)
            for (int k = 0; k < LANES; k++) a[k] += dy[i + k];
    }
    double ta = lanes_total(a), tb = lanes_total(b);
    for (; i < n; i++) { ta += dy[i]; if (x) tb += (double)dy[i] * x[i]; }
    *s += ta;
    if (x) *sx += tb;
}
void kernel_mean_var(const float *x, size_t n, float *mean, float *var) {
    double s = 0.0;
    kernel_sums(x, NULL, n, &s, NULL);
    double mu = s / n, q[LANES] = {0};
    size_t i = 0, body = n / LANES * LANES;
    for (; i < body; i += LANES)
        for (int k = 0; k < LANES; k++) { double d = x[i + k] - mu; q[k] += d * d; }
    double tq = lanes_total(q);
    for (; i < n; i++) { double d = x[i] - mu; tq += d * d; }
    *mean = (float)mu;
    *var = (float)(tq / n);
}
void kernel_upsample_row(float *y, const float *x, int w) { kernel_upsample_row_ref(y, x, w); }
/* The interior columns as one branch-free loop the compiler vectorises, in
 * the reference's order of additions (so the results are identical). */
void kernel_dw3_row(float *y, const float *r0, const float *r1, const float *r2,
                    const float *k, float bias, int w) {
    if (w < 3) { kernel_dw3_row_ref(y, r0, r1, r2, k, bias, w); return; }
    for (int j = 1; j < w - 1; j++)
        y[j] = bias + k[0] * r0[j - 1] + k[1] * r0[j] + k[2] * r0[j + 1] + k[3] * r1[j - 1] + k[4] * r1[j] +
               k[5] * r1[j + 1] + k[6] * r2[j - 1] + k[7] * r2[j] + k[8] * r2[j + 1];
    y[0] = dw3_at(r0, r1, r2, k, bias, w, 0);
    y[w - 1] = dw3_at(r0, r1, r2, k, bias, w, w - 1);
}
#endif
