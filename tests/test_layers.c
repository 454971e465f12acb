/* Every layer and loss: forward against an independent reference where one
 * is simple to write, backward against finite differences. */
#include <math.h>
#ifdef REAGE_DNNL
#include "conv_dnnl.h"
#endif
#include <stdlib.h>
#include <string.h>
#include "../src/kernels.h"
#include "../src/layers.h"
#include "../src/parallel.h"
#include "../src/sgemm.h"
#include "check.h"
#include "gradcheck.h"

#define TOL 1e-2

/* The layer under test: fwd() recomputes out from the current inputs. */
static struct { void (*fwd)(void); float *out, *R; size_t nout; } L;
static double layer_loss(void *ctx) { (void)ctx; L.fwd(); return dot(L.out, L.R, L.nout); }

static float *buf(size_t n, float lo, float hi, unsigned seed) {
    float *p = malloc(sizeof(float) * n);
    fill_uniform(p, n, lo, hi, seed);
    return p;
}
static float *zeros(size_t n) { return calloc(n, sizeof(float)); }

/* checks d(sum(out*R))/d(x) == grad on x's first n values */
static void expect_grad(const char *what, float *x, const float *grad, size_t n) {
    double err = gradcheck(layer_loss, NULL, x, grad, n, 60, 1e-2f);
    CHECK(err < TOL, "%s: gradient relative error %.3g", what, err);
}

static void test_sgemm(void) {
    int shapes[][3] = {{1, 1, 1}, {5, 7, 3}, {17, 33, 65}, {64, 300, 129}, {3, 520, 270}};
    for (size_t s = 0; s < sizeof(shapes) / sizeof(shapes[0]); s++)
        for (int ta = 0; ta < 2; ta++)
            for (int tb = 0; tb < 2; tb++) {
                int M = shapes[s][0], N = shapes[s][1], K = shapes[s][2];
                float *A = buf((size_t)M * K, -1, 1, 1), *B = buf((size_t)K * N, -1, 1, 2);
                float *C1 = buf((size_t)M * N, -1, 1, 3), *C2 = malloc(sizeof(float) * M * N);
                memcpy(C2, C1, sizeof(float) * M * N);
                int lda = ta ? M : K, ldb = tb ? K : N;
                sgemm(ta, tb, M, N, K, 0.7f, A, lda, B, ldb, 0.3f, C1, N);
                sgemm_ref(ta, tb, M, N, K, 0.7f, A, lda, B, ldb, 0.3f, C2, N);
                double md = 0;
                for (int i = 0; i < M * N; i++) md = fmax(md, fabs(C1[i] - C2[i]));
                CHECK(md < 1e-4 * sqrt(K), "sgemm(%s) %dx%dx%d ta=%d tb=%d: max diff %g",
                      sgemm_backend(), M, N, K, ta, tb, md);
                free(A); free(B); free(C1); free(C2);
            }
}

/* ---- the thread pool ---- */
typedef struct {
    int *ran;      /* times each index ran */
    int bad_range; /* ranges longer than the grain or past the end, thread indices out of range */
    int grain, n, threads, nested;
} PoolCase;

static void count_inner(void *ctx, int begin, int end, int thread) {
    int *sum = ctx;
    (void)thread;
    for (int i = begin; i < end; i++) __atomic_fetch_add(sum, 1, __ATOMIC_SEQ_CST);
}

static void count_runs(void *ctx, int begin, int end, int thread) {
    PoolCase *c = ctx;
    int longest = c->threads == 1 ? c->n : c->grain; /* one thread runs the whole loop as one range */
    if (end - begin > longest || begin < 0 || end > c->n || thread < 0 || thread >= c->threads)
        __atomic_fetch_add(&c->bad_range, 1, __ATOMIC_SEQ_CST);
    for (int i = begin; i < end; i++) {
        int inner = 0;
        if (c->nested) parallel_for(10, 1, count_inner, &inner); /* runs on this thread, whole */
        __atomic_fetch_add(&c->ran[i], inner == 10 * c->nested ? 1 : 100, __ATOMIC_SEQ_CST);
    }
}

