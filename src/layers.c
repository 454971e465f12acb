#include "layers.h"
#include "kernels.h"
#include "sgemm.h"
#include <math.h>
#include <string.h>

/* Pragmas are ignored where OpenMP is off (the WASM build). */
#define PAR _Pragma("omp parallel for schedule(static)")
#define PAR2 _Pragma("omp parallel for collapse(2) schedule(static)")

/* ------------------------------------------------------------------ conv */

int conv_out_size(int in, int k, int s, int p) { return (in + 2 * p - k) / s + 1; }

/* Large output maps get one GEMM per image, writing NCHW directly; small
 * ones one GEMM for the whole batch (through a transposed buffer), which
 * keeps the matrices big enough for the BLAS to run at speed. */
static int batched_gemm(size_t P) { return P < 1024; }

/* "Same" convolutions (stride 1, padding (K-1)/2) over large maps skip
 * im2col: each kernel tap is one GEMM over a zero-padded copy of the image,
 * with output rows as wide as the padded input (the extra columns are
 * dropped). No K*K-times-larger column buffer streams through memory. */
static int shift_gemm(ConvShape s, size_t P) { return s.S == 1 && s.K % 2 == 1 && s.P == s.K / 2 && P >= 1024; }

typedef struct {
    int W2, KK;          /* padded row width, taps */
    size_t ld, N;        /* padded plane stride (with slack for the last taps), output row span */
    float *wt, *dwt, *pad, *dpad, *ext;
} ShiftPlan;

static ShiftPlan shift_plan(ConvShape s, float *scratch) {
    ShiftPlan p;
    p.W2 = s.W + 2 * s.P;
    p.KK = s.K * s.K;
    p.ld = (size_t)(s.H + 2 * s.P) * p.W2 + s.K;
    p.N = (size_t)s.H * p.W2;
    p.wt = scratch;
    p.dwt = p.wt + (size_t)p.KK * s.OC * s.C;
    p.pad = p.dwt + (size_t)p.KK * s.OC * s.C;
    p.dpad = p.pad + (size_t)s.C * p.ld;
    p.ext = p.dpad + (size_t)s.C * p.ld;
    return p;
}
static size_t shift_floats(ConvShape s) {
    size_t W2 = s.W + 2 * s.P, ld = (size_t)(s.H + 2 * s.P) * W2 + s.K;
    return 2 * (size_t)s.K * s.K * s.OC * s.C + 2 * (size_t)s.C * ld + (size_t)s.OC * s.H * W2;
}

size_t conv2d_scratch_floats(ConvShape s) {
    size_t P = (size_t)conv_out_size(s.H, s.K, s.S, s.P) * conv_out_size(s.W, s.K, s.S, s.P);
    if (shift_gemm(s, P)) return shift_floats(s);
    size_t cols = (size_t)s.C * s.K * s.K * s.B * P;
    return cols + (batched_gemm(P) ? (size_t)s.OC * s.B * P : 0);
}

/* image b of inp into p->pad, zero borders */
static void shift_fill(ShiftPlan *p, const float *img, ConvShape s) {
    PAR
    for (int c = 0; c < s.C; c++) {
        float *dst = p->pad + (size_t)c * p->ld;
        memset(dst, 0, sizeof(float) * p->ld);
        for (int y = 0; y < s.H; y++)
            memcpy(dst + (size_t)(y + s.P) * p->W2 + s.P, img + ((size_t)c * s.H + y) * s.W, sizeof(float) * s.W);
    }
}

static size_t tap_offset(const ShiftPlan *p, int k, int K) { return (size_t)(k / K) * p->W2 + k % K; }

static void shift_forward(float *out, const float *inp, const float *weight, const float *bias,
                          float *scratch, ConvShape s) {
    ShiftPlan p = shift_plan(s, scratch);
    for (int k = 0; k < p.KK; k++)
        for (int oc = 0; oc < s.OC; oc++)
            for (int c = 0; c < s.C; c++)
                p.wt[((size_t)k * s.OC + oc) * s.C + c] = weight[((size_t)oc * s.C + c) * p.KK + k];
    for (int b = 0; b < s.B; b++) {
        shift_fill(&p, inp + (size_t)b * s.C * s.H * s.W, s);
        for (int k = 0; k < p.KK; k++)
            sgemm(0, 0, s.OC, (int)p.N, s.C, 1.0f, p.wt + (size_t)k * s.OC * s.C, s.C, p.pad + tap_offset(&p, k, s.K),
                  (int)p.ld, k ? 1.0f : 0.0f, p.ext, (int)p.N);
        PAR
        for (int oc = 0; oc < s.OC; oc++) {
            float bv = bias ? bias[oc] : 0.0f;
            for (int y = 0; y < s.H; y++) {
                const float *src = p.ext + (size_t)oc * p.N + (size_t)y * p.W2;
                float *dst = out + (((size_t)b * s.OC + oc) * s.H + y) * s.W;
                for (int x = 0; x < s.W; x++) dst[x] = src[x] + bv;
            }
        }
    }
}

