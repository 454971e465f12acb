/* build/reage-train-change: trains the change net (src/change_net.h), the
 * learned part of the structured re-ageing, against the seed's PatchGAN
 * discriminator in the face space.
 *
 * usage: reage-train-change --weights IN.blob --out OUT.blob [--run DIR]
 *          [--data DIR] [--landmarks FILE] [--limit N] [--faces N] [--steps N]
 *          [--batch B] [--side S] [--width W] [--lr-g X] [--lr-d X]
 *          [--lambda-adv X] [--lambda-wrong X] [--lambda-field X]
 *          [--lambda-smooth X] [--lambda-age X] [--age-margin X]
 *          [--disc-pair 1|0] [--seed N] [--every N]
 *
 * --limit N takes the N photos of DIR's list that build/reage-landmarks
 * --limit N meshed (0: all). Each train face (N of them, the age groups in equal numbers) is warped
 * into the face space at side S as it is, and as the prototypes take it to
 * every other group: the net reads that result and its field is rendered on
 * it (change_render.h). The discriminator sees (face, its age) with (real
 * photo of another face, its age) as real, with (output, target age) as
 * fake, and with a real photo at a wrong age as fake (so that it reads
 * age). With --lambda-age, the blob's own age estimator (frozen, looking
 * through its blur) reads the output's crop square brought down to its
 * 128 pixels, and its cross-entropy against the target group pulls the
 * field, except on outputs it already reads as their group with a loss
 * under --age-margin. The field is kept small and smooth by its own terms: where the
 * discriminator has nothing to say, the prototypes' result stands.
 *
 * Every --every steps: RUN/checkpoint.bin (resumed when present: the same
 * options), OUT (IN with the net added, what the CLI and the page load) and
 * RUN/samples.png (test faces: the face, then per target the prototypes'
 * result and the net's). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "blob.h"
#include "facespace.h"
#include "fileio.h"
#include "image.h"
#include "landmark_set.h"
#include "model.h"
#include "structured.h"

typedef struct {
    const char *in, *out, *run, *data, *landmarks;
    int faces, steps, batch, side, width, seed, every, pair, limit;
    float lr_g, lr_d, lambda_adv, lambda_wrong, lambda_field, lambda_smooth, lambda_age, age_margin;
} Options;

typedef struct {
    int count, G, S;
    int *group;
    float *age;
    uint8_t *space;   /* per face: the face, then its prototypes' result at each group ([G+1][S][S][3]) */
} FaceSet;

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

static uint8_t *face_image(const FaceSet *f, int i, int slot) {
    size_t one = (size_t)f->S * f->S * 3;
    return f->space + ((size_t)i * (f->G + 1) + slot) * one;
}

/* n faces of data's split (test or train), as equal a number per group as the split has. */
static int prepare(FaceSet *f, const Options *o, const ModelConfig *cfg, const Prototypes *P, int test, int n, Err *e) {
    LandmarkSet ls;
    if (landmark_set_load(&ls, o->data, o->limit, o->landmarks, e)) return -1;
    int G = cfg->groups, S = o->side, per = (n + G - 1) / G, have[MAX_GROUPS] = {0};
    int *pick = malloc(sizeof(int) * ls.count), m = 0;
    if (!pick) { landmark_set_free(&ls); return err_set(e, "out of memory"); }
    /* a fixed stride through the list, so that each group's faces spread over it */
    for (int r = 0; r < ls.count && m < n; r++) {
        int i = (int)(((long long)r * 7919) % ls.count);
        if (ls.test[i] != test || ls.flag[i] < LANDMARK_MIN_FLAG) continue;
        int g = age_to_group(cfg, ls.age[i]);
        if (have[g] >= per) continue;
        have[g]++;
        pick[m++] = i;
    }
    f->count = m, f->G = G, f->S = S;
    f->group = malloc(sizeof(int) * m);
    f->age = malloc(sizeof(float) * m);
    f->space = malloc((size_t)m * (G + 1) * S * S * 3);
    if (!f->group || !f->age || !f->space) { free(pick); landmark_set_free(&ls); return err_set(e, "out of memory for %d faces at %d px", m, S); }
    int done = 0, failed = 0;
    double t0 = now();
    _Pragma("omp parallel for schedule(dynamic, 4)")
    for (int q = 0; q < m; q++) {
        int i = pick[q];
        char path[4096];
        Err le;
        Image img, copy;
        snprintf(path, sizeof(path), "%s/images/%s", o->data, ls.name[i]);
        int bad = image_load(path, &img, &le);
        FaceLandmarks lm;
        memset(&lm, 0, sizeof(lm));
        lm.score = ls.flag[i];
        memcpy(lm.pt, ls.points + (size_t)i * FACEMESH_POINTS * 3, sizeof(lm.pt));
        FaceWarp w;
        if (!bad && !(bad = facewarp_fit(&w, &lm))) {
            Photo p = {img.rgb, img.w, img.h, 3};
            facewarp_photo_to_space(&w, &p, S, face_image(f, q, 0));
            bad = image_alloc(&copy, img.w, img.h);
            for (int t = 0; t < G && !bad; t++) {
                memcpy(copy.rgb, img.rgb, (size_t)img.w * img.h * 3);
                Photo c = {copy.rgb, copy.w, copy.h, 3};
                if (t != age_to_group(cfg, ls.age[i])) bad = proto_reage(P, cfg, &c, &lm, (float)ls.age[i], group_center(cfg, t));
                facewarp_photo_to_space(&w, &c, S, face_image(f, q, 1 + t));
            }
            image_free(&copy); /* rgb is NULL where it could not be allocated */
            facewarp_free(&w);
        }
        if (img.rgb) image_free(&img);
        f->group[q] = age_to_group(cfg, ls.age[i]);
        f->age[q] = (float)ls.age[i];
        _Pragma("omp critical(progress)")
        {
            failed += bad != 0;
            if (++done % 200 == 0 || done == m)
                fprintf(stderr, "prepared %d/%d %s faces (%.0f s)\n", done, m, test ? "test" : "train", now() - t0);
        }
    }
    free(pick);
    landmark_set_free(&ls);
    if (failed) return err_set(e, "%d faces could not be read or re-aged", failed);
    return 0;
}