static void test_parallel_for(void) {
    int ns[] = {1, 5, 97, 100000}, grains[] = {1, 3, 64, 1 << 20};
    for (int threads = 1; threads <= 2; threads++)
        for (size_t a = 0; a < sizeof(ns) / sizeof(ns[0]); a++)
            for (size_t b = 0; b < sizeof(grains) / sizeof(grains[0]); b++)
                for (int nested = 0; nested <= 1; nested++) {
                    int n = ns[a];
                    PoolCase c = {calloc(n, sizeof(int)), 0, grains[b], n, threads, nested};
                    parallel_set_threads(threads);
                    c.threads = parallel_threads();
                    /* a tiny grain over a long loop is widened (at most 4,096 ranges), never narrowed */
                    if ((n + c.grain - 1) / c.grain > 4096) c.grain = (n + 4095) / 4096;
                    parallel_for(n, grains[b], count_runs, &c);
                    int wrong = 0;
                    for (int i = 0; i < n; i++) wrong += c.ran[i] != 1;
                    CHECK(wrong == 0 && c.bad_range == 0 && c.threads == threads,
                          "parallel_for(%d, grain %d, %d threads%s): %d indices not run once, %d bad ranges", n, grains[b],
                          threads, nested ? ", nested" : "", wrong, c.bad_range);
                    free(c.ran);
                }
    parallel_set_threads(0); /* OpenMP's own count again */
}

/* ---- convolution ---- */
static ConvShape cs;
static float *c_in, *c_w, *c_b, *c_out, *c_scr;
static void conv_fwd(void) { conv2d_forward(c_out, c_in, c_w, c_b, c_scr, cs); }

static void conv_direct(float *out, const float *in, const float *w, const float *b, ConvShape s) {
    int OH = conv_out_size(s.H, s.K, s.S, s.P), OW = conv_out_size(s.W, s.K, s.S, s.P);
    for (int n = 0; n < s.B; n++)
        for (int o = 0; o < s.OC; o++)
            for (int y = 0; y < OH; y++)
                for (int x = 0; x < OW; x++) {
                    double acc = b ? b[o] : 0;
                    for (int c = 0; c < s.C; c++)
                        for (int ky = 0; ky < s.K; ky++)
                            for (int kx = 0; kx < s.K; kx++) {
                                int iy = y * s.S - s.P + ky, ix = x * s.S - s.P + kx;
                                if (iy < 0 || ix < 0 || iy >= s.H || ix >= s.W) continue;
                                acc += (double)in[((n * s.C + c) * s.H + iy) * s.W + ix] *
                                       w[((o * s.C + c) * s.K + ky) * s.K + kx];
                            }
                    out[((n * s.OC + o) * OH + y) * OW + x] = (float)acc;
                }
}

static void test_conv_shapes(const char *backend) {
    ConvShape shapes[] = {
        {2, 3, 7, 7, 4, 3, 1, 1}, {2, 5, 8, 8, 3, 4, 2, 1}, {1, 4, 9, 9, 6, 3, 2, 1},
        {3, 2, 6, 6, 2, 1, 1, 0}, {2, 3, 6, 6, 2, 4, 1, 1}, {1, 2, 5, 5, 3, 5, 1, 2},
        /* maps of 1024+ outputs take the one-GEMM-per-image path */
        {2, 3, 40, 40, 4, 3, 1, 1}, {2, 2, 66, 66, 3, 4, 2, 1},
        /* ... and "same" ones take one GEMM per kernel tap */
        {2, 3, 33, 35, 4, 3, 1, 1}, {1, 2, 36, 32, 3, 5, 1, 2}, {2, 2, 32, 34, 2, 4, 1, 1},
        /* wider inputs, as the networks' inner layers have */
        {2, 12, 10, 10, 16, 3, 1, 1}, {2, 16, 18, 18, 8, 4, 2, 1}, {2, 17, 9, 9, 5, 3, 2, 1},
    };
    for (size_t t = 0; t < sizeof(shapes) / sizeof(shapes[0]); t++) {
        cs = shapes[t];
        int OH = conv_out_size(cs.H, cs.K, cs.S, cs.P), OW = conv_out_size(cs.W, cs.K, cs.S, cs.P);
        size_t nin = (size_t)cs.B * cs.C * cs.H * cs.W, nw = (size_t)cs.OC * cs.C * cs.K * cs.K;
        size_t nout = (size_t)cs.B * cs.OC * OH * OW;
        c_in = buf(nin, -1, 1, 10 + t); c_w = buf(nw, -1, 1, 20 + t); c_b = buf(cs.OC, -1, 1, 30 + t);
        c_out = zeros(nout); c_scr = zeros(conv2d_scratch_floats(cs));
        float *ref = zeros(nout);
        conv_fwd();
        conv_direct(ref, c_in, c_w, c_b, cs);
        double md = 0;
        for (size_t i = 0; i < nout; i++) md = fmax(md, fabs(ref[i] - c_out[i]));
        CHECK(md < 1e-4, "conv2d[%s] forward (C%d k%d s%d p%d) vs direct: max diff %g", backend, cs.C, cs.K, cs.S, cs.P, md);
        L.fwd = conv_fwd; L.out = c_out; L.R = buf(nout, -1, 1, 40 + t); L.nout = nout;
        float *din = zeros(nin), *dw = zeros(nw), *db = zeros(cs.OC);
        conv2d_backward(din, dw, db, L.R, c_in, c_w, c_scr, cs);
        expect_grad("conv2d dinp", c_in, din, nin);
        expect_grad("conv2d dweight", c_w, dw, nw);
        expect_grad("conv2d dbias", c_b, db, cs.OC);
        /* accumulation: a second backward adds the same again, asked for
         * one gradient at a time */
        float *din2 = malloc(sizeof(float) * nin), *dw2 = malloc(sizeof(float) * nw), *db2 = malloc(sizeof(float) * cs.OC);
        memcpy(din2, din, sizeof(float) * nin); memcpy(dw2, dw, sizeof(float) * nw); memcpy(db2, db, sizeof(float) * cs.OC);
        conv2d_backward(din2, NULL, NULL, L.R, c_in, c_w, c_scr, cs);
        conv2d_backward(NULL, dw2, db2, L.R, c_in, c_w, c_scr, cs);
        double acc = 0, accw = 0;
        for (size_t i = 0; i < nin; i++) acc = fmax(acc, fabs(din2[i] - 2 * din[i]));
        for (size_t i = 0; i < nw; i++) accw = fmax(accw, fabs(dw2[i] - 2 * dw[i]));
        for (int i = 0; i < cs.OC; i++) accw = fmax(accw, fabs(db2[i] - 2 * db[i]));
        CHECK(acc < 1e-4, "conv2d[%s] backward accumulates into dinp (diff %g)", backend, acc);
        CHECK(accw < 1e-3, "conv2d[%s] backward accumulates into dweight and dbias (diff %g)", backend, accw);
        free(dw2); free(db2);
        free(c_in); free(c_w); free(c_b); free(c_out); free(c_scr); free(ref);
        free(L.R); free(din); free(dw); free(db); free(din2);
    }
}

