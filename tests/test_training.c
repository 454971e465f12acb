/* The trainer end to end on small synthetic data: loading (with a corrupt
 * photo among good ones), bad folders and flags, a tiny configuration that
 * overfits, and checkpoints that resume bit for bit. */
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "../src/fileio.h"
#include "../src/image.h"
#include "../src/bundle.h"
#include "../src/trainer.h"
#include "check.h"
#include "gradcheck.h"

static int has(const char *msg, const char *part) { return strstr(msg, part) != NULL; }
static char dir[64];

/* 12 faces-to-be: smooth colour fields whose tint depends on the age, so
 * that age is learnable; plus one corrupt file. */
static void make_data(void) {
    snprintf(dir, sizeof(dir), "/tmp/reage-data-XXXXXX");
    if (!mkdtemp(dir)) return;
    char path[256];
    snprintf(path, sizeof(path), "%s/images", dir);
    mkdir(path, 0755);
    snprintf(path, sizeof(path), "%s/labels.tsv", dir);
    FILE *f = fopen(path, "w");
    fprintf(f, "file\tage\tgender\trace\tsplit\n");
    int ages[12] = {3, 8, 15, 25, 33, 41, 52, 60, 67, 75, 85, 30};
    /* two races, mixed unevenly over the tiny configuration's three groups */
    const char *races[12] = {"0", "0", "1", "0", "1", "1", "0", "1", "1", "1", "1", "?"};
    Err e;
    for (int i = 0; i < 12; i++) {
        Image img;
        image_alloc(&img, 40, 40);
        for (int y = 0; y < 40; y++)
            for (int x = 0; x < 40; x++) {
                uint8_t *p = img.rgb + (y * 40 + x) * 3;
                p[0] = (uint8_t)(ages[i] * 2 + x);
                p[1] = (uint8_t)(120 + y * (i % 3));
                p[2] = (uint8_t)(200 - ages[i] * 2);
            }
        snprintf(path, sizeof(path), "%s/images/face%02d.%s", dir, i, i % 2 ? "jpg" : "png");
        image_save(path, &img, &e);
        image_free(&img);
        fprintf(f, "face%02d.%s\t%d\t0\t%s\t%s\n", i, i % 2 ? "jpg" : "png", ages[i], races[i], i == 11 ? "test" : "train");
    }
    snprintf(path, sizeof(path), "%s/images/broken.jpg", dir);
    FILE *b = fopen(path, "w");
    fputs("not a jpeg", b);
    fclose(b);
    fprintf(f, "broken.jpg\t40\t0\t0\ttrain\n");
    fclose(f);
}

static void test_loading(const TrainConfig *tc) {
    Dataset d;
    Err e;
    CHECK(dataset_load(&d, dir, "train", &tc->model, 0, &e) == 0, "synthetic data loads: %s", e.msg);
    CHECK(d.count == 11 && d.skipped == 1, "11 photos kept, the corrupt one skipped (%d, %d)", d.count, d.skipped);
    CHECK(d.group_count[0] == 3 && d.group_count[1] == 3 && d.group_count[2] == 5, "photos sorted into groups");
    dataset_free(&d);
    CHECK(dataset_load(&d, "/nonexistent/utkface", "train", &tc->model, 0, &e) != 0 && has(e.msg, "data folder not found"),
          "missing folder: %s", e.msg);
    char empty[64];
    snprintf(empty, sizeof(empty), "/tmp/reage-empty-XXXXXX");
    CHECK(mkdtemp(empty) != NULL, "empty folder");
    CHECK(dataset_load(&d, empty, "train", &tc->model, 0, &e) != 0 && has(e.msg, "labels.tsv"), "empty folder: %s", e.msg);
    rmdir(empty);
    CHECK(dataset_load(&d, dir, "validation", &tc->model, 0, &e) != 0 && has(e.msg, "no photos"), "empty split: %s", e.msg);
}

static void test_config_errors(void) {
    TrainConfig tc;
    Err e;
    CHECK(train_config_named(&tc, "huge", &e) != 0 && has(e.msg, "unknown configuration"), "unknown config: %s", e.msg);
    train_config_named(&tc, "tiny", &e);
    CHECK(train_config_set(&tc, "batch", "abc", &e) != 0 && has(e.msg, "--batch"), "bad number: %s", e.msg);
    CHECK(train_config_set(&tc, "lr_g", "-1", &e) != 0 && has(e.msg, "--lr-g:"), "negative learning rate refused, named as typed: %s", e.msg);
    CHECK(train_config_set(&tc, "colour", "red", &e) != 0 && has(e.msg, "unknown option"), "unknown flag: %s", e.msg);
    CHECK(train_config_set(&tc, "disc", "both", &e) != 0, "bad discriminator kind refused");
    CHECK(train_config_set(&tc, "res", "36", &e) == 0 && train_config_finish(&tc, &e) != 0 && has(e.msg, "multiple of 8"),
          "resolution checked: %s", e.msg);
    train_config_named(&tc, "seed", &e);
    CHECK(train_config_finish(&tc, &e) == 0 && tc.model.res == 256 && tc.model.groups == 3 && tc.model.disc_pair &&
          tc.model.disc_width == 64, "the seed configuration is the seed's discriminator");
    train_config_named(&tc, "shipped", &e);
    CHECK(train_config_finish(&tc, &e) == 0 && tc.model.res == 128 && tc.model.groups == 6, "shipped: 128x128, 6 groups");
    Generator g;
    gen_build(&g, &tc.model);
    CHECK(gen_flops(&g) <= 1.5e9 && params_trainable_count(&g.ps) <= 4000000,
          "shipped generator within budget: %.3f GFLOPs, %zu parameters", gen_flops(&g) / 1e9, params_trainable_count(&g.ps));
}

static void tiny_config(TrainConfig *tc) {
    Err e;
    train_config_named(tc, "tiny", &e);
    train_config_set(tc, "data", dir, &e);
    train_config_finish(tc, &e);
}

static void test_overfit(void) {
    TrainConfig tc;
    tiny_config(&tc);
    Dataset d;
    Err e;
    dataset_load(&d, dir, "train", &tc.model, 0, &e);
    Trainer t;
    CHECK(trainer_init(&t, &tc, &e) == 0, "tiny trainer starts");
    enum { STEPS = 200, W = 25 };
    double est_first = 0, est_last = 0, age_first = 0, age_last = 0;
    for (int s = 0; s < STEPS; s++) {
        Losses l = trainer_step(&t, &d);
        if (getenv("REAGE_TEST_VERBOSE")) printf("step %d est %.3f age %.3f\n", s, l.est_loss, l.age);
        if (s < W) { est_first += l.est_loss; age_first += l.age; }
        if (s >= STEPS - W) { est_last += l.est_loss; age_last += l.age; }
        CHECK(isfinite(l.d_loss) && isfinite(l.adv) && isfinite(l.cyc), "losses stay finite at step %d", s);
    }
    /* the age estimator memorises 11 photos; the generator learns to make
     * outputs that it reads as their target age */
    CHECK(est_last * 2 < est_first, "estimator loss fell 2x: %.3f -> %.3f", est_first / W, est_last / W);
    CHECK(age_last * 2 < age_first, "generator's age loss fell 2x: %.3f -> %.3f", age_first / W, age_last / W);
    trainer_free(&t);
    dataset_free(&d);
}