/* The prepared faces, kept in the run's folder: preparing them takes minutes (every face re-aged to
 * every group) and a resumed run wants the same ones. */
#define FACES_MAGIC "REAGEFS1"
static int faces_cache_read(FaceSet *f, const char *path, int want, int G, int S) {
    FILE *fp = fopen(path, "rb");
    if (!fp) return -1;
    char magic[8];
    int32_t head[4];
    int ok = fread(magic, 1, 8, fp) == 8 && !memcmp(magic, FACES_MAGIC, 8) && fread(head, sizeof(head), 1, fp) == 1 &&
             head[0] > 0 && head[0] <= want && head[1] == G && head[2] == S && head[3] == want;
    if (ok) {
        int m = head[0];
        size_t bytes = (size_t)m * (G + 1) * S * S * 3;
        f->count = m, f->G = G, f->S = S;
        f->group = malloc(sizeof(int) * m), f->age = malloc(sizeof(float) * m), f->space = malloc(bytes);
        ok = f->group && f->age && f->space && fread(f->group, sizeof(int), m, fp) == (size_t)m &&
             fread(f->age, sizeof(float), m, fp) == (size_t)m && fread(f->space, 1, bytes, fp) == bytes;
    }
    fclose(fp);
    return ok ? 0 : -1;
}

static int faces_cache_write(const FaceSet *f, const char *path, int want, Err *e) {
    char tmp[1300];
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    FILE *fp = fopen(tmp, "wb");
    if (!fp) return err_set(e, "%s: cannot write", tmp);
    int32_t head[4] = {f->count, f->G, f->S, want};
    size_t bytes = (size_t)f->count * (f->G + 1) * f->S * f->S * 3;
    int ok = fwrite(FACES_MAGIC, 1, 8, fp) == 8 && fwrite(head, sizeof(head), 1, fp) == 1 &&
             fwrite(f->group, sizeof(int), f->count, fp) == (size_t)f->count && fwrite(f->age, sizeof(float), f->count, fp) == (size_t)f->count &&
             fwrite(f->space, 1, bytes, fp) == bytes;
    if (fclose(fp) || !ok || rename(tmp, path)) {
        remove(tmp);
        return err_set(e, "%s: cannot write", path);
    }
    return 0;
}

static void faceset_free(FaceSet *f) {
    free(f->group);
    free(f->age);
    free(f->space);
}

typedef struct {
    Options o;
    ModelConfig cfg;          /* the blob's, with the discriminator at the face space's side */
    ChangeNet net;
    ChangeNetActs acts;
    Discriminator disc;
    DiscActs da;
    float *scratch, *mask;
    float *x, *xb, *xr, *y, *mid, *bands, *up, *dup, *dy, *dpatch, *work;
    float *xd, *rd, *yd, *dyd;   /* the discriminator's view: the centre of the face space */
    int dside, doff;
    float *fn, *dfn;             /* the field in CHANGE_UNIT units, and its gradient */
    Estimator est;               /* the blob's age reader, frozen (lambda_age > 0) */
    EstActs ea;
    float *ex, *dex, *eprobs, *elogits_d;
    int eside, eoff, ecrop;      /* its input side, and the crop square's offset and side in the face space */
    int *tgt;
    float *est_scratch;
    float *gs, *gt, *gs_real, *gw_wrong, *gn_src, *gn_tgt;
    int step;
    Rng rng;
} Run;

