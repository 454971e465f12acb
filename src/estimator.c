/* The age estimator: a five-level CNN with batch norm classifying the age
 * groups; its softmax gives an age in years. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "net_parts.h"

static const int est_mult[EST_LEVELS] = {1, 2, 4, 8, 8};

int est_build(Estimator *m, const ModelConfig *cfg) {
    memset(m, 0, sizeof(*m));
    m->cfg = *cfg;
    ParamSet *ps = &m->ps;
    char name[PARAM_NAME_MAX];
    int cin = 3, h = cfg->res;
    for (int l = 0; l < EST_LEVELS; l++) {
        int oc = est_mult[l] * cfg->est_width;
        m->s[l] = conv_shape(0, cin, h, oc, 3, 2, 1);
        h = conv_out_size(h, 3, 2, 1);
        snprintf(name, sizeof(name), "est.conv%d.w", l);
        m->w[l] = conv_params(ps, name, oc, cin, 3);
        size_t bn[4];
        batchnorm_params(ps, "est.", l, oc, bn);
        m->bn_g[l] = bn[0], m->bn_b[l] = bn[1], m->bn_rm[l] = bn[2], m->bn_rv[l] = bn[3];
        cin = oc;
    }
    m->feat = cin;
    int fshape[2] = {cfg->groups, cin};
    m->fc_w = params_add(ps, "est.fc.w", 2, fshape, 1, INIT_UNIFORM_FANIN, (float)cin);
    m->fc_b = bias_params(ps, "est.fc.b", cfg->groups, cin);
    return 0;
}

static void est_layout(const void *net, void *acts, Arena *act, Arena *grd) {
    const Estimator *m = net;
    EstActs *a = acts;
    int B = a->B;
    if (m->cfg.est_blur) {
        size_t n = (size_t)B * 3 * m->cfg.res * m->cfg.res;
        a->blur = arena_take(act, n); a->dblur = arena_take_grad(grd, n);
    }
    for (int l = 0; l < EST_LEVELS; l++) {
        int oh = conv_out_size(m->s[l].H, 3, 2, 1);
        size_t n = (size_t)B * m->s[l].OC * oh * oh, nc = m->s[l].OC;
        a->conv[l] = arena_take(act, n); a->norm[l] = arena_take(act, n); a->act[l] = arena_take(act, n);
        a->mean[l] = arena_take(act, nc); a->rstd[l] = arena_take(act, nc);
        a->dconv[l] = arena_take_grad(grd, n); a->dnorm[l] = arena_take_grad(grd, n); a->dact[l] = arena_take_grad(grd, n);
    }
    a->pooled = arena_take(act, (size_t)B * m->feat); a->dpooled = arena_take_grad(grd, (size_t)B * m->feat);
    a->logits = arena_take(act, (size_t)B * m->cfg.groups); a->probs = arena_take(act, (size_t)B * m->cfg.groups);
    a->dlogits = arena_take_grad(grd, (size_t)B * m->cfg.groups);
}

size_t est_scratch_floats(const Estimator *m, int B) {
    ConvShape s[EST_LEVELS];
    for (int l = 0; l < EST_LEVELS; l++) s[l] = m->s[l], s[l].B = B;
    return conv_scratch_max(s, EST_LEVELS);
}

int est_acts_alloc(const Estimator *m, EstActs *a, int B, int training, float *scratch) {
    memset(a, 0, sizeof(*a));
    a->B = B;
    a->scratch = scratch;
    return acts_memory_alloc(&a->mem, est_layout, m, a, training);
}

void est_acts_free(EstActs *a) { acts_memory_free(&a->mem); }

const float *est_forward(const Estimator *m, EstActs *a, const float *x, int training) {
    ParamSet *ps = (ParamSet *)&m->ps; /* running statistics update in training mode */
    int B = a->B;
    a->x = x;
    a->training = training;
    const float *inp = x;
    if (m->cfg.est_blur) {
        blur5_forward(a->blur, x, B, 3, m->cfg.res, m->cfg.res);
        inp = a->blur;
    }
    for (int l = 0; l < EST_LEVELS; l++) {
        ConvShape s = m->s[l];
        s.B = B;
        int oh = conv_out_size(s.H, 3, 2, 1);
        size_t n = (size_t)B * s.OC * oh * oh;
        conv2d_forward(a->conv[l], inp, PD(*ps, m->w[l]), NULL, a->scratch, s);
        batchnorm_forward(a->norm[l], a->mean[l], a->rstd[l], a->conv[l], PD(*ps, m->bn_g[l]), PD(*ps, m->bn_b[l]),
                          ps->data + m->bn_rm[l], ps->data + m->bn_rv[l], training, B, s.OC, oh * oh);
        relu_forward(a->act[l], a->norm[l], n);
        inp = a->act[l];
    }
    int oh = conv_out_size(m->s[EST_LEVELS - 1].H, 3, 2, 1);
    avgpool_forward(a->pooled, inp, B, m->feat, oh * oh);
    linear_forward(a->logits, a->pooled, PD(*ps, m->fc_w), PD(*ps, m->fc_b), B, m->feat, m->cfg.groups);
    return a->logits;
}