static int same_params(const ParamSet *a, const ParamSet *b) {
    return a->total == b->total && !memcmp(a->data, b->data, sizeof(float) * a->total) &&
           !memcmp(a->adam_m, b->adam_m, sizeof(float) * a->total) && !memcmp(a->adam_v, b->adam_v, sizeof(float) * a->total);
}

/* pix2pix's ending: from --lr-decay-from the generator's and discriminator's
 * learning rates fall linearly, reaching 0 just after --steps; the estimator
 * keeps its own. */
static void test_lr_decay(void) {
    TrainConfig tc;
    tiny_config(&tc);
    Err e;
    tc.steps = 8;
    CHECK(train_lr_scale(&tc, 5) == 1.0f, "no decay by default");
    CHECK(train_config_set(&tc, "lr_decay_from", "8", &e) == 0 && train_config_finish(&tc, &e) != 0 &&
          has(e.msg, "--lr-decay-from 8") && has(e.msg, "--steps 8"), "a decay that never starts is refused: %s", e.msg);
    CHECK(train_config_set(&tc, "lr_decay_from", "3", &e) == 0 && train_config_finish(&tc, &e) == 0 &&
          train_option_resumable("lr_decay_from"), "--lr-decay-from is an option a resumed run may set");
    CHECK(train_lr_scale(&tc, 3) == 1.0f && fabsf(train_lr_scale(&tc, 4) - 5.0f / 6) < 1e-7f &&
          fabsf(train_lr_scale(&tc, 8) - 1.0f / 6) < 1e-7f && train_lr_scale(&tc, 9) == 0.0f,
          "linear from 1 after step 3 to 1/6 at step 8: %g %g %g", train_lr_scale(&tc, 4), train_lr_scale(&tc, 6),
          train_lr_scale(&tc, 8));
    /* two runs equal to step 3; at step 4 Adam's step is proportional to the
     * rate, and the discriminator learns from the same outputs in both */
    TrainConfig plain = tc;
    plain.lr_decay_from = 0;
    Dataset d;
    dataset_load(&d, dir, "train", &tc.model, 0, &e);
    Trainer a, b;
    trainer_init(&a, &plain, &e);
    trainer_init(&b, &tc, &e);
    for (int s = 0; s < 3; s++) { trainer_step(&a, &d); trainer_step(&b, &d); }
    CHECK(same_params(&a.disc.ps, &b.disc.ps) && same_params(&a.gen.ps, &b.gen.ps), "equal before the decay starts");
    size_t nd = a.disc.ps.total, ne = a.est.ps.total;
    float *d0 = malloc(sizeof(float) * nd), *e0 = malloc(sizeof(float) * ne);
    memcpy(d0, a.disc.ps.data, sizeof(float) * nd);
    memcpy(e0, a.est.ps.data, sizeof(float) * ne);
    trainer_step(&a, &d);
    trainer_step(&b, &d);
    double dot = 0, aa = 0, off = 0, be = 0;
    for (int t = 0; t < a.disc.ps.count; t++) {
        const ParamTensor *pt = &a.disc.ps.t[t];
        if (!pt->trainable) continue;  /* running statistics move alike in both */
        for (size_t i = pt->offset; i < pt->offset + pt->size; i++) {
            double da = a.disc.ps.data[i] - d0[i], db = b.disc.ps.data[i] - d0[i];
            dot += da * db;
            aa += da * da;
            off += (db - 5.0 / 6 * da) * (db - 5.0 / 6 * da);
        }
    }
    for (size_t i = 0; i < ne; i++) be += fabs((double)b.est.ps.data[i] - a.est.ps.data[i]);
    CHECK(aa > 0 && fabs(dot / aa - 5.0 / 6) < 1e-3 && off < 1e-5 * aa,
          "the discriminator's step at step 4 is 5/6 of the undecayed one (%.5f, off by %.2g of it)", aa > 0 ? dot / aa : 0,
          aa > 0 ? sqrt(off / aa) : 0);
    CHECK(be == 0 && memcmp(a.est.ps.data, e0, sizeof(float) * ne), "the estimator's step is not decayed");
    free(d0);
    free(e0);
    trainer_free(&a);
    trainer_free(&b);
    dataset_free(&d);
}

static void test_resume(void) {
    TrainConfig tc;
    tiny_config(&tc);
    Dataset d;
    Err e;
    dataset_load(&d, dir, "train", &tc.model, 0, &e);
    Trainer a, b;
    trainer_init(&a, &tc, &e);
    for (int s = 0; s < 12; s++) trainer_step(&a, &d);
    trainer_init(&b, &tc, &e);
    for (int s = 0; s < 6; s++) trainer_step(&b, &d);
    char ckpt[128];
    snprintf(ckpt, sizeof(ckpt), "%s/checkpoint.bin", dir);
    CHECK(trainer_save_checkpoint(&b, ckpt, &e) == 0, "checkpoint saves: %s", e.msg);
    trainer_free(&b);
    TrainConfig saved;
    CHECK(checkpoint_read_config(ckpt, &saved, &e) == 0 && train_config_finish(&saved, &e) == 0 &&
          saved.model.res == tc.model.res && saved.lambda_cyc == tc.lambda_cyc, "configuration read back from the checkpoint");
    trainer_init(&b, &saved, &e);
    CHECK(trainer_load_checkpoint(&b, ckpt, &e) == 0 && b.step == 6, "checkpoint loads at step 6: %s", e.msg);
    for (int s = 0; s < 6; s++) trainer_step(&b, &d);
    CHECK(same_params(&a.gen.ps, &b.gen.ps) && same_params(&a.disc.ps, &b.disc.ps) && same_params(&a.est.ps, &b.est.ps),
          "resumed run equals the uninterrupted one bit for bit");
    trainer_free(&b);
    /* a checkpoint of another model is refused */
    TrainConfig other = tc;
    other.model.gen_res_ch = 8;
    trainer_init(&b, &other, &e);
    CHECK(trainer_load_checkpoint(&b, ckpt, &e) != 0 && has(e.msg, "does not match"), "other model refused: %s", e.msg);
    trainer_free(&b);
    /* a damaged checkpoint changes nothing */
    uint8_t *buf;
    size_t len;
    file_read_all(ckpt, 1 << 28, &buf, &len, &e);
    file_write_atomic(ckpt, buf, len - 10, &e);
    trainer_init(&b, &tc, &e);
    float before = b.gen.ps.data[0];
    CHECK(trainer_load_checkpoint(&b, ckpt, &e) != 0 && has(e.msg, "truncated") && b.step == 0 && b.gen.ps.data[0] == before,
          "truncated checkpoint refused: %s", e.msg);
    free(buf);
    /* the browser blob from a trainer loads as a bundle */
    char blob[128];
    snprintf(blob, sizeof(blob), "%s/reage.blob", dir);
    CHECK(trainer_export_blob(&a, blob, &e) == 0, "blob exports");
    file_read_all(blob, 1 << 28, &buf, &len, &e);
    Bundle bundle;
    CHECK(bundle_load(&bundle, buf, len, &tc.model, blob, &e) == 0, "exported blob loads: %s", e.msg);
    float face[3 * 32 * 32], out[3 * 32 * 32], gw[3] = {0, 0, 1};
    for (int i = 0; i < 3 * 32 * 32; i++) face[i] = (i % 50) / 25.0f - 1.0f;
    float age = bundle_estimate_age(&bundle, face);
    bundle_reage(&bundle, face, gw, out);
    CHECK(age >= 0 && age <= 120, "estimated age %.1f is an age", age);
    int in_range = 1;
    for (int i = 0; i < 3 * 32 * 32; i++) in_range &= out[i] >= -1 && out[i] <= 1;
    CHECK(in_range, "re-aged output stays in [-1, 1]");
    bundle_free(&bundle);
    free(buf);
    remove(blob);
    remove(ckpt);
    trainer_free(&a);
    trainer_free(&b);
    dataset_free(&d);
}