/* Every backend conv2d can take: the im2col/sgemm path (the WASM build's)
 * and, natively with oneDNN, its convolution primitives, and the choice
 * between them by timing (whose trial runs must leave the accumulated
 * gradients as one run would). */
static void test_conv(void) {
#ifdef REAGE_DNNL
    conv_path_mode(CONV_PATH_ONEDNN);
    test_conv_shapes("onednn");
    conv_path_mode(CONV_PATH_IM2COL);
    test_conv_shapes("im2col");
    conv_path_mode(CONV_PATH_MEASURE);
    test_conv_shapes("measured");
    char *report = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&report, &len);
    conv_path_report(f);
    fclose(f);
    CHECK(report && strstr(report, "forward") && strstr(report, "input-grad") && strstr(report, "weight-grad"),
          "the path report names each measured direction:\n%s", report ? report : "");
    free(report);
#else
    test_conv_shapes("im2col");
#endif
}

/* ---- normalisation ---- */
enum { NB = 3, NC = 4, NHW = 10 };
#define NN (NB * NC * NHW)
static float *n_in, *n_out, *n_mean, *n_rstd, *n_g, *n_b, *n_rm, *n_rv;
static int n_training;
static void bn_fwd(void) {
    batchnorm_forward(n_out, n_mean, n_rstd, n_in, n_g, n_b, n_rm, n_rv, n_training, NB, NC, NHW);
}
static void in_fwd(void) { instancenorm_forward(n_out, n_mean, n_rstd, n_in, NB, NC, NHW); }
static void film_fwd(void) { film_forward(n_out, n_in, n_g, n_g + NC, 2 * NC, NB, NC, NHW); }

