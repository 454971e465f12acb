#include "trainer.h"
#include "blob.h"
#include "bundle.h"
#include "fileio.h"
#include "image.h"
#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------- options */

typedef enum { OPT_INT, OPT_FLOAT, OPT_STR, OPT_GROUPS, OPT_DISC } OptType;
typedef struct { const char *key; OptType type; size_t off; int resumable; const char *help; } Option;

#define OFF(field) offsetof(TrainConfig, field)
static const Option options[] = {
    {"res", OPT_INT, OFF(model.res), 0, "image side the networks see (multiple of 8)"},
    {"groups", OPT_GROUPS, OFF(groups), 0, "age groups, e.g. 0-9,10-19,20-29,30-44,45-59,60+"},
    {"gen_width", OPT_INT, OFF(model.gen_width), 0, "generator width at full resolution"},
    {"gen_res_ch", OPT_INT, OFF(model.gen_res_ch), 0, "generator bottleneck channels"},
    {"gen_nres", OPT_INT, OFF(model.gen_nres), 0, "generator residual blocks"},
    {"gen_code", OPT_INT, OFF(model.gen_code), 0, "learned age code size"},
    {"gen_hidden", OPT_INT, OFF(model.gen_hidden), 0, "age-code MLP hidden width"},
    {"est_width", OPT_INT, OFF(model.est_width), 0, "age estimator width"},
    {"gen_dec_film", OPT_INT, OFF(model.gen_dec_film), 0, "1: the age code also modulates (FiLM) every decoder level, not only the bottleneck, so that age can shape fine detail"},
    {"gen_refine", OPT_INT, OFF(model.gen_refine), 0, "width of a residual block at full resolution before the output (0: none); it sees the decoder's output, the input and the age channel, and starts as the identity"},
    {"est_blur", OPT_INT, OFF(model.est_blur), 1, "1: the age estimator looks through a 5x5 blur (speckle cannot sway it)"},
    {"disc_width", OPT_INT, OFF(model.disc_width), 0, "PatchGAN first width (64 in the seed)"},
    {"disc", OPT_DISC, OFF(model.disc_pair), 0, "pair (the seed's input+output) or target (output only)"},
    {"batch", OPT_INT, OFF(batch), 0, "images a step"},
    {"steps", OPT_INT, OFF(steps), 1, "train until this step"},
    {"seed", OPT_INT, OFF(seed), 0, "random seed (weights, batches, augmentation)"},
    {"shift", OPT_INT, OFF(shift), 0, "largest random shift in pixels"},
    {"max_images", OPT_INT, OFF(max_images), 0, "use at most this many training photos (0: all)"},
    {"lr_g", OPT_FLOAT, OFF(lr_g), 1, "generator learning rate"},
    {"lr_d", OPT_FLOAT, OFF(lr_d), 1, "discriminator learning rate"},
    {"lr_e", OPT_FLOAT, OFF(lr_e), 1, "age estimator learning rate"},
    {"lr_decay_from", OPT_INT, OFF(lr_decay_from), 1, "from this step the generator's and discriminator's learning rates fall linearly, reaching 0 just after --steps, as pix2pix ends (0: constant)"},
    {"age_map_off_at", OPT_INT, OFF(age_map_off_at), 1, "the generator's per-group input map (a fixed pattern it paints age texture from, seen as grain) fades linearly, untrained, to zero at this step (0: the map is trained as any weight)"},
    {"beta1", OPT_FLOAT, OFF(beta1), 0, "Adam beta1"},
    {"beta2", OPT_FLOAT, OFF(beta2), 0, "Adam beta2"},
    {"lambda_adv", OPT_FLOAT, OFF(lambda_adv), 1, "weight of the adversarial loss"},
    {"lambda_cyc", OPT_FLOAT, OFF(lambda_cyc), 1, "weight of cycle consistency"},
    {"lambda_rec", OPT_FLOAT, OFF(lambda_rec), 1, "weight of reconstruction at the source age"},
    {"lambda_age", OPT_FLOAT, OFF(lambda_age), 1, "weight of the age estimator's verdict on outputs"},
    {"age_margin", OPT_FLOAT, OFF(age_margin), 1, "outputs the estimator already reads as their target (loss below this) get no age push"},
    {"lambda_age_mean", OPT_FLOAT, OFF(lambda_age_mean), 1, "weight of the distance, in decades, between the age the critic expects of an output (the mean of the groups' centres under its verdict) and the target group's centre: a push toward the group's middle, where the cross-entropy stops at its edge"},
    {"age_mean_tol", OPT_FLOAT, OFF(age_mean_tol), 1, "years of that distance that cost nothing"},
    {"est_adv_eps", OPT_FLOAT, OFF(est_adv_eps), 1, "the estimator also trains on copies pushed this far (pixels in [-1,1]) against it"},
    {"lambda_est_fake", OPT_FLOAT, OFF(lambda_est_fake), 1, "an age critic for the generator's age term: a copy of the estimator that also learns the generator's outputs at their input's age, this weight, so that the term has to change what a reader of real faces sees instead of exploiting blind spots (the shipped estimator stays on real photos)"},
    {"critic_blur", OPT_INT, OFF(critic_blur), 1, "the age critic (--lambda-est-fake) sees photos and outputs through this many more 5x5 blurs (n passes: a blur of sqrt(n) pixels), so that the age term can only credit changes coarser than fine texture (streaks, grain); the shipped estimator's view stays as it is"},
    {"critic_adv_eps", OPT_FLOAT, OFF(critic_adv_eps), 1, "the age critic's adversarial copies go this far instead of --est-adv-eps (0: as far): a reader robust to larger changes has a gradient that points at what people see as age (wrinkles, grey hair) rather than at faint patterns (grain) that sway a plain classifier"},
    {"age_core", OPT_INT, OFF(age_core), 1, "1: the age terms' gradient trains only the generator's bottleneck (the age code, its MLP and the residual blocks at res/8), so that they can change a face only at a coarse scale; the full-resolution layers and the age map learn from the other terms alone (realism, reconstruction, cycle), which leaves the age terms no fine-texture shortcut (grain, streaks) to paint (0: the age terms train every weight)"},
    {"balance_race", OPT_FLOAT, OFF(balance_race), 1, "weigh each age group's photos toward the whole split's ethnic mix, no photo more than this many times its uniform share (0: uniform): UTKFace's age groups differ in ethnic mix, which the networks would learn as age"},
    {"ema", OPT_FLOAT, OFF(ema), 1, "decay per step of the generator's weight average that blobs and samples use (0: none; 0.999 averages over ~1000 steps)"},
    {"lambda_delta", OPT_FLOAT, OFF(lambda_delta), 1, "weight of the L1 penalty on the delta"},
    {"lambda_tv", OPT_FLOAT, OFF(lambda_tv), 1, "weight of the total variation of the delta (against speckle)"},
    {"tv_edge", OPT_FLOAT, OFF(tv_edge), 1, "edge-aware total variation: each step of the change weighs exp(-|the input's brightness step| / tv_edge) in lambda_tv (pixels in [-1,1]; 0: all alike), so that a change along the face's own edges (a crease deepened) is cheap and grain on flat skin is not"},
    {"lambda_ctv", OPT_FLOAT, OFF(lambda_ctv), 1, "weight of the total variation of the delta's colour (R-G, B-G): against colour blotches, leaving brightness (wrinkles) to lambda_tv"},
    {"lambda_tone", OPT_FLOAT, OFF(lambda_tone), 1, "weight of the L1 of the change's mean colour over the face's centre (the middle half of the crop): ageing changes texture and shape, not the skin's tone, which the training data's age groups differ in"},
    {"lambda_shade", OPT_FLOAT, OFF(lambda_shade), 1, "weight of how far the change darkens blocks of the image (res/16 pixels a side, all three channels) beyond --shade-margin: large gaps in age otherwise paint dark patches that the age readers take for age"},
    {"shade_margin", OPT_FLOAT, OFF(shade_margin), 1, "darkening of a block (pixels in [-1,1]) that costs nothing: shadows of wrinkles, a beard"},
    {"widen_noise", OPT_FLOAT, OFF(widen_noise), 1, "with --init-from a narrower generator: noise on its new channels' weights, this fraction of each layer's spread, so that the copies learn apart (0: exact copies, which Adam would step alike)"},
    {"lambda_wrong", OPT_FLOAT, OFF(lambda_wrong), 1, "discriminator weight of wrong-age real negatives"},
    {"ckpt_every", OPT_INT, OFF(ckpt_every), 1, "steps between checkpoints (and blobs)"},
    {"sample_every", OPT_INT, OFF(sample_every), 1, "steps between sample grids (0: never)"},
    {"log_every", OPT_INT, OFF(log_every), 1, "steps between progress lines"},
    {"data", OPT_STR, OFF(data), 1, "UTKFace folder (labels.tsv, images/)"},
    {"out", OPT_STR, OFF(out), 1, "run folder for checkpoint, blob, log and samples"},
};
#define NOPT (int)(sizeof(options) / sizeof(options[0]))