/* The tiny configuration and the synthetic photos, for tests that compare
 * trainers differing in one option. */
static void tiny_setup(TrainConfig *tc, Dataset *d) {
    Err e;
    tiny_config(tc);
    dataset_load(d, dir, "train", &tc->model, 0, &e);
}

/* A model that gains a residual block starts from a smaller run's
 * checkpoint: shared tensors copied with their Adam state, the new ones (and
 * the modulation layer, whose shape grew) at their initial values, step 0. */
static void test_warm_start(void) {
    TrainConfig tc;
    Dataset d;
    Err e;
    tiny_setup(&tc, &d);
    Trainer a, b;
    trainer_init(&a, &tc, &e);
    for (int s = 0; s < 3; s++) trainer_step(&a, &d);
    char ckpt[128], fresh[512];
    snprintf(ckpt, sizeof(ckpt), "%s/plain.bin", dir);
    CHECK(trainer_save_checkpoint(&a, ckpt, &e) == 0, "checkpoint saves: %s", e.msg);
    TrainConfig f = tc;
    f.model.gen_nres = tc.model.gen_nres + 1;
    f.ema = 0.9f;
    CHECK(!train_option_resumable("gen_nres"), "a resumed run may not change the generator");
    trainer_init(&b, &f, &e);
    CHECK(trainer_warm_start(&b, ckpt, fresh, sizeof(fresh), &e) == 0, "warm start: %s", e.msg);
    CHECK(!strcmp(fresh, "gen.mod_mlp2.w, gen.mod_mlp2.b, gen.res1.conv1.w, gen.res1.conv2.w"),
          "only the new block and the grown modulation are new: '%s'", fresh);
    int shared = b.step == 0;
    for (int i = 0; i < a.gen.ps.count; i++) {
        const ParamTensor *p = &a.gen.ps.t[i], *q = params_find(&b.gen.ps, p->name);
        if (q && q->size != p->size) continue; /* grown: starts afresh */
        shared &= q && !memcmp(a.gen.ps.data + p->offset, b.gen.ps.data + q->offset, sizeof(float) * p->size);
    }
    CHECK(shared && !memcmp(a.disc.ps.data, b.disc.ps.data, sizeof(float) * a.disc.ps.total) &&
          !memcmp(a.est.ps.data, b.est.ps.data, sizeof(float) * a.est.ps.total) &&
          !memcmp(b.gen_avg, b.gen.ps.data, sizeof(float) * b.gen.ps.total),
          "at step 0 with the source's generator (average too), discriminator and estimator");
    /* Adam's moments come along for the copied tensors, counted as 3 steps old; the new ones start afresh */
    int carried = 1;
    double fresh_moments = 0;
    for (int i = 0; i < b.gen.ps.count; i++) {
        const ParamTensor *q = &b.gen.ps.t[i], *p = params_find(&a.gen.ps, q->name);
        const float *m = b.gen.ps.adam_m + q->offset, *v = b.gen.ps.adam_v + q->offset;
        if (!p || p->size != q->size) {
            for (size_t k = 0; k < q->size; k++) fresh_moments += fabs(m[k]) + v[k];
            carried &= q->adam_before == 0;
        } else {
            carried &= q->adam_before == 3 && !memcmp(m, a.gen.ps.adam_m + p->offset, sizeof(float) * p->size) &&
                       !memcmp(v, a.gen.ps.adam_v + p->offset, sizeof(float) * p->size);
        }
    }
    carried &= same_params(&a.disc.ps, &b.disc.ps) && same_params(&a.est.ps, &b.est.ps) &&
               b.disc.ps.t[0].adam_before == 3 && b.est.ps.t[0].adam_before == 3;
    CHECK(carried && fresh_moments == 0, "Adam's moments carried, 3 steps old, for every copied tensor; "
          "fresh for the new ones (%g)", fresh_moments);
    trainer_free(&b);
    /* a file that is not a checkpoint changes nothing */
    char blob[128];
    snprintf(blob, sizeof(blob), "%s/plain.blob", dir);
    trainer_export_blob(&a, blob, &e);
    trainer_init(&b, &f, &e);
    float before = b.gen.ps.data[0];
    CHECK(trainer_warm_start(&b, blob, fresh, sizeof(fresh), &e) != 0 && has(e.msg, blob) && b.gen.ps.data[0] == before,
          "a blob is no checkpoint to start from: %s", e.msg);
    trainer_free(&b);
    remove(blob);
    remove(ckpt);
    trainer_free(&a);
    dataset_free(&d);
}

/* A warm start of the same model makes the step that resuming would: the
 * carried moments are debiased as the old run's, and the count survives a
 * checkpoint of the new run. A tensor new to the model takes Adam's first
 * step, the learning rate in the gradient's direction. */