static int run_init(Run *r, const Options *o, const ModelConfig *blob_cfg, const Blob *blob, Err *e) {
    memset(r, 0, sizeof(*r));
    r->o = *o;
    r->cfg = *blob_cfg;
    /* the discriminator looks at the face and a little around it, not at the margin's smeared edges */
    r->dside = o->side * 3 / 4;
    r->doff = (o->side - r->dside) / 2;
    r->cfg.res = r->dside;
    r->cfg.disc_width = 64;
    r->cfg.disc_pair = o->pair;
    int B = o->batch, S = o->side, G = blob_cfg->groups, s = change_field_side(S);
    ChangeNetConfig nc = {S, G, o->width};
    if (change_net_build(&r->net, &nc, e)) return -1;
    disc_build(&r->disc, &r->cfg);
    if (params_alloc(&r->net.ps, 1) || params_alloc(&r->disc.ps, 1)) return err_set(e, "out of memory for the networks");
    Rng init;
    rng_seed(&init, (uint64_t)o->seed * 7919u + 3);
    params_init(&r->net.ps, &init);
    params_init(&r->disc.ps, &init);
    size_t sc = change_net_scratch_floats(&r->net, B), sd = disc_scratch_floats(&r->disc, B);
    size_t n3 = (size_t)B * 3 * S * S, nf = (size_t)B * CHANGE_FIELDS * S * S;
    r->scratch = calloc(sc > sd ? sc : sd, sizeof(float));
    r->mask = malloc(sizeof(float) * CHANGE_FIELDS * S * S);
    r->x = malloc(sizeof(float) * n3); r->xb = malloc(sizeof(float) * n3); r->xr = malloc(sizeof(float) * n3);
    r->y = malloc(sizeof(float) * n3); r->mid = malloc(sizeof(float) * n3); r->dy = malloc(sizeof(float) * n3);
    r->bands = malloc(sizeof(float) * B * CHANGE_BANDS * S * S);
    r->up = malloc(sizeof(float) * nf); r->dup = malloc(sizeof(float) * nf);
    r->work = malloc(sizeof(float) * 3 * S * S);
    r->dpatch = malloc(sizeof(float) * B * S * S);
    size_t nd = (size_t)B * 3 * r->dside * r->dside;
    r->xd = malloc(sizeof(float) * nd); r->rd = malloc(sizeof(float) * nd);
    r->yd = malloc(sizeof(float) * nd); r->dyd = malloc(sizeof(float) * nd);
    r->fn = malloc(sizeof(float) * B * CHANGE_FIELDS * s * s); r->dfn = malloc(sizeof(float) * B * CHANGE_FIELDS * s * s);
    r->gs = calloc((size_t)B * G, sizeof(float)); r->gt = calloc((size_t)B * G, sizeof(float));
    r->gs_real = calloc((size_t)B * G, sizeof(float)); r->gw_wrong = calloc((size_t)B * G, sizeof(float));
    r->gn_src = calloc((size_t)B * G, sizeof(float)); r->gn_tgt = calloc((size_t)B * G, sizeof(float));
    if (!r->scratch || !r->mask || !r->x || !r->xb || !r->xr || !r->y || !r->mid || !r->dy || !r->bands || !r->up || !r->dup ||
        !r->work || !r->dpatch || !r->xd || !r->rd || !r->yd || !r->dyd || !r->fn || !r->dfn || !r->gs || !r->gt || !r->gs_real || !r->gw_wrong || !r->gn_src || !r->gn_tgt ||
        change_net_acts_alloc(&r->net, &r->acts, B, 1, r->scratch) || disc_acts_alloc(&r->disc, &r->da, B, r->scratch))
        return err_set(e, "out of memory for batch %d at %d px", B, S);
    change_masks(S, r->mask);
    r->tgt = calloc(B, sizeof(int));
    if (!r->tgt) return err_set(e, "out of memory");
    if (o->lambda_age > 0) {
        /* the face space's crop square (UTKFace's aligned crop) is what the estimator was trained on */
        r->eside = blob_cfg->res;
        r->ecrop = (int)(S / (1 + 2 * FACESPACE_MARGIN) + 0.5);
        r->eoff = (S - r->ecrop) / 2;
        est_build(&r->est, blob_cfg);
        size_t ne = (size_t)B * 3 * r->eside * r->eside, se = est_scratch_floats(&r->est, B);
        if (params_alloc(&r->est.ps, 0) || blob_read_params(blob, "", &r->est.ps, o->in, e)) return -1;
        r->est_scratch = calloc(se, sizeof(float));
        r->ex = malloc(sizeof(float) * ne); r->dex = malloc(sizeof(float) * ne);
        r->elogits_d = malloc(sizeof(float) * B * G); r->eprobs = malloc(sizeof(float) * B * G);
        if (!r->est_scratch || !r->ex || !r->dex || !r->elogits_d || !r->eprobs || est_acts_alloc(&r->est, &r->ea, B, 1, r->est_scratch))
            return err_set(e, "out of memory for the age estimator");
    }
    rng_seed(&r->rng, (uint64_t)o->seed);
    return 0;
}