static void shift_backward(float *dinp, float *dweight, float *dbias, const float *dout, const float *inp,
                           const float *weight, float *scratch, ConvShape s) {
    ShiftPlan p = shift_plan(s, scratch);
    for (int k = 0; k < p.KK; k++)
        for (int oc = 0; oc < s.OC; oc++)
            for (int c = 0; c < s.C; c++)
                p.wt[((size_t)k * s.OC + oc) * s.C + c] = weight[((size_t)oc * s.C + c) * p.KK + k];
    if (dweight) memset(p.dwt, 0, sizeof(float) * p.KK * s.OC * s.C);
    for (int b = 0; b < s.B; b++) {
        /* dout in the wide-row layout, zero in the dropped columns */
        PAR
        for (int oc = 0; oc < s.OC; oc++) {
            double acc = 0.0;
            for (int y = 0; y < s.H; y++) {
                const float *src = dout + (((size_t)b * s.OC + oc) * s.H + y) * s.W;
                float *dst = p.ext + (size_t)oc * p.N + (size_t)y * p.W2;
                memcpy(dst, src, sizeof(float) * s.W);
                for (int x = s.W; x < p.W2; x++) dst[x] = 0.0f;
                kernel_sums(src, NULL, s.W, &acc, NULL);
            }
            if (dbias) dbias[oc] += (float)acc;
        }
        if (dweight) {
            shift_fill(&p, inp + (size_t)b * s.C * s.H * s.W, s);
            for (int k = 0; k < p.KK; k++)
                sgemm(0, 1, s.OC, s.C, (int)p.N, 1.0f, p.ext, (int)p.N, p.pad + tap_offset(&p, k, s.K), (int)p.ld,
                      1.0f, p.dwt + (size_t)k * s.OC * s.C, s.C);
        }
        if (dinp) {
            memset(p.dpad, 0, sizeof(float) * s.C * p.ld);
            for (int k = 0; k < p.KK; k++)
                sgemm(1, 0, s.C, (int)p.N, s.OC, 1.0f, p.wt + (size_t)k * s.OC * s.C, s.C, p.ext, (int)p.N, 1.0f,
                      p.dpad + tap_offset(&p, k, s.K), (int)p.ld);
            PAR
            for (int c = 0; c < s.C; c++)
                for (int y = 0; y < s.H; y++) {
                    const float *src = p.dpad + (size_t)c * p.ld + (size_t)(y + s.P) * p.W2 + s.P;
                    float *dst = dinp + (((size_t)b * s.C + c) * s.H + y) * s.W;
                    for (int x = 0; x < s.W; x++) dst[x] += src[x];
                }
        }
    }
    if (dweight)
        for (int oc = 0; oc < s.OC; oc++)
            for (int c = 0; c < s.C; c++)
                for (int k = 0; k < p.KK; k++)
                    dweight[((size_t)oc * s.C + c) * p.KK + k] += p.dwt[((size_t)k * s.OC + oc) * s.C + c];
}

/* col[(c,ky,kx), b*P + oy*OW + ox] = inp[b, c, oy*S-P+ky, ox*S-P+kx] */
static void im2col(float *col, const float *inp, ConvShape s, int OH, int OW) {
    int K = s.K, rows = s.C * K * K;
    size_t P = (size_t)OH * OW, BP = (size_t)s.B * P;
    PAR
    for (int r = 0; r < rows; r++) {
        int c = r / (K * K), ky = (r / K) % K, kx = r % K;
        for (int b = 0; b < s.B; b++) {
            const float *src = inp + ((size_t)b * s.C + c) * s.H * s.W;
            float *dst = col + (size_t)r * BP + (size_t)b * P;
            for (int oy = 0; oy < OH; oy++) {
                int iy = oy * s.S - s.P + ky;
                float *d = dst + (size_t)oy * OW;
                if (iy < 0 || iy >= s.H) { memset(d, 0, sizeof(float) * OW); continue; }
                const float *srow = src + (size_t)iy * s.W;
                if (s.S == 1) {
                    int lo = s.P - kx, hi = s.W + s.P - kx; /* ox range with 0 <= ix < W */
                    if (lo < 0) lo = 0;
                    if (hi > OW) hi = OW;
                    for (int ox = 0; ox < lo; ox++) d[ox] = 0.0f;
                    if (hi > lo) memcpy(d + lo, srow + lo - s.P + kx, sizeof(float) * (hi - lo));
                    for (int ox = hi > lo ? hi : lo; ox < OW; ox++) d[ox] = 0.0f;
                } else {
                    for (int ox = 0; ox < OW; ox++) {
                        int ix = ox * s.S - s.P + kx;
                        d[ox] = (ix >= 0 && ix < s.W) ? srow[ix] : 0.0f;
                    }
                }
            }
        }
    }
}

/* the adjoint of im2col, accumulated into dinp */
static void col2im_add(float *dinp, const float *col, ConvShape s, int OH, int OW) {
    int K = s.K;
    size_t P = (size_t)OH * OW, BP = (size_t)s.B * P;
    PAR2
    for (int b = 0; b < s.B; b++)
        for (int c = 0; c < s.C; c++) {
            float *dst = dinp + ((size_t)b * s.C + c) * s.H * s.W;
            for (int ky = 0; ky < K; ky++)
                for (int kx = 0; kx < K; kx++) {
                    const float *src = col + ((size_t)(c * K + ky) * K + kx) * BP + (size_t)b * P;
                    /* output columns whose input column 0 <= ix < W */
                    int lo = (s.P - kx + s.S - 1) / s.S, hi = (s.W + s.P - kx + s.S - 1) / s.S;
                    if (s.P - kx < 0) lo = 0;
                    if (hi > OW) hi = OW;
                    for (int oy = 0; oy < OH; oy++) {
                        int iy = oy * s.S - s.P + ky;
                        if (iy < 0 || iy >= s.H) continue;
                        float *drow = dst + (size_t)iy * s.W + kx - s.P;
                        const float *srow = src + (size_t)oy * OW;
                        if (s.S == 1)
                            for (int ox = lo; ox < hi; ox++) drow[ox] += srow[ox];
                        else
                            for (int ox = lo; ox < hi; ox++) drow[ox * s.S] += srow[ox];
                    }
                }
        }
}

#ifndef REAGE_DNNL
/* natively with oneDNN, conv_dnnl.c defines these and picks a path per shape */
void conv_paths_measure(void) {}
size_t conv_paths_export(uint32_t *out, size_t max) { (void)out; (void)max; return 0; }
void conv_paths_import(const uint32_t *in, size_t n) { (void)in; (void)n; }
void conv2d_forward(float *out, const float *inp, const float *weight,
                    const float *bias, float *scratch, ConvShape s) {
    conv2d_gemm_forward(out, inp, weight, bias, scratch, s);
}
void conv2d_backward(float *dinp, float *dweight, float *dbias,
                     const float *dout, const float *inp, const float *weight,
                     float *scratch, ConvShape s) {
    conv2d_gemm_backward(dinp, dweight, dbias, dout, inp, weight, scratch, s);
}
#endif

