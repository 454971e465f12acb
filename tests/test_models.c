/* Whole networks: finite-difference checks of a small generator,
 * discriminator and age estimator, and the seed discriminator's exact
 * architecture. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "../src/calibration.h"
#include "../src/model.h"
#include "check.h"
#include "gradcheck.h"

ModelConfig test_config(void);
ModelConfig test_config(void) {
    ModelConfig c = {0};
    c.res = 16; c.groups = 3;
    c.group_lo[0] = 0; c.group_hi[0] = 19;
    c.group_lo[1] = 20; c.group_hi[1] = 49;
    c.group_lo[2] = 50; c.group_hi[2] = 200;
    c.gen_width = 2; c.gen_res_ch = 4; c.gen_nres = 2; c.gen_code = 3; c.gen_hidden = 6;
    c.est_width = 2; c.disc_width = 2; c.disc_pair = 1;
    return c;
}

enum { B = 2, GR = 32 }; /* generator test side: a 4x4 bottleneck */
enum { EB = 6 };            /* batch norm needs a few samples to be smooth */
static float *R, *X, *GW, *GW2, *Y;
static Generator gen;
static GenActs ga;
static Discriminator disc;
static DiscActs da;
static Estimator est;
static EstActs ea;
static int est_training;

static double gen_loss(void *ctx) {
    (void)ctx;
    gen_forward(&gen, &ga, X, GW);
    return dot(ga.y, R, (size_t)B * 3 * GR * GR);
}
static double disc_loss(void *ctx) {
    (void)ctx;
    const float *o = disc_forward(&disc, &da, X, GW2, Y, GW);
    return dot(o, R, (size_t)B * da.out_hw * da.out_hw);
}
static double est_loss(void *ctx) {
    (void)ctx;
    const float *o = est_forward(&est, &ea, X, est_training);
    return dot(o, R, (size_t)EB * est.cfg.groups);
}

/* Checks the gradient of every tensor of ps, each on a sample of its values. */
/* Whole networks are checked in float with a small step; leaky-ReLU kinks and
 * float rounding leave a few percent of error where a wrong or missing
 * gradient path gives an error of order one. */
static float g_eps = 1e-3f;
#define NET_TOL 5e-2
static void check_params(const char *net, LossFn loss, ParamSet *ps, double tol) {
    double worst = 0;
    const char *worst_name = "";
    for (int i = 0; i < ps->count; i++) {
        ParamTensor *t = &ps->t[i];
        if (!t->trainable) continue;
        double err = gradcheck(loss, NULL, ps->data + t->offset, ps->grad + t->offset, t->size, 12, g_eps);
        if (err > worst) { worst = err; worst_name = t->name; }
    }
    CHECK(worst < tol, "%s: worst parameter gradient error %.3g (%s)", net, worst, worst_name);
}

static void test_generator_gradients(void) {
    ModelConfig c = test_config();
    c.res = GR;
    const char *which = "generator";
    size_t nimg = (size_t)B * 3 * GR * GR;
    gen_build(&gen, &c);
    CHECK(params_alloc(&gen.ps, 1) == 0, "generator allocates");
    Rng rng;
    rng_seed(&rng, 5);
    params_init(&gen.ps, &rng);
    /* larger FiLM and output weights than at init, so every path carries gradient */
    for (int i = 0; i < gen.ps.count; i++) {
        ParamTensor *t = &gen.ps.t[i];
        if (!strcmp(t->name, "mod_mlp2.w") || !strcmp(t->name, "out.w"))
            fill_uniform(gen.ps.data + t->offset, t->size, -0.5f, 0.5f, 6);
        if (!strcmp(t->name, "mod_mlp1.w")) fill_uniform(gen.ps.data + t->offset, t->size, -2.0f, 2.0f, 16);
    }
    float *scratch = calloc(gen_scratch_floats(&gen, B), sizeof(float));
    CHECK(gen_acts_alloc(&gen, &ga, B, 1, scratch) == 0, "generator context allocates");
    X = malloc(sizeof(float) * nimg); fill_uniform(X, nimg, -1, 1, 7);
    R = malloc(sizeof(float) * nimg); fill_uniform(R, nimg, -1, 1, 8);
    float gw[2 * 3] = {0, 1, 0, 0.3f, 0.7f, 0};
    GW = gw;
    float *dx = calloc(nimg, sizeof(float));
    gen_loss(NULL);
    params_zero_grad(&gen.ps);
    gen_backward(&gen, &ga, R, dx);
    double err = gradcheck(gen_loss, NULL, X, dx, nimg, 80, g_eps);
    CHECK(err < NET_TOL, "%s d(input) relative error %.3g", which, err);
    check_params(which, gen_loss, &gen.ps, NET_TOL);
    /* the residual formulation: a zero delta returns the input exactly */
    ParamTensor const *ow = params_find(&gen.ps, "out.w"), *ob = params_find(&gen.ps, "out.b");
    memset(gen.ps.data + ow->offset, 0, sizeof(float) * ow->size);
    memset(gen.ps.data + ob->offset, 0, sizeof(float) * ob->size);
    gen_loss(NULL);
    CHECK(memcmp(ga.y, X, sizeof(float) * nimg) == 0, "zero output layer gives y == x");
    gen_acts_free(&ga);
    params_free(&gen.ps);
    free(scratch); free(X); free(R); free(dx);
}