static void run_free(Run *r) {
    change_net_acts_free(&r->acts);
    disc_acts_free(&r->da);
    if (r->o.lambda_age > 0) {
        est_acts_free(&r->ea);
        params_free(&r->est.ps);
        free(r->est_scratch); free(r->ex); free(r->dex); free(r->elogits_d); free(r->eprobs);
    }
    free(r->tgt);
    params_free(&r->net.ps);
    params_free(&r->disc.ps);
    float *bufs[] = {r->scratch, r->mask, r->x, r->xb, r->xr, r->y, r->mid, r->bands, r->up, r->dup, r->dy, r->dpatch, r->work, r->xd, r->rd, r->yd, r->dyd, r->fn, r->dfn,
                     r->gs, r->gt, r->gs_real, r->gw_wrong, r->gn_src, r->gn_tgt};
    for (size_t i = 0; i < sizeof(bufs) / sizeof(bufs[0]); i++) free(bufs[i]);
}

/* fields [B,CHANGE_FIELDS,S,S] *= the transform's masks [CHANGE_FIELDS,S,S] (their gradient likewise) */
static void apply_masks(const Run *r, float *f, int B) {
    size_t n = (size_t)CHANGE_FIELDS * r->o.side * r->o.side;
    for (int b = 0; b < B; b++)
        for (size_t i = 0; i < n; i++) f[(size_t)b * n + i] *= r->mask[i];
}

/* The net's field for batch xb (the prototypes' results), rendered into r->y. */
static void render(Run *r, int B) {
    int S = r->o.side;
    ChangeShape sh = {B, S, change_field_side(S)};
    change_net_forward(&r->net, &r->acts, r->xb, r->gn_src, r->gn_tgt);
    change_upsample_forward(r->up, r->acts.field, sh);
    apply_masks(r, r->up, B);
    change_render_forward(r->y, r->mid, r->xb, r->bands, r->up, sh);
}

/* LSGAN's loss of the discriminator's verdict on (x, gw_in, y, gw_out) against target. */
static float disc_term(Run *r, const float *x, const float *gw_in, const float *y, const float *gw_out, float target, float weight,
                       float *dy, int param_grads) {
    int B = r->o.batch;
    const float *logits = disc_forward(&r->disc, &r->da, x, gw_in, y, gw_out);
    size_t n = (size_t)B * r->da.out_hw * r->da.out_hw;
    float loss = mse_const_forward(logits, target, n);
    memset(r->dpatch, 0, sizeof(float) * n);
    mse_const_backward(r->dpatch, logits, target, weight, n);
    disc_backward(&r->disc, &r->da, r->dpatch, dy, param_grads);
    return loss;
}

typedef struct { float d_real, d_fake, d_wrong, adv, field, smooth, age; } Losses;