static void test_norms(void) {
    n_in = buf(NN, -2, 3, 50); n_out = zeros(NN); n_mean = zeros(NB * NC); n_rstd = zeros(NB * NC);
    n_g = buf(2 * NB * NC, 0.5f, 1.5f, 51); n_b = buf(NC, -1, 1, 52);
    n_rm = zeros(NC); n_rv = buf(NC, 1, 2, 53);
    L.out = n_out; L.R = buf(NN, -1, 1, 54); L.nout = NN;
    for (n_training = 1; n_training >= 0; n_training--) {
        L.fwd = bn_fwd;
        bn_fwd();
        float *din = zeros(NN), *dg = zeros(NC), *db = zeros(NC);
        batchnorm_backward(din, dg, db, L.R, n_in, n_mean, n_rstd, n_g, n_training, NB, NC, NHW);
        expect_grad(n_training ? "batchnorm(train) dinp" : "batchnorm(eval) dinp", n_in, din, NN);
        expect_grad("batchnorm dgamma", n_g, dg, NC);
        expect_grad("batchnorm dbeta", n_b, db, NC);
        free(din); free(dg); free(db);
    }
    /* running statistics after one training step, against a direct computation */
    float rm[NC] = {0}, rv[NC] = {1, 1, 1, 1};
    batchnorm_forward(n_out, n_mean, n_rstd, n_in, n_g, n_b, rm, rv, 1, NB, NC, NHW);
    for (int c = 0; c < NC; c++) {
        double s = 0, sq = 0;
        for (int b = 0; b < NB; b++) for (int i = 0; i < NHW; i++) s += n_in[(b * NC + c) * NHW + i];
        double mu = s / (NB * NHW);
        for (int b = 0; b < NB; b++) for (int i = 0; i < NHW; i++) { double d = n_in[(b * NC + c) * NHW + i] - mu; sq += d * d; }
        CHECK(fabs(rm[c] - 0.1 * mu) < 1e-5 && fabs(rv[c] - (0.9 + 0.1 * sq / (NB * NHW - 1))) < 1e-5,
              "batchnorm running stats channel %d: %g %g", c, rm[c], rv[c]);
        double y0 = (n_in[c * NHW] - mu) / sqrt(sq / (NB * NHW) + 1e-5) * n_g[c] + n_b[c];
        CHECK(fabs(n_out[c * NHW] - y0) < 1e-4, "batchnorm forward value %g vs %g", n_out[c * NHW], y0);
    }
    L.fwd = in_fwd;
    in_fwd();
    {
        float *din = zeros(NN);
        instancenorm_backward(din, L.R, n_out, n_rstd, NB, NC, NHW);
        expect_grad("instancenorm dinp", n_in, din, NN);
        double s = 0, sq = 0;
        for (int i = 0; i < NHW; i++) { s += n_out[NHW + i]; sq += n_out[NHW + i] * n_out[NHW + i]; }
        CHECK(fabs(s / NHW) < 1e-5 && fabs(sq / NHW - 1) < 1e-3, "instancenorm output mean %g var %g", s / NHW, sq / NHW);
        free(din);
    }
    L.fwd = film_fwd;
    film_fwd();
    {
        float *din = zeros(NN), *dmod = zeros(2 * NB * NC);
        film_backward(din, dmod, dmod + NC, L.R, n_in, n_g, 2 * NC, NB, NC, NHW);
        expect_grad("film dinp", n_in, din, NN);
        expect_grad("film dgamma/dbeta", n_g, dmod, 2 * NB * NC);
        free(din); free(dmod);
    }
    free(n_in); free(n_out); free(n_mean); free(n_rstd); free(n_g); free(n_b); free(n_rm); free(n_rv); free(L.R);
}

/* ---- pointwise, shape, conditioning ---- */
#define PN 60
static float *p_a, *p_b, *p_out;
static int s_B = 2, s_Ca = 3, s_Cb = 2, s_H = 3, s_W = 4, s_G = 3;
static void relu_fwd(void) { relu_forward(p_out, p_a, PN); }
static void lrelu_fwd(void) { leakyrelu_forward(p_out, p_a, 0.2f, PN); }
static void tanh_fwd(void) { tanh_forward(p_out, p_a, PN); }
static void resid_fwd(void) { residual_forward(p_out, p_a, p_b, PN); }
static void concat_fwd(void) { concat_forward(p_out, p_a, p_b, s_B, s_Ca, s_Cb, s_H * s_W); }
static void up_fwd(void) { upsample2x_forward(p_out, p_a, s_B, s_Ca, s_H, s_W); }
static void blur_fwd(void) { blur5_forward(p_out, p_a, s_B, s_Ca, s_H, s_W); }
static void crop_fwd(void) { crop_resize_forward(p_out, p_a, 3, 9, 2, 6, 4); }
static void chroma_fwd(void) { chroma_forward(p_out, p_a, p_b, s_B, s_H * s_W); }
static void wmean_fwd(void) { window_mean_forward(p_out, p_a, p_b, s_B * s_Ca, s_H, s_W, 1, 3, 1, 4); }
static void shade_fwd(void) { shade_forward(p_out, p_a, p_b, 2, 4, 6, 2); }
static void hinge_fwd(void) { p_out[0] = hinge_below_forward(p_a, 0.3f, PN); }
static void pool_fwd(void) { avgpool_forward(p_out, p_a, s_B, s_Ca, s_H * s_W); }
static void emb_fwd(void) { embedchan_forward(p_out, p_b, p_a, s_B, s_G, s_H * s_W); }
static void lin_fwd(void) { linear_forward(p_out, p_a, p_b, p_b + 5 * 7, 5, 7, 5); }

static void pointwise_case(void (*fwd)(void), size_t nout) {
    L.fwd = fwd; L.out = p_out; L.nout = nout;
    fwd();
}