int train_option_resumable(const char *key) {
    for (int i = 0; i < NOPT; i++) if (!strcmp(options[i].key, key)) return options[i].resumable;
    return 0;
}

const char *train_option_flag(char *buf, size_t n, const char *key) {
    snprintf(buf, n, "--%s", key);
    for (char *p = buf + 2; *p; p++) if (*p == '_') *p = '-';
    return buf;
}

void train_config_usage(FILE *f) {
    for (int i = 0; i < NOPT; i++) {
        char flag[64];
        fprintf(f, "  %-16s %s\n", train_option_flag(flag, sizeof(flag), options[i].key), options[i].help);
    }
}

int train_config_set(TrainConfig *tc, const char *key, const char *value, Err *e) {
    char flag[64];
    train_option_flag(flag, sizeof(flag), key);
    for (int i = 0; i < NOPT; i++) {
        if (strcmp(options[i].key, key)) continue;
        void *p = (char *)tc + options[i].off;
        char *end;
        switch (options[i].type) {
        case OPT_INT: {
            long v = strtol(value, &end, 10);
            if (end == value || *end || v < 0 || v > 1000000000)
                return err_set(e, "%s: expected a non-negative whole number, got '%s'", flag, value);
            *(int *)p = (int)v;
            return 0;
        }
        case OPT_FLOAT: {
            float v = strtof(value, &end);
            if (end == value || *end || !(v >= 0) || v > 1e6f)
                return err_set(e, "%s: expected a non-negative number, got '%s'", flag, value);
            *(float *)p = v;
            return 0;
        }
        case OPT_STR:
            if (strlen(value) >= sizeof(tc->data)) return err_set(e, "%s: value too long", flag);
            snprintf((char *)p, sizeof(tc->data), "%s", value);
            return 0;
        case OPT_GROUPS:
            if (strlen(value) >= sizeof(tc->groups)) return err_set(e, "%s: value too long", flag);
            snprintf(tc->groups, sizeof(tc->groups), "%s", value);
            return parse_groups(&tc->model, value, e);
        case OPT_DISC:
            if (!strcmp(value, "pair")) tc->model.disc_pair = 1;
            else if (!strcmp(value, "target")) tc->model.disc_pair = 0;
            else return err_set(e, "--disc: expected 'pair' or 'target', got '%s'", value);
            return 0;
        }
    }
    return err_set(e, "unknown option %s (see --help)", flag);
}

void train_config_text(const TrainConfig *tc, char *buf, size_t n) {
    size_t k = 0;
    for (int i = 0; i < NOPT && k < n; i++) {
        const void *p = (const char *)tc + options[i].off;
        switch (options[i].type) {
        case OPT_INT: k += snprintf(buf + k, n - k, "%s=%d\n", options[i].key, *(const int *)p); break;
        case OPT_FLOAT: k += snprintf(buf + k, n - k, "%s=%.9g\n", options[i].key, *(const float *)p); break;
        case OPT_STR: k += snprintf(buf + k, n - k, "%s=%s\n", options[i].key, (const char *)p); break;
        case OPT_GROUPS: k += snprintf(buf + k, n - k, "%s=%s\n", options[i].key, tc->groups); break;
        case OPT_DISC: k += snprintf(buf + k, n - k, "%s=%s\n", options[i].key, tc->model.disc_pair ? "pair" : "target"); break;
        }
    }
}

static int set_all(TrainConfig *tc, const char *const *kv, Err *e) {
    for (int i = 0; kv[i]; i += 2)
        if (train_config_set(tc, kv[i], kv[i + 1], e)) return -1;
    return 0;
}

int train_config_named(TrainConfig *tc, const char *name, Err *e) {
    memset(tc, 0, sizeof(*tc));
    static const char *const common[] = {
        "groups", "0-9,10-19,20-29,30-44,45-59,60+", "gen_code", "64", "gen_hidden", "256",
        "seed", "1", "shift", "4", "lr_g", "0.0002", "lr_d", "0.0002", "lr_e", "0.0005",
        /* L1 terms act as a dead zone around "no change": kept weak enough that
         * the adversarial term can move the face off the identity. The age
         * estimator's verdict stays a small nudge: given more weight, the
         * generator learns speckle that fools it (seen at 250 steps with 2) */
        "beta1", "0.5", "beta2", "0.999", "lambda_adv", "2", "lambda_cyc", "5", "lambda_rec", "5",
        "lambda_age", "0.1", "lambda_delta", "0.1", "lambda_tv", "3", "lambda_wrong", "0.5", "log_every", "10",
        "widen_noise", "0.05", "data", "../shared/data/utkface-part1", NULL};
    if (set_all(tc, common, e)) return -1;
    static const char *const tiny[] = {
        "res", "32", "groups", "0-19,20-49,50+", "gen_width", "4", "gen_res_ch", "16", "gen_nres", "1",
        "gen_code", "8", "gen_hidden", "16", "est_width", "4", "disc_width", "8", "disc", "target",
        "batch", "4", "steps", "40", "shift", "1", "lr_g", "0.002", "lr_d", "0.001", "lr_e", "0.002", "lambda_age", "2",
        "ckpt_every", "20", "sample_every", "0", "log_every", "10", "out", "runs/tiny", NULL};
    static const char *const dflt[] = {
        "res", "128", "gen_width", "16", "gen_res_ch", "128", "gen_nres", "4", "est_width", "16", "est_blur", "1",
        "age_margin", "0.7", "est_adv_eps", "0.03", "ema", "0.999",
        "disc_width", "32", "disc", "target", "batch", "8", "steps", "200000", "ckpt_every", "250",
        "sample_every", "250", "out", "runs/default", NULL};
    /* the seed's discriminator exactly: 256x256, 3 groups, width 64, on (input, output) pairs */
    static const char *const seed[] = {
        "res", "256", "groups", "0-19,20-49,50+", "gen_width", "16", "gen_res_ch", "128", "gen_nres", "4",
        "est_width", "16", "disc_width", "64", "disc", "pair", "batch", "8", "steps", "200000",
        "ckpt_every", "250", "sample_every", "250", "out", "runs/seed", NULL};
    const char *const *named = !strcmp(name, "tiny") ? tiny : !strcmp(name, "default") ? dflt
                             : !strcmp(name, "seed") ? seed : NULL;
    if (!named) return err_set(e, "--config: unknown configuration '%s' (tiny, default or seed)", name);
    return set_all(tc, named, e);
}