static Losses step(Run *r, const FaceSet *f) {
    const Options *o = &r->o;
    int B = o->batch, S = o->side, G = f->G, s = change_field_side(S);
    size_t n3 = (size_t)3 * S * S, nfs = (size_t)CHANGE_FIELDS * s * s;
    Losses L = {0};
    r->step++;
    AdamConfig ag = {o->lr_g, 0.5f, 0.999f, 1e-8f}, ad = {o->lr_d, 0.5f, 0.999f, 1e-8f};
    memset(r->gs, 0, sizeof(float) * B * G); memset(r->gt, 0, sizeof(float) * B * G);
    memset(r->gs_real, 0, sizeof(float) * B * G); memset(r->gw_wrong, 0, sizeof(float) * B * G);
    for (int b = 0; b < B; b++) {
        int i = rng_int(&r->rng, f->count), j = rng_int(&r->rng, f->count), gi = f->group[i];
        int t = (gi + 1 + rng_int(&r->rng, G - 1)) % G, gj = f->group[j], wrong = (gj + 1 + rng_int(&r->rng, G - 1)) % G;
        change_space_to_planes(face_image(f, i, 0), S, r->x + b * n3);
        change_space_to_planes(face_image(f, i, 1 + t), S, r->xb + b * n3);
        change_space_to_planes(face_image(f, j, 0), S, r->xr + b * n3);
        change_bands(r->xb + b * n3, S, r->bands + (size_t)b * CHANGE_BANDS * S * S, r->work);
        r->tgt[b] = t;
        r->gs[b * G + gi] = 1, r->gt[b * G + t] = 1, r->gs_real[b * G + gj] = 1, r->gw_wrong[b * G + wrong] = 1;
        age_to_groupw(&r->cfg, f->age[i], r->gn_src + b * G);
        age_to_groupw(&r->cfg, group_center(&r->cfg, t), r->gn_tgt + b * G);
    }
    render(r, B);
    /* the discriminator's view: the centre of the face space, copied (resampled at its own size) */
    int D = r->dside;
    crop_resize_forward(r->xd, r->x, B * 3, S, r->doff, D, D);
    crop_resize_forward(r->rd, r->xr, B * 3, S, r->doff, D, D);
    crop_resize_forward(r->yd, r->y, B * 3, S, r->doff, D, D);

    params_zero_grad(&r->disc.ps);
    L.d_real = disc_term(r, r->xd, r->gs, r->rd, r->gs_real, 1, 1, NULL, 1);
    L.d_fake = disc_term(r, r->xd, r->gs, r->yd, r->gt, 0, 1, NULL, 1);
    if (o->lambda_wrong > 0) L.d_wrong = disc_term(r, r->xd, r->gs, r->rd, r->gw_wrong, 0, o->lambda_wrong, NULL, 1);
    adam_step(&r->disc.ps, &ad, r->step);

    params_zero_grad(&r->net.ps);
    memset(r->dy, 0, sizeof(float) * B * n3);
    memset(r->dyd, 0, sizeof(float) * B * 3 * r->dside * r->dside);
    L.adv = disc_term(r, r->xd, r->gs, r->yd, r->gt, 1, o->lambda_adv, r->dyd, 0);
    crop_resize_backward(r->dy, r->dyd, B * 3, S, r->doff, D, D);
    if (o->lambda_age > 0) {
        int E = r->eside;
        crop_resize_forward(r->ex, r->y, B * 3, S, r->eoff, r->ecrop, E);
        const float *logits = est_forward(&r->est, &r->ea, r->ex, 0);
        L.age = crossentropy_forward(r->eprobs, logits, r->tgt, B, G);
        memset(r->elogits_d, 0, sizeof(float) * B * G);
        crossentropy_backward(r->elogits_d, r->eprobs, r->tgt, o->lambda_age, B, G);
        /* an output that already reads as its group as surely as the margin asks is left to the discriminator */
        for (int b = 0; b < B; b++)
            if (-logf(fmaxf(r->eprobs[b * G + r->tgt[b]], 1e-30f)) < o->age_margin) memset(r->elogits_d + b * G, 0, sizeof(float) * G);
        memset(r->dex, 0, sizeof(float) * B * 3 * E * E);
        est_backward(&r->est, &r->ea, r->elogits_d, r->dex, 0);
        crop_resize_backward(r->dy, r->dex, B * 3, S, r->eoff, r->ecrop, E);
    }
    ChangeShape sh = {B, S, s};
    memset(r->dup, 0, sizeof(float) * B * CHANGE_FIELDS * S * S);
    change_render_backward(r->dup, r->dy, r->mid, r->bands, r->up, r->work, sh);
    apply_masks(r, r->dup, B);
    float *field = r->acts.field, *df = r->acts.dfield;
    memset(df, 0, sizeof(float) * B * nfs);
    change_upsample_backward(df, r->dup, sh);
    /* the field small (the prototypes' result where nothing calls for more) and smooth, in its units */
    size_t nall = (size_t)B * nfs, ss = (size_t)s * s;
    for (size_t i = 0; i < nall; i++) r->fn[i] = field[i] / CHANGE_UNIT[(i / ss) % CHANGE_FIELDS];
    L.field = 0;
    for (size_t i = 0; i < nall; i++) L.field += r->fn[i] * r->fn[i] / nall;
    L.smooth = tv_forward(r->fn, NULL, B * CHANGE_FIELDS, s, s);
    memset(r->dfn, 0, sizeof(float) * nall);
    tv_backward(r->dfn, r->fn, NULL, o->lambda_smooth, B * CHANGE_FIELDS, s, s);
    for (size_t i = 0; i < nall; i++)
        df[i] += (r->dfn[i] + 2 * o->lambda_field * r->fn[i] / nall) / CHANGE_UNIT[(i / ss) % CHANGE_FIELDS];
    change_net_backward(&r->net, &r->acts);
    adam_step(&r->net.ps, &ag, r->step);
    return L;
}

/* ---- files ---- */

static void options_text(const Options *o, char *buf, size_t n) {
    snprintf(buf, n,
             "faces=%d\nbatch=%d\nside=%d\nwidth=%d\ndisc_pair=%d\nseed=%d\nlr_g=%g\nlr_d=%g\nlambda_adv=%g\nlambda_wrong=%g\n"
             "lambda_field=%g\nlambda_smooth=%g\nlambda_age=%g\nage_margin=%g\n",
             o->faces, o->batch, o->side, o->width, o->pair, o->seed, o->lr_g, o->lr_d, o->lambda_adv, o->lambda_wrong, o->lambda_field,
             o->lambda_smooth, o->lambda_age, o->age_margin);
}