void conv2d_gemm_forward(float *out, const float *inp, const float *weight,
                         const float *bias, float *scratch, ConvShape s) {
    int OH = conv_out_size(s.H, s.K, s.S, s.P), OW = conv_out_size(s.W, s.K, s.S, s.P);
    size_t P = (size_t)OH * OW, BP = (size_t)s.B * P;
    int CKK = s.C * s.K * s.K;
    if (shift_gemm(s, P)) { shift_forward(out, inp, weight, bias, scratch, s); return; }
    float *col = scratch, *tmp = scratch + (size_t)CKK * BP;
    im2col(col, inp, s, OH, OW);
    if (!batched_gemm(P)) {
        for (int b = 0; b < s.B; b++)
            sgemm(0, 0, s.OC, (int)P, CKK, 1.0f, weight, CKK, col + (size_t)b * P, (int)BP, 0.0f,
                  out + (size_t)b * s.OC * P, (int)P);
        if (bias) {
            PAR2
            for (int b = 0; b < s.B; b++)
                for (int oc = 0; oc < s.OC; oc++) {
                    float *o = out + ((size_t)b * s.OC + oc) * P, bv = bias[oc];
                    for (size_t p = 0; p < P; p++) o[p] += bv;
                }
        }
        return;
    }
    sgemm(0, 0, s.OC, (int)BP, CKK, 1.0f, weight, CKK, col, (int)BP, 0.0f, tmp, (int)BP);
    PAR2
    for (int b = 0; b < s.B; b++)
        for (int oc = 0; oc < s.OC; oc++) {
            float *o = out + ((size_t)b * s.OC + oc) * P;
            const float *t = tmp + (size_t)oc * BP + (size_t)b * P;
            float bv = bias ? bias[oc] : 0.0f;
            for (size_t p = 0; p < P; p++) o[p] = t[p] + bv;
        }
}

void conv2d_gemm_backward(float *dinp, float *dweight, float *dbias,
                          const float *dout, const float *inp, const float *weight,
                          float *scratch, ConvShape s) {
    int OH = conv_out_size(s.H, s.K, s.S, s.P), OW = conv_out_size(s.W, s.K, s.S, s.P);
    size_t P = (size_t)OH * OW, BP = (size_t)s.B * P;
    int CKK = s.C * s.K * s.K;
    if (shift_gemm(s, P)) { shift_backward(dinp, dweight, dbias, dout, inp, weight, scratch, s); return; }
    float *col = scratch, *tmp = scratch + (size_t)CKK * BP;
    if (!batched_gemm(P)) {
        if (dbias) {
            PAR
            for (int oc = 0; oc < s.OC; oc++) {
                double acc = 0.0;
                for (int b = 0; b < s.B; b++) kernel_sums(dout + ((size_t)b * s.OC + oc) * P, NULL, P, &acc, NULL);
                dbias[oc] += (float)acc;
            }
        }
        if (dweight) {
            im2col(col, inp, s, OH, OW);
            for (int b = 0; b < s.B; b++)
                sgemm(0, 1, s.OC, CKK, (int)P, 1.0f, dout + (size_t)b * s.OC * P, (int)P, col + (size_t)b * P,
                      (int)BP, 1.0f, dweight, CKK);
        }
        if (dinp) {
            for (int b = 0; b < s.B; b++)
                sgemm(1, 0, CKK, (int)P, s.OC, 1.0f, weight, CKK, dout + (size_t)b * s.OC * P, (int)P, 0.0f,
                      col + (size_t)b * P, (int)BP);
            col2im_add(dinp, col, s, OH, OW);
        }
        return;
    }
    PAR2
    for (int b = 0; b < s.B; b++)
        for (int oc = 0; oc < s.OC; oc++)
            memcpy(tmp + (size_t)oc * BP + (size_t)b * P,
                   dout + ((size_t)b * s.OC + oc) * P, sizeof(float) * P);
    if (dbias) {
        PAR
        for (int oc = 0; oc < s.OC; oc++) {
            double acc = 0.0;
            kernel_sums(tmp + (size_t)oc * BP, NULL, BP, &acc, NULL);
            dbias[oc] += (float)acc;
        }
    }
    if (dweight) {
        im2col(col, inp, s, OH, OW);
        sgemm(0, 1, s.OC, CKK, (int)BP, 1.0f, tmp, (int)BP, col, (int)BP, 1.0f, dweight, CKK);
    }
    if (dinp) {
        sgemm(1, 0, CKK, (int)BP, s.OC, 1.0f, weight, CKK, tmp, (int)BP, 0.0f, col, (int)BP);
        col2im_add(dinp, col, s, OH, OW);
    }
}

/* --------------------------------------------------------- normalisation */

#define BN_EPS 1e-5f
#define BN_MOMENTUM 0.1f