int train_config_finish(TrainConfig *tc, Err *e) {
    if (model_config_validate(&tc->model, e)) return -1;
    if (tc->batch < 2 || tc->batch > 256) return err_set(e, "--batch %d: must be 2..256 (batch norm needs two)", tc->batch);
    if (tc->log_every < 1) return err_set(e, "--log-every must be at least 1");
    if (tc->ema >= 1) return err_set(e, "--ema %g: must be below 1 (0 turns the average off)", tc->ema);
    if (tc->lr_decay_from > 0 && tc->lr_decay_from >= tc->steps)
        return err_set(e, "--lr-decay-from %d: must be below --steps %d (the rates reach 0 just after it)",
                       tc->lr_decay_from, tc->steps);
    if (tc->age_core != 0 && tc->age_core != 1) return err_set(e, "--age-core %d: must be 0 or 1", tc->age_core);
    if (tc->critic_blur > 16) return err_set(e, "--critic-blur %d: at most 16 passes (a 4-pixel blur)", tc->critic_blur);
    if (tc->critic_blur && !(tc->lambda_est_fake > 0))
        return err_set(e, "--critic-blur %d: needs the age critic (--lambda-est-fake above 0); the shipped estimator sees photos as they are",
                       tc->critic_blur);
    if (tc->critic_adv_eps < 0 || tc->critic_adv_eps > 0.5f)
        return err_set(e, "--critic-adv-eps %g: must be 0..0.5 (pixels span [-1,1])", tc->critic_adv_eps);
    if (tc->critic_adv_eps > 0 && !(tc->lambda_est_fake > 0))
        return err_set(e, "--critic-adv-eps %g: needs the age critic (--lambda-est-fake above 0); the shipped estimator keeps --est-adv-eps",
                       tc->critic_adv_eps);
    ModelConfig probe = tc->model;
    Discriminator d;
    if (disc_build(&d, &probe)) return err_set(e, "resolution %d is too small for the PatchGAN", tc->model.res);
    return 0;
}

/* ------------------------------------------------------------- trainer */

static void *zalloc(size_t n) { return calloc(n ? n : 1, 1); }

/* The shade term's blocks: 8 pixels at 128, the scale of a cheek or an eye. */
static int shade_block(int res) { return res / 16; }

int trainer_init(Trainer *t, const TrainConfig *tc, Err *e) {
    memset(t, 0, sizeof(*t));
    t->tc = *tc;
    const ModelConfig *c = &tc->model;
    int B = tc->batch, G = c->groups;
    gen_build(&t->gen, c);
    disc_build(&t->disc, c);
    est_build(&t->est, c);
    t->has_critic = tc->lambda_est_fake > 0;
    if (t->has_critic) est_build(&t->critic, c);
    if (params_alloc(&t->gen.ps, 1) || params_alloc(&t->disc.ps, 1) || params_alloc(&t->est.ps, 1) ||
        (t->has_critic && params_alloc(&t->critic.ps, 1))) {
        trainer_free(t);
        return err_set(e, "out of memory for the networks");
    }
    Rng init;
    rng_seed(&init, (uint64_t)tc->seed * 1000003u + 17);
    params_init(&t->gen.ps, &init);
    params_init(&t->disc.ps, &init);
    params_init(&t->est.ps, &init);
    if (t->has_critic) memcpy(t->critic.ps.data, t->est.ps.data, sizeof(float) * t->est.ps.total);
    if (tc->ema > 0) {
        if (!(t->gen_avg = malloc(sizeof(float) * t->gen.ps.total))) {
            trainer_free(t);
            return err_set(e, "out of memory for the generator's average");
        }
        memcpy(t->gen_avg, t->gen.ps.data, sizeof(float) * t->gen.ps.total);
    }
    size_t s = gen_scratch_floats(&t->gen, B), s2 = disc_scratch_floats(&t->disc, B), s3 = est_scratch_floats(&t->est, B);
    if (s2 > s) s = s2;
    if (s3 > s) s = s3;
    t->scratch = zalloc(sizeof(float) * s);
    size_t nimg = (size_t)B * 3 * c->res * c->res;
    t->x = zalloc(sizeof(float) * nimg); t->x2 = zalloc(sizeof(float) * nimg); t->xadv = zalloc(sizeof(float) * nimg); t->dy = zalloc(sizeof(float) * nimg);
    t->dpatch = zalloc(sizeof(float) * B * c->res * c->res);
    t->dmean = zalloc(sizeof(float) * 2 * B);
    t->dlogits = zalloc(sizeof(float) * B * G);
    t->tone = zalloc(sizeof(float) * B * 3); t->dtone = zalloc(sizeof(float) * B * 3);
    int nb = c->res / shade_block(c->res);
    size_t nblk = (size_t)B * nb * nb;
    t->shade = zalloc(sizeof(float) * nblk); t->dshade = zalloc(sizeof(float) * nblk);
    t->age = zalloc(sizeof(float) * B); t->dage = zalloc(sizeof(float) * B);
    if (t->has_critic && tc->critic_blur > 0 &&
        (!(t->cx = zalloc(sizeof(float) * nimg)) || !(t->cy = zalloc(sizeof(float) * nimg)) ||
         !(t->ctmp = zalloc(sizeof(float) * nimg)) || !(t->ctmp2 = zalloc(sizeof(float) * nimg)))) {
        trainer_free(t);
        return err_set(e, "out of memory for the critic's blurred view");
    }
    if (tc->age_core && (!(t->dy_age = zalloc(sizeof(float) * nimg)) ||
                         !(t->gkeep = zalloc(sizeof(float) * t->gen.ps.total)))) {
        trainer_free(t);
        return err_set(e, "out of memory for --age-core's gradients");
    }
    t->gw_src = zalloc(sizeof(float) * B * G); t->gw_tgt = zalloc(sizeof(float) * B * G);
    t->gw_wrong = zalloc(sizeof(float) * B * G); t->gw_src2 = zalloc(sizeof(float) * B * G);
    t->src = zalloc(sizeof(int) * B); t->tgt = zalloc(sizeof(int) * B);
    t->wrong = zalloc(sizeof(int) * B); t->src2 = zalloc(sizeof(int) * B);
    if (!t->scratch || !t->x || !t->x2 || !t->xadv || !t->dy || !t->dpatch || !t->dmean || !t->dlogits || !t->tone || !t->dtone || !t->shade || !t->dshade || !t->age || !t->dage ||
        !t->gw_src || !t->gw_tgt ||
        !t->gw_wrong || !t->gw_src2 || !t->src || !t->tgt || !t->wrong || !t->src2 ||
        gen_acts_alloc(&t->gen, &t->g_main, B, 1, t->scratch) || gen_acts_alloc(&t->gen, &t->g_aux, B, 1, t->scratch) ||
        disc_acts_alloc(&t->disc, &t->da, B, t->scratch) || est_acts_alloc(&t->est, &t->ea, B, 1, t->scratch)) {
        trainer_free(t);
        return err_set(e, "out of memory for batch %d at %dx%d", B, c->res, c->res);
    }
    rng_seed(&t->rng, (uint64_t)tc->seed);
    return 0;
}