static void test_warm_start_optimiser(void) {
    TrainConfig tc;
    Dataset d;
    Err e;
    tiny_setup(&tc, &d);
    Trainer a, resumed, warm, again;
    trainer_init(&a, &tc, &e);
    for (int s = 0; s < 3; s++) trainer_step(&a, &d);
    char ckpt[128], ckpt2[128], fresh[512];
    snprintf(ckpt, sizeof(ckpt), "%s/optim.bin", dir);
    snprintf(ckpt2, sizeof(ckpt2), "%s/optim-warm.bin", dir);
    trainer_save_checkpoint(&a, ckpt, &e);
    trainer_init(&resumed, &tc, &e);
    trainer_init(&warm, &tc, &e);
    CHECK(trainer_load_checkpoint(&resumed, ckpt, &e) == 0 && trainer_warm_start(&warm, ckpt, fresh, sizeof(fresh), &e) == 0 &&
          !fresh[0] && resumed.step == 3 && warm.step == 0, "resumed at step 3, warm-started at 0: %s", e.msg);
    AdamConfig cfg = {0.01f, 0.5f, 0.999f, 1e-8f};
    ParamSet *r = &resumed.gen.ps, *w = &warm.gen.ps;
    for (size_t i = 0; i < r->total; i++) r->grad[i] = w->grad[i] = 0.01f * sinf(0.37f * (float)i);
    adam_step(r, &cfg, 4);
    adam_step(w, &cfg, 1);
    CHECK(same_params(r, w), "one step after a warm start equals the resumed run's next step");
    CHECK(trainer_save_checkpoint(&warm, ckpt2, &e) == 0 && trainer_init(&again, &tc, &e) == 0 &&
          trainer_load_checkpoint(&again, ckpt2, &e) == 0 && again.gen.ps.t[0].adam_before == 3 &&
          again.disc.ps.t[0].adam_before == 3, "the carried count is kept by the new run's checkpoint: %s", e.msg);
    trainer_free(&again);
    /* a new tensor's first step */
    TrainConfig f = tc;
    f.model.gen_nres = tc.model.gen_nres + 1;
    Trainer grown;
    trainer_init(&grown, &f, &e);
    trainer_warm_start(&grown, ckpt, fresh, sizeof(fresh), &e);
    const ParamTensor *nt = params_find(&grown.gen.ps, "res1.conv1.w");
    float *p0 = malloc(sizeof(float) * grown.gen.ps.total);
    for (size_t i = 0; i < grown.gen.ps.total; i++) grown.gen.ps.grad[i] = 0.01f * sinf(0.37f * (float)i) + 0.02f;
    memcpy(p0, grown.gen.ps.data, sizeof(float) * grown.gen.ps.total);
    adam_step(&grown.gen.ps, &cfg, 1);
    double worst = 0;
    for (size_t k = nt->offset; k < nt->offset + nt->size; k++)
        worst = fmax(worst, fabs((double)(p0[k] - grown.gen.ps.data[k]) - cfg.lr));
    CHECK(nt->adam_before == 0 && worst < 1e-6, "a new tensor's first step is the learning rate (off by %.2g)", worst);
    free(p0);
    trainer_free(&grown);
    trainer_free(&a);
    trainer_free(&resumed);
    trainer_free(&warm);
    remove(ckpt);
    remove(ckpt2);
    dataset_free(&d);
}

/* Every network of two trainers, the average and the critic included, bit for bit. */
static int same_trainers(const Trainer *a, const Trainer *b) {
    int same = same_params(&a->gen.ps, &b->gen.ps) && same_params(&a->disc.ps, &b->disc.ps) &&
               same_params(&a->est.ps, &b->est.ps) && a->has_critic == b->has_critic && !a->gen_avg == !b->gen_avg;
    if (same && a->has_critic) same = same_params(&a->critic.ps, &b->critic.ps);
    if (same && a->gen_avg) same = !memcmp(a->gen_avg, b->gen_avg, sizeof(float) * a->gen.ps.total);
    return same;
}

static void steps_following_schedule(Trainer *t, Dataset *d, int until) {
    Err e;
    char done[256];
    while (t->step < until) {
        CHECK(trainer_follow_schedule(t, d, done, sizeof(done), &e) >= 0, "the schedule applies: %s", e.msg);
        trainer_step(t, d);
    }
}

/* Resumes t's run from its checkpoint under options changed by hand, as
 * the shipped run was trained before it had a schedule. */
static void resume_by_hand(Trainer *t, const char *ckpt, const char *const *kv) {
    Err e;
    TrainConfig saved;
    trainer_save_checkpoint(t, ckpt, &e);
    trainer_free(t);
    CHECK(checkpoint_read_config(ckpt, &saved, &e) == 0, "config reads back: %s", e.msg);
    for (int i = 0; kv[i]; i += 2) train_config_set(&saved, kv[i], kv[i + 1], &e);
    trainer_init(t, &saved, &e);
    CHECK(trainer_load_checkpoint(t, ckpt, &e) == 0, "checkpoint loads: %s", e.msg);
}

/* --schedule: options change after the given steps, the average, the critic
 * and the estimators' blur starting where first asked for; a run that follows
 * it equals one resumed by hand with those options at those steps, and one
 * that is itself stopped and resumed between them, bit for bit. */