void batchnorm_forward(float *out, float *mean, float *rstd, const float *inp,
                       const float *gamma, const float *beta,
                       float *running_mean, float *running_var, int training,
                       int B, int C, int HW) {
    size_t N = (size_t)B * HW;
    PAR
    for (int c = 0; c < C; c++) {
        float m, r;
        if (training) {
            /* one pass for the sum and the sum of squares: in double, their
             * difference keeps the variance of float data */
            double sum = 0.0, sum2 = 0.0;
            for (int b = 0; b < B; b++) {
                const float *x = inp + ((size_t)b * C + c) * HW;
                kernel_sums(x, x, HW, &sum, &sum2);
            }
            double mu = sum / N, sq = sum2 - sum * mu;
            if (sq < 0.0) sq = 0.0;
            double var = sq / N;
            m = (float)mu;
            r = (float)(1.0 / sqrt(var + BN_EPS));
            if (running_mean) {
                double unbiased = N > 1 ? sq / (N - 1) : var;
                running_mean[c] = (1 - BN_MOMENTUM) * running_mean[c] + BN_MOMENTUM * m;
                running_var[c] = (1 - BN_MOMENTUM) * running_var[c] + BN_MOMENTUM * (float)unbiased;
            }
        } else {
            m = running_mean[c];
            r = 1.0f / sqrtf(running_var[c] + BN_EPS);
        }
        mean[c] = m;
        rstd[c] = r;
        float g = gamma[c] * r, sh = beta[c] - m * g;
        for (int b = 0; b < B; b++)
            kernel_scale_shift(out + ((size_t)b * C + c) * HW, inp + ((size_t)b * C + c) * HW, g, sh, HW);
    }
}

void batchnorm_backward(float *dinp, float *dgamma, float *dbeta,
                        const float *dout, const float *inp, const float *mean,
                        const float *rstd, const float *gamma, int training,
                        int B, int C, int HW) {
    size_t N = (size_t)B * HW;
    PAR
    for (int c = 0; c < C; c++) {
        double sdy = 0.0, sdx = 0.0;
        float m = mean[c], r = rstd[c];
        for (int b = 0; b < B; b++)
            kernel_sums(dout + ((size_t)b * C + c) * HW, inp + ((size_t)b * C + c) * HW, HW, &sdy, &sdx);
        double sdyx = (sdx - m * sdy) * r; /* sum of dy * (x - m) * r */
        if (dgamma) dgamma[c] += (float)sdyx;
        if (dbeta) dbeta[c] += (float)sdy;
        if (!dinp) continue;
        float g = gamma[c] * r;
        float mdy = training ? (float)(sdy / N) : 0.0f, mdyx = training ? (float)(sdyx / N) : 0.0f;
        for (int b = 0; b < B; b++) {
            const float *x = inp + ((size_t)b * C + c) * HW;
            const float *dy = dout + ((size_t)b * C + c) * HW;
            float *dx = dinp + ((size_t)b * C + c) * HW;
            for (int i = 0; i < HW; i++)
                dx[i] += g * (dy[i] - mdy - (x[i] - m) * r * mdyx);
        }
    }
}

void instancenorm_forward(float *out, float *mean, float *rstd,
                          const float *inp, int B, int C, int HW) {
    PAR
    for (int bc = 0; bc < B * C; bc++) {
        float m, var;
        kernel_mean_var(inp + (size_t)bc * HW, HW, &m, &var);
        float r = (float)(1.0 / sqrt((double)var + BN_EPS));
        mean[bc] = m;
        rstd[bc] = r;
        kernel_scale_shift(out + (size_t)bc * HW, inp + (size_t)bc * HW, r, -m * r, HW);
    }
}

void instancenorm_backward(float *dinp, const float *dout, const float *out,
                           const float *rstd, int B, int C, int HW) {
    PAR
    for (int bc = 0; bc < B * C; bc++) {
        const float *xh = out + (size_t)bc * HW, *dy = dout + (size_t)bc * HW;
        float *dx = dinp + (size_t)bc * HW;
        double sdy = 0.0, sdyx = 0.0;
        kernel_sums(dy, xh, HW, &sdy, &sdyx);
        float mdy = (float)(sdy / HW), mdyx = (float)(sdyx / HW), r = rstd[bc];
        for (int i = 0; i < HW; i++) dx[i] += r * (dy[i] - mdy - xh[i] * mdyx);
    }
}

void film_forward(float *out, const float *inp, const float *gamma,
                  const float *beta, int mod_stride, int B, int C, int HW) {
    PAR2
    for (int b = 0; b < B; b++)
        for (int c = 0; c < C; c++) {
            float g = 1.0f + gamma[(size_t)b * mod_stride + c], sh = beta[(size_t)b * mod_stride + c];
            kernel_scale_shift(out + ((size_t)b * C + c) * HW, inp + ((size_t)b * C + c) * HW, g, sh, HW);
        }
}

void film_backward(float *dinp, float *dgamma, float *dbeta, const float *dout,
                   const float *inp, const float *gamma, int mod_stride,
                   int B, int C, int HW) {
    PAR2
    for (int b = 0; b < B; b++)
        for (int c = 0; c < C; c++) {
            const float *x = inp + ((size_t)b * C + c) * HW;
            const float *dy = dout + ((size_t)b * C + c) * HW;
            double sdy = 0.0, sdyx = 0.0;
            kernel_sums(dy, x, HW, &sdy, &sdyx);
            if (dgamma) dgamma[(size_t)b * mod_stride + c] += (float)sdyx;
            if (dbeta) dbeta[(size_t)b * mod_stride + c] += (float)sdy;
            if (dinp) {
                float g = 1.0f + gamma[(size_t)b * mod_stride + c];
                float *dx = dinp + ((size_t)b * C + c) * HW;
                for (int i = 0; i < HW; i++) dx[i] += dy[i] * g;
            }
        }
}

/* -------------------------------------------------------------- pointwise */