void trainer_free(Trainer *t) {
    gen_acts_free(&t->g_main); gen_acts_free(&t->g_aux); disc_acts_free(&t->da); est_acts_free(&t->ea);
    params_free(&t->gen.ps); params_free(&t->disc.ps); params_free(&t->est.ps);
    if (t->has_critic) params_free(&t->critic.ps);
    free(t->gen_avg);
    free(t->scratch); free(t->x); free(t->x2); free(t->xadv); free(t->dy); free(t->dpatch); free(t->dmean); free(t->dlogits);
    free(t->tone); free(t->dtone); free(t->shade); free(t->dshade); free(t->age); free(t->dage);
    free(t->cx); free(t->cy); free(t->ctmp); free(t->ctmp2); free(t->dy_age); free(t->gkeep);
    free(t->gw_src); free(t->gw_tgt); free(t->gw_wrong); free(t->gw_src2);
    free(t->src); free(t->tgt); free(t->wrong); free(t->src2);
    memset(t, 0, sizeof(*t));
}

static void one_hot(float *w, const int *g, int B, int G) {
    memset(w, 0, sizeof(float) * B * G);
    for (int b = 0; b < B; b++) w[b * G + g[b]] = 1.0f;
}

/* D's verdict on one kind of batch, with LSGAN's loss against `target`;
 * backpropagates weight * loss into D's parameters (and into dy if given). */
static float disc_term(Trainer *t, const float *x, const float *gw_in, const float *y, const float *gw_out,
                       float target, float weight, float *dy, int param_grads, float *sample_means) {
    int B = t->tc.batch, P = t->da.out_hw * t->da.out_hw;
    const float *logits = disc_forward(&t->disc, &t->da, x, gw_in, y, gw_out);
    size_t n = (size_t)B * P;
    if (sample_means)
        for (int b = 0; b < B; b++) {
            double s = 0;
            for (int i = 0; i < P; i++) s += logits[(size_t)b * P + i];
            sample_means[b] = (float)(s / P);
        }
    float loss = mse_const_forward(logits, target, n);
    memset(t->dpatch, 0, sizeof(float) * n);
    mse_const_backward(t->dpatch, logits, target, weight, n);
    disc_backward(&t->disc, &t->da, t->dpatch, dy, param_grads);
    return loss;
}

/* The estimator's cross-entropy on `logits` against `labels`; its gradient,
 * times scale, replaces t->dlogits (probabilities in t->ea.probs). */
static float est_verdict(Trainer *t, const float *logits, const int *labels, float scale) {
    int B = t->tc.batch, G = t->tc.model.groups;
    float loss = crossentropy_forward(t->ea.probs, logits, labels, B, G);
    memset(t->dlogits, 0, sizeof(float) * B * G);
    crossentropy_backward(t->dlogits, t->ea.probs, labels, scale, B, G);
    return loss;
}

/* Adversarial training of the estimator (FGSM from a random start): a
 * copy of the batch pushed up to eps per pixel towards a wrong verdict,
 * learned at its true group. A classifier trained so reads faces by cues a
 * person would see, and its gradient, which the generator's age term follows,
 * points at such cues instead of at patterns that only fool it. Adds the
 * copy's gradients to the clean ones already in est.ps. */
static void estimator_adversarial(Trainer *t, Estimator *m, const float *x, float eps, Rng *rng) {
    const TrainConfig *tc = &t->tc;
    size_t nimg = (size_t)tc->batch * 3 * tc->model.res * tc->model.res;
    float *xa = t->xadv, *dx = t->dy; /* dy is free until the generator's turn */
    for (size_t i = 0; i < nimg; i++) xa[i] = x[i] + eps * (2 * rng_uniform(rng) - 1);
    /* the input gradient alone, in eval mode (no statistics or weights move) */
    est_verdict(t, est_forward(m, &t->ea, xa, 0), t->src, 1.0f);
    memset(dx, 0, sizeof(float) * nimg);
    est_backward(m, &t->ea, t->dlogits, dx, 0);
    for (size_t i = 0; i < nimg; i++) {
        float v = xa[i] + 1.25f * eps * (dx[i] > 0 ? 1.0f : dx[i] < 0 ? -1.0f : 0.0f);
        float lo = fmaxf(x[i] - eps, -1.0f), hi = fminf(x[i] + eps, 1.0f);
        xa[i] = fminf(fmaxf(v, lo), hi);
    }
    est_verdict(t, est_forward(m, &t->ea, xa, 1), t->src, 1.0f);
    est_backward(m, &t->ea, t->dlogits, NULL, 1);
}

/* An estimator's gradients from the batch of real photos x (as it sees them)
 * at their ages, and from their adversarial copies eps away (none at 0):
 * returns the loss, and the share read as the right group in *acc. */
static float estimator_learn_real(Trainer *t, Estimator *m, const float *x, float eps, Rng *rng, float *acc) {
    int B = t->tc.batch, G = t->tc.model.groups, correct = 0;
    params_zero_grad(&m->ps);
    const float *logits = est_forward(m, &t->ea, x, 1);
    float loss = est_verdict(t, logits, t->src, 1.0f);
    for (int b = 0; b < B; b++) {
        int best = 0;
        for (int g = 1; g < G; g++) if (logits[b * G + g] > logits[b * G + best]) best = g;
        correct += best == t->src[b];
    }
    *acc = (float)correct / B;
    est_backward(m, &t->ea, t->dlogits, NULL, 1);
    if (eps > 0) estimator_adversarial(t, m, x, eps, rng);
    return loss;
}

/* What the critic sees of a batch of images: img itself, or (critic_blur)
 * img blurred into view. */
static const float *critic_view(Trainer *t, const float *img, float *view) {
    const TrainConfig *tc = &t->tc;
    if (!t->cx) return img;
    blur5n_forward(view, img, t->ctmp, tc->critic_blur, tc->batch, 3, tc->model.res, tc->model.res);
    return view;
}

/* The critic: what the reader learns (from the same random draws, so that
 * the reader's own run is untouched by it), and the generator's outputs at
 * their input's age, yc as it sees them. Those it reads in eval mode, as the
 * age term does, so its running statistics stay those of real photos. */
static void critic_step(Trainer *t, const float *yc, const Rng *adv_rng, const AdamConfig *ae) {
    const TrainConfig *tc = &t->tc;
    Estimator *m = &t->critic;
    Rng r = *adv_rng;
    float acc;
    float eps = tc->critic_adv_eps > 0 ? tc->critic_adv_eps : tc->est_adv_eps;
    estimator_learn_real(t, m, critic_view(t, t->x, t->cx), eps, &r, &acc);
    est_verdict(t, est_forward(m, &t->ea, yc, 0), t->src, tc->lambda_est_fake);
    est_backward(m, &t->ea, t->dlogits, NULL, 1);
    adam_step(&m->ps, ae, t->step);
}