static void test_pointwise_and_shape(void) {
    p_a = malloc(sizeof(float) * 1000); p_b = malloc(sizeof(float) * 1000); p_out = zeros(1000);
    float *da = zeros(1000), *db = zeros(1000);
    L.R = buf(1000, -1, 1, 60);
    /* inputs kept away from the kink at 0, where finite differences lie */
    for (int i = 0; i < PN; i++) { float v = (i % 7 - 3) * 0.37f + 0.05f; p_a[i] = v; p_b[i] = -0.6f * v; }
    struct { const char *name; void (*fwd)(void); } pw[] = {{"relu", relu_fwd}, {"leakyrelu", lrelu_fwd}, {"tanh", tanh_fwd}};
    for (int k = 0; k < 3; k++) {
        pointwise_case(pw[k].fwd, PN);
        memset(da, 0, sizeof(float) * PN);
        if (k == 0) relu_backward(da, L.R, p_a, PN);
        if (k == 1) leakyrelu_backward(da, L.R, p_a, 0.2f, PN);
        if (k == 2) tanh_backward(da, L.R, p_out, PN);
        expect_grad(pw[k].name, p_a, da, PN);
    }
    /* hinge below -0.3: values -3*0.37+0.05 ... 3*0.37+0.05; the three lowest
     * steps (-1.06, -0.69, -0.32) fall below, -0.32 by 0.02 */
    pointwise_case(hinge_fwd, 1);
    {
        double sum = 0;
        for (int i = 0; i < PN; i++) sum += p_a[i] < -0.3f ? -p_a[i] - 0.3f : 0;
        CHECK(sum > 0 && fabs(p_out[0] - sum / PN) < 1e-6, "hinge below a margin: %g vs %g by hand", p_out[0], sum / PN);
        memset(da, 0, 4000);
        hinge_below_backward(da, p_a, 0.3f, L.R[0], PN);
        expect_grad("hinge below", p_a, da, PN);
    }
    pointwise_case(resid_fwd, PN);
    memset(da, 0, 4000); memset(db, 0, 4000);
    residual_backward(da, db, L.R, PN);
    expect_grad("residual da", p_a, da, PN);
    expect_grad("residual db", p_b, db, PN);

    int HW = s_H * s_W;
    fill_uniform(p_a, 1000, -1, 1, 61);
    fill_uniform(p_b, 1000, -1, 1, 62);
    pointwise_case(concat_fwd, (size_t)s_B * (s_Ca + s_Cb) * HW);
    CHECK(p_out[(s_Ca + s_Cb) * HW + s_Ca * HW] == p_b[s_Cb * HW], "concat places b after a per sample");
    memset(da, 0, 4000); memset(db, 0, 4000);
    concat_backward(da, db, L.R, s_B, s_Ca, s_Cb, HW);
    expect_grad("concat da", p_a, da, (size_t)s_B * s_Ca * HW);
    expect_grad("concat db", p_b, db, (size_t)s_B * s_Cb * HW);

    /* chroma of a change: R-G and B-G of a - b, by hand at one pixel of the second image */
    pointwise_case(chroma_fwd, (size_t)s_B * 2 * HW);
    {
        int n = 1, i = 2;
        float d[3];
        for (int c = 0; c < 3; c++) d[c] = p_a[(n * 3 + c) * HW + i] - p_b[(n * 3 + c) * HW + i];
        CHECK(fabsf(p_out[(n * 2) * HW + i] - (d[0] - d[1])) < 1e-6f && fabsf(p_out[(n * 2 + 1) * HW + i] - (d[2] - d[1])) < 1e-6f,
              "chroma is R-G and B-G of the change");
        memset(da, 0, 4000);
        chroma_backward(da, L.R, s_B, HW);
        expect_grad("chroma", p_a, da, (size_t)s_B * 3 * HW);
    }

    /* mean of a change over a window (rows 1-2, columns 1-3), by hand for the last plane */
    pointwise_case(wmean_fwd, (size_t)s_B * s_Ca);
    {
        int n = s_B * s_Ca - 1;
        double sum = 0;
        for (int y = 1; y < 3; y++)
            for (int x = 1; x < 4; x++) sum += p_a[(n * s_H + y) * s_W + x] - p_b[(n * s_H + y) * s_W + x];
        CHECK(fabs(p_out[n] - sum / 6) < 1e-6, "window mean of the change: %g vs %g by hand", p_out[n], sum / 6);
        memset(da, 0, 4000);
        window_mean_backward(da, L.R, s_B * s_Ca, s_H, s_W, 1, 3, 1, 4);
        expect_grad("window mean", p_a, da, (size_t)s_B * s_Ca * HW);
    }

    /* brightness of a change over 2x2 blocks of 4x6 images, by hand at the
     * second image's last block */
    pointwise_case(shade_fwd, 2 * 2 * 3);
    {
        double sum = 0;
        for (int c = 0; c < 3; c++)
            for (int y = 2; y < 4; y++)
                for (int x = 4; x < 6; x++) sum += p_a[((3 + c) * 4 + y) * 6 + x] - p_b[((3 + c) * 4 + y) * 6 + x];
        CHECK(fabs(p_out[11] - sum / 12) < 1e-6, "shade of the change: %g vs %g by hand", p_out[11], sum / 12);
        memset(da, 0, 4000);
        shade_backward(da, L.R, 2, 4, 6, 2);
        expect_grad("shade", p_a, da, 2 * 3 * 24);
    }

    pointwise_case(up_fwd, (size_t)s_B * s_Ca * HW * 4);
    CHECK(p_out[2 * s_W * 3 + 5] == p_a[s_W * 1 + 2], "upsample2x copies the nearest pixel");
    memset(da, 0, 4000);
    upsample2x_backward(da, L.R, s_B, s_Ca, s_H, s_W);
    expect_grad("upsample2x", p_a, da, (size_t)s_B * s_Ca * HW);

    /* a 6x6 crop of 9x9 planes brought to 4x4: the corner sample by hand, and its gradient */
    pointwise_case(crop_fwd, 3 * 16);
    {
        /* output (0,0) sits at crop position 0.25: a quarter of the way to the next row and column */
        float a = p_a[81 + 2 * 9 + 2], b = p_a[81 + 2 * 9 + 3], c = p_a[81 + 3 * 9 + 2], d = p_a[81 + 3 * 9 + 3];
        float want = (a * 0.75f + b * 0.25f) * 0.75f + (c * 0.75f + d * 0.25f) * 0.25f;
        CHECK(fabsf(p_out[16] - want) < 1e-6f, "crop_resize samples the crop (%g vs %g by hand)", p_out[16], want);
        memset(da, 0, 4000);
        crop_resize_backward(da, L.R, 3, 9, 2, 6, 4);
        expect_grad("crop_resize", p_a, da, 3 * 81);
        float outside = 0;
        for (int q = 0; q < 3; q++)
            for (int i = 0; i < 9; i++) outside += fabsf(da[q * 81 + i * 9]) + fabsf(da[q * 81 + i]);
        CHECK(outside == 0, "crop_resize's gradient stays inside the crop");
    }

    /* blur: against replicate-padding by hand and two 1-D passes, on a plane
     * smaller than the kernel (every tap clamps) and on a larger one */
    pointwise_case(blur_fwd, (size_t)s_B * s_Ca * HW);
    memset(da, 0, 4000);
    blur5_backward(da, L.R, s_B, s_Ca, s_H, s_W);
    expect_grad("blur5", p_a, da, (size_t)s_B * s_Ca * HW);
    {
        const float k[5] = {1 / 16.0f, 4 / 16.0f, 6 / 16.0f, 4 / 16.0f, 1 / 16.0f};
        int sizes[2][2] = {{3, 4}, {9, 7}};
        for (int t = 0; t < 2; t++) {
            int H = sizes[t][0], W = sizes[t][1], PH = H + 4, PW = W + 4;
            float x[63], y[63], pad[13 * 11], hp[13 * 11], worst = 0;
            fill_uniform(x, (size_t)H * W, -1, 1, 63 + t);
            for (int i = 0; i < PH; i++)
                for (int j = 0; j < PW; j++) {
                    int si = i - 2 < 0 ? 0 : i - 2 >= H ? H - 1 : i - 2, sj = j - 2 < 0 ? 0 : j - 2 >= W ? W - 1 : j - 2;
                    pad[i * PW + j] = x[si * W + sj];
                }
            for (int i = 0; i < PH; i++)
                for (int j = 0; j < W; j++) {
                    hp[i * W + j] = 0;
                    for (int v = 0; v < 5; v++) hp[i * W + j] += k[v] * pad[i * PW + j + v];
                }
            blur5_forward(y, x, 1, 1, H, W);
            for (int i = 0; i < H; i++)
                for (int j = 0; j < W; j++) {
                    float r = 0;
                    for (int u = 0; u < 5; u++) r += k[u] * hp[(i + u) * W + j];
                    float d = fabsf(r - y[i * W + j]);
                    if (d > worst) worst = d;
                }
            CHECK(worst < 1e-6f, "blur5 %dx%d matches padding by hand (worst %g)", H, W, worst);
        }
        float flat[63], out[63];
        for (int i = 0; i < 63; i++) flat[i] = 0.3f;
        blur5_forward(out, flat, 1, 1, 9, 7);
        CHECK(fabsf(out[0] - 0.3f) < 1e-6f && fabsf(out[31] - 0.3f) < 1e-6f, "blur5 keeps a flat plane flat");
    }
    pointwise_case(pool_fwd, (size_t)s_B * s_Ca);
    memset(da, 0, 4000);
    avgpool_backward(da, L.R, s_B, s_Ca, HW);
    expect_grad("avgpool", p_a, da, (size_t)s_B * s_Ca * HW);

    /* embedding channel: p_a is the table [G, HW], p_b the group weights [B, G] */
    float gw[6] = {0, 1, 0, 0.25f, 0, 0.75f};
    memcpy(p_b, gw, sizeof(gw));
    pointwise_case(emb_fwd, (size_t)s_B * HW);
    CHECK(p_out[5] == p_a[HW + 5], "one-hot embedding selects its table row");
    CHECK(fabsf(p_out[HW + 2] - (0.25f * p_a[2] + 0.75f * p_a[2 * HW + 2])) < 1e-6f, "soft weights blend rows");
    memset(da, 0, 4000);
    embedchan_backward(da, L.R, p_b, s_B, s_G, HW);
    expect_grad("embedchan dtable", p_a, da, (size_t)s_G * HW);

    /* linear: p_a input [5,7], p_b weight [5,7] then bias [5] */
    fill_uniform(p_b, 1000, -1, 1, 63);
    pointwise_case(lin_fwd, 25);
    double ref = p_b[35 + 1];
    for (int k = 0; k < 7; k++) ref += (double)p_a[2 * 7 + k] * p_b[1 * 7 + k];
    CHECK(fabs(p_out[2 * 5 + 1] - ref) < 1e-5, "linear forward value");
    memset(da, 0, 4000); memset(db, 0, 4000);
    linear_backward(da, db, db + 35, L.R, p_a, p_b, 5, 7, 5);
    expect_grad("linear dinp", p_a, da, 35);
    expect_grad("linear dweight+dbias", p_b, db, 40);
    free(p_a); free(p_b); free(p_out); free(da); free(db); free(L.R);
}