/* pointwise work in chunks: threads natively, SIMD lanes within each */
#define CHUNK 4096
void relu_forward(float *out, const float *inp, size_t N) {
    PAR for (size_t i = 0; i < N; i += CHUNK) kernel_leaky(out + i, inp + i, 0.0f, N - i < CHUNK ? N - i : CHUNK);
}
void relu_backward(float *dinp, const float *dout, const float *inp, size_t N) {
    PAR for (size_t i = 0; i < N; i += CHUNK) kernel_leaky_backward(dinp + i, dout + i, inp + i, 0.0f, N - i < CHUNK ? N - i : CHUNK);
}
void leakyrelu_forward(float *out, const float *inp, float slope, size_t N) {
    PAR for (size_t i = 0; i < N; i += CHUNK) kernel_leaky(out + i, inp + i, slope, N - i < CHUNK ? N - i : CHUNK);
}
void prelu_forward(float *out, const float *inp, const float *alpha, int B, int C, int HW) {
    PAR for (int bc = 0; bc < B * C; bc++)
        kernel_leaky(out + (size_t)bc * HW, inp + (size_t)bc * HW, alpha[bc % C], (size_t)HW);
}
void leakyrelu_backward(float *dinp, const float *dout, const float *inp,
                        float slope, size_t N) {
    PAR for (size_t i = 0; i < N; i += CHUNK) kernel_leaky_backward(dinp + i, dout + i, inp + i, slope, N - i < CHUNK ? N - i : CHUNK);
}
void tanh_forward(float *out, const float *inp, size_t N) {
    PAR for (size_t i = 0; i < N; i++) out[i] = tanhf(inp[i]);
}
void tanh_backward(float *dinp, const float *dout, const float *out, size_t N) {
    PAR for (size_t i = 0; i < N; i++) dinp[i] += dout[i] * (1.0f - out[i] * out[i]);
}
void residual_forward(float *out, const float *a, const float *b, size_t N) {
    PAR for (size_t i = 0; i < N; i++) out[i] = a[i] + b[i];
}
void residual_backward(float *da, float *db, const float *dout, size_t N) {
    if (da) { PAR for (size_t i = 0; i < N; i++) da[i] += dout[i]; }
    if (db) { PAR for (size_t i = 0; i < N; i++) db[i] += dout[i]; }
}

/* ------------------------------------------------------------------ shape */

void concat_forward(float *out, const float *a, const float *b,
                    int B, int Ca, int Cb, int HW) {
    size_t na = (size_t)Ca * HW, nb = (size_t)Cb * HW;
    for (int i = 0; i < B; i++) {
        memcpy(out + i * (na + nb), a + i * na, sizeof(float) * na);
        memcpy(out + i * (na + nb) + na, b + i * nb, sizeof(float) * nb);
    }
}
void concat_backward(float *da, float *db, const float *dout,
                     int B, int Ca, int Cb, int HW) {
    size_t na = (size_t)Ca * HW, nb = (size_t)Cb * HW;
    for (int i = 0; i < B; i++) {
        const float *src = dout + i * (na + nb);
        if (da) for (size_t k = 0; k < na; k++) da[i * na + k] += src[k];
        if (db) for (size_t k = 0; k < nb; k++) db[i * nb + k] += src[na + k];
    }
}

void upsample2x_forward(float *out, const float *inp, int B, int C, int H, int W) {
    PAR
    for (int bc = 0; bc < B * C; bc++) {
        const float *x = inp + (size_t)bc * H * W;
        float *y = out + (size_t)bc * 4 * H * W;
        for (int i = 0; i < H; i++) {
            float *r0 = y + (size_t)(2 * i) * 2 * W;
            kernel_upsample_row(r0, x + (size_t)i * W, W);
            memcpy(r0 + 2 * W, r0, sizeof(float) * 2 * W);
        }
    }
}
void upsample2x_backward(float *dinp, const float *dout, int B, int C, int H, int W) {
    PAR
    for (int bc = 0; bc < B * C; bc++) {
        float *dx = dinp + (size_t)bc * H * W;
        const float *dy = dout + (size_t)bc * 4 * H * W;
        for (int i = 0; i < H; i++) {
            const float *r0 = dy + (size_t)(2 * i) * 2 * W, *r1 = r0 + 2 * W;
            for (int j = 0; j < W; j++)
                dx[(size_t)i * W + j] += r0[2 * j] + r0[2 * j + 1] + r1[2 * j] + r1[2 * j + 1];
        }
    }
}

static const float binomial5[5] = {1 / 16.0f, 4 / 16.0f, 6 / 16.0f, 4 / 16.0f, 1 / 16.0f};
static int clampi(int v, int lo, int hi) { return v < lo ? lo : v > hi ? hi : v; }

void blur5_forward(float *out, const float *inp, int B, int C, int H, int W) {
    PAR
    for (int bc = 0; bc < B * C; bc++) {
        const float *x = inp + (size_t)bc * H * W;
        float *y = out + (size_t)bc * H * W;
        for (int i = 0; i < H; i++)
            for (int j = 0; j < W; j++) {
                float acc = 0;
                for (int u = 0; u < 5; u++) {
                    const float *row = x + (size_t)clampi(i + u - 2, 0, H - 1) * W;
                    float r = 0;
                    for (int v = 0; v < 5; v++) r += binomial5[v] * row[clampi(j + v - 2, 0, W - 1)];
                    acc += binomial5[u] * r;
                }
                y[(size_t)i * W + j] = acc;
            }
    }
}

void blur5_backward(float *dinp, const float *dout, int B, int C, int H, int W) {
    PAR
    for (int bc = 0; bc < B * C; bc++) {
        const float *dy = dout + (size_t)bc * H * W;
        float *dx = dinp + (size_t)bc * H * W;
        for (int i = 0; i < H; i++)
            for (int j = 0; j < W; j++) {
                float g = dy[(size_t)i * W + j];
                for (int u = 0; u < 5; u++) {
                    float *row = dx + (size_t)clampi(i + u - 2, 0, H - 1) * W;
                    for (int v = 0; v < 5; v++) row[clampi(j + v - 2, 0, W - 1)] += binomial5[u] * binomial5[v] * g;
                }
            }
    }
}

int same_out_size(int in, int s) { return (in + s - 1) / s; }
int same_pad_before(int in, int k, int s) {
    int total = (same_out_size(in, s) - 1) * s + k - in;
    return total > 0 ? total / 2 : 0;
}