float age_mean_term(const ModelConfig *c, const float *probs, const int *tgt, float lambda, float tol_years,
                    int B, float *age, float *dage, float *dlogits) {
    int G = c->groups;
    float centre[MAX_GROUPS], gap = 0;
    for (int g = 0; g < G; g++) centre[g] = group_center(c, g) / 10;
    expected_value_forward(age, probs, centre, B, G);
    for (int b = 0; b < B; b++) {
        float d = age[b] - centre[tgt[b]];
        gap += fabsf(d) * 10 / B;
        dage[b] = fabsf(d) * 10 > tol_years ? lambda * (d > 0 ? 1.0f : -1.0f) / B : 0.0f;
    }
    if (lambda > 0) expected_value_backward(dlogits, probs, age, centre, dage, B, G);
    return gap;
}

float train_lr_scale(const TrainConfig *tc, int step) {
    if (tc->lr_decay_from <= 0 || step <= tc->lr_decay_from) return 1.0f;
    /* the last step still learns a little: 1/(span+1), not 0 */
    if (step > tc->steps) return 0.0f;
    return (float)(tc->steps - step + 1) / (float)(tc->steps - tc->lr_decay_from + 1);
}

/* Each step scales what is left of the map by (off - s)/(off - s + 1): a
 * fade begun after step s0 leaves (off - s)/(off - s0) of the map after step
 * s, and no state is needed to resume. Not trained meanwhile, so the average carries
 * the live map rather than lagging ~1/(1-ema) steps behind the schedule. */
static void fade_age_map(Trainer *t, size_t size) {
    int off = t->tc.age_map_off_at, s = t->step;
    float k = s >= off ? 0.0f : (float)(off - s) / (float)(off - s + 1);
    float *m = t->gen.ps.data + t->gen.emb;
    for (size_t i = 0; i < size; i++) m[i] *= k;
    if (t->gen_avg) memcpy(t->gen_avg + t->gen.emb, m, sizeof(float) * size);
}

/* --age-core: the age terms' gradient (dy_age, on the main pass's output)
 * reaches the generator's weights, and only the bottleneck's keep it. */
static void age_into_bottleneck(Trainer *t) {
    ParamSet *ps = &t->gen.ps;
    memcpy(t->gkeep, ps->grad, sizeof(float) * ps->total);
    gen_backward(&t->gen, &t->g_main, t->dy_age, NULL);
    for (int i = 0; i < ps->count; i++)
        if (!gen_in_bottleneck(&t->gen, ps->t[i].offset))
            memcpy(ps->grad + ps->t[i].offset, t->gkeep + ps->t[i].offset, sizeof(float) * ps->t[i].size);
}

Losses trainer_step(Trainer *t, const Dataset *data) {
    const TrainConfig *tc = &t->tc;
    const ModelConfig *c = &tc->model;
    int B = tc->batch, G = c->groups, pair = c->disc_pair;
    size_t nimg = (size_t)B * 3 * c->res * c->res;
    Losses L = {0};
    t->step++;
    float decay = train_lr_scale(tc, t->step);
    AdamConfig ag = {tc->lr_g * decay, tc->beta1, tc->beta2, 1e-8f}, ad = {tc->lr_d * decay, tc->beta1, tc->beta2, 1e-8f},
               ae = {tc->lr_e, 0.9f, tc->beta2, 1e-8f};

    dataset_batch(data, &t->rng, B, tc->shift, t->x, t->src);
    for (int b = 0; b < B; b++) {
        t->tgt[b] = (t->src[b] + 1 + rng_int(&t->rng, G - 1)) % G;   /* always a different age */
        t->src2[b] = t->src[(b + 1) % B];                            /* the pair D's real partner */
        t->wrong[b] = ((pair ? t->src2[b] : t->src[b]) + 1 + rng_int(&t->rng, G - 1)) % G;
    }
    for (int b = 0; b < B; b++)
        memcpy(t->x2 + (size_t)b * nimg / B, t->x + (size_t)((b + 1) % B) * nimg / B, sizeof(float) * nimg / B);
    one_hot(t->gw_src, t->src, B, G); one_hot(t->gw_tgt, t->tgt, B, G);
    one_hot(t->gw_wrong, t->wrong, B, G); one_hot(t->gw_src2, t->src2, B, G);

    /* age estimator on real photos */
    Rng adv_rng = t->rng;
    L.est_loss = estimator_learn_real(t, &t->est, t->x, tc->est_adv_eps, &t->rng, &L.est_acc);
    adam_step(&t->est.ps, &ae, t->step);

    /* y = G(x, target) */
    gen_forward(&t->gen, &t->g_main, t->x, t->gw_tgt);
    const float *y = t->g_main.y;

    /* what the critic still sees of the input's age in y is what the age term must change */
    const float *yc = t->has_critic ? critic_view(t, y, t->cy) : y;
    if (t->has_critic) critic_step(t, yc, &adv_rng, &ae);
    Estimator *critic = t->has_critic ? &t->critic : &t->est;

    /* discriminator: real at their own age -> 1; generated -> 0; real at a wrong age -> 0 */
    params_zero_grad(&t->disc.ps);
    /* The same photos at their own age and at a wrong one: what the discriminator reads of age. */
    float *own = t->dmean, *wrong = t->dmean + B;
    const float *px = pair ? t->x : NULL, *pg = pair ? t->gw_src : NULL, *real = pair ? t->x2 : t->x;
    const float *gw_real = pair ? t->gw_src2 : t->gw_src;
    L.d_real = disc_term(t, px, pg, real, gw_real, 1.0f, 1.0f, NULL, 1, own);
    L.d_fake = disc_term(t, px, pg, y, t->gw_tgt, 0.0f, 1.0f, NULL, 1, NULL);
    L.d_loss = L.d_real + L.d_fake;
    L.d_age = NAN;
    if (tc->lambda_wrong > 0) {
        L.d_loss += tc->lambda_wrong * disc_term(t, px, pg, real, t->gw_wrong, 0.0f, tc->lambda_wrong, NULL, 1, wrong);
        double gap = 0;
        for (int b = 0; b < B; b++) gap += own[b] - wrong[b];
        L.d_age = (float)(gap / B);
    }
    adam_step(&t->disc.ps, &ad, t->step);

    /* generator */
    params_zero_grad(&t->gen.ps);
    memset(t->dy, 0, sizeof(float) * nimg);
    if (tc->lambda_rec > 0) {
        gen_forward(&t->gen, &t->g_aux, t->x, t->gw_src);
        L.rec = l1_forward(t->g_aux.y, t->x, nimg);
        float *d = t->x2; /* free now: reused as the gradient buffer */
        memset(d, 0, sizeof(float) * nimg);
        l1_backward(d, t->g_aux.y, t->x, tc->lambda_rec, nimg);
        gen_backward(&t->gen, &t->g_aux, d, NULL);
    }
    if (tc->lambda_cyc > 0) {
        gen_forward(&t->gen, &t->g_aux, y, t->gw_src);
        L.cyc = l1_forward(t->g_aux.y, t->x, nimg);
        float *d = t->x2;
        memset(d, 0, sizeof(float) * nimg);
        l1_backward(d, t->g_aux.y, t->x, tc->lambda_cyc, nimg);
        gen_backward(&t->gen, &t->g_aux, d, t->dy);
    }
    L.adv = disc_term(t, px, pg, y, t->gw_tgt, 1.0f, tc->lambda_adv, t->dy, 0, NULL);
    int age_terms = tc->lambda_age > 0 || tc->lambda_age_mean > 0;
    float *dy_age = tc->age_core ? t->dy_age : t->dy;
    if (tc->age_core) memset(dy_age, 0, sizeof(float) * nimg);
    if (age_terms) {
        const float *lg = est_forward(critic, &t->ea, yc, 0);
        L.age = est_verdict(t, lg, t->tgt, tc->lambda_age);
        /* An output need not read as its group more surely than real photos
         * do: pushed past that, the generator paints patterns that sway the
         * estimator instead of ageing the face. */
        for (int b = 0; b < B; b++)
            if (-logf(fmaxf(t->ea.probs[b * G + t->tgt[b]], 1e-30f)) < tc->age_margin)
                memset(t->dlogits + b * G, 0, sizeof(float) * G);
        L.age_gap = age_mean_term(c, t->ea.probs, t->tgt, tc->lambda_age_mean, tc->age_mean_tol, B, t->age, t->dage,
                                  t->dlogits);
        if (t->cx) { /* through the blur: cx, the photos' view, is free now */
            memset(t->cx, 0, sizeof(float) * nimg);
            est_backward(critic, &t->ea, t->dlogits, t->cx, 0);
            blur5n_backward(dy_age, t->cx, t->ctmp, t->ctmp2, tc->critic_blur, B, 3, c->res, c->res);
        } else {
            est_backward(critic, &t->ea, t->dlogits, dy_age, 0);
        }
    }
    L.delta = l1_forward(y, t->x, nimg);
    l1_backward(t->dy, y, t->x, tc->lambda_delta, nimg);
    /* x2 and xadv are free by now: the input's brightness (the TV's guide),
     * then the chroma of the change and its gradient */
    int HW = c->res * c->res;
    const float *guide = NULL;
    if (tc->tv_edge > 0) {
        shade_forward(t->xadv, t->x, NULL, B, c->res, c->res, 1); /* per pixel */
        guide = t->xadv;
    }
    L.tv = tv_guided_forward(y, t->x, guide, tc->tv_edge, B, 3, c->res, c->res);
    if (tc->lambda_tv > 0) tv_guided_backward(t->dy, y, t->x, guide, tc->tv_edge, tc->lambda_tv, B, 3, c->res, c->res);
    chroma_forward(t->x2, y, t->x, B, HW);
    L.ctv = tv_forward(t->x2, NULL, B * 2, c->res, c->res);
    if (tc->lambda_ctv > 0) {
        memset(t->xadv, 0, sizeof(float) * B * 2 * HW);
        tv_backward(t->xadv, t->x2, NULL, tc->lambda_ctv, B * 2, c->res, c->res);
        chroma_backward(t->dy, t->xadv, B, HW);
    }
    /* Dark patches: outputs far from their input's age went dark over whole
     * regions, which reads as age to the estimators but not to people. */
    int blk = shade_block(c->res), nb = c->res / blk;
    size_t nblk = (size_t)B * nb * nb;
    shade_forward(t->shade, y, t->x, B, c->res, c->res, blk);
    L.shade = hinge_below_forward(t->shade, tc->shade_margin, nblk);
    if (tc->lambda_shade > 0) {
        memset(t->dshade, 0, sizeof(float) * nblk);
        hinge_below_backward(t->dshade, t->shade, tc->shade_margin, tc->lambda_shade, nblk);
        shade_backward(t->dy, t->dshade, B, c->res, c->res, blk);
    }
    /* the skin's overall tone over the face's centre, where age shows in texture and shape */
    int lo = c->res / 4, hi = c->res - c->res / 4;
    window_mean_forward(t->tone, y, t->x, B * 3, c->res, c->res, lo, hi, lo, hi);
    L.tone = l1_forward(t->tone, NULL, (size_t)B * 3);
    if (tc->lambda_tone > 0) {
        memset(t->dtone, 0, sizeof(float) * B * 3);
        l1_backward(t->dtone, t->tone, NULL, tc->lambda_tone, (size_t)B * 3);
        window_mean_backward(t->dy, t->dtone, B * 3, c->res, c->res, lo, hi, lo, hi);
    }
    gen_backward(&t->gen, &t->g_main, t->dy, NULL);
    if (tc->age_core && age_terms) age_into_bottleneck(t);
    size_t map_size = (size_t)G * c->res * c->res; /* the generator's [G, HW] plane at t->gen.emb */
    if (tc->age_map_off_at > 0) {
        /* the fading map is not trained: no gradient, and no momentum carried from before the fade */
        memset(t->gen.ps.grad + t->gen.emb, 0, sizeof(float) * map_size);
        memset(t->gen.ps.adam_m + t->gen.emb, 0, sizeof(float) * map_size);
    }
    adam_step(&t->gen.ps, &ag, t->step);
    if (t->gen_avg) params_average(t->gen_avg, &t->gen.ps, tc->ema);
    if (tc->age_map_off_at > 0) fade_age_map(t, map_size);
    return L;
}