/* ---- losses ---- */
static float *l_x, *l_y;
static int l_labels[4] = {2, 0, 1, 2};
static int l_kind;
static const float l_values[3] = {0.45f, 1.5f, 6.95f};   /* group centres in decades */
static const float l_dout[4] = {1.0f, -0.5f, 2.0f, 0.25f};
static double loss_value(void *ctx) {
    (void)ctx;
    float probs[12];
    switch (l_kind) {
    case 0: return mse_const_forward(l_x, 0.7f, 12);
    case 1: return bce_logits_const_forward(l_x, 1.0f, 12);
    case 2: return bce_logits_const_forward(l_x, 0.0f, 12);
    case 3: return l1_forward(l_x, l_y, 12);
    case 4: return l1_forward(l_x, NULL, 12);
    case 5: return tv_forward(l_x, l_y, 2, 2, 3);
    case 6: return crossentropy_forward(probs, l_x, l_labels, 4, 3);
    default: {
        float e[4];
        double sum = 0;
        crossentropy_forward(probs, l_x, l_labels, 4, 3);
        expected_value_forward(e, probs, l_values, 4, 3);
        for (int b = 0; b < 4; b++) sum += (double)l_dout[b] * e[b];
        return sum;
    }
    }
}

static void test_losses(void) {
    l_x = buf(12, -2, 2, 70);
    l_y = buf(12, -2, 2, 71);
    const char *names[] = {"mse", "bce(1)", "bce(0)", "l1", "l1(zero)", "tv", "crossentropy", "expected value"};
    for (l_kind = 0; l_kind < 8; l_kind++) {
        float g[12] = {0}, probs[12];
        switch (l_kind) {
        case 0: mse_const_backward(g, l_x, 0.7f, 1.0f, 12); break;
        case 1: bce_logits_const_backward(g, l_x, 1.0f, 1.0f, 12); break;
        case 2: bce_logits_const_backward(g, l_x, 0.0f, 1.0f, 12); break;
        case 3: l1_backward(g, l_x, l_y, 1.0f, 12); break;
        case 4: l1_backward(g, l_x, NULL, 1.0f, 12); break;
        case 5: tv_backward(g, l_x, l_y, 1.0f, 2, 2, 3); break;
        case 6:
            crossentropy_forward(probs, l_x, l_labels, 4, 3);
            crossentropy_backward(g, probs, l_labels, 1.0f, 4, 3);
            break;
        default: {
            float e[4];
            crossentropy_forward(probs, l_x, l_labels, 4, 3);
            expected_value_forward(e, probs, l_values, 4, 3);
            expected_value_backward(g, probs, e, l_values, l_dout, 4, 3);
        }
        }
        double err = gradcheck(loss_value, NULL, l_x, g, 12, 12, 1e-3f);
        CHECK(err < TOL, "%s loss gradient relative error %.3g", names[l_kind], err);
    }
    /* known values */
    float z[3] = {0, 0, 0}, p[3];
    int lab = 1;
    CHECK(fabsf(crossentropy_forward(p, z, &lab, 1, 3) - logf(3.0f)) < 1e-6f, "uniform logits give log(G)");
    float ev;
    expected_value_forward(&ev, p, l_values, 1, 3);
    CHECK(fabsf(ev - (0.45f + 1.5f + 6.95f) / 3) < 1e-6f, "uniform probabilities give the values' mean");
    float sure[3] = {0, 0, 40};
    crossentropy_forward(p, sure, &lab, 1, 3);
    expected_value_forward(&ev, p, l_values, 1, 3);
    CHECK(fabsf(ev - 6.95f) < 1e-5f, "a sure verdict gives its class's value");
    float ramp[6] = {0, 1, 2, 0, 1, 2}; /* 2x3, steps of 1 across, none down */
    CHECK(fabsf(tv_forward(ramp, NULL, 1, 2, 3) - 4.0f / 6.0f) < 1e-6f, "tv of a ramp");
    float zero = 0;
    CHECK(fabsf(bce_logits_const_forward(&zero, 1.0f, 1) - logf(2.0f)) < 1e-6f, "bce at 0 is log 2");
    free(l_x); free(l_y);
}

