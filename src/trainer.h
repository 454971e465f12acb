/* The GAN trainer: configuration, one training step, checkpoints (resumable
 * bit for bit), the browser blob and sample grids. */
#ifndef REAGE_TRAINER_H
#define REAGE_TRAINER_H
#include "dataset.h"
#include "errors.h"
#include "model.h"

typedef struct {
    ModelConfig model;
    char groups[256];              /* age group spec, e.g. "0-9,10-19,...,60+" */
    int batch, steps, seed, shift, max_images;
    float lr_g, lr_d, lr_e, beta1, beta2;
    int lr_decay_from;             /* >0: lr_g and lr_d fall linearly from this step, reaching 0 just after steps */
    float lambda_adv, lambda_cyc, lambda_rec, lambda_age, lambda_delta, lambda_tv, lambda_wrong;
    float lambda_ctv;              /* total variation of the change's colour alone */
    float lambda_tone;             /* L1 of the change's mean colour over the face's centre */
    float lambda_shade;            /* darkening of the change's brightness over blocks, beyond shade_margin */
    float shade_margin;            /* darkening (pixels in [-1,1]) a block may take for free */
    float age_margin;              /* no age push on outputs whose target-group loss is below this */
    float lambda_age_mean;         /* distance of an output's expected age from its group's centre, in decades */
    float age_mean_tol;            /* years of that distance that cost nothing */
    float est_adv_eps;             /* >0: the estimator also learns from adversarial copies (FGSM) */
    float lambda_est_fake;         /* >0: an age critic, the estimator also learning outputs at their input's age */
    float balance_race;            /* >0: draws within an age group weighed toward the split's ethnic mix, capped at this */
    float ema;                     /* >0: decay of the generator's weight average, which blobs and samples use */
    int ckpt_every, sample_every, log_every;
    char data[1024], out[1024];
    char schedule[1024];           /* options that change at given steps (train_schedule_apply) */
} TrainConfig;

/* "shipped" (the shipped model's recipe), "seed" (the seed's discriminator) or "tiny" (tests) */
int train_config_named(TrainConfig *tc, const char *name, Err *e);
/* Sets one option by its name ("lambda_cyc", "res", "disc", ...). */
int train_config_set(TrainConfig *tc, const char *key, const char *value, Err *e);
int train_config_finish(TrainConfig *tc, Err *e);
void train_config_text(const TrainConfig *tc, char *buf, size_t n);
/* Sets the options that tc's schedule changes after `step` steps, and
 * describes them in done ("--lambda-age 3 --age-margin 0.5"); returns how
 * many (0: none at this step), or -1. The trainer calls it before each step
 * (trainer_follow_schedule). */
int train_schedule_apply(TrainConfig *tc, int step, char *done, size_t n, Err *e);
/* The factor on lr_g and lr_d at a step (1 before lr_decay_from). */
float train_lr_scale(const TrainConfig *tc, int step);
/* Options a resumed run may change without breaking its state. */
int train_option_resumable(const char *key);
/* How a user types an option: key "lambda_age" is --lambda-age, and messages
 * name it so; writes it into buf and returns buf. */
const char *train_option_flag(char *buf, size_t n, const char *key);
void train_config_usage(FILE *f);

typedef struct {
    float d_loss, d_real, d_fake, adv, cyc, rec, age, delta, tv, est_loss, est_acc, ctv, tone;
    float age_gap;                 /* years between the critic's expected age of outputs and their groups' centres */
    float shade;                   /* mean darkening of outputs' blocks beyond shade_margin */
    float d_age;                   /* how much higher the discriminator scores real photos at their own age
                                      than at the wrong one it learns as fake (mean patch score, targets 1
                                      and 0): 0 where it does not read age, 1 where it tells the two apart
                                      fully (nan: no --lambda-wrong) */
} Losses;

typedef struct {
    TrainConfig tc;
    Generator gen;
    float *gen_avg;                /* the generator's weights averaged over steps (tc.ema > 0), else NULL */
    Discriminator disc;
    Estimator est;                 /* the age reader: real photos only; shipped for the photo's own age */
    Estimator critic;              /* the generator's age term reads outputs with it (lambda_est_fake > 0) */
    int has_critic;                /* else the reader serves as the critic */
    GenActs g_main, g_aux;         /* x -> y, and the recon / cycle passes */
    DiscActs da;
    EstActs ea;
    float *scratch;
    float *dmean;                  /* [2B] each photo's mean patch score at its own age, then at a wrong one */
    float *x, *x2, *xadv, *dy, *dpatch, *dlogits, *tone, *dtone, *shade, *dshade, *age, *dage;
    float *gw_src, *gw_tgt, *gw_wrong, *gw_src2;
    int *src, *tgt, *wrong, *src2;
    int step;
    Rng rng;
} Trainer;

int trainer_init(Trainer *t, const TrainConfig *tc, Err *e);
void trainer_free(Trainer *t);
/* Before each step: the options t's schedule changes at this step (see
 * train_schedule_apply), with what they bring: the generator's average and
 * the age critic start where they are first asked for, the estimators'
 * view changes with est_blur, data's draws with balance_race. */
int trainer_follow_schedule(Trainer *t, Dataset *data, char *done, size_t n, Err *e);
/* The age critic, started (or started again) as a copy of the reader
 * (weights and Adam's state), and the generator's average, started at its
 * weights. */
int trainer_start_critic(Trainer *t, Err *e);
int trainer_start_average(Trainer *t, Err *e);
Losses trainer_step(Trainer *t, const Dataset *data);
/* The age term's pull to the middle of the group. The cross-entropy is
 * content once most of the critic's verdict on an output is its target with
 * the rest on a neighbour, which leaves outputs at the group's edge (45-59
 * read as 47); this is the distance, in decades beyond tol_years, between the
 * expected age under the verdict probs [B,G] (the mean of the groups' centres)
 * and the target group's centre. Writes age [B] (decades) and dage [B], adds
 * lambda times the gradient to dlogits; returns the mean distance in years. */
float age_mean_term(const ModelConfig *c, const float *probs, const int *tgt, float lambda, float tol_years,
                    int B, float *age, float *dage, float *dlogits);
int trainer_save_checkpoint(const Trainer *t, const char *path, Err *e);
/* Restores a checkpoint written for the same configuration. */
int trainer_load_checkpoint(Trainer *t, const char *path, Err *e);
/* Starts a new run (step 0, fresh optimiser) from a checkpoint of a related
 * model: every network tensor with the same name and shape is copied, the
 * others keep their initial values and are named in fresh ("" when none).
 * Fails when the generator takes nothing from the file. */
int trainer_warm_start(Trainer *t, const char *path, char *fresh, size_t n, Err *e);
/* Reads just the configuration stored in a checkpoint. */
int checkpoint_read_config(const char *path, TrainConfig *tc, Err *e);
/* The blob the page loads: the averaged generator where there is one. */
int trainer_export_blob(const Trainer *t, const char *path, Err *e);
/* The same from the generator's current (not averaged) weights. */
int trainer_export_live_blob(const Trainer *t, const char *path, Err *e);
/* A grid: one row a face, the input then every age group. */
int trainer_sample_grid(Trainer *t, const Dataset *faces, const int *idx, int n, const char *path, Err *e);
#endif