/* ---------------------------------------------------------- checkpoints */

/* The generator with the averaged weights (the live one without an average). */
static Generator averaged(const Trainer *t) {
    Generator g = t->gen;
    if (t->gen_avg) g.ps.data = t->gen_avg;
    return g;
}

static void write_set(BlobWriter *w, const char *prefix, const ParamSet *ps) {
    char name[64];
    int shape[1] = {(int)ps->total};
    uint32_t before[PARAM_MAX_TENSORS];
    blobw_params(w, prefix, ps, DT_F32);
    snprintf(name, sizeof(name), "%sadam_m", prefix);
    blobw_floats(w, name, DT_F32, 1, shape, ps->adam_m);
    snprintf(name, sizeof(name), "%sadam_v", prefix);
    blobw_floats(w, name, DT_F32, 1, shape, ps->adam_v);
    for (int i = 0; i < ps->count; i++) before[i] = (uint32_t)ps->t[i].adam_before;
    snprintf(name, sizeof(name), "%sadam_before", prefix);
    blobw_u32(w, name, (size_t)ps->count, before);
}

/* Each tensor's adam_before as the file has it (none in checkpoints older
 * than warm starts that carry moments: 0). */
static int read_adam_before(const Blob *b, const char *prefix, ParamSet *ps, const char *what, Err *e) {
    char name[64];
    uint32_t before[PARAM_MAX_TENSORS] = {0};
    snprintf(name, sizeof(name), "%sadam_before", prefix);
    if (blob_find(b, name) && blob_read_u32(b, name, before, (size_t)ps->count, what, e)) return -1;
    for (int i = 0; i < ps->count; i++) ps->t[i].adam_before = (int)before[i];
    return 0;
}

static int read_set(const Blob *b, const char *prefix, ParamSet *ps, const char *what, Err *e) {
    char name[64];
    if (blob_read_params(b, prefix, ps, what, e)) return -1;
    snprintf(name, sizeof(name), "%sadam_m", prefix);
    if (blob_read_floats(b, name, ps->adam_m, ps->total, what, e)) return -1;
    snprintf(name, sizeof(name), "%sadam_v", prefix);
    if (blob_read_floats(b, name, ps->adam_v, ps->total, what, e)) return -1;
    return read_adam_before(b, prefix, ps, what, e);
}

/* Whether a checkpoint holds the set (optional sets: the average, the critic). */
static int has_set(const Blob *b, const char *prefix, const ParamSet *ps) {
    char name[PARAM_NAME_MAX + 16];
    snprintf(name, sizeof(name), "%s%s", prefix, ps->t[0].name);
    return blob_find(b, name) != NULL;
}

