/* The GAN's training step: the age estimator (and its critic copy), the
 * discriminator, then the generator against every loss term. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "trainer.h"

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
    if (params_alloc(&t->gen.ps, 1) || params_alloc(&t->disc.ps, 1) || params_alloc(&t->est.ps, 1)) {
        trainer_free(t);
        return err_set(e, "out of memory for the networks");
    }
    Rng init;
    rng_seed(&init, (uint64_t)tc->seed * 1000003u + 17);
    params_init(&t->gen.ps, &init);
    params_init(&t->disc.ps, &init);
    params_init(&t->est.ps, &init);
    if ((tc->lambda_est_fake > 0 && trainer_start_critic(t, e)) || (tc->ema > 0 && trainer_start_average(t, e))) {
        trainer_free(t);
        return -1;
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
    free(t->gw_src); free(t->gw_tgt); free(t->gw_wrong); free(t->gw_src2);
    free(t->src); free(t->tgt); free(t->wrong); free(t->src2);
    memset(t, 0, sizeof(*t));
}

int trainer_start_critic(Trainer *t, Err *e) {
    if (t->has_critic) params_free(&t->critic.ps); /* started again: from the reader as it is now */
    t->has_critic = 0;
    est_build(&t->critic, &t->tc.model);
    if (params_alloc(&t->critic.ps, 1)) return err_set(e, "out of memory for the age critic");
    t->has_critic = 1;
    size_t n = sizeof(float) * t->est.ps.total;
    memcpy(t->critic.ps.data, t->est.ps.data, n);
    memcpy(t->critic.ps.adam_m, t->est.ps.adam_m, n);
    memcpy(t->critic.ps.adam_v, t->est.ps.adam_v, n);
    for (int i = 0; i < t->est.ps.count; i++) t->critic.ps.t[i].adam_before = t->est.ps.t[i].adam_before;
    return 0;
}

int trainer_start_average(Trainer *t, Err *e) {
    if (!(t->gen_avg = malloc(sizeof(float) * t->gen.ps.total))) return err_set(e, "out of memory for the generator's average");
    memcpy(t->gen_avg, t->gen.ps.data, sizeof(float) * t->gen.ps.total);
    return 0;
}

int trainer_follow_schedule(Trainer *t, Dataset *data, char *done, size_t n, Err *e) {
    TrainConfig *tc = &t->tc, before = t->tc;
    int k = train_schedule_apply(tc, t->step, done, n, e);
    if (k <= 0) return k;
    if (train_config_finish(tc, e)) return -1;
    if (tc->ema > 0 && !t->gen_avg && trainer_start_average(t, e)) return -1;
    if (tc->lambda_est_fake > 0 && !t->has_critic && trainer_start_critic(t, e)) return -1;
    if (tc->model.est_blur != before.model.est_blur) {
        /* the estimators' view changes, and with it their activations */
        t->est.cfg.est_blur = t->critic.cfg.est_blur = tc->model.est_blur;
        est_acts_free(&t->ea);
        if (est_acts_alloc(&t->est, &t->ea, tc->batch, 1, t->scratch)) return err_set(e, "out of memory for the estimator");
    }
    if (tc->balance_race != before.balance_race && dataset_balance_race(data, tc->balance_race, e)) return -1;
    return k;
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

/* The critic: what the reader learns (from the same random draws, so that
 * the reader's own run is untouched by it), and the generator's outputs y at
 * their input's age. Those it reads in eval mode, as the
 * age term does, so its running statistics stay those of real photos. */
static void critic_step(Trainer *t, const float *y, const Rng *adv_rng, const AdamConfig *ae) {
    const TrainConfig *tc = &t->tc;
    Estimator *m = &t->critic;
    Rng r = *adv_rng;
    float acc;
    estimator_learn_real(t, m, t->x, tc->est_adv_eps, &r, &acc);
    est_verdict(t, est_forward(m, &t->ea, y, 0), t->src, tc->lambda_est_fake);
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
    if (t->has_critic) critic_step(t, y, &adv_rng, &ae);
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
    if (tc->lambda_age > 0 || tc->lambda_age_mean > 0) {
        const float *lg = est_forward(critic, &t->ea, y, 0);
        L.age = est_verdict(t, lg, t->tgt, tc->lambda_age);
        /* An output need not read as its group more surely than real photos
         * do: pushed past that, the generator paints patterns that sway the
         * estimator instead of ageing the face. */
        for (int b = 0; b < B; b++)
            if (-logf(fmaxf(t->ea.probs[b * G + t->tgt[b]], 1e-30f)) < tc->age_margin)
                memset(t->dlogits + b * G, 0, sizeof(float) * G);
        L.age_gap = age_mean_term(c, t->ea.probs, t->tgt, tc->lambda_age_mean, tc->age_mean_tol, B, t->age, t->dage,
                                  t->dlogits);
        est_backward(critic, &t->ea, t->dlogits, t->dy, 0);
    }
    L.delta = l1_forward(y, t->x, nimg);
    l1_backward(t->dy, y, t->x, tc->lambda_delta, nimg);
    /* x2 and xadv are free by now: the chroma of the change and its gradient */
    int HW = c->res * c->res;
    L.tv = tv_forward(y, t->x, B * 3, c->res, c->res);
    if (tc->lambda_tv > 0) tv_backward(t->dy, y, t->x, tc->lambda_tv, B * 3, c->res, c->res);
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
    adam_step(&t->gen.ps, &ag, t->step);
    if (t->gen_avg) params_average(t->gen_avg, &t->gen.ps, tc->ema);
    return L;
}