void dwconv3_forward(float *out, const float *inp, const float *weight, const float *bias,
                     int B, int C, int H, int W, int S) {
    int OH = same_out_size(H, S), OW = same_out_size(W, S), pt = same_pad_before(H, 3, S),
        pl = same_pad_before(W, 3, S);
    if (S == 1) {
        /* stride 1 runs row by row through the SIMD kernel; at the top and
         * bottom edges the taps that would read the padding row are zeroed */
        PAR
        for (int bc = 0; bc < B * C; bc++) {
            const float *x = inp + (size_t)bc * H * W, *k = weight + (size_t)(bc % C) * 9;
            float bv = bias ? bias[bc % C] : 0.0f, kt[9], kb[9];
            for (int t = 0; t < 9; t++) {
                kt[t] = t < 3 ? 0.0f : k[t];
                kb[t] = t >= 6 ? 0.0f : k[t];
            }
            for (int i = 0; i < H; i++) {
                const float *up = i > 0 ? x + (size_t)(i - 1) * W : x, *down = i + 1 < H ? x + (size_t)(i + 1) * W : x;
                const float *kk = H == 1 ? NULL : i == 0 ? kt : i + 1 == H ? kb : k;
                if (!kk) {  /* a single row: only the middle taps */
                    float km[9] = {0, 0, 0, k[3], k[4], k[5], 0, 0, 0};
                    kernel_dw3_row(out + (size_t)bc * W, x, x, x, km, bv, W);
                } else {
                    kernel_dw3_row(out + ((size_t)bc * H + i) * W, up, x + (size_t)i * W, down, kk, bv, W);
                }
            }
        }
        return;
    }
    PAR
    for (int bc = 0; bc < B * C; bc++) {
        const float *x = inp + (size_t)bc * H * W, *k = weight + (size_t)(bc % C) * 9;
        float bv = bias ? bias[bc % C] : 0.0f;
        for (int i = 0; i < OH; i++)
            for (int j = 0; j < OW; j++) {
                float acc = bv;
                for (int a = 0; a < 3; a++) {
                    int y = i * S - pt + a;
                    if (y < 0 || y >= H) continue;
                    for (int b = 0; b < 3; b++) {
                        int xx = j * S - pl + b;
                        if (xx >= 0 && xx < W) acc += k[3 * a + b] * x[(size_t)y * W + xx];
                    }
                }
                out[((size_t)bc * OH + i) * OW + j] = acc;
            }
    }
}

void maxpool2_forward(float *out, const float *inp, int B, int C, int H, int W) {
    int OH = H / 2, OW = W / 2;
    PAR
    for (int bc = 0; bc < B * C; bc++)
        for (int i = 0; i < OH; i++) {
            const float *r0 = inp + ((size_t)bc * H + 2 * i) * W, *r1 = r0 + W;
            float *o = out + ((size_t)bc * OH + i) * OW;
            for (int j = 0; j < OW; j++) {
                float a = r0[2 * j] > r0[2 * j + 1] ? r0[2 * j] : r0[2 * j + 1];
                float b = r1[2 * j] > r1[2 * j + 1] ? r1[2 * j] : r1[2 * j + 1];
                o[j] = a > b ? a : b;
            }
        }
}

void zeropad_forward(float *out, const float *inp, int B, int C, int H, int W,
                     int top, int left, int bottom, int right) {
    int OH = H + top + bottom, OW = W + left + right;
    memset(out, 0, sizeof(float) * (size_t)B * C * OH * OW);
    for (int bc = 0; bc < B * C; bc++)
        for (int i = 0; i < H; i++)
            memcpy(out + ((size_t)bc * OH + i + top) * OW + left, inp + ((size_t)bc * H + i) * W,
                   sizeof(float) * W);
}

void avgpool_forward(float *out, const float *inp, int B, int C, int HW) {
    PAR
    for (int bc = 0; bc < B * C; bc++) {
        double s = 0.0;
        for (int i = 0; i < HW; i++) s += inp[(size_t)bc * HW + i];
        out[bc] = (float)(s / HW);
    }
}
void avgpool_backward(float *dinp, const float *dout, int B, int C, int HW) {
    PAR
    for (int bc = 0; bc < B * C; bc++) {
        float g = dout[bc] / HW;
        for (int i = 0; i < HW; i++) dinp[(size_t)bc * HW + i] += g;
    }
}

/* ----------------------------------------------------------- conditioning */

void embedchan_forward(float *out, const float *groupw, const float *table,
                       int B, int G, int HW) {
    for (int b = 0; b < B; b++) {
        float *o = out + (size_t)b * HW;
        memset(o, 0, sizeof(float) * HW);
        for (int g = 0; g < G; g++) {
            float w = groupw[b * G + g];
            if (w == 0.0f) continue;
            const float *t = table + (size_t)g * HW;
            for (int i = 0; i < HW; i++) o[i] += w * t[i];
        }
    }
}
void embedchan_backward(float *dtable, const float *dout, const float *groupw,
                        int B, int G, int HW) {
    for (int b = 0; b < B; b++)
        for (int g = 0; g < G; g++) {
            float w = groupw[b * G + g];
            if (w == 0.0f) continue;
            const float *d = dout + (size_t)b * HW;
            float *t = dtable + (size_t)g * HW;
            for (int i = 0; i < HW; i++) t[i] += w * d[i];
        }
}

void linear_forward(float *out, const float *inp, const float *weight,
                    const float *bias, int B, int IN, int OUT) {
    sgemm(0, 1, B, OUT, IN, 1.0f, inp, IN, weight, IN, 0.0f, out, OUT);
    if (bias)
        for (int b = 0; b < B; b++)
            for (int o = 0; o < OUT; o++) out[(size_t)b * OUT + o] += bias[o];
}
void linear_backward(float *dinp, float *dweight, float *dbias,
                     const float *dout, const float *inp, const float *weight,
                     int B, int IN, int OUT) {
    if (dinp) sgemm(0, 0, B, IN, OUT, 1.0f, dout, OUT, weight, IN, 1.0f, dinp, IN);
    if (dweight) sgemm(1, 0, OUT, IN, B, 1.0f, dout, OUT, inp, IN, 1.0f, dweight, IN);
    if (dbias)
        for (int b = 0; b < B; b++)
            for (int o = 0; o < OUT; o++) dbias[o] += dout[(size_t)b * OUT + o];
}