/* A checkpoint without a critic starts it as a copy of the reader, optimiser and all. */
static void critic_from_reader(Trainer *t) {
    size_t n = sizeof(float) * t->est.ps.total;
    memcpy(t->critic.ps.data, t->est.ps.data, n);
    memcpy(t->critic.ps.adam_m, t->est.ps.adam_m, n);
    memcpy(t->critic.ps.adam_v, t->est.ps.adam_v, n);
    for (int i = 0; i < t->est.ps.count; i++) t->critic.ps.t[i].adam_before = t->est.ps.t[i].adam_before;
}

#define MAX_CONV_PATHS (128 * CONV_PATH_WORDS)

int trainer_save_checkpoint(const Trainer *t, const char *path, Err *e) {
    char cfg[4096];
    train_config_text(&t->tc, cfg, sizeof(cfg));
    BlobWriter w;
    blobw_begin(&w, CKPT_MAGIC, cfg);
    uint32_t state[3] = {(uint32_t)t->step, (uint32_t)(t->rng.s >> 32), (uint32_t)t->rng.s};
    blobw_u32(&w, "train.state", 3, state);
    uint32_t paths[MAX_CONV_PATHS];
    size_t npaths = conv_paths_export(paths, MAX_CONV_PATHS);
    if (npaths) blobw_u32(&w, "train.conv_paths", npaths, paths);
    write_set(&w, "gen.", &t->gen.ps);
    if (t->gen_avg) {
        Generator avg = averaged(t);
        blobw_params(&w, "gen_avg.", &avg.ps, DT_F32);
    }
    write_set(&w, "disc.", &t->disc.ps);
    write_set(&w, "estimator.", &t->est.ps);
    if (t->has_critic) write_set(&w, "critic.", &t->critic.ps);
    return blobw_save(&w, path, e);
}

static int read_checkpoint(const char *path, uint8_t **buf, Blob **blob, Err *e) {
    size_t len;
    *blob = NULL;
    if (file_read_all(path, (size_t)4 << 30, buf, &len, e)) return -1;
    *blob = malloc(sizeof(Blob));
    if (!*blob) { free(*buf); return err_set(e, "%s: out of memory", path); }
    if (blob_parse(*blob, *buf, len, CKPT_MAGIC, path, e)) { free(*buf); free(*blob); return -1; }
    return 0;
}

/* The options stored in a checkpoint's header, "key=value" lines. */
static int parse_train_config(const char *text, TrainConfig *tc, const char *what, Err *e) {
    memset(tc, 0, sizeof(*tc));
    for (const char *line = text; *line;) {
        const char *eq = strchr(line, '='), *nl = strchr(line, '\n');
        if (!eq || !nl || eq > nl) return err_set(e, "%s: malformed configuration", what);
        char key[64], val[1100];
        snprintf(key, sizeof(key), "%.*s", (int)(eq - line), line);
        snprintf(val, sizeof(val), "%.*s", (int)(nl - eq - 1), eq + 1);
        if (train_config_set(tc, key, val, e)) return -1;
        line = nl + 1;
    }
    return 0;
}

int checkpoint_read_config(const char *path, TrainConfig *tc, Err *e) {
    uint8_t *buf;
    Blob *blob;
    if (read_checkpoint(path, &buf, &blob, e)) return -1;
    int rc = parse_train_config(blob->config, tc, path, e);
    free(buf);
    free(blob);
    return rc;
}

int trainer_load_checkpoint(Trainer *t, const char *path, Err *e) {
    uint8_t *buf;
    Blob *blob;
    if (read_checkpoint(path, &buf, &blob, e)) return -1;
    uint32_t state[3];
    TrainConfig file;
    int rc = -1;
    if (parse_train_config(blob->config, &file, path, e)) goto done;
    if (model_config_match(&file.model, &t->tc.model, path, e)) goto done;
    if (file.model.disc_width != t->tc.model.disc_width || file.model.disc_pair != t->tc.model.disc_pair) {
        err_set(e, "%s: does not match this model: the discriminator differs", path);
        goto done;
    }
    if (blob_read_u32(blob, "train.state", state, 3, path, e) || read_set(blob, "gen.", &t->gen.ps, path, e) ||
        read_set(blob, "disc.", &t->disc.ps, path, e) || read_set(blob, "estimator.", &t->est.ps, path, e))
        goto done;
    if (t->has_critic) {
        if (has_set(blob, "critic.", &t->critic.ps)) {
            if (read_set(blob, "critic.", &t->critic.ps, path, e)) goto done;
        } else {
            critic_from_reader(t);
        }
    }
    if (t->gen_avg) {
        /* a checkpoint without an average (older, or trained without) starts it at its weights */
        Generator avg = averaged(t);
        if (!has_set(blob, "gen_avg.", &avg.ps)) memcpy(t->gen_avg, t->gen.ps.data, sizeof(float) * t->gen.ps.total);
        else if (blob_read_params(blob, "gen_avg.", &avg.ps, path, e)) goto done;
    }
    t->step = (int)state[0];
    t->rng.s = ((uint64_t)state[1] << 32) | state[2];
    /* absent in older checkpoints and in builds with one path: measured anew */
    const BlobTensor *paths = blob_find(blob, "train.conv_paths");
    if (paths && paths->dtype == DT_U32 && paths->count <= MAX_CONV_PATHS) {
        uint32_t p[MAX_CONV_PATHS];
        memcpy(p, paths->data, paths->count * 4);
        conv_paths_import(p, paths->count);
    }
    rc = 0;
done:
    free(buf);
    free(blob);
    return rc;
}

/* Whether the file's tensor prefix+name has pt's shape. */
static int same_shape(const Blob *b, const char *prefix, const ParamTensor *pt) {
    char name[PARAM_NAME_MAX + 16];
    snprintf(name, sizeof(name), "%s%s", prefix, pt->name);
    const BlobTensor *bt = blob_find(b, name);
    int same = bt && bt->ndim == (uint32_t)pt->ndim && bt->count == pt->size;
    for (int d = 0; same && d < pt->ndim; d++) same = bt->shape[d] == (uint32_t)pt->shape[d];
    return same;
}

/* Copies the file's tensors prefix+name into ps where name and shape
 * match; appends the names of the others to fresh. Returns how many came. */
static int warm_set(const Blob *b, const char *prefix, ParamSet *ps, char *fresh, size_t n, const char *what, Err *e) {
    int copied = 0;
    char name[PARAM_NAME_MAX + 16];
    for (int i = 0; i < ps->count; i++) {
        const ParamTensor *pt = &ps->t[i];
        snprintf(name, sizeof(name), "%s%s", prefix, pt->name);
        if (!same_shape(b, prefix, pt)) {
            size_t k = strlen(fresh);
            snprintf(fresh + k, n - k, "%s%s", k ? ", " : "", name);
            continue;
        }
        if (blob_read_floats(b, name, ps->data + pt->offset, pt->size, what, e)) return -1;
        copied++;
    }
    return copied;
}

/* Adam's moments for the tensors of ps that the file holds in the same
 * shape, from its flat moment arrays laid out as src (the set built from
 * the file's own configuration), with the steps that built them: those
 * tensors go on at the pace they had, where fresh moments would move every
 * weight by the full learning rate at once. The others keep fresh moments. */