static void write_state(BlobWriter *w, const char *name, const ParamSet *ps) {
    char key[64];
    int shape[1] = {(int)ps->total};
    const float *part[3] = {ps->data, ps->adam_m, ps->adam_v};
    const char *suffix[3] = {"", ".adam_m", ".adam_v"};
    for (int k = 0; k < 3; k++) {
        snprintf(key, sizeof(key), "%s%s", name, suffix[k]);
        blobw_floats(w, key, DT_F32, 1, shape, part[k]);
    }
}

static int read_state(const Blob *b, const char *name, ParamSet *ps, const char *what, Err *e) {
    char key[64];
    float *part[3] = {ps->data, ps->adam_m, ps->adam_v};
    const char *suffix[3] = {"", ".adam_m", ".adam_v"};
    for (int k = 0; k < 3; k++) {
        snprintf(key, sizeof(key), "%s%s", name, suffix[k]);
        if (blob_read_floats(b, key, part[k], ps->total, what, e)) return -1;
    }
    return 0;
}

static int save_checkpoint(const Run *r, const char *path, Err *e) {
    char cfg[1024];
    options_text(&r->o, cfg, sizeof(cfg));
    size_t k = strlen(cfg);
    snprintf(cfg + k, sizeof(cfg) - k, "step=%d\n", r->step);
    BlobWriter w;
    blobw_begin(&w, CKPT_MAGIC, cfg);
    write_state(&w, "net", &r->net.ps);
    write_state(&w, "disc", &r->disc.ps);
    uint32_t rng[2] = {(uint32_t)r->rng.s, (uint32_t)(r->rng.s >> 32)};
    blobw_u32(&w, "rng", 2, rng);
    return blobw_save(&w, path, e);
}

/* 1 when there is no checkpoint at path, 0 when resumed, -1 on error. */
static int load_checkpoint(Run *r, const char *path, Err *e) {
    uint8_t *buf;
    size_t len;
    FILE *fp = fopen(path, "rb");
    if (!fp) return 1;
    fclose(fp);
    if (file_read_all(path, 1u << 30, &buf, &len, e)) return -1;
    Blob *b = malloc(sizeof(Blob));
    int rc = -1;
    char mine[1024], key[64], theirs[64], want[64];
    options_text(&r->o, mine, sizeof(mine));
    if (!b || blob_parse(b, buf, len, CKPT_MAGIC, path, e)) goto done;
    /* the options that shape the run must be those it was started with */
    for (const char *line = mine; *line;) {
        const char *eq = strchr(line, '='), *nl = strchr(line, '\n');
        snprintf(key, sizeof(key), "%.*s", (int)(eq - line), line);
        snprintf(want, sizeof(want), "%.*s", (int)(nl - eq - 1), eq + 1);
        if (config_get(b->config, key, theirs, sizeof(theirs))) {
            err_set(e, "%s: started without %s (another version of this tool): start another --run", path, key);
            goto done;
        }
        if (strcmp(theirs, want)) {
            err_set(e, "%s: started with %s=%s, not %s: resume with the same options or start another --run", path, key, theirs, want);
            goto done;
        }
        line = nl + 1;
    }
    uint32_t rng[2];
    if (config_get_int(b->config, "step", &r->step) || read_state(b, "net", &r->net.ps, path, e) ||
        read_state(b, "disc", &r->disc.ps, path, e) || blob_read_u32(b, "rng", rng, 2, path, e)) {
        if (!e->msg[0]) err_set(e, "%s: no step", path);
        goto done;
    }
    r->rng.s = rng[0] | (uint64_t)rng[1] << 32;
    rc = 0;
done:
    free(b);
    free(buf);
    return rc;
}

/* IN's tensors (less any change net) and config, with this net added. */
static int export_blob(const Run *r, const Blob *in, const char *path, Err *e) {
    char cfg[4096], text[256];
    size_t k = config_without(in->config, "change_", cfg, sizeof(cfg) - 300);
    change_net_config_text(&r->net.cfg, text, sizeof(text));
    snprintf(cfg + k, sizeof(cfg) - k, "%s", text);
    BlobWriter w;
    blobw_begin(&w, BLOB_MAGIC, cfg);
    for (uint32_t i = 0; i < in->ntensors; i++)
        if (!blob_tensor_starts(&in->t[i], "change.")) blobw_copy(&w, &in->t[i]);
    blobw_params(&w, "change.", &r->net.ps, DT_F16);
    return blobw_save(&w, path, e);
}