static void test_discriminator_gradients(int pair) {
    ModelConfig c = test_config();
    c.res = 32;
    c.disc_pair = pair;
    size_t nimg = (size_t)B * 3 * 32 * 32;
    CHECK(disc_build(&disc, &c) == 0, "discriminator builds");
    params_alloc(&disc.ps, 1);
    Rng rng;
    rng_seed(&rng, 9);
    params_init(&disc.ps, &rng);
    float *scratch = calloc(disc_scratch_floats(&disc, B), sizeof(float));
    disc_acts_alloc(&disc, &da, B, scratch);
    X = malloc(sizeof(float) * nimg); fill_uniform(X, nimg, -1, 1, 10);
    Y = malloc(sizeof(float) * nimg); fill_uniform(Y, nimg, -1, 1, 11);
    float gw[6] = {1, 0, 0, 0, 0, 1}, gw2[6] = {0, 1, 0, 0, 0.5f, 0.5f};
    GW = gw; GW2 = gw2;
    size_t nout = (size_t)B * da.out_hw * da.out_hw;
    R = malloc(sizeof(float) * nout); fill_uniform(R, nout, -1, 1, 12);
    float *dy = calloc(nimg, sizeof(float));
    params_zero_grad(&disc.ps);
    disc_loss(NULL);
    disc_backward(&disc, &da, R, dy, 1);
    double err = gradcheck(disc_loss, NULL, Y, dy, nimg, 80, g_eps);
    CHECK(err < NET_TOL, "discriminator(%s) d(output image) relative error %.3g", pair ? "pair" : "target", err);
    check_params(pair ? "discriminator(pair)" : "discriminator(target)", disc_loss, &disc.ps, NET_TOL);
    /* dy only: the same input gradient without touching parameter gradients */
    float *dy2 = calloc(nimg, sizeof(float));
    params_zero_grad(&disc.ps);
    disc_loss(NULL);
    disc_backward(&disc, &da, R, dy2, 0);
    double md = 0, gsum = 0;
    for (size_t i = 0; i < nimg; i++) md = fmax(md, fabs(dy2[i] - dy[i]));
    for (size_t i = 0; i < disc.ps.total; i++) gsum += fabs(disc.ps.grad[i]);
    CHECK(md < 1e-5 && gsum == 0, "input-only backward: diff %g, param grads %g", md, gsum);
    disc_acts_free(&da);
    params_free(&disc.ps);
    free(scratch); free(X); free(Y); free(R); free(dy); free(dy2);
}

