/* build/reage-bench: times the engine's training kernels, one line a case:
 *   CASE <name> ms=<median> gflops=<achieved>
 * tools/bench.sh runs it beside the PyTorch peer (tools/torch_peer.py),
 * which times the same networks, and prints the ratios. */
#include <omp.h>
#include <stdio.h>
#include "fileio.h"
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "bundle.h"
#include "dataset.h"
#include "conv_dnnl.h"
#include "facedetect.h"
#include "facemesh.h"
#include "image.h"
#include "photo.h"
#include "pipeline.h"
#include "sgemm.h"
#include "trainer.h"

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec * 1e-6;
}
static int cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}
static int reps = 7;

#define TIME_CASE(name, flops, body)                                         \
    do {                                                                     \
        double times_[64];                                                        \
        body; /* warm-up */                                                  \
        for (int r = 0; r < reps; r++) {                                     \
            double t0 = now_ms();                                            \
            body;                                                            \
            times_[r] = now_ms() - t0;                                            \
        }                                                                    \
        qsort(times_, reps, sizeof(double), cmp);                                 \
        double med = times_[reps / 2];                                            \
        printf("CASE %s ms=%.1f gflops=%.1f\n", name, med, (flops) / med / 1e6); \
        fflush(stdout);                                                      \
    } while (0)

/* A named configuration at another resolution. */
static TrainConfig config_at(const char *name, int res) {
    TrainConfig tc;
    Err e;
    char r[16];
    train_config_named(&tc, name, &e);
    snprintf(r, sizeof(r), "%d", res);
    train_config_set(&tc, "res", r, &e);
    return tc;
}

/* The generator of the shipped configuration at res, with seeded weights. */
static void random_generator(Generator *g, int res, int for_training, uint64_t seed) {
    TrainConfig tc = config_at("shipped", res);
    gen_build(g, &tc.model);
    params_alloc(&g->ps, for_training);
    Rng rng;
    rng_seed(&rng, seed);
    params_init(&g->ps, &rng);
}

static void bench_disc(int res) {
    TrainConfig tc = config_at("seed", res);
    Discriminator d;
    disc_build(&d, &tc.model);
    params_alloc(&d.ps, 1);
    Rng rng;
    rng_seed(&rng, 1);
    params_init(&d.ps, &rng);
    int B = 8;
    float *scratch = calloc(disc_scratch_floats(&d, B), sizeof(float));
    DiscActs a;
    disc_acts_alloc(&d, &a, B, scratch);
    size_t n = (size_t)B * 3 * res * res;
    float *x = malloc(sizeof(float) * n), *y = malloc(sizeof(float) * n), gw[8 * 3] = {0};
    for (size_t i = 0; i < n; i++) x[i] = y[i] = rng_uniform(&rng) * 2 - 1;
    for (int b = 0; b < B; b++) gw[b * 3 + b % 3] = 1;
    float *dl = malloc(sizeof(float) * B * 32 * 32);
    for (int i = 0; i < B * 32 * 32; i++) dl[i] = 1e-3f;
    char name[64];
    snprintf(name, sizeof(name), "seed_disc_fwd_bwd_b8_%d", res);
    TIME_CASE(name, 3.0 * B * disc_flops(&d), {
        params_zero_grad(&d.ps);
        disc_forward(&d, &a, x, gw, y, gw);
        disc_backward(&d, &a, dl, NULL, 1);
    });
    disc_acts_free(&a);
    params_free(&d.ps);
    free(scratch); free(x); free(y); free(dl);
}

