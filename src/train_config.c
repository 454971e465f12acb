/* The trainer's options: each one's name, type, whether a resumed run may
 * change it and its help; the named configurations; the schedule of options
 * that change at given steps. */
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include "trainer.h"

typedef enum { OPT_INT, OPT_FLOAT, OPT_STR, OPT_GROUPS, OPT_DISC, OPT_SCHEDULE } OptType;
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
    {"balance_race", OPT_FLOAT, OFF(balance_race), 1, "weigh each age group's photos toward the whole split's ethnic mix, no photo more than this many times its uniform share (0: uniform): UTKFace's age groups differ in ethnic mix, which the networks would learn as age"},
    {"ema", OPT_FLOAT, OFF(ema), 1, "decay per step of the generator's weight average that blobs and samples use (0: none; 0.999 averages over ~1000 steps)"},
    {"lambda_delta", OPT_FLOAT, OFF(lambda_delta), 1, "weight of the L1 penalty on the delta"},
    {"lambda_tv", OPT_FLOAT, OFF(lambda_tv), 1, "weight of the total variation of the delta (against speckle)"},
    {"lambda_ctv", OPT_FLOAT, OFF(lambda_ctv), 1, "weight of the total variation of the delta's colour (R-G, B-G): against colour blotches, leaving brightness (wrinkles) to lambda_tv"},
    {"lambda_tone", OPT_FLOAT, OFF(lambda_tone), 1, "weight of the L1 of the change's mean colour over the face's centre (the middle half of the crop): ageing changes texture and shape, not the skin's tone, which the training data's age groups differ in"},
    {"lambda_shade", OPT_FLOAT, OFF(lambda_shade), 1, "weight of how far the change darkens blocks of the image (res/16 pixels a side, all three channels) beyond --shade-margin: large gaps in age otherwise paint dark patches that the age readers take for age"},
    {"shade_margin", OPT_FLOAT, OFF(shade_margin), 1, "darkening of a block (pixels in [-1,1]) that costs nothing: shadows of wrinkles, a beard"},
    {"lambda_wrong", OPT_FLOAT, OFF(lambda_wrong), 1, "discriminator weight of wrong-age real negatives"},
    {"ckpt_every", OPT_INT, OFF(ckpt_every), 1, "steps between checkpoints (and blobs)"},
    {"sample_every", OPT_INT, OFF(sample_every), 1, "steps between sample grids (0: never)"},
    {"log_every", OPT_INT, OFF(log_every), 1, "steps between progress lines"},
    {"data", OPT_STR, OFF(data), 1, "UTKFace folder (labels.tsv, images/)"},
    {"out", OPT_STR, OFF(out), 1, "run folder for checkpoint, blob, log and samples"},
    {"schedule", OPT_SCHEDULE, OFF(schedule), 1, "options that change at given steps: STEP:key=value,key=value;STEP:... (keys as in the checkpoint, e.g. lambda_age; only options a resumed run may change); each takes effect after that many steps"},
};
#define NOPT (int)(sizeof(options) / sizeof(options[0]))

static const Option *find_option(const char *key) {
    for (int i = 0; i < NOPT; i++) if (!strcmp(options[i].key, key)) return &options[i];
    return NULL;
}