/* One row a test face: the face, then for three targets the prototypes' result and the net's. */
static int save_samples(Run *r, const FaceSet *t, const char *path, Err *e) {
    int S = r->o.side, G = t->G, rows = t->count < 6 ? t->count : 6, targets[3] = {0, G / 2, G - 1}, B = r->o.batch;
    size_t n3 = (size_t)3 * S * S;
    Image img;
    if (image_alloc(&img, S * 7, S * rows)) return err_set(e, "out of memory");
    for (int q = 0; q < rows; q++) {
        int i = q * t->count / rows;
        uint8_t *cells[7];
        cells[0] = face_image(t, i, 0);
        memset(r->gn_src, 0, sizeof(float) * B * G);
        memset(r->gn_tgt, 0, sizeof(float) * B * G);
        for (int b = 0; b < B; b++) {
            int tg = targets[b % 3];
            change_space_to_planes(face_image(t, i, 1 + tg), S, r->xb + b * n3);
            change_bands(r->xb + b * n3, S, r->bands + (size_t)b * CHANGE_BANDS * S * S, r->work);
            age_to_groupw(&r->cfg, t->age[i], r->gn_src + b * G);
            age_to_groupw(&r->cfg, group_center(&r->cfg, tg), r->gn_tgt + b * G);
        }
        render(r, B);
        for (int c = 0; c < 7; c++)
            for (int y = 0; y < S; y++)
                for (int x = 0; x < S; x++)
                    for (int ch = 0; ch < 3; ch++) {
                        uint8_t v;
                        if (c == 0) v = cells[0][((size_t)y * S + x) * 3 + ch];
                        else {
                            int b = (c - 1) / 2;
                            if (b >= B) { v = 0; goto put; }
                            float f = ((c - 1) % 2 ? r->y : r->xb)[b * n3 + ch * (size_t)S * S + (size_t)y * S + x];
                            f = (f + 1) * 127.5f + 0.5f;
                            v = (uint8_t)(f < 0 ? 0 : f > 255 ? 255 : f);
                        }
                    put:
                        img.rgb[((size_t)(q * S + y) * img.w + c * S + x) * 3 + ch] = v;
                    }
    }
    int rc = image_save(path, &img, e);
    image_free(&img);
    return rc;
}

static int parse(int argc, char **argv, Options *o) {
    *o = (Options){.in = "weights/reage.blob", .run = "runs/change", .data = "../shared/data/utkface",
                   .landmarks = "runs/landmarks/utkface.blob", .faces = 2400, .steps = 20000, .batch = 4, .side = 256,
                   .width = 32, .seed = 1, .pair = 1, .every = 100, .lr_g = 1e-4f, .lr_d = 2e-4f, .lambda_adv = 1, .lambda_wrong = 1,
                   .lambda_field = 1, .lambda_smooth = 0.1f, .lambda_age = 0, .age_margin = 0.5f};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        const char **sv = !strcmp(a, "--weights") ? &o->in : !strcmp(a, "--out") ? &o->out : !strcmp(a, "--run") ? &o->run
                        : !strcmp(a, "--data") ? &o->data : !strcmp(a, "--landmarks") ? &o->landmarks : NULL;
        int *iv = !strcmp(a, "--faces") ? &o->faces : !strcmp(a, "--steps") ? &o->steps : !strcmp(a, "--batch") ? &o->batch
                : !strcmp(a, "--side") ? &o->side : !strcmp(a, "--width") ? &o->width : !strcmp(a, "--seed") ? &o->seed
                : !strcmp(a, "--every") ? &o->every : !strcmp(a, "--disc-pair") ? &o->pair : !strcmp(a, "--limit") ? &o->limit : NULL;
        float *fv = !strcmp(a, "--lr-g") ? &o->lr_g : !strcmp(a, "--lr-d") ? &o->lr_d : !strcmp(a, "--lambda-adv") ? &o->lambda_adv
                  : !strcmp(a, "--lambda-wrong") ? &o->lambda_wrong : !strcmp(a, "--lambda-field") ? &o->lambda_field
                  : !strcmp(a, "--lambda-smooth") ? &o->lambda_smooth : !strcmp(a, "--lambda-age") ? &o->lambda_age
                  : !strcmp(a, "--age-margin") ? &o->age_margin : NULL;
        if (!sv && !iv && !fv) { fprintf(stderr, "reage-train-change: unknown option %s (see the comment at the top of tools/train_change.c)\n", a); return -1; }
        if (!v) { fprintf(stderr, "reage-train-change: %s needs a value\n", a); return -1; }
        char *end = NULL;
        if (sv) *sv = v;
        else if (iv) { long x = strtol(v, &end, 10); *iv = (int)x; }
        else *fv = strtof(v, &end);
        if (end && (*end || end == v)) { fprintf(stderr, "reage-train-change: %s %s: not a number\n", a, v); return -1; }
        i++;
    }
    if (!o->out) { fprintf(stderr, "reage-train-change: --out is required\n"); return -1; }
    if (o->faces < 12 || o->steps < 0 || o->batch < 1 || o->batch > 64 || o->every < 1 || o->limit < 0 || (o->pair != 0 && o->pair != 1) || o->lr_g <= 0 || o->lr_d <= 0) {
        fprintf(stderr, "reage-train-change: --faces (at least 12), --steps (0: only prepare the faces), --batch (1..64), --every and the rates must be positive, --disc-pair 0 or 1\n");
        return -1;
    }
    return 0;
}