static void bench_gen(void) {
    Generator g;
    random_generator(&g, 128, 1, 2);
    Rng rng;
    rng_seed(&rng, 2);
    int B = 8, G = g.cfg.groups;
    float *scratch = calloc(gen_scratch_floats(&g, B), sizeof(float));
    GenActs a;
    gen_acts_alloc(&g, &a, B, 1, scratch);
    size_t n = (size_t)B * 3 * 128 * 128;
    float *x = malloc(sizeof(float) * n), *dy = malloc(sizeof(float) * n), gw[8 * MAX_GROUPS] = {0};
    for (size_t i = 0; i < n; i++) { x[i] = rng_uniform(&rng) * 2 - 1; dy[i] = 1e-4f; }
    for (int b = 0; b < B; b++) gw[b * G + b % G] = 1;
    TIME_CASE("gen_fwd_bwd_b8_128", 3.0 * B * gen_flops(&g), {
        params_zero_grad(&g.ps);
        gen_forward(&g, &a, x, gw);
        gen_backward(&g, &a, dy, NULL);
    });
    TIME_CASE("gen_fwd_b8_128", B * gen_flops(&g), { gen_forward(&g, &a, x, gw); });
    gen_acts_free(&a);
    params_free(&g.ps);
    free(scratch); free(x); free(dy);
}

static void bench_step(void) {
    TrainConfig tc;
    Err e;
    train_config_named(&tc, "shipped", &e);
    /* the step as the shipped run ended: every scheduled option applied */
    char done[512];
    for (int step = 0; step <= tc.steps; step++) train_schedule_apply(&tc, step, done, sizeof(done), &e);
    train_config_finish(&tc, &e);
    /* a synthetic in-memory data set: the step's cost does not depend on the pixels */
    Dataset d;
    memset(&d, 0, sizeof(d));
    d.res = 128;
    d.count = 64;
    d.pixels = malloc((size_t)64 * 128 * 128 * 3);
    for (size_t i = 0; i < (size_t)64 * 128 * 128 * 3; i++) d.pixels[i] = (uint8_t)(i * 2654435761u >> 24);
    for (int g = 0; g < tc.model.groups; g++) {
        d.by_group[g] = malloc(sizeof(int) * 64);
        for (int i = 0; i < 10; i++) d.by_group[g][i] = g * 10 + i;
        d.group_count[g] = 10;
    }
    Trainer t;
    trainer_init(&t, &tc, &e);
    /* one step: 3 generator passes (main, reconstruction, cycle), 4 discriminator passes, 2 estimator passes */
    double flops = tc.batch * (3 * 3.0 * gen_flops(&t.gen) + 4 * 3.0 * disc_flops(&t.disc));
    TIME_CASE("train_step_b8_128", flops, { trainer_step(&t, &d); });
    trainer_free(&t);
}

/* Random-weight blobs of the shipped generator at 128 and 256, so that the
 * browser benchmark times both sizes without a trained 256 model. */
static int write_blobs(const char *dir) {
    for (int res = 128; res <= 256; res *= 2) {
        Err e;
        char path[1024];
        Generator g;
        Estimator m;
        random_generator(&g, res, 0, 3);
        est_build(&m, &g.cfg);
        params_alloc(&m.ps, 0);
        Rng rng;
        rng_seed(&rng, 5);
        params_init(&m.ps, &rng);
        snprintf(path, sizeof(path), "%s/gen%d.blob", dir, res);
        if (bundle_save(path, &g, &m, "random weights for benchmarks", &e)) { fprintf(stderr, "%s\n", e.msg); return 1; }
        printf("BLOB %s gflops=%.3f\n", path, gen_flops(&g) / 1e9);
        params_free(&g.ps);
        params_free(&m.ps);
    }
    return 0;
}

/* One face through the generator, as the page and the CLI run it. */
static void bench_gen_single(void) {
    for (int res = 128; res <= 256; res *= 2) {
        char name[64];
        Generator g;
        random_generator(&g, res, 0, 4);
        float *scratch = calloc(gen_scratch_floats(&g, 1), sizeof(float));
        GenActs a;
        gen_acts_alloc(&g, &a, 1, 0, scratch);
        float *x = calloc((size_t)3 * res * res, sizeof(float)), gw[MAX_GROUPS] = {0};
        gw[3] = 1;
        snprintf(name, sizeof(name), "native_gen_fwd_b1_%d", res);
        TIME_CASE(name, gen_flops(&g), { gen_forward(&g, &a, x, gw); });
        gen_acts_free(&a);
        params_free(&g.ps);
        free(scratch);
        free(x);
    }
}