/* ----------------------------------------------------------------- losses */

float mse_const_forward(const float *x, float target, size_t N) {
    double s = 0.0;
    for (size_t i = 0; i < N; i++) { double d = x[i] - target; s += d * d; }
    return (float)(s / N);
}
void mse_const_backward(float *dx, const float *x, float target, float scale, size_t N) {
    float k = 2.0f * scale / N;
    for (size_t i = 0; i < N; i++) dx[i] += k * (x[i] - target);
}
/* log(1 + e^x) without overflow */
static double softplus(double x) { return x > 0 ? x + log1p(exp(-x)) : log1p(exp(x)); }
float bce_logits_const_forward(const float *x, float target, size_t N) {
    double s = 0.0;
    for (size_t i = 0; i < N; i++) s += softplus(x[i]) - target * x[i];
    return (float)(s / N);
}
void bce_logits_const_backward(float *dx, const float *x, float target, float scale, size_t N) {
    for (size_t i = 0; i < N; i++) dx[i] += scale * (1.0f / (1.0f + expf(-x[i])) - target) / N;
}
float l1_forward(const float *a, const float *b, size_t N) {
    double s = 0.0;
    for (size_t i = 0; i < N; i++) s += fabsf(a[i] - (b ? b[i] : 0.0f));
    return (float)(s / N);
}
void l1_backward(float *da, const float *a, const float *b, float scale, size_t N) {
    float k = scale / N;
    for (size_t i = 0; i < N; i++) {
        float d = a[i] - (b ? b[i] : 0.0f);
        da[i] += d > 0.0f ? k : (d < 0.0f ? -k : 0.0f);
    }
}
static float tv_at(const float *a, const float *b, size_t i) { return a[i] - (b ? b[i] : 0.0f); }

float tv_forward(const float *a, const float *b, int BC, int H, int W) {
    double s = 0.0;
    size_t HW = (size_t)H * W;
    for (int p = 0; p < BC; p++)
        for (int y = 0; y < H; y++)
            for (int x = 0; x < W; x++) {
                size_t i = (size_t)p * HW + (size_t)y * W + x;
                float v = tv_at(a, b, i);
                if (x + 1 < W) s += fabsf(tv_at(a, b, i + 1) - v);
                if (y + 1 < H) s += fabsf(tv_at(a, b, i + W) - v);
            }
    return (float)(s / ((double)BC * HW));
}

void tv_backward(float *da, const float *a, const float *b, float scale, int BC, int H, int W) {
    size_t HW = (size_t)H * W;
    float k = scale / ((float)BC * HW);
    for (int p = 0; p < BC; p++)
        for (int y = 0; y < H; y++)
            for (int x = 0; x < W; x++) {
                size_t i = (size_t)p * HW + (size_t)y * W + x;
                float v = tv_at(a, b, i);
                if (x + 1 < W) {
                    float d = tv_at(a, b, i + 1) - v, g = d > 0 ? k : d < 0 ? -k : 0.0f;
                    da[i + 1] += g;
                    da[i] -= g;
                }
                if (y + 1 < H) {
                    float d = tv_at(a, b, i + W) - v, g = d > 0 ? k : d < 0 ? -k : 0.0f;
                    da[i + W] += g;
                    da[i] -= g;
                }
            }
}

void chroma_forward(float *out, const float *a, const float *b, int B, int HW) {
    for (int n = 0; n < B; n++) {
        const float *r = a + (size_t)n * 3 * HW, *g = r + HW, *bl = g + HW;
        const float *r0 = b ? b + (size_t)n * 3 * HW : NULL, *g0 = r0 ? r0 + HW : NULL, *b0 = g0 ? g0 + HW : NULL;
        float *rg = out + (size_t)n * 2 * HW, *bg = rg + HW;
        for (int i = 0; i < HW; i++) {
            float dg = g[i] - (g0 ? g0[i] : 0.0f);
            rg[i] = r[i] - (r0 ? r0[i] : 0.0f) - dg;
            bg[i] = bl[i] - (b0 ? b0[i] : 0.0f) - dg;
        }
    }
}

void chroma_backward(float *da, const float *dout, int B, int HW) {
    for (int n = 0; n < B; n++) {
        float *dr = da + (size_t)n * 3 * HW, *dg = dr + HW, *db = dg + HW;
        const float *drg = dout + (size_t)n * 2 * HW, *dbg = drg + HW;
        for (int i = 0; i < HW; i++) {
            dr[i] += drg[i];
            db[i] += dbg[i];
            dg[i] -= drg[i] + dbg[i];
        }
    }
}

void window_mean_forward(float *out, const float *a, const float *b, int BC, int H, int W, int y0, int y1, int x0, int x1) {
    double area = (double)(y1 - y0) * (x1 - x0);
    for (int n = 0; n < BC; n++) {
        double sum = 0.0;
        for (int y = y0; y < y1; y++)
            for (int x = x0; x < x1; x++) {
                size_t i = ((size_t)n * H + y) * W + x;
                sum += a[i] - (b ? b[i] : 0.0f);
            }
        out[n] = (float)(sum / area);
    }
}

void window_mean_backward(float *da, const float *dout, int BC, int H, int W, int y0, int y1, int x0, int x1) {
    float inv = 1.0f / ((float)(y1 - y0) * (x1 - x0));
    for (int n = 0; n < BC; n++)
        for (int y = y0; y < y1; y++)
            for (int x = x0; x < x1; x++) da[((size_t)n * H + y) * W + x] += dout[n] * inv;
}