int main(int argc, char **argv) {
    Options o;
    if (parse(argc, argv, &o)) return 2;
    conv_paths_measure();
    memory_keep_freed();
    Err e = {0};
    uint8_t *buf;
    size_t len;
    Blob *blob = malloc(sizeof(Blob));
    ModelConfig cfg;
    Prototypes P;
    if (!blob || file_read_all(o.in, 256u << 20, &buf, &len, &e) || blob_parse(blob, buf, len, BLOB_MAGIC, o.in, &e) ||
        model_config_parse(&cfg, blob->config, &e)) {
        fprintf(stderr, "reage-train-change: %s\n", blob ? e.msg : "out of memory");
        return 1;
    }
    int pr = proto_load(&P, blob, cfg.groups, o.in, &e);
    if (pr) { fprintf(stderr, "reage-train-change: %s\n", pr > 0 ? "the blob carries no prototypes (build/reage-prototypes)" : e.msg); return 1; }
    char ckpt[1100], samples[1100];
    snprintf(ckpt, sizeof(ckpt), "%s/checkpoint.bin", o.run);
    snprintf(samples, sizeof(samples), "%s/samples.png", o.run);
    if (dir_ensure(o.run, &e)) { fprintf(stderr, "reage-train-change: %s\n", e.msg); return 1; }
    Run r;
    if (run_init(&r, &o, &cfg, blob, &e)) { fprintf(stderr, "reage-train-change: %s\n", e.msg); return 1; }
    int rc = load_checkpoint(&r, ckpt, &e);
    if (rc < 0) { fprintf(stderr, "reage-train-change: %s\n", e.msg); return 1; }
    fprintf(stderr, "reage-train-change: %s at step %d; net %zu parameters (%.2f GFLOP a face), discriminator %zu (%s) at %d px\n",
            rc ? "starting" : "resuming", r.step, params_trainable_count(&r.net.ps), change_net_flops(&r.net) / 1e9,
            params_trainable_count(&r.disc.ps), o.pair ? "input and output" : "output alone", r.dside);
    FaceSet train, test;
    FaceSet *sets[2] = {&train, &test};
    for (int k = 0; k < 2; k++) {
        int want = k ? (o.faces < 6 * cfg.groups ? cfg.groups : 6 * cfg.groups) : o.faces;
        char path[1200];
        snprintf(path, sizeof(path), "%s/faces-%s-%d-%d.bin", o.run, k ? "test" : "train", want, o.side);
        if (!faces_cache_read(sets[k], path, want, cfg.groups, o.side)) {
            fprintf(stderr, "reage-train-change: %d %s faces from %s\n", sets[k]->count, k ? "test" : "train", path);
            continue;
        }
        if (prepare(sets[k], &o, &cfg, &P, k, want, &e) || faces_cache_write(sets[k], path, want, &e)) {
            fprintf(stderr, "reage-train-change: %s\n", e.msg);
            return 1;
        }
    }
    double t0 = now();
    int first = r.step;
    Losses acc = {0};
    while (r.step < o.steps) {
        Losses L = step(&r, &train);
        acc.d_real += L.d_real, acc.d_fake += L.d_fake, acc.d_wrong += L.d_wrong, acc.adv += L.adv, acc.field += L.field, acc.smooth += L.smooth;
        acc.age += L.age;
        if (r.step % 10 == 0) {
            double t = now() - t0;
            fprintf(stderr, "step %d: D real %.3f fake %.3f wrong %.3f | adv %.3f age %.3f field %.4f smooth %.4f | %.2f faces/s\n",
                    r.step, acc.d_real / 10, acc.d_fake / 10, acc.d_wrong / 10, acc.adv / 10, acc.age / 10, acc.field / 10, acc.smooth / 10,
                    (r.step - first) * o.batch / t);
            memset(&acc, 0, sizeof(acc));
        }
        if (r.step % o.every == 0 || r.step == o.steps) {
            if (save_checkpoint(&r, ckpt, &e) || export_blob(&r, blob, o.out, &e) || save_samples(&r, &test, samples, &e)) {
                fprintf(stderr, "reage-train-change: %s\n", e.msg);
                return 1;
            }
            fprintf(stderr, "step %d: wrote %s, %s, %s\n", r.step, ckpt, o.out, samples);
        }
    }
    faceset_free(&train);
    faceset_free(&test);
    run_free(&r);
    proto_free(&P);
    free(buf);
    free(blob);
    return 0;
}