/* Face detection against re-aging on a 12-megapixel photo (4000x3000): a
 * gradient with the sample face pasted 1,500 pixels wide, so that the
 * detector's second look at the face is timed too. Re-aging by the shipped
 * path (the mesh, then the age prototypes at the photo's resolution) and by
 * the generator alone (the path for faces the mesh does not find).
 * Detection should take at most a quarter of the re-aging time. */
static double median_ms(double *t) {
    qsort(t, reps, sizeof(double), cmp);
    return t[reps / 2];
}
static void bench_detect(void) {
    Err e;
    uint8_t *buf;
    size_t len;
    static FaceDetector fd;
    static FaceMesh fm;
    Bundle b;
    if (file_read_all("weights/blazeface.blob", 1 << 24, &buf, &len, &e) || facedet_load(&fd, buf, len, "detector", &e) ||
        (free(buf), file_read_all("weights/facemesh.blob", 1 << 24, &buf, &len, &e)) || facemesh_load(&fm, buf, len, "mesh", &e)) {
        fprintf(stderr, "%s\n", e.msg);
        return;
    }
    free(buf);
    if (file_read_all("weights/reage.blob", 1 << 26, &buf, &len, &e) || bundle_load(&b, buf, len, NULL, "weights", &e)) {
        fprintf(stderr, "%s\n", e.msg);
        return;
    }
    free(buf);
    int W = 4000, H = 3000;
    uint8_t *px = malloc((size_t)W * H * 4);
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) {
            uint8_t *p = px + ((size_t)y * W + x) * 4;
            p[0] = (uint8_t)(x * 255 / W), p[1] = (uint8_t)(y * 255 / H), p[2] = (uint8_t)((x + y) & 255), p[3] = 255;
        }
    Image face;
    if (image_load("web/sample.jpg", &face, &e)) { fprintf(stderr, "%s\n", e.msg); return; }
    for (int y = 0; y < 1500; y++)
        for (int x = 0; x < 1500; x++)
            memcpy(px + ((size_t)(650 + y) * W + 1250 + x) * 4, face.rgb + ((size_t)(y * face.h / 1500) * face.w + x * face.w / 1500) * 3, 3);
    image_free(&face);
    Photo p = {px, W, H, 4};
    FaceDet d[FACEDET_MAX_FACES];
    int found = facedet_photo(&fd, &p, d, FACEDET_MAX_FACES);
    CropBox box = found ? facedet_crop(&d[0]) : (CropBox){2000, 1400, 1000, 0};
    printf("# 12 MP photo: %d face%s found\n", found, found == 1 ? "" : "s");
    double td[64], tr[64], tg[64];
    /* each re-aging works on a fresh copy of the photo (re-aged in place again and again, the face would
     * drift until the mesh no longer found it, and the shipped path would time the generator) */
    size_t bytes = (size_t)W * H * 4;
    uint8_t *work = malloc(bytes);
    Photo q = {work, W, H, 4};
    facedet_photo(&fd, &p, d, FACEDET_MAX_FACES);
    memcpy(work, px, bytes);
    photo_reage(&b, &q, box, 30, 70);
    memcpy(work, px, bytes);
    if (pipeline_reage(&b, &fm, &q, box, 30, 70) != REAGED_BY_PROTOTYPES) printf("# the mesh did not find the face: the shipped path fell back to the generator\n");
    int fell_back = 0;
    for (int r = 0; r < reps; r++) {
        double t0 = now_ms();
        facedet_photo(&fd, &p, d, FACEDET_MAX_FACES);
        td[r] = now_ms() - t0;
        memcpy(work, px, bytes);
        t0 = now_ms();
        photo_reage(&b, &q, box, 30, 70);
        tg[r] = now_ms() - t0;
        memcpy(work, px, bytes);
        t0 = now_ms();
        fell_back += pipeline_reage(&b, &fm, &q, box, 30, 70) != REAGED_BY_PROTOTYPES;
        tr[r] = now_ms() - t0;
    }
    if (fell_back) printf("# %d of %d shipped re-agings fell back to the generator\n", fell_back, reps);
    free(work);
    double det = median_ms(td), re = median_ms(tr);
    printf("CASE native_detect_12mp ms=%.1f\nCASE native_generator_12mp ms=%.1f\nCASE native_reage_12mp ms=%.1f\n", det,
           median_ms(tg), re);
    printf("SHARE native_detect_vs_reage_12mp detect_ms=%.1f reage_ms=%.1f share=%.2f (goal: at most 0.25)\n", det, re, det / re);
    free(px);
    bundle_free(&b);
    facedet_free(&fd);
    facemesh_free(&fm);
}