void shade_forward(float *out, const float *a, const float *b, int B, int H, int W, int k) {
    int BH = H / k, BW = W / k;
    size_t HW = (size_t)H * W;
    double inv = 1.0 / (3.0 * k * k);
    for (int n = 0; n < B; n++)
        for (int by = 0; by < BH; by++)
            for (int bx = 0; bx < BW; bx++) {
                double sum = 0.0;
                for (int c = 0; c < 3; c++)
                    for (int y = by * k; y < (by + 1) * k; y++)
                        for (int x = bx * k; x < (bx + 1) * k; x++) {
                            size_t i = ((size_t)n * 3 + c) * HW + (size_t)y * W + x;
                            sum += a[i] - (b ? b[i] : 0.0f);
                        }
                out[((size_t)n * BH + by) * BW + bx] = (float)(sum * inv);
            }
}

void shade_backward(float *da, const float *dout, int B, int H, int W, int k) {
    int BH = H / k, BW = W / k;
    size_t HW = (size_t)H * W;
    float inv = 1.0f / (3.0f * k * k);
    for (int n = 0; n < B; n++)
        for (int c = 0; c < 3; c++)
            for (int y = 0; y < BH * k; y++)
                for (int x = 0; x < BW * k; x++)
                    da[((size_t)n * 3 + c) * HW + (size_t)y * W + x] += dout[((size_t)n * BH + y / k) * BW + x / k] * inv;
}

float hinge_below_forward(const float *x, float margin, size_t N) {
    double sum = 0.0;
    for (size_t i = 0; i < N; i++) sum += fmaxf(0.0f, -x[i] - margin);
    return (float)(sum / (double)N);
}

void hinge_below_backward(float *dx, const float *x, float margin, float scale, size_t N) {
    float g = scale / (float)N;
    for (size_t i = 0; i < N; i++)
        if (-x[i] - margin > 0) dx[i] -= g;
}

float crossentropy_forward(float *probs, const float *logits, const int *labels,
                           int B, int G) {
    double loss = 0.0;
    for (int b = 0; b < B; b++) {
        const float *z = logits + (size_t)b * G;
        float *p = probs + (size_t)b * G;
        float mx = z[0];
        for (int g = 1; g < G; g++) if (z[g] > mx) mx = z[g];
        double sum = 0.0;
        for (int g = 0; g < G; g++) { p[g] = expf(z[g] - mx); sum += p[g]; }
        for (int g = 0; g < G; g++) p[g] = (float)(p[g] / sum);
        loss += -(z[labels[b]] - mx - log(sum));
    }
    return (float)(loss / B);
}
void crossentropy_backward(float *dlogits, const float *probs, const int *labels,
                           float scale, int B, int G) {
    for (int b = 0; b < B; b++)
        for (int g = 0; g < G; g++)
            dlogits[(size_t)b * G + g] += scale * (probs[(size_t)b * G + g] - (g == labels[b])) / B;
}

void expected_value_forward(float *out, const float *probs, const float *values, int B, int G) {
    for (int b = 0; b < B; b++) {
        double e = 0;
        for (int g = 0; g < G; g++) e += (double)probs[(size_t)b * G + g] * values[g];
        out[b] = (float)e;
    }
}
void expected_value_backward(float *dlogits, const float *probs, const float *out, const float *values,
                             const float *dout, int B, int G) {
    /* d E / d z_g = p_g (v_g - E) */
    for (int b = 0; b < B; b++)
        for (int g = 0; g < G; g++)
            dlogits[(size_t)b * G + g] += dout[b] * probs[(size_t)b * G + g] * (values[g] - out[b]);
}

/* Output pixel i of d brought from a crop of side c: its two source pixels and the weight of the second. */
static inline void crop_tap(int i, int d, int c, int *a, int *b, float *t) {
    float p = (i + 0.5f) * c / d - 0.5f;
    p = p < 0 ? 0 : p > c - 1 ? (float)(c - 1) : p;
    *a = (int)p;
    *b = *a + 1 < c ? *a + 1 : *a;
    *t = p - *a;
}

void crop_resize_forward(float *out, const float *inp, int BC, int S, int off, int crop, int D) {
    for (int q = 0; q < BC; q++)
        for (int i = 0; i < D; i++) {
            int i0, i1;
            float ti;
            crop_tap(i, D, crop, &i0, &i1, &ti);
            const float *r0 = inp + ((size_t)q * S + off + i0) * S + off, *r1 = inp + ((size_t)q * S + off + i1) * S + off;
            for (int j = 0; j < D; j++) {
                int j0, j1;
                float tj;
                crop_tap(j, D, crop, &j0, &j1, &tj);
                out[((size_t)q * D + i) * D + j] = (r0[j0] * (1 - tj) + r0[j1] * tj) * (1 - ti) + (r1[j0] * (1 - tj) + r1[j1] * tj) * ti;
            }
        }
}

void crop_resize_backward(float *dinp, const float *dout, int BC, int S, int off, int crop, int D) {
    for (int q = 0; q < BC; q++)
        for (int i = 0; i < D; i++) {
            int i0, i1;
            float ti;
            crop_tap(i, D, crop, &i0, &i1, &ti);
            float *r0 = dinp + ((size_t)q * S + off + i0) * S + off, *r1 = dinp + ((size_t)q * S + off + i1) * S + off;
            for (int j = 0; j < D; j++) {
                int j0, j1;
                float tj, g = dout[((size_t)q * D + i) * D + j];
                crop_tap(j, D, crop, &j0, &j1, &tj);
                r0[j0] += g * (1 - tj) * (1 - ti), r0[j1] += g * tj * (1 - ti);
                r1[j0] += g * (1 - tj) * ti, r1[j1] += g * tj * ti;
            }
        }
}
