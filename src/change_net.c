/* The change network (change_net.h): four strided conv blocks down to a
 * sixteenth of the face space, one more there, then up to an eighth where
 * it meets the encoder's level of the same size, and a 1x1 conv to the
 * field. */
#include "change_net.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "blob.h"
#include "net_parts.h"

const float CHANGE_UNIT[CHANGE_FIELDS] = {4.0f, 4.0f, 0.1f, 0.1f, 0.1f, 0.3f, 0.3f, 0.3f};

/* field [B,F,ss] *= CHANGE_UNIT per field */
static void scale_fields(float *f, int B, size_t ss) {
    for (int b = 0; b < B; b++)
        for (int c = 0; c < CHANGE_FIELDS; c++)
            for (size_t i = 0; i < ss; i++) f[((size_t)b * CHANGE_FIELDS + c) * ss + i] *= CHANGE_UNIT[c];
}

static void widths(const ChangeNetConfig *c, int *w) {
    w[0] = c->width, w[1] = 2 * c->width, w[2] = 4 * c->width, w[3] = 4 * c->width;
}

static int config_check(const ChangeNetConfig *c, Err *e) {
    if (c->side < 64 || c->side > 1024 || c->side % 16) return err_set(e, "change net side %d: must be a multiple of 16 in 64..1024", c->side);
    if (c->width < 1 || c->width > 256) return err_set(e, "change net width %d: must be 1..256", c->width);
    if (c->groups < 2 || c->groups > MAX_GROUPS) return err_set(e, "change net groups %d: must be 2..%d", c->groups, MAX_GROUPS);
    return 0;
}

int change_net_build(ChangeNet *n, const ChangeNetConfig *cfg, Err *e) {
    memset(n, 0, sizeof(*n));
    if (config_check(cfg, e)) return -1;
    n->cfg = *cfg;
    ParamSet *ps = &n->ps;
    int w[CHANGE_NET_LEVELS], cin = 3 + 2 * cfg->groups;
    widths(cfg, w);
    char name[PARAM_NAME_MAX];
    for (int l = 0; l < CHANGE_NET_LEVELS; l++) {
        snprintf(name, sizeof(name), "enc%d.w", l);
        n->enc_w[l] = conv_params(ps, name, w[l], cin, 3);
        cin = w[l];
    }
    n->mid_w = conv_params(ps, "mid.w", w[3], w[3], 3);
    n->dec_w = conv_params(ps, "dec.w", w[2], w[3] + w[2], 3);
    /* zero: the untrained net changes nothing */
    int os[4] = {CHANGE_FIELDS, w[2], 1, 1};
    n->out_w = params_add(ps, "out.w", 4, os, 1, INIT_ZERO, 0);
    n->out_b = vec_params(ps, "out.b", CHANGE_FIELDS, 1, INIT_ZERO);
    return 0;
}

static void layout(const void *net, void *acts, Arena *act, Arena *grd) {
    const ChangeNet *n = net;
    ChangeNetActs *a = acts;
    int B = a->B, S = n->cfg.side, cin = 3 + 2 * n->cfg.groups, h = S, w[CHANGE_NET_LEVELS];
    widths(&n->cfg, w);
    a->in0 = arena_take(act, (size_t)B * cin * S * S);
    for (int l = 0; l < CHANGE_NET_LEVELS; l++) {
        ConvBlock *cb = &a->enc[l];
        cb->s = conv_shape(B, cin, h, w[l], 3, 2, 1);
        cb->OH = cb->OW = conv_out_size(h, 3, 2, 1);
        convblock_layout(cb, act, grd);
        cin = w[l];
        h = cb->OH;
    }
    a->mid.s = conv_shape(B, w[3], h, w[3], 3, 1, 1);
    a->mid.OH = a->mid.OW = h;
    convblock_layout(&a->mid, act, grd);
    int s = change_field_side(S);
    size_t nup = (size_t)B * w[3] * s * s, ncat = (size_t)B * (w[3] + w[2]) * s * s;
    a->up = arena_take(act, nup); a->dup = arena_take_grad(grd, nup);
    a->cat = arena_take(act, ncat); a->dcat = arena_take_grad(grd, ncat);
    a->dec.s = conv_shape(B, w[3] + w[2], s, w[2], 3, 1, 1);
    a->dec.OH = a->dec.OW = s;
    convblock_layout(&a->dec, act, grd);
    a->out_s = conv_shape(B, w[2], s, CHANGE_FIELDS, 1, 1, 0);
    a->field = arena_take(act, (size_t)B * CHANGE_FIELDS * s * s);
    /* out of the gradient arena: the caller fills it before the backward pass zeroes the others */
    a->dfield = grd ? arena_take(act, (size_t)B * CHANGE_FIELDS * s * s) : NULL;
}