/* The face mesh on the sample photo's face: the network alone (a 192x192
 * input), and with the crop it is fed and the points projected back. */
static void bench_mesh(void) {
    Err e;
    uint8_t *buf;
    size_t len;
    static FaceDetector fd;
    static FaceMesh fm;
    static FaceLandmarks lm;
    if (file_read_all("weights/blazeface.blob", 1 << 24, &buf, &len, &e) || facedet_load(&fd, buf, len, "detector", &e) ||
        (free(buf), file_read_all("weights/facemesh.blob", 1 << 24, &buf, &len, &e)) || facemesh_load(&fm, buf, len, "mesh", &e)) {
        fprintf(stderr, "%s\n", e.msg);
        return;
    }
    free(buf);
    Image img;
    if (image_load("web/sample.jpg", &img, &e)) { fprintf(stderr, "%s\n", e.msg); return; }
    Photo p = {img.rgb, img.w, img.h, 3};
    FaceDet d[4];
    if (facedet_photo(&fd, &p, d, 4) < 1) { fprintf(stderr, "no face in web/sample.jpg\n"); return; }
    static float in[3 * FACEMESH_RES * FACEMESH_RES], pts[3 * FACEMESH_POINTS];
    float flag;
    for (size_t i = 0; i < sizeof(in) / sizeof(in[0]); i++) in[i] = 0.5f + 0.4f * sinf(0.001f * (float)i);
    double tn[64], tp[64];
    facemesh_forward(&fm, in, pts, &flag);
    for (int r = 0; r < reps; r++) {
        double t0 = now_ms();
        facemesh_forward(&fm, in, pts, &flag);
        tn[r] = now_ms() - t0;
        t0 = now_ms();
        facemesh_photo(&fm, &p, facemesh_roi(&d[0]), &lm);
        tp[r] = now_ms() - t0;
    }
    printf("CASE native_mesh_network ms=%.2f\nCASE native_mesh_face ms=%.2f\n", median_ms(tn), median_ms(tp));
    image_free(&img);
    facedet_free(&fd);
    facemesh_free(&fm);
}

int main(int argc, char **argv) {
    memory_keep_freed();
    conv_paths_measure();
    const char *only = argc > 1 ? argv[1] : "";
    if (getenv("BENCH_REPS")) reps = atoi(getenv("BENCH_REPS"));
    if (reps < 1 || reps > 64) reps = 7;
    printf("# sgemm %s, %d threads, median of %d\n", sgemm_backend(), omp_get_max_threads(), reps);
    if (!*only || !strcmp(only, "disc")) { bench_disc(128); bench_disc(256); }
    if (!*only || !strcmp(only, "gen")) bench_gen();
    if (!*only || !strcmp(only, "step")) bench_step();
    if (!strcmp(only, "infer")) { bench_gen_single(); bench_detect(); }
    if (!strcmp(only, "mesh")) bench_mesh();
    if (!strcmp(only, "blobs")) return write_blobs(argc > 2 ? argv[2] : "build");
#ifdef REAGE_DNNL
    /* the convolution paths its first calls measured (conv_paths_measure above) */
    conv_path_report(stdout);
#endif
    return 0;
}