static void test_schedule(void) {
    TrainConfig tc, bad;
    Dataset d;
    Err e;
    tiny_setup(&tc, &d);
    const char *plan = "2:lambda_age=0.5,ema=0.9;4:lambda_est_fake=0.5,est_blur=1,est_adv_eps=0.03";
    struct { const char *text, *why; } wrong[] = {
        {"2:lambda_age", "expected key=value"}, {"x:lambda_age=1", "expected STEP"}, {"4:lambda_age=1;2:ema=0.5", "comes after"},
        {"2:res=64", "not an option"}, {"2:nonsense=1", "not an option"}, {"2:lambda_age=-1", "--lambda-age"},
        {"2:data=x", "not an option"}, {"2:lambda_age=1;", ""}, {"2:lambda_age=1 3:ema=0.5", "--lambda-age"}, {"2:lambda_age=1:", "--lambda-age"},
    };
    for (size_t i = 0; i < sizeof(wrong) / sizeof(wrong[0]); i++) {
        bad = tc;
        int rc = train_config_set(&bad, "schedule", wrong[i].text, &e);
        if (!wrong[i].why[0]) CHECK(rc == 0 && !strcmp(bad.schedule, wrong[i].text), "'%s' is a schedule", wrong[i].text);
        else CHECK(rc != 0 && has(e.msg, wrong[i].why) && !bad.schedule[0], "schedule '%s' refused: %s", wrong[i].text, e.msg);
    }
    TrainConfig planned = tc;
    CHECK(train_config_set(&planned, "schedule", plan, &e) == 0, "the schedule parses: %s", e.msg);
    char done[256], ckpt[128];
    snprintf(ckpt, sizeof(ckpt), "%s/schedule.bin", dir);
    Trainer a, b, c;
    trainer_init(&a, &planned, &e);
    steps_following_schedule(&a, &d, 2);
    CHECK(a.tc.lambda_age == tc.lambda_age && !a.gen_avg, "nothing changes before step 2");
    CHECK(trainer_follow_schedule(&a, &d, done, sizeof(done), &e) == 2 && !strcmp(done, "--lambda-age 0.5 --ema 0.9") &&
          a.tc.lambda_age == 0.5f && a.gen_avg && !memcmp(a.gen_avg, a.gen.ps.data, sizeof(float) * a.gen.ps.total),
          "after step 2: '%s', the average starting at the weights", done);
    CHECK(trainer_follow_schedule(&a, &d, done, sizeof(done), &e) == 2 && a.tc.lambda_age == 0.5f,
          "following twice at one step is harmless");
    steps_following_schedule(&a, &d, 4);
    CHECK(!a.has_critic && trainer_follow_schedule(&a, &d, done, sizeof(done), &e) == 3 && a.has_critic &&
          a.est.cfg.est_blur == 1 && a.critic.cfg.est_blur == 1 && a.ea.blur &&
          !memcmp(a.critic.ps.data, a.est.ps.data, sizeof(float) * a.est.ps.total),
          "after step 4: '%s', the critic a copy of the reader, both looking through the blur", done);
    steps_following_schedule(&a, &d, 7);
    /* the same by hand */
    trainer_init(&b, &tc, &e);
    steps_following_schedule(&b, &d, 2);
    resume_by_hand(&b, ckpt, (const char *const[]){"lambda_age", "0.5", "ema", "0.9", NULL});
    steps_following_schedule(&b, &d, 4);
    resume_by_hand(&b, ckpt, (const char *const[]){"lambda_est_fake", "0.5", "est_blur", "1", "est_adv_eps", "0.03", NULL});
    steps_following_schedule(&b, &d, 7);
    CHECK(same_trainers(&a, &b), "the scheduled run equals the run resumed by hand with those options");
    /* the scheduled run stopped at 3 and resumed: the rest of the schedule still comes */
    trainer_init(&c, &planned, &e);
    steps_following_schedule(&c, &d, 3);
    resume_by_hand(&c, ckpt, (const char *const[]){NULL});
    CHECK(!strcmp(c.tc.schedule, plan) && c.tc.ema == 0.9f, "the checkpoint keeps the schedule and what it set");
    steps_following_schedule(&c, &d, 7);
    CHECK(same_trainers(&a, &c), "the scheduled run resumed at step 3 equals the uninterrupted one");
    trainer_free(&a);
    trainer_free(&b);
    trainer_free(&c);
    /* the shipped recipe: its schedule runs to the options the shipped checkpoint was last trained with */
    TrainConfig shipped, last;
    CHECK(train_config_named(&shipped, "shipped", &e) == 0 && train_config_finish(&shipped, &e) == 0,
          "--config shipped: %s", e.msg);
    int changes = 0;
    for (int step = 0; step <= shipped.steps; step++) changes += train_schedule_apply(&shipped, step, done, sizeof(done), &e);
    CHECK(checkpoint_read_config("weights/checkpoint.bin", &last, &e) == 0, "the shipped checkpoint's options: %s", e.msg);
    /* the run's own files and length aside, every option as the checkpoint has it */
    snprintf(shipped.out, sizeof(shipped.out), "%s", last.out);
    snprintf(shipped.data, sizeof(shipped.data), "%s", last.data);
    shipped.steps = last.steps;
    shipped.schedule[0] = 0;
    char want[4096], got[4096];
    train_config_text(&last, want, sizeof(want));
    train_config_text(&shipped, got, sizeof(got));
    CHECK(changes == 28 && !strcmp(want, got), "the shipped schedule (%d changes) ends at the shipped checkpoint's options:\n%s\nvs\n%s",
          changes, got, want);
    remove(ckpt);
    dataset_free(&d);
}

/* Options this version no longer has: a checkpoint naming one at the value
 * that left it unused loads, one that used it is refused by name; a blob
 * whose generator used a retired part is refused. */