void est_backward(Estimator *m, EstActs *a, const float *dlogits, float *dx, int param_grads) {
    ParamSet *ps = &m->ps;
    int B = a->B, L = EST_LEVELS;
    acts_zero_grads(&a->mem);
#define EG(off) (param_grads ? PG(*ps, off) : NULL)
    int oh = conv_out_size(m->s[L - 1].H, 3, 2, 1);
    linear_backward(a->dpooled, EG(m->fc_w), EG(m->fc_b), dlogits, a->pooled, PD(*ps, m->fc_w), B, m->feat, m->cfg.groups);
    avgpool_backward(a->dact[L - 1], a->dpooled, B, m->feat, oh * oh);
    for (int l = L - 1; l >= 0; l--) {
        ConvShape s = m->s[l];
        s.B = B;
        oh = conv_out_size(s.H, 3, 2, 1);
        size_t n = (size_t)B * s.OC * oh * oh;
        relu_backward(a->dnorm[l], a->dact[l], a->norm[l], n);
        batchnorm_backward(a->dconv[l], EG(m->bn_g[l]), EG(m->bn_b[l]), a->dnorm[l], a->conv[l], a->mean[l],
                           a->rstd[l], PD(*ps, m->bn_g[l]), a->training, B, s.OC, oh * oh);
        const float *inp = l ? a->act[l - 1] : m->cfg.est_blur ? a->blur : a->x;
        float *dinp = l ? a->dact[l - 1] : m->cfg.est_blur ? (dx ? a->dblur : NULL) : dx;
        conv2d_backward(dinp, EG(m->w[l]), NULL, a->dconv[l], inp, PD(*ps, m->w[l]), a->scratch, s);
    }
    if (m->cfg.est_blur && dx) blur5_backward(dx, a->dblur, B, 3, m->cfg.res, m->cfg.res);
#undef EG
}

float est_age_years(const Estimator *m, const float *logits) {
    int G = m->cfg.groups;
    float mx = logits[0], p[MAX_GROUPS], sum = 0, age = 0;
    for (int g = 1; g < G; g++) if (logits[g] > mx) mx = logits[g];
    for (int g = 0; g < G; g++) { p[g] = expf(logits[g] - mx); sum += p[g]; }
    for (int g = 0; g < G; g++) age += p[g] / sum * group_center(&m->cfg, g);
    return age;
}

void est_describe(const Estimator *m, FILE *f) {
    char name[96];
    fprintf(f, "Age estimator (age-group classifier)\n");
    for (int l = 0; l < EST_LEVELS; l++) {
        const ConvShape *s = &m->s[l];
        int oh = conv_out_size(s->H, 3, 2, 1);
        snprintf(name, sizeof(name), "Conv2d(%d,%d,k3,s2,p1) BatchNorm ReLU", s->C, s->OC);
        describe_line(f, name, s->OC, oh, oh, (size_t)s->OC * s->C * 9 + 2 * s->OC);
    }
    snprintf(name, sizeof(name), "AvgPool Linear(%d,%d)", m->feat, m->cfg.groups);
    describe_line(f, name, m->cfg.groups, 1, 1, (size_t)m->feat * m->cfg.groups + m->cfg.groups);
    fprintf(f, "Age estimator total: %zu parameters\n", params_trainable_count(&m->ps));
}