/* The build's elementwise kernels against their scalar references, on
 * lengths that leave a tail after the vector lanes, with zeros, a negative
 * zero and NaN among the inputs (a select must keep NaN as the reference does). */
static void test_kernels(void) {
    printf("  kernels: %s\n", kernel_backend());
    for (size_t n = 1; n <= 1031; n += 257) {
        float *x = buf(n, -2, 2, 40 + (unsigned)n), *dy = buf(n, -1, 1, 41 + (unsigned)n);
        float *y1 = zeros(n), *y2 = zeros(n);
        x[0] = 0.0f;
        if (n > 2) { x[1] = -0.0f; x[2] = NAN; }
        kernel_leaky(y1, x, 0.2f, n);
        kernel_leaky_ref(y2, x, 0.2f, n);
        int same = 1;
        for (size_t i = 0; i < n; i++) same &= (y1[i] == y2[i]) || (isnan(y1[i]) && isnan(y2[i]));
        CHECK(same, "kernel_leaky equals its reference (n=%zu)", n);
        fill_uniform(y1, n, -1, 1, 7);
        memcpy(y2, y1, sizeof(float) * n);
        kernel_leaky_backward(y1, dy, x, 0.2f, n);
        kernel_leaky_backward_ref(y2, dy, x, 0.2f, n);
        same = 1;
        for (size_t i = 0; i < n; i++) same &= y1[i] == y2[i];
        CHECK(same, "kernel_leaky_backward equals its reference (n=%zu)", n);
        if (n > 2) x[2] = 0.5f;
        double s1 = 1.0, sx1 = 2.0, s2 = 1.0, sx2 = 2.0, s3 = 0.0;
        kernel_sums(dy, x, n, &s1, &sx1);
        kernel_sums_ref(dy, x, n, &s2, &sx2);
        kernel_sums(dy, NULL, n, &s3, NULL);
        CHECK(fabs(s1 - s2) < 1e-9 && fabs(sx1 - sx2) < 1e-9 && fabs(s3 + 1.0 - s2) < 1e-9,
              "kernel_sums adds to its accumulators as the reference does (n=%zu): %.12g %.12g vs %.12g %.12g", n, s1, sx1,
              s2, sx2);
        float m1, v1, m2, v2;
        for (size_t i = 0; i < n; i++) x[i] += 100.0f; /* a mean far from zero, as activations can have */
        kernel_mean_var(x, n, &m1, &v1);
        kernel_mean_var_ref(x, n, &m2, &v2);
        CHECK(fabsf(m1 - m2) <= 1e-6f * fabsf(m2) && fabsf(v1 - v2) <= 1e-5f * v2 + 1e-7f,
              "kernel_mean_var matches its reference (n=%zu): %g %g vs %g %g", n, m1, v1, m2, v2);
        free(x); free(dy); free(y1); free(y2);
    }
}

void test_layers(void) {
    test_kernels();
    test_sgemm();
    test_parallel_for();
    test_conv();
    test_norms();
    test_pointwise_and_shape();
    test_losses();
}