static int carry_moments(const Blob *b, const char *prefix, ParamSet *ps, ParamSet *src, uint32_t file_step,
                         const char *what, Err *e) {
    char mname[64], vname[64];
    snprintf(mname, sizeof(mname), "%sadam_m", prefix);
    snprintf(vname, sizeof(vname), "%sadam_v", prefix);
    const BlobTensor *m = blob_find(b, mname), *v = blob_find(b, vname);
    if (!m || !v || m->dtype != DT_F32 || v->dtype != DT_F32 || m->count != src->total || v->count != src->total)
        return err_set(e, "%s: does not match its own configuration: '%s' or '%s' is missing or the wrong size", what,
                       mname, vname);
    if (read_adam_before(b, prefix, src, what, e)) return -1;
    for (int i = 0; i < ps->count; i++) {
        ParamTensor *pt = &ps->t[i];
        const ParamTensor *q = params_find(src, pt->name);
        if (!q || q->size != pt->size || !same_shape(b, prefix, pt)) continue;
        memcpy(ps->adam_m + pt->offset, m->data + 4 * q->offset, 4 * pt->size);
        memcpy(ps->adam_v + pt->offset, v->data + 4 * q->offset, 4 * pt->size);
        pt->adam_before = (int)file_step + q->adam_before;
    }
    return 0;
}

/* Net2Net: the file's narrower generator (the set under prefix: its
 * weights or their average), widened into dst so that it starts computing
 * what that one did. Returns 1, or -1. */
static int widen_from(const Blob *blob, const char *prefix, const ModelConfig *cfg, Generator *dst, float noise,
                      uint64_t seed, const char *path, Err *e) {
    Generator narrow;
    Rng rng;
    rng_seed(&rng, seed);
    gen_build(&narrow, cfg);
    if (params_alloc(&narrow.ps, 0)) return err_set(e, "%s: out of memory", path);
    int rc = blob_read_params(blob, prefix, &narrow.ps, path, e) || gen_widen(dst, &narrow, noise, &rng, e) ? -1 : 1;
    if (rc < 0 && !strstr(e->msg, path)) {
        char msg[sizeof(e->msg)];
        snprintf(msg, sizeof(msg), "%s", e->msg);
        err_set(e, "%s: %s", path, msg);
    }
    params_free(&narrow.ps);
    return rc;
}

int trainer_warm_start(Trainer *t, const char *path, char *fresh, size_t n, Err *e) {
    uint8_t *buf;
    Blob *blob;
    fresh[0] = 0;
    if (read_checkpoint(path, &buf, &blob, e)) return -1;
    TrainConfig file;
    int rc = -1, got;
    if (parse_train_config(blob->config, &file, path, e)) goto done;
    int widened = file.model.gen_width != t->tc.model.gen_width;
    if (widened) {
        got = widen_from(blob, "gen.", &file.model, &t->gen, t->tc.widen_noise, (uint64_t)t->tc.seed * 7919u + 17u, path, e);
        if (got > 0) snprintf(fresh, n, "the generator widened from width %d to %d (each new channel a copy)",
                              file.model.gen_width, t->tc.model.gen_width);
    } else {
        got = warm_set(blob, "gen.", &t->gen.ps, fresh, n, path, e);
        if (got == 0) err_set(e, "%s: its generator shares no tensor with this one", path);
    }
    if (got <= 0 || warm_set(blob, "disc.", &t->disc.ps, fresh, n, path, e) < 0 ||
        warm_set(blob, "estimator.", &t->est.ps, fresh, n, path, e) < 0)
        goto done;
    /* the file's own layouts, to find each tensor's moments in its flat arrays */
    Generator file_gen;
    Discriminator file_disc;
    Estimator file_est;
    uint32_t state[3];
    gen_build(&file_gen, &file.model);
    disc_build(&file_disc, &file.model);
    est_build(&file_est, &file.model);
    if (blob_read_u32(blob, "train.state", state, 3, path, e) ||
        carry_moments(blob, "gen.", &t->gen.ps, &file_gen.ps, state[0], path, e) ||
        carry_moments(blob, "disc.", &t->disc.ps, &file_disc.ps, state[0], path, e) ||
        carry_moments(blob, "estimator.", &t->est.ps, &file_est.ps, state[0], path, e))
        goto done;
    if (t->has_critic) {
        if (has_set(blob, "critic.", &t->critic.ps)) {
            if (warm_set(blob, "critic.", &t->critic.ps, fresh, n, path, e) < 0 ||
                carry_moments(blob, "critic.", &t->critic.ps, &file_est.ps, state[0], path, e))
                goto done;
        } else {
            critic_from_reader(t);
        }
    }
    if (t->gen_avg) {
        /* The average starts where the checkpoint's was, not at its current
         * weights: those are noisier (its blob is the average), and the new
         * run's blob would spend its first thousand steps getting back. Parts
         * the model gained start at their initial weights. */
        memcpy(t->gen_avg, t->gen.ps.data, sizeof(float) * t->gen.ps.total);
        Generator avg = averaged(t);
        if (has_set(blob, "gen_avg.", &avg.ps)) {
            char unused[2048] = "";
            if (widened ? widen_from(blob, "gen_avg.", &file.model, &avg, 0.0f, 0, path, e) < 0
                        : warm_set(blob, "gen_avg.", &avg.ps, unused, sizeof(unused), path, e) < 0)
                goto done;
        }
    }
    rc = 0;
done:
    free(buf);
    free(blob);
    return rc;
}

static int export_generator(const Trainer *t, const Generator *g, const char *path, Err *e) {
    char info[64];
    snprintf(info, sizeof(info), "trained_steps:%d", t->step);
    return bundle_save(path, g, &t->est, info, e);
}

int trainer_export_blob(const Trainer *t, const char *path, Err *e) {
    Generator g = averaged(t);
    return export_generator(t, &g, path, e);
}

int trainer_export_live_blob(const Trainer *t, const char *path, Err *e) { return export_generator(t, &t->gen, path, e); }

int trainer_sample_grid(Trainer *t, const Dataset *faces, const int *idx, int n, const char *path, Err *e) {
    const ModelConfig *c = &t->tc.model;
    int R = c->res, G = c->groups, B = t->tc.batch;
    Image grid;
    if (image_alloc(&grid, R * (G + 1), R * n)) return err_set(e, "%s: out of memory", path);
    size_t per = (size_t)3 * R * R;
    uint8_t *tile = malloc(per);
    /* one face across all groups, a batch of up to B outputs at a time */
    float *x = t->x, *gw = t->gw_tgt;
    Generator g = averaged(t);
    for (int f = 0; f < n; f++) {
        dataset_image(faces, idx[f], x);
        for (int g0 = 0; g0 <= G; g0 += B) {
            int cnt = G + 1 - g0 < B ? G + 1 - g0 : B;
            memset(gw, 0, sizeof(float) * B * G);
            for (int k = 0; k < B; k++) {
                if (k) memcpy(x + per * k, x, sizeof(float) * per);
                int g = g0 + k - 1; /* column 0 is the input itself */
                if (g >= 0 && g < G) gw[k * G + g] = 1.0f;
            }
            gen_forward(&g, &t->g_aux, x, gw);
            for (int k = 0; k < cnt; k++) {
                int col = g0 + k;
                chw_to_rgb(col == 0 ? x : t->g_aux.y + per * k, R, R, tile);
                for (int yy = 0; yy < R; yy++)
                    memcpy(grid.rgb + (((size_t)f * R + yy) * grid.w + (size_t)col * R) * 3, tile + (size_t)yy * R * 3, (size_t)R * 3);
            }
        }
    }
    free(tile);
    int rc = image_save(path, &grid, e);
    image_free(&grid);
    return rc;
}