static void test_estimator_gradients(int blur) {
    ModelConfig c = test_config();
    c.est_blur = blur;
    c.res = 64; /* batch norm's last level then has 2x2 maps */
    size_t nimg = (size_t)EB * 3 * 64 * 64;
    est_build(&est, &c);
    params_alloc(&est.ps, 1);
    Rng rng;
    rng_seed(&rng, 13);
    params_init(&est.ps, &rng);
    float *scratch = calloc(est_scratch_floats(&est, EB), sizeof(float));
    est_acts_alloc(&est, &ea, EB, 1, scratch);
    X = malloc(sizeof(float) * nimg); fill_uniform(X, nimg, -1, 1, 14);
    R = malloc(sizeof(float) * EB * c.groups); fill_uniform(R, EB * c.groups, -1, 1, 15);
    float *dx = calloc(nimg, sizeof(float));
    for (est_training = 1; est_training >= 0; est_training--) {
        memset(dx, 0, sizeof(float) * nimg);
        params_zero_grad(&est.ps);
        est_loss(NULL);
        est_backward(&est, &ea, R, dx, 1);
        double err = gradcheck(est_loss, NULL, X, dx, nimg, 80, g_eps);
        CHECK(err < NET_TOL, "estimator(%s, blur %d) d(input) relative error %.3g", est_training ? "train" : "eval", blur, err);
        /* in eval mode the net is piecewise linear: a smaller step crosses fewer ReLU kinks */
        g_eps = est_training ? 1e-3f : 1e-4f;
        check_params(est_training ? "estimator(train)" : "estimator(eval)", est_loss, &est.ps, NET_TOL);
        g_eps = 1e-3f;
    }
    est_acts_free(&ea);
    params_free(&est.ps);
    free(scratch); free(X); free(R); free(dx);
}

static void test_seed_discriminator(void) {
    ModelConfig c = test_config();
    Err e;
    c.res = 256;
    c.disc_width = 64;
    c.disc_pair = 1;
    CHECK(parse_groups(&c, "0-19,20-49,50+", &e) == 0 && c.groups == 3, "three seed groups parse");
    Discriminator d;
    CHECK(disc_build(&d, &c) == 0, "seed discriminator builds");
    CHECK(params_trainable_count(&d.ps) == 3164865, "seed discriminator has %zu parameters, expected 3,164,865",
          params_trainable_count(&d.ps));
    CHECK(d.in_ch == 8, "seed discriminator sees 8 channels");
    int expect[DISC_LAYERS][4] = {{8, 64, 2, 128}, {64, 128, 2, 64}, {128, 256, 2, 32}, {256, 512, 1, 31}, {512, 1, 1, 30}};
    for (int l = 0; l < DISC_LAYERS; l++) {
        int oh = conv_out_size(d.s[l].H, d.s[l].K, d.s[l].S, d.s[l].P);
        CHECK(d.s[l].C == expect[l][0] && d.s[l].OC == expect[l][1] && d.s[l].K == 4 && d.s[l].S == expect[l][2] &&
              d.s[l].P == 1 && oh == expect[l][3],
              "seed layer %d: Conv2d(%d,%d,k%d,s%d,p%d) -> %d", l, d.s[l].C, d.s[l].OC, d.s[l].K, d.s[l].S, d.s[l].P, oh);
    }
    params_alloc(&d.ps, 0);
    Rng rng;
    rng_seed(&rng, 1);
    params_init(&d.ps, &rng);
    float *scratch = calloc(disc_scratch_floats(&d, 1), sizeof(float));
    DiscActs a;
    disc_acts_alloc(&d, &a, 1, scratch);
    size_t n = 3 * 256 * 256;
    float *img = malloc(sizeof(float) * n), gw[3] = {0, 0, 1};
    fill_uniform(img, n, -1, 1, 2);
    disc_forward(&d, &a, img, gw, img, gw);
    CHECK(a.out_hw == 30, "seed discriminator outputs a %dx%d patch map, expected 30x30", a.out_hw, a.out_hw);
    disc_acts_free(&a);
    params_free(&d.ps);
    free(scratch); free(img);
}

static void test_age_groups(void) {
    ModelConfig c = test_config();
    Err e;
    CHECK(parse_groups(&c, "0-9,10-19,20-29,30-44,45-59,60+", &e) == 0 && c.groups == 6, "default groups parse");
    CHECK(age_to_group(&c, 0) == 0 && age_to_group(&c, 29) == 2 && age_to_group(&c, 30) == 3 && age_to_group(&c, 116) == 5,
          "ages map to their groups");
    float w[MAX_GROUPS];
    age_to_groupw(&c, 14.5f, w);
    CHECK(fabsf(w[1] - 1) < 1e-6f, "an age at a group's centre is that group alone");
    age_to_groupw(&c, 19.5f, w);
    CHECK(fabsf(w[1] - 0.5f) < 1e-6f && fabsf(w[2] - 0.5f) < 1e-6f, "halfway between centres blends evenly");
    CHECK(parse_groups(&c, "0-9,12-19", &e) != 0, "a gap between groups is refused");
    CHECK(parse_groups(&c, "0-9,x", &e) != 0, "garbage is refused");
    char text[1024];
    CHECK(parse_groups(&c, "0-9,10-19,20-29,30-44,45-59,60+", &e) == 0, "groups parse again");
    model_config_text(&c, text, sizeof(text));
    ModelConfig back;
    CHECK(model_config_parse(&back, text, &e) == 0 && model_config_match(&back, &c, "x", &e) == 0,
          "config text round-trips");
    CHECK(back.est_blur == 0 && !strstr(text, "est_blur"), "a config without the blur says nothing of it (older blobs parse alike)");
    c.est_blur = 1;
    model_config_text(&c, text, sizeof(text));
    CHECK(model_config_parse(&back, text, &e) == 0 && back.est_blur == 1, "the estimator's blur round-trips");
}

