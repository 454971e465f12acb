#include "params.h"
#include <math.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

size_t params_add(ParamSet *ps, const char *name, int ndim, const int *shape,
                  int trainable, ParamInit init, float init_scale) {
    ParamTensor *t = &ps->t[ps->count++];
    memset(t, 0, sizeof(*t));
    snprintf(t->name, sizeof(t->name), "%s", name);
    t->ndim = ndim;
    t->size = 1;
    for (int i = 0; i < ndim; i++) { t->shape[i] = shape[i]; t->size *= shape[i]; }
    t->offset = ps->total;
    t->trainable = trainable;
    t->init = init;
    t->init_scale = init_scale;
    ps->total += t->size;
    return t->offset;
}

int params_alloc(ParamSet *ps, int for_training) {
    ps->data = calloc(ps->total, sizeof(float));
    if (for_training) {
        ps->grad = calloc(ps->total, sizeof(float));
        ps->adam_m = calloc(ps->total, sizeof(float));
        ps->adam_v = calloc(ps->total, sizeof(float));
    }
    if (!ps->data || (for_training && (!ps->grad || !ps->adam_m || !ps->adam_v))) {
        params_free(ps);
        return -1;
    }
    return 0;
}

void params_free(ParamSet *ps) {
    free(ps->data); free(ps->grad); free(ps->adam_m); free(ps->adam_v);
    ps->data = ps->grad = ps->adam_m = ps->adam_v = NULL;
}

void params_init(ParamSet *ps, Rng *rng) {
    for (int i = 0; i < ps->count; i++) {
        ParamTensor *t = &ps->t[i];
        float *p = ps->data + t->offset;
        for (size_t k = 0; k < t->size; k++) {
            switch (t->init) {
            case INIT_ZERO: p[k] = 0.0f; break;
            case INIT_ONE: p[k] = 1.0f; break;
            /* PyTorch's default for conv and linear: U(-1/sqrt(fan_in), 1/sqrt(fan_in)) */
            case INIT_UNIFORM_FANIN: p[k] = (2.0f * rng_uniform(rng) - 1.0f) / sqrtf(t->init_scale); break;
            case INIT_NORMAL: p[k] = rng_normal(rng) * t->init_scale; break;
            }
        }
    }
}

size_t params_trainable_count(const ParamSet *ps) {
    size_t n = 0;
    for (int i = 0; i < ps->count; i++) if (ps->t[i].trainable) n += ps->t[i].size;
    return n;
}

const ParamTensor *params_find(const ParamSet *ps, const char *name) {
    for (int i = 0; i < ps->count; i++) if (!strcmp(ps->t[i].name, name)) return &ps->t[i];
    return NULL;
}

void params_zero_grad(ParamSet *ps) { memset(ps->grad, 0, sizeof(float) * ps->total); }

void adam_step(ParamSet *ps, const AdamConfig *cfg, int t) {
    for (int i = 0; i < ps->count; i++) {
        const ParamTensor *pt = &ps->t[i];
        if (!pt->trainable) continue;
        float steps = (float)(t + pt->adam_before);
        float bc1 = 1.0f - powf(cfg->beta1, steps), bc2 = 1.0f - powf(cfg->beta2, steps);
        float *p = ps->data + pt->offset, *g = ps->grad + pt->offset;
        float *m = ps->adam_m + pt->offset, *v = ps->adam_v + pt->offset;
        #pragma omp parallel for schedule(static)
        for (size_t k = 0; k < pt->size; k++) {
            m[k] = cfg->beta1 * m[k] + (1.0f - cfg->beta1) * g[k];
            v[k] = cfg->beta2 * v[k] + (1.0f - cfg->beta2) * g[k] * g[k];
            p[k] -= cfg->lr * (m[k] / bc1) / (sqrtf(v[k] / bc2) + cfg->eps);
        }
    }
}

void params_average(float *avg, const ParamSet *ps, float decay) {
    for (int i = 0; i < ps->count; i++) {
        const ParamTensor *pt = &ps->t[i];
        const float *p = ps->data + pt->offset;
        float *a = avg + pt->offset;
        if (!pt->trainable) { memcpy(a, p, sizeof(float) * pt->size); continue; }
        #pragma omp parallel for schedule(static)
        for (size_t k = 0; k < pt->size; k++) a[k] = decay * a[k] + (1.0f - decay) * p[k];
    }
}