static void test_retired_options(void) {
    TrainConfig tc, back;
    Dataset d;
    Err e;
    tiny_setup(&tc, &d);
    Trainer t;
    trainer_init(&t, &tc, &e);
    char ckpt[128], old[128];
    snprintf(ckpt, sizeof(ckpt), "%s/retired.bin", dir);
    snprintf(old, sizeof(old), "%s/retired-old.bin", dir);
    trainer_save_checkpoint(&t, ckpt, &e);
    uint8_t *buf;
    size_t len;
    Blob b;
    CHECK(file_read_all(ckpt, 1 << 28, &buf, &len, &e) == 0 && blob_parse(&b, buf, len, CKPT_MAGIC, ckpt, &e) == 0,
          "checkpoint reads: %s", e.msg);
    struct { const char *line, *flag; } cases[] = {
        {"tv_edge=0\nwiden_noise=0.05\ngen_dec_film=0\n", NULL}, {"tv_edge=0.05\n", "--tv-edge 0.05"},
        {"age_core=1\n", "--age-core 1"}, {"gen_refine=32\n", "--gen-refine 32"}, {"widen_noise=0.25\n", "--widen-noise 0.25"},
        {"critic_blur=4\n", "--critic-blur 4"}, {"critic_adv_eps=0.1\n", "--critic-adv-eps 0.1"},
        {"age_map_off_at=3000\n", "--age-map-off-at 3000"}, {"gen_dec_film=1\n", "--gen-dec-film 1"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char cfg[8192];
        snprintf(cfg, sizeof(cfg), "%s%s", b.config, cases[i].line);
        size_t n;
        uint8_t *bytes = blob_with_config(&b, cfg, &n);
        file_write_atomic(old, bytes, n, &e);
        free(bytes);
        int rc = checkpoint_read_config(old, &back, &e);
        if (!cases[i].flag) CHECK(rc == 0 && back.lambda_cyc == tc.lambda_cyc, "retired options at their defaults load: %s", e.msg);
        else CHECK(rc != 0 && has(e.msg, cases[i].flag) && has(e.msg, "no longer"), "%s refused: %s", cases[i].flag, e.msg);
    }
    free(buf);
    /* the page's blob: a generator with a retired part is refused by name */
    char blob[128];
    snprintf(blob, sizeof(blob), "%s/retired.blob", dir);
    trainer_export_blob(&t, blob, &e);
    CHECK(file_read_all(blob, 1 << 28, &buf, &len, &e) == 0 && blob_parse(&b, buf, len, BLOB_MAGIC, blob, &e) == 0,
          "blob reads: %s", e.msg);
    ModelConfig mc;
    for (int used = 0; used < 2; used++) {
        char cfg[8192];
        snprintf(cfg, sizeof(cfg), "%sgen_dec_film=%d\n", b.config, used);
        int rc = model_config_parse(&mc, cfg, &e);
        if (used) CHECK(rc != 0 && has(e.msg, "gen_dec_film=1"), "a blob with the modulated decoder is refused: %s", e.msg);
        else CHECK(rc == 0 && mc.gen_width == tc.model.gen_width, "gen_dec_film=0 parses: %s", e.msg);
    }
    free(buf);
    remove(blob);
    remove(old);
    remove(ckpt);
    trainer_free(&t);
    dataset_free(&d);
}

/* Two tiny trainers from one start, the second with one option set. */
typedef struct { TrainConfig tc; Dataset d; Trainer off, on; } TrainerPair;

static void pair_start(TrainerPair *p, const char *key, const char *value) {
    Err e;
    tiny_setup(&p->tc, &p->d);
    TrainConfig on = p->tc;
    CHECK(train_config_set(&on, key, value, &e) == 0, "--%s %s: %s", key, value, e.msg);
    trainer_init(&p->off, &p->tc, &e);
    trainer_init(&p->on, &on, &e);
}

static void pair_end(TrainerPair *p) {
    trainer_free(&p->off);
    trainer_free(&p->on);
    dataset_free(&p->d);
}

/* The age margin: above every output's loss, the age term moves nothing (the
 * same weights as with no age term at all); at zero, it is the plain term. */
static void test_age_margin(void) {
    TrainConfig tc;
    Dataset d;
    Err e;
    tiny_setup(&tc, &d);
    Trainer off, high, zero;
    TrainConfig c_off = tc, c_high = tc, c_zero = tc;
    c_off.lambda_age = 0;
    c_high.age_margin = 1e6f;
    c_zero.age_margin = 0;
    trainer_init(&off, &c_off, &e); trainer_init(&high, &c_high, &e); trainer_init(&zero, &c_zero, &e);
    for (int s = 0; s < 3; s++) { trainer_step(&off, &d); trainer_step(&high, &d); trainer_step(&zero, &d); }
    CHECK(tc.lambda_age > 0 && same_params(&off.gen.ps, &high.gen.ps),
          "a margin above every loss: the generator moves as with no age term");
    CHECK(!same_params(&off.gen.ps, &zero.gen.ps), "no margin: the age term moves the generator");
    trainer_free(&off); trainer_free(&high); trainer_free(&zero);
    dataset_free(&d);
}

/* The estimator's adversarial copies: within eps of the batch and inside
 * the pixel range, not the batch itself, and they change what it learns. */
static void test_estimator_adversarial(void) {
    TrainerPair p;
    pair_start(&p, "est_adv_eps", "0.05");
    Trainer *plain = &p.off, *adv = &p.on;
    trainer_step(plain, &p.d); trainer_step(adv, &p.d);
    size_t n = (size_t)p.tc.batch * 3 * p.tc.model.res * p.tc.model.res;
    float far = 0, moved = 0, lo = 1, hi = -1;
    for (size_t i = 0; i < n; i++) {
        float dlt = fabsf(adv->xadv[i] - adv->x[i]);
        far = fmaxf(far, dlt); moved += dlt;
        lo = fminf(lo, adv->xadv[i]); hi = fmaxf(hi, adv->xadv[i]);
    }
    CHECK(far <= 0.05f + 1e-6f && lo >= -1 && hi <= 1, "adversarial copy within eps (%g) and in [-1,1] (%g..%g)", far, lo, hi);
    CHECK(moved / n > 0.02f, "adversarial copy differs from the batch (mean %g)", moved / n);
    CHECK(!same_params(&plain->est.ps, &adv->est.ps), "the copies change what the estimator learns");
    pair_end(&p);
}

/* The penalty terms, each on a strong weight against the same start
 * without it: the statistic it penalises shrinks. lambda_ctv: the change's
 * colour grows smoother; lambda_tone: the change's mean colour over the
 * face's centre holds; lambda_shade: fewer blocks go dark. */
static void test_penalty_terms(void) {
    static const struct { const char *key, *value; size_t stat; double ratio; } terms[] = {
        {"lambda_ctv", "200", offsetof(Losses, ctv), 0.7},
        {"lambda_tone", "50", offsetof(Losses, tone), 0.5},
        {"lambda_age_mean", "20", offsetof(Losses, age_gap), 0.8},
        {"lambda_shade", "50", offsetof(Losses, shade), 0.5},
    };
    for (size_t k = 0; k < sizeof(terms) / sizeof(terms[0]); k++) {
        TrainerPair p;
        pair_start(&p, terms[k].key, terms[k].value);
        double off = 0, on = 0;
        for (int s = 0; s < 40; s++) {
            Losses a = trainer_step(&p.off, &p.d), b = trainer_step(&p.on, &p.d);
            if (s < 30) continue;
            off += *(const float *)((const char *)&a + terms[k].stat);
            on += *(const float *)((const char *)&b + terms[k].stat);
        }
        if (getenv("REAGE_TEST_VERBOSE")) printf("%s: %.4g on, %.4g off\n", terms[k].key, on / 10, off / 10);
        CHECK(off > 0 && on < terms[k].ratio * off, "--%s %s shrinks what it penalises: %.4g vs %.4g without", terms[k].key,
              terms[k].value, on / 10, off / 10);
        pair_end(&p);
    }
}

/* The log's d_age: how much higher the discriminator scores real photos at
 * their own age than at a wrong one (targets 1 and 0). On the tiny data,
 * whose tint gives the age away, a discriminator that learns wrong-age
 * photos as fakes comes to tell them apart (both kinds: the target-only one
 * and the seed's pair); without wrong-age fakes there is nothing to measure
 * it on (nan). */
static void test_disc_reads_age(void) {
    static const char *const kinds[] = {"target", "pair"};
    for (int k = 0; k < 2; k++) {
        TrainConfig tc;
        Dataset d;
        Err e;
        tiny_setup(&tc, &d);
        train_config_set(&tc, "disc", kinds[k], &e);
        train_config_set(&tc, "lambda_wrong", "3", &e);
        train_config_set(&tc, "batch", "8", &e);
        Trainer t;
        CHECK(trainer_init(&t, &tc, &e) == 0, "--disc %s trainer starts: %s", kinds[k], e.msg);
        enum { STEPS = 60, W = 15 };
        double first = 0, last = 0;
        int in_range = 1;
        for (int s = 0; s < STEPS; s++) {
            Losses l = trainer_step(&t, &d);
            in_range &= l.d_age >= -2 && l.d_age <= 2;
            if (s < W) first += l.d_age;
            if (s >= STEPS - W) last += l.d_age;
        }
        if (getenv("REAGE_TEST_VERBOSE")) printf("d_age %s: %.3f -> %.3f\n", kinds[k], first / W, last / W);
        CHECK(in_range, "--disc %s: d_age is a difference of scores near [0,1]", kinds[k]);
        CHECK(last / W > 0.6 && last > first, "--disc %s: the discriminator comes to read age: %.2f, then %.2f", kinds[k],
              first / W, last / W);
        trainer_free(&t);
        TrainConfig none = tc;
        none.lambda_wrong = 0;
        CHECK(trainer_init(&t, &none, &e) == 0 && isnan(trainer_step(&t, &d).d_age),
              "--disc %s without --lambda-wrong: d_age is nan", kinds[k]);
        trainer_free(&t);
        dataset_free(&d);
    }
}

typedef struct { const ModelConfig *c; const int *tgt; const float *z; } AgeMeanCase;

static void softmax_rows(float *p, const float *z, int B, int G) {
    int labels[8] = {0};                   /* crossentropy_forward writes the softmax; its loss is not wanted */
    crossentropy_forward(p, z, labels, B, G);
}

/* the mean distance in decades at the logits k->z (no gradient taken) */
static double age_mean_distance(void *ctx) {
    const AgeMeanCase *k = ctx;
    float p[18], a[3], d[3];
    softmax_rows(p, k->z, 3, 6);
    return age_mean_term(k->c, p, k->tgt, 0.0f, 0.0f, 3, a, d, NULL) / 10;
}

/* The pull to the group's middle on hand-made verdicts, six groups 0-9 ...
 * 60+ (centres 4.5 ... 69.5): the distance in years; a verdict split between
 * the target and the group below is pulled up (the target's logit up, the
 * lower one's down); one at the centre, or within the tolerance, is left alone;
 * and the gradient is that of the distance (finite differences). */
static void test_age_mean_term(void) {
    ModelConfig c;
    Err e;
    CHECK(parse_groups(&c, "0-9,10-19,20-29,30-44,45-59,60+", &e) == 0, "groups: %s", e.msg);
    float probs[3 * 6] = {
        0, 0, 0, 0.5f, 0.5f, 0,                 /* target 45-59: read as 44.5 */
        0, 0, 0, 0, 1, 0,                       /* target 45-59: its centre */
        0, 0, 0, 0, 0.15f, 0.85f,               /* target 60+: read as 66.9 */
    };
    int tgt[3] = {4, 4, 5};
    float age[3], dage[3], dl[18] = {0};
    float gap = age_mean_term(&c, probs, tgt, 1.0f, 0.0f, 3, age, dage, dl);
    float want = (7.5f + 0.0f + 0.15f * 17.5f) / 3;
    CHECK(fabsf(gap - want) < 1e-4f, "mean distance %.4f years, want %.4f", gap, want);
    CHECK(fabsf(age[0] - 4.45f) < 1e-5f, "expected age 44.5 in decades: %g", age[0]);
    CHECK(dl[4] < 0 && dl[3] > 0, "split below the target: its logit is pushed up (%g), the lower one's down (%g)", dl[4], dl[3]);
    CHECK(dl[6 + 4] == 0 && dl[12 + 5] < 0, "at the centre: no push (%g); 60+ short of its centre: pushed up", dl[6 + 4]);
    float dl2[18] = {0};
    age_mean_term(&c, probs, tgt, 1.0f, 5.0f, 3, age, dage, dl2);
    CHECK(dl2[4] != 0 && dl2[17] == 0, "a 5-year tolerance spares the 2.6-year gap, not the 7.5-year one");
    /* finite differences of the mean distance against the logits */
    float z[18], g[18] = {0}, p2[18], a2[3], d2[3];
    AgeMeanCase k = {&c, tgt, z};
    fill_uniform(z, 18, -1.5f, 1.5f, 91);
    softmax_rows(p2, z, 3, 6);
    age_mean_term(&c, p2, tgt, 1.0f, 0.0f, 3, a2, d2, g);
    double err = gradcheck(age_mean_distance, &k, z, g, 18, 18, 1e-2f);
    CHECK(err < 1e-2, "the pull's gradient matches finite differences of the distance (relative error %.3g)", err);
}

/* The age critic (lambda_est_fake): it learns to read the generator's
 * outputs as their input's age (a lower loss on them than the estimator
 * without it), while the shipped estimator learns bit for bit as it would
 * without a critic; checkpoints keep it, and one without starts it as a copy
 * of the estimator. */
static void test_age_critic(void) {
    TrainerPair p;
    pair_start(&p, "lambda_est_fake", "4");
    Err e;
    double loss[2] = {0, 0};
    Trainer *ts[2] = {&p.off, &p.on};
    for (int s = 0; s < 30; s++)
        for (int k = 0; k < 2; k++) {
            Trainer *t = ts[k];
            trainer_step(t, &p.d);
            if (s < 20) continue;
            /* the age term's reader after this step, on this step's outputs, against their inputs' ages */
            Estimator *critic = t->has_critic ? &t->critic : &t->est;
            const float *lg = est_forward(critic, &t->ea, t->g_main.y, 0);
            loss[k] += crossentropy_forward(t->ea.probs, lg, t->src, p.tc.batch, p.tc.model.groups);
        }
    if (getenv("REAGE_TEST_VERBOSE")) printf("outputs read at input age: loss %.4g with a critic, %.4g without\n", loss[1] / 10, loss[0] / 10);
    CHECK(p.on.has_critic && !p.off.has_critic, "a critic only with lambda_est_fake");
    CHECK(loss[1] < 0.7 * loss[0], "the critic reads outputs as their input's age: loss %.3g vs %.3g without",
          loss[1] / 10, loss[0] / 10);
    CHECK(same_params(&p.on.est.ps, &p.off.est.ps), "the shipped estimator learns as without a critic, bit for bit");

    char ckpt[128];
    snprintf(ckpt, sizeof(ckpt), "%s/critic.bin", dir);
    Trainer b;
    CHECK(trainer_save_checkpoint(&p.on, ckpt, &e) == 0, "checkpoint with a critic saves: %s", e.msg);
    trainer_init(&b, &p.on.tc, &e);
    CHECK(trainer_load_checkpoint(&b, ckpt, &e) == 0 && same_params(&b.critic.ps, &p.on.critic.ps),
          "the critic comes back from the checkpoint: %s", e.msg);
    for (int s = 0; s < 2; s++) { trainer_step(&b, &p.d); trainer_step(&p.on, &p.d); }
    CHECK(same_params(&b.critic.ps, &p.on.critic.ps) && same_params(&b.gen.ps, &p.on.gen.ps), "a resumed critic trains on bit for bit");
    trainer_free(&b);
    trainer_save_checkpoint(&p.off, ckpt, &e);
    trainer_init(&b, &p.on.tc, &e);
    CHECK(trainer_load_checkpoint(&b, ckpt, &e) == 0 && same_params(&b.critic.ps, &p.off.est.ps),
          "a checkpoint without a critic starts it as the estimator");
    trainer_free(&b);
    remove(ckpt);
    pair_end(&p);
}

static int same_file(const char *a, const char *b) {
    uint8_t *x, *y;
    size_t nx, ny;
    Err e;
    if (file_read_all(a, 1 << 28, &x, &nx, &e)) return 0;
    if (file_read_all(b, 1 << 28, &y, &ny, &e)) { free(x); return 0; }
    int same = nx == ny && !memcmp(x, y, nx);
    free(x);
    free(y);
    return same;
}

/* The generator's weight average: the recurrence against a double-precision
 * reference from the live weights after each step; the blob carries the
 * average; checkpoints keep it (a resumed run averages on bit for bit), and
 * one written without it starts the average at its weights. */
static void test_weight_average(void) {
    TrainConfig tc;
    Dataset d;
    Err e;
    tiny_setup(&tc, &d);
    tc.ema = 0.5f;
    Trainer a;
    CHECK(trainer_init(&a, &tc, &e) == 0 && a.gen_avg, "a trainer with --ema keeps an average");
    size_t n = a.gen.ps.total;
    double *ref = malloc(sizeof(double) * n);
    for (size_t i = 0; i < n; i++) ref[i] = a.gen.ps.data[i];
    for (int s = 0; s < 3; s++) {
        trainer_step(&a, &d);
        for (size_t i = 0; i < n; i++) ref[i] = 0.5 * ref[i] + 0.5 * a.gen.ps.data[i];
    }
    double worst = 0, apart = 0;
    for (size_t i = 0; i < n; i++) {
        worst = fmax(worst, fabs(a.gen_avg[i] - ref[i]) / (1e-3 + fabs(ref[i])));
        apart = fmax(apart, fabs(a.gen_avg[i] - a.gen.ps.data[i]));
    }
    CHECK(worst < 1e-5, "average follows avg = d*avg + (1-d)*weights (worst relative error %g)", worst);
    CHECK(apart > 1e-4, "the average differs from the live weights (by up to %g)", apart);
    free(ref);

    char blob[128], live[128], ckpt[128];
    snprintf(blob, sizeof(blob), "%s/avg.blob", dir);
    snprintf(live, sizeof(live), "%s/live.blob", dir);
    snprintf(ckpt, sizeof(ckpt), "%s/avg.bin", dir);
    CHECK(trainer_export_blob(&a, blob, &e) == 0 && trainer_export_live_blob(&a, live, &e) == 0, "blobs export: %s", e.msg);
    CHECK(!same_file(blob, live), "the page's blob is not the live generator");
    float *weights = a.gen.ps.data;
    a.gen.ps.data = a.gen_avg;
    trainer_export_live_blob(&a, live, &e);
    a.gen.ps.data = weights;
    CHECK(same_file(blob, live), "the page's blob is the live export of a generator holding the average");

    CHECK(trainer_save_checkpoint(&a, ckpt, &e) == 0, "checkpoint with an average saves: %s", e.msg);
    Trainer b;
    trainer_init(&b, &tc, &e);
    CHECK(trainer_load_checkpoint(&b, ckpt, &e) == 0 && !memcmp(a.gen_avg, b.gen_avg, sizeof(float) * n),
          "the average comes back from the checkpoint: %s", e.msg);
    for (int s = 0; s < 2; s++) { trainer_step(&a, &d); trainer_step(&b, &d); }
    CHECK(!memcmp(a.gen_avg, b.gen_avg, sizeof(float) * n), "a resumed run averages on bit for bit");
    trainer_free(&b);

    TrainConfig plain = tc;
    plain.ema = 0;
    Trainer c;
    trainer_init(&c, &plain, &e);
    trainer_step(&c, &d);
    CHECK(c.gen_avg == NULL && trainer_save_checkpoint(&c, ckpt, &e) == 0, "no average without --ema");
    trainer_init(&b, &tc, &e);
    CHECK(trainer_load_checkpoint(&b, ckpt, &e) == 0 && !memcmp(b.gen_avg, c.gen.ps.data, sizeof(float) * n),
          "a checkpoint without an average starts it at its weights");
    trainer_free(&b);
    trainer_free(&c);
    TrainConfig bad = tc;
    bad.ema = 1;
    CHECK(train_config_finish(&bad, &e) != 0 && has(e.msg, "--ema"), "--ema 1 refused: %s", e.msg);
    remove(blob); remove(live); remove(ckpt);
    trainer_free(&a);
    dataset_free(&d);
}

/* Share of race-0 photos among many draws from group g. */
static double race0_share(const Dataset *d, int g, uint64_t seed) {
    Rng rng;
    rng_seed(&rng, seed);
    int n = 30000, hits = 0;
    for (int k = 0; k < n; k++) hits += d->race[dataset_pick(d, &rng, g)] == 0;
    return (double)hits / n;
}

/* Balanced draws make race independent of age where the cap allows: each
 * group's race mix then equals the split's (4 of 11 photos are race 0). */
static void test_race_balance(const TrainConfig *tc) {
    Dataset d, plain;
    Err e;
    dataset_load(&d, dir, "train", &tc->model, 0, &e);
    dataset_load(&plain, dir, "train", &tc->model, 0, &e);
    CHECK(d.race[0] == 0 && d.race[2] == 1 && d.race[3] == 0 && d.race[10] == 1, "race column read");
    Dataset test;
    CHECK(dataset_load(&test, dir, "test", &tc->model, 0, &e) == 0 && test.race[0] == -1, "an unknown race ('?') reads as -1");
    dataset_free(&test);
    double before[3] = {2.0 / 3, 1.0 / 3, 1.0 / 5}, target = 4.0 / 11;
    CHECK(dataset_balance_race(&d, 100, &e) == 0, "balance with a cap that never binds");
    for (int g = 0; g < 3; g++) {
        double got = race0_share(&d, g, 7 + g);
        CHECK(fabs(got - target) < 0.015, "group %d: race 0 share %.3f, the split's %.3f (unbalanced %.3f)", g, got, target, before[g]);
        CHECK(fabs(race0_share(&plain, g, 7 + g) - before[g]) < 0.015, "group %d unbalanced draws keep its own mix", g);
        CHECK(fabs(dataset_race_share(&d, g, 0) - target) < 1e-6 && fabs(dataset_race_share(&plain, g, 0) - before[g]) < 1e-6,
              "group %d: the expected shares the trainer reports", g);
    }
    /* a cap of 1.2 lets group 0's single race-1 photo weigh only 1.2 against
     * 0.545 for each race-0 photo: race 0 share 2*0.545/(2*0.545+1.2) */
    dataset_balance_race(&d, 1.2f, &e);
    double capped = race0_share(&d, 0, 11), expect = 2 * (4.0 / 11 * 1.5) / (2 * (4.0 / 11 * 1.5) + 1.2);
    CHECK(fabs(capped - expect) < 0.015 && capped > target && capped < before[0],
          "capped: share %.3f (expected %.3f), between balanced and unbalanced", capped, expect);
    CHECK(fabs(dataset_race_share(&d, 0, 0) - expect) < 1e-6, "capped: the reported expected share");
    /* cap 0: back to uniform draws, the same photos as never balanced */
    dataset_balance_race(&d, 0, &e);
    Rng a, b;
    rng_seed(&a, 3); rng_seed(&b, 3);
    int same = 1;
    for (int k = 0; k < 1000; k++) same &= dataset_pick(&d, &a, k % 3) == dataset_pick(&plain, &b, k % 3);
    CHECK(same && d.pick_cdf[0] == NULL, "cap 0 draws exactly as an unbalanced dataset");
    dataset_free(&d);
    dataset_free(&plain);
}

void test_training(void) {
    make_data();
    TrainConfig tc;
    tiny_config(&tc);
    test_loading(&tc);
    test_age_mean_term();
    test_race_balance(&tc);
    test_config_errors();
    test_overfit();
    test_resume();
    test_lr_decay();
    test_warm_start();
    test_schedule();
    test_retired_options();
    test_warm_start_optimiser();
    test_age_margin();
    test_estimator_adversarial();
    test_penalty_terms();
    test_weight_average();
    test_age_critic();
    test_disc_reads_age();
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    if (system(cmd)) fprintf(stderr, "warning: could not remove %s\n", dir);
}