/* Test groups 0-19, 20-49, 50+: centres 9.5, 34.5, 59.5. */
static void test_calibration(void) {
    ModelConfig c = test_config();
    const float calib[3] = {12, 30, 59.5f};
    CHECK(calibration_map(&c, NULL, 41.0f) == 41.0f, "without a calibration an age is its own conditioning");
    CHECK(fabsf(calibration_map(&c, calib, 9.5f) - 12) < 1e-5f && fabsf(calibration_map(&c, calib, 22) - 21) < 1e-5f &&
          fabsf(calibration_map(&c, calib, 47) - 44.75f) < 1e-5f, "the map is linear between the centres' values");
    CHECK(calibration_map(&c, calib, 0) == 12 && calibration_map(&c, calib, 90) == 59.5f, "and flat beyond them");

    /* grid 9.5 ... 59.5 in steps of 12.5 */
    const float cond[5] = {9.5f, 22, 34.5f, 47, 59.5f};
    const float reading[15] = {8, 15, 20, 30, 40,      /* want 9.75: a quarter of the way 9.5..22 */
                               10, 25, 20, 32, 40,     /* a dip: the running maximum holds 25 until 32 */
                               30, 35, 40, 45, 50};    /* never reaches 60: the grid's end */
    const float want[3] = {9.75f, 30, 60};
    float fit[3];
    calibration_fit(&c, 5, cond, reading, want, fit);
    CHECK(fabsf(fit[0] - 12.625f) < 1e-4f, "a reading reached between grid points interpolates (%g)", fit[0]);
    CHECK(fabsf(fit[1] - (34.5f + 5.0f / 7 * 12.5f)) < 1e-4f, "a dip in the readings is passed over (%g)", fit[1]);
    CHECK(fit[2] == 59.5f, "a reading never reached takes the grid's end (%g)", fit[2]);
    const float want2[3] = {9.75f, 30, 5};
    calibration_fit(&c, 5, cond, reading, want2, fit);
    CHECK(fit[2] == fit[1], "an older group never maps below a younger one (%g < %g)", fit[2], fit[1]);

    char line[256];
    float back[3];
    Err e;
    calibration_line(&c, calib, line, sizeof(line));
    CHECK(!strcmp(line, "age_calibration=12.00,30.00,59.50\n"), "the config line (%s)", line);
    line[strlen(line) - 1] = 0;
    CHECK(calibration_parse(&c, line + strlen(CALIBRATION_KEY) + 1, back, &e) == 0 && !memcmp(back, calib, sizeof(back)),
          "and it parses back: %s", e.msg);
    struct { const char *text, *why; } bad[] = {
        {"12,30", "expected 3 numbers"}, {"12,30,50,60", "more than 3"}, {"12,x,50", "expected 3 numbers"},
        {"5,30,50", "outside"}, {"12,30,nan", "outside"}, {"12,40,30", "decreases"}, {"", "expected 3 numbers"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        CHECK(calibration_parse(&c, bad[i].text, back, &e) != 0 && strstr(e.msg, bad[i].why),
              "calibration '%s' refused (%s)", bad[i].text, e.msg);
}

void test_models(void) {
    test_generator_gradients();
    test_discriminator_gradients(1);
    test_discriminator_gradients(0);
    test_estimator_gradients(0);
    test_estimator_gradients(1);
    test_seed_discriminator();
    test_age_groups();
    test_calibration();
}