size_t change_net_scratch_floats(const ChangeNet *n, int B) {
    ChangeNetActs a;
    memset(&a, 0, sizeof(a));
    a.B = B;
    Arena count = {0};
    layout(n, &a, &count, NULL);
    ConvShape s[CHANGE_NET_LEVELS + 3];
    int k = 0;
    for (int l = 0; l < CHANGE_NET_LEVELS; l++) s[k++] = a.enc[l].s;
    s[k++] = a.mid.s;
    s[k++] = a.dec.s;
    s[k++] = a.out_s;
    return conv_scratch_max(s, k);
}

int change_net_acts_alloc(const ChangeNet *n, ChangeNetActs *a, int B, int training, float *scratch) {
    memset(a, 0, sizeof(*a));
    a->B = B;
    a->scratch = scratch;
    return acts_memory_alloc(&a->mem, layout, n, a, training);
}

void change_net_acts_free(ChangeNetActs *a) { acts_memory_free(&a->mem); }

void change_net_forward(const ChangeNet *n, ChangeNetActs *a, const float *x, const float *gw_src, const float *gw_tgt) {
    const ParamSet *ps = &n->ps;
    int B = a->B, S = n->cfg.side, G = n->cfg.groups, C = 3 + 2 * G;
    size_t HW = (size_t)S * S;
    for (int b = 0; b < B; b++) {
        float *o = a->in0 + (size_t)b * C * HW;
        memcpy(o, x + (size_t)b * 3 * HW, sizeof(float) * 3 * HW);
        for (int g = 0; g < 2 * G; g++) {
            float v = g < G ? gw_src[b * G + g] : gw_tgt[b * G + g - G];
            for (size_t i = 0; i < HW; i++) o[(3 + g) * HW + i] = v;
        }
    }
    const float *inp = a->in0;
    for (int l = 0; l < CHANGE_NET_LEVELS; l++) {
        convblock_forward(&a->enc[l], inp, PD(*ps, n->enc_w[l]), a->scratch);
        inp = a->enc[l].act;
    }
    convblock_forward(&a->mid, inp, PD(*ps, n->mid_w), a->scratch);
    int s = change_field_side(S), h = a->mid.OH;
    upsample2x_forward(a->up, a->mid.act, B, a->mid.s.OC, h, h);
    concat_forward(a->cat, a->up, a->enc[2].act, B, a->mid.s.OC, a->enc[2].s.OC, s * s);
    convblock_forward(&a->dec, a->cat, PD(*ps, n->dec_w), a->scratch);
    conv2d_forward(a->field, a->dec.act, PD(*ps, n->out_w), PD(*ps, n->out_b), a->scratch, a->out_s);
    scale_fields(a->field, B, (size_t)s * s);
}

void change_net_backward(ChangeNet *n, ChangeNetActs *a) {
    ParamSet *ps = &n->ps;
    int B = a->B, s = change_field_side(n->cfg.side), h = a->mid.OH;
    acts_zero_grads(&a->mem);
    scale_fields(a->dfield, B, (size_t)s * s);
    conv2d_backward(a->dec.dact, PG(*ps, n->out_w), PG(*ps, n->out_b), a->dfield, a->dec.act, PD(*ps, n->out_w), a->scratch,
                    a->out_s);
    convblock_backward(&a->dec, a->dcat, PG(*ps, n->dec_w), a->cat, PD(*ps, n->dec_w), a->scratch);
    concat_backward(a->dup, a->enc[2].dact, a->dcat, B, a->mid.s.OC, a->enc[2].s.OC, s * s);
    upsample2x_backward(a->mid.dact, a->dup, B, a->mid.s.OC, h, h);
    convblock_backward(&a->mid, a->enc[3].dact, PG(*ps, n->mid_w), a->enc[3].act, PD(*ps, n->mid_w), a->scratch);
    for (int l = CHANGE_NET_LEVELS - 1; l >= 0; l--)
        convblock_backward(&a->enc[l], l ? a->enc[l - 1].dact : NULL, PG(*ps, n->enc_w[l]), l ? a->enc[l - 1].act : a->in0,
                           PD(*ps, n->enc_w[l]), a->scratch);
}

double change_net_flops(const ChangeNet *n) {
    ChangeNetActs a;
    memset(&a, 0, sizeof(a));
    a.B = 1;
    Arena count = {0};
    layout(n, &a, &count, NULL);
    double f = conv_flops(a.mid.s) + conv_flops(a.dec.s) + conv_flops(a.out_s);
    for (int l = 0; l < CHANGE_NET_LEVELS; l++) f += conv_flops(a.enc[l].s);
    return f;
}

void change_net_config_text(const ChangeNetConfig *cfg, char *buf, size_t n) {
    snprintf(buf, n, "change_side=%d\nchange_width=%d\n", cfg->side, cfg->width);
}

int change_net_config_parse(ChangeNetConfig *cfg, const char *text, int groups, Err *e) {
    memset(cfg, 0, sizeof(*cfg));
    cfg->groups = groups;
    if (config_get_int(text, "change_side", &cfg->side) || config_get_int(text, "change_width", &cfg->width))
        return err_set(e, "the change net's config lacks change_side or change_width");
    return config_check(cfg, e);
}
