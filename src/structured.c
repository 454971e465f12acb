#include "structured.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "facespace.h"
#include "pyramid.h"

int change_model_load(ChangeModel *m, const Blob *b, int groups, const char *what, Err *e) {
    memset(m, 0, sizeof(*m));
    if (!blob_find(b, "change.out.w")) return 1;
    ChangeNetConfig cfg;
    if (change_net_config_parse(&cfg, b->config, groups, e) || change_net_build(&m->net, &cfg, e)) {
        char msg[sizeof(e->msg)];
        snprintf(msg, sizeof(msg), "%.100s: %.380s", what, e->msg);
        return err_set(e, "%s", msg);
    }
    int S = cfg.side;
    if (params_alloc(&m->net.ps, 0)) return err_set(e, "%s: out of memory", what);
    if (blob_read_params(b, "change.", &m->net.ps, what, e)) {
        change_model_free(m);
        return -1;
    }
    m->scratch = calloc(change_net_scratch_floats(&m->net, 1), sizeof(float));
    m->x = malloc(sizeof(float) * 3 * S * S);
    m->space = malloc((size_t)3 * S * S);
    if (!m->scratch || !m->x || !m->space || change_net_acts_alloc(&m->net, &m->acts, 1, 0, m->scratch)) {
        change_model_free(m);
        return err_set(e, "%s: out of memory", what);
    }
    return 0;
}

void change_model_free(ChangeModel *m) {
    change_net_acts_free(&m->acts);
    params_free(&m->net.ps);
    free(m->scratch);
    free(m->x);
    free(m->space);
    memset(m, 0, sizeof(*m));
}

void change_space_to_planes(const uint8_t *space, int S, float *x) {
    size_t n = (size_t)S * S;
    for (size_t i = 0; i < n; i++)
        for (int c = 0; c < 3; c++) x[c * n + i] = space[i * 3 + c] / 127.5f - 1.0f;
}

void change_bands(const float *x, int S, float *bands, float *work) {
    size_t n = (size_t)S * S;
    float *lev = work, *next = work + n, *tmp = next + n / 4;
    for (size_t i = 0; i < n; i++) lev[i] = (x[i] + x[n + i] + x[2 * n + i]) / 3;
    for (int k = 0; k < CHANGE_BANDS; k++) {
        int sd = S >> k;
        float *b = bands + (size_t)k * n;
        pyr_reduce(lev, sd, sd, next);
        pyr_band(lev, next, sd, sd, k ? tmp : b);
        if (k) pyr_resize(tmp, sd, sd, b, S, S);
        memcpy(lev, next, sizeof(float) * (sd / 2) * (sd / 2));
    }
}

void change_masks(int S, float *mask) {
    size_t n = (size_t)S * S;
    float *detail = mask + (size_t)CHANGE_GAIN * n, *colour = mask + (size_t)CHANGE_COLOUR * n, *shape = mask + (size_t)CHANGE_DX * n;
    face_space_masks(S, detail, colour, shape);
    memcpy(mask + (size_t)CHANGE_DY * n, shape, sizeof(float) * n);
    for (int c = 1; c < 3; c++) memcpy(colour + c * n, colour, sizeof(float) * n);
    for (int k = 1; k < CHANGE_BANDS; k++) memcpy(detail + k * n, detail, sizeof(float) * n);
}

void change_to_face_change(const float *field, int S, FaceChange *c) {
    int s = change_field_side(S);
    size_t ns = (size_t)s * s;
    float span = 1 + 2 * (float)FACESPACE_MARGIN;
    memset(c->shape, 0, sizeof(c->shape));
    for (int k = 0; k < FACEMESH_POINTS; k++) {
        float fx = (FACESPACE_MEAN[k][0] + (float)FACESPACE_MARGIN) / span * s, fy = (FACESPACE_MEAN[k][1] + (float)FACESPACE_MARGIN) / span * s;
        /* the output samples the face d pixels away: the face moves by -d */
        for (int d = 0; d < 2; d++) c->shape[k][d] = -pyr_sample(field + (size_t)(CHANGE_DX + d) * ns, s, s, fx, fy) * span / S;
    }
    const int cs = PROTO_COLOUR_SIDE;
    for (int ch = 0; ch < 3; ch++)
        for (int i = 0; i < cs; i++)
            for (int j = 0; j < cs; j++)
                c->colour[((size_t)ch * cs + i) * cs + j] =
                    127.5f * pyr_sample(field + (size_t)(CHANGE_COLOUR + ch) * ns, s, s, (j + 0.5f) * s / cs, (i + 0.5f) * s / cs);
    for (int k = 0; k < PROTO_BANDS && k < CHANGE_BANDS; k++) {
        int a = proto_amp_side(k), b = proto_band_side(k);
        for (int i = 0; i < a; i++)
            for (int j = 0; j < a; j++)
                c->gain[k][i * a + j] = expf(pyr_sample(field + (size_t)(CHANGE_GAIN + k) * ns, s, s, (j + 0.5f) * s / a, (i + 0.5f) * s / a));
        memset(c->target_amp[k], 0, sizeof(float) * a * a);
        memset(c->inject[k], 0, sizeof(float) * b * b);
    }
}

int change_reage(ChangeModel *m, const Prototypes *P, const ModelConfig *cfg, Photo *p, const FaceLandmarks *l,
                 float source_age, float target_age) {
    if (proto_reage(P, cfg, p, l, source_age, target_age)) return -1;
    int S = m->net.cfg.side;
    FaceWarp w;
    FaceChange c;
    if (facewarp_fit(&w, l)) return -1;
    facewarp_photo_to_space(&w, p, S, m->space);
    facewarp_free(&w);
    change_space_to_planes(m->space, S, m->x);
    float gs[MAX_GROUPS], gt[MAX_GROUPS];
    age_to_groupw(cfg, source_age, gs);
    age_to_groupw(cfg, target_age, gt);
    change_net_forward(&m->net, &m->acts, m->x, gs, gt);
    if (face_change_alloc(&c)) return -1;
    change_to_face_change(m->acts.field, S, &c);
    int rc = face_change_apply(&c, p, l);
    face_change_free(&c);
    return rc;
}