int train_option_resumable(const char *key) {
    const Option *o = find_option(key);
    return o && o->resumable;
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

/* Walks a schedule "STEP:key=value,...;STEP:..." and calls visit(ctx, step,
 * key, value) for each entry; refuses a malformed one, steps out of order,
 * and a key that is no option a resumed run may change by number. */
typedef int (*ScheduleVisit)(void *ctx, int step, const char *key, const char *value, Err *e);
static int schedule_walk(const char *s, ScheduleVisit visit, void *ctx, Err *e) {
    int last = -1;
    while (*s) {
        char *end;
        long step = strtol(s, &end, 10);
        if (end == s || *end != ':' || step < 0 || step > 1000000000)
            return err_set(e, "--schedule: expected STEP:key=value at '%.20s'", s);
        if (step <= last) return err_set(e, "--schedule: step %ld comes after step %d", step, last);
        last = (int)step;
        s = end + 1;
        for (;;) {
            char key[64], value[64];
            size_t k = strcspn(s, "="), v;
            if (!s[k] || k == 0 || k >= sizeof(key)) return err_set(e, "--schedule: expected key=value at '%.20s'", s);
            snprintf(key, sizeof(key), "%.*s", (int)k, s);
            s += k + 1;
            v = strcspn(s, ",;");
            if (v == 0 || v >= sizeof(value)) return err_set(e, "--schedule: step %d: no value for %s", last, key);
            snprintf(value, sizeof(value), "%.*s", (int)v, s);
            s += v;
            const Option *o = find_option(key);
            if (!o || !o->resumable || (o->type != OPT_INT && o->type != OPT_FLOAT))
                return err_set(e, "--schedule: step %d: '%s' is not an option a run may change as it goes", last, key);
            if (visit && visit(ctx, last, key, value, e)) return -1;
            if (*s != ',') break;
            s++;
        }
        if (*s == ';') s++;
        else if (*s) return err_set(e, "--schedule: unexpected '%c' after step %d", *s, last);
    }
    return 0;
}

/* Whether each value would be accepted, on a scratch configuration. */
static int check_entry(void *ctx, int step, const char *key, const char *value, Err *e) {
    (void)step;
    return train_config_set(ctx, key, value, e);
}

static int schedule_check(const char *s, Err *e) {
    TrainConfig scratch;
    memset(&scratch, 0, sizeof(scratch));
    return schedule_walk(s, check_entry, &scratch, e);
}

typedef struct { TrainConfig *tc; int step, applied; char *done; size_t n; } Apply;

static int apply_entry(void *ctx, int step, const char *key, const char *value, Err *e) {
    Apply *a = ctx;
    if (step != a->step) return 0;
    if (train_config_set(a->tc, key, value, e)) return -1;
    char flag[64];
    size_t k = strlen(a->done);
    snprintf(a->done + k, a->n - k, "%s%s %s", k ? " " : "", train_option_flag(flag, sizeof(flag), key), value);
    a->applied++;
    return 0;
}

int train_schedule_apply(TrainConfig *tc, int step, char *done, size_t n, Err *e) {
    done[0] = 0;
    Apply a = {tc, step, 0, done, n};
    /* the walk reads the schedule while entries are applied to tc: a copy */
    char schedule[sizeof(tc->schedule)];
    snprintf(schedule, sizeof(schedule), "%s", tc->schedule);
    return schedule_walk(schedule, apply_entry, &a, e) ? -1 : a.applied;
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
        case OPT_SCHEDULE:
            if (strlen(value) >= sizeof(tc->schedule)) return err_set(e, "%s: value too long", flag);
            if (schedule_check(value, e)) return -1;
            snprintf(tc->schedule, sizeof(tc->schedule), "%s", value);
            return 0;
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
        case OPT_STR: case OPT_SCHEDULE: k += snprintf(buf + k, n - k, "%s=%s\n", options[i].key, (const char *)p); break;
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

#define SHIPPED_SCHEDULE \
    "1297:lambda_tv=1;1642:lambda_tv=3;3000:lambda_age=0.5;4372:lambda_age=0.3,lambda_tv=8;"           \
    "5889:est_blur=1,age_margin=0.7,lambda_age=0.8,lambda_tv=4;6586:est_adv_eps=0.03,lambda_tv=6;"     \
    "11000:lambda_ctv=8;11500:lambda_ctv=4,lambda_age=1.5;13625:ema=0.999;13709:lambda_est_fake=0.5;" \
    "15028:lambda_age=2;15114:lambda_tone=3;17042:lambda_tone=10;"                                    \
    "18107:balance_race=4,lambda_age=3,age_margin=0.5;20284:age_margin=0.25;"                         \
    "24141:lambda_age_mean=2,age_mean_tol=2;25000:lambda_shade=50,shade_margin=0.15;27037:lambda_age_mean=4"

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
        "data", "../shared/data/utkface-part1", NULL};
    if (set_all(tc, common, e)) return -1;
    static const char *const tiny[] = {
        "res", "32", "groups", "0-19,20-49,50+", "gen_width", "4", "gen_res_ch", "16", "gen_nres", "1",
        "gen_code", "8", "gen_hidden", "16", "est_width", "4", "disc_width", "8", "disc", "target",
        "batch", "4", "steps", "40", "shift", "1", "lr_g", "0.002", "lr_d", "0.001", "lr_e", "0.002", "lambda_age", "2",
        "ckpt_every", "20", "sample_every", "0", "log_every", "10", "out", "runs/tiny", NULL};
    /* The shipped model's recipe from scratch, as it was trained: 128x128,
     * six groups, the output-only PatchGAN at half the seed's width, and the
     * loss weights changed at the steps where the run changed them (each
     * change's reason: weights/HISTORY.md and docs/training.md). */
    static const char *const shipped[] = {
        "res", "128", "gen_width", "16", "gen_res_ch", "128", "gen_nres", "4", "est_width", "16",
        "disc_width", "32", "disc", "target", "batch", "8", "steps", "29000", "lambda_tv", "0",
        "ckpt_every", "250", "sample_every", "250", "out", "runs/shipped",
        "schedule", SHIPPED_SCHEDULE, NULL};
    /* the seed's discriminator exactly: 256x256, 3 groups, width 64, on (input, output) pairs */
    static const char *const seed[] = {
        "res", "256", "groups", "0-19,20-49,50+", "gen_width", "16", "gen_res_ch", "128", "gen_nres", "4",
        "est_width", "16", "disc_width", "64", "disc", "pair", "batch", "8", "steps", "200000",
        "ckpt_every", "250", "sample_every", "250", "out", "runs/seed", NULL};
    const char *const *named = !strcmp(name, "tiny") ? tiny : !strcmp(name, "shipped") ? shipped
                             : !strcmp(name, "seed") ? seed : NULL;
    if (!named) return err_set(e, "--config: unknown configuration '%s' (shipped, seed or tiny)", name);
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
    ModelConfig probe = tc->model;
    Discriminator d;
    if (disc_build(&d, &probe)) return err_set(e, "resolution %d is too small for the PatchGAN", tc->model.res);
    return 0;
}
