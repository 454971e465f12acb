/* The discriminator: a PatchGAN (pix2pix) on the output and its target-age
 * channel, or the seed's exactly, on the (input, output) pair with an age
 * channel each. */
#include <stdlib.h>
#include <string.h>
#include "net_parts.h"

static const int disc_stride[DISC_LAYERS] = {2, 2, 2, 1, 1};
static const int disc_mult[DISC_LAYERS] = {1, 2, 4, 8, 0}; /* 0: one output channel */

int disc_build(Discriminator *d, const ModelConfig *cfg) {
    memset(d, 0, sizeof(*d));
    d->cfg = *cfg;
    ParamSet *ps = &d->ps;
    int G = cfg->groups, H = cfg->res, HW = H * H;
    d->in_ch = cfg->disc_pair ? 8 : 4;
    int eshape[2] = {G, HW};
    if (cfg->disc_pair) d->emb_in = params_add(ps, "age_embedding_in", 2, eshape, 1, INIT_NORMAL, 1.0f);
    d->emb_out = params_add(ps, "age_embedding_out", 2, eshape, 1, INIT_NORMAL, 1.0f);
    char name[PARAM_NAME_MAX];
    int cin = d->in_ch, h = H;
    for (int l = 0; l < DISC_LAYERS; l++) {
        int oc = disc_mult[l] ? disc_mult[l] * cfg->disc_width : 1;
        d->s[l] = conv_shape(0, cin, h, oc, 4, disc_stride[l], 1);
        h = conv_out_size(h, 4, disc_stride[l], 1);
        if (h < 1) return -1;
        snprintf(name, sizeof(name), "conv%d.w", l);
        d->w[l] = conv_params(ps, name, oc, cin, 4);
        snprintf(name, sizeof(name), "conv%d.b", l);
        d->b[l] = bias_params(ps, name, oc, cin * 16);
        if (l >= 1 && l <= 3) {
            size_t bn[4];
            batchnorm_params(ps, "", l, oc, bn);
            d->bn_g[l] = bn[0], d->bn_b[l] = bn[1], d->bn_rm[l] = bn[2], d->bn_rv[l] = bn[3];
        }
        cin = oc;
    }
    return 0;
}

static int disc_has_bn(int l) { return l >= 1 && l <= 3; }

static void disc_layout(const void *net, void *acts, Arena *act, Arena *grd) {
    const Discriminator *d = net;
    DiscActs *a = acts;
    int B = a->B, G = d->cfg.groups, HW = d->cfg.res * d->cfg.res;
    a->gw_in = arena_take(act, (size_t)B * G); a->gw_out = arena_take(act, (size_t)B * G);
    a->emb_in = arena_take(act, (size_t)B * HW); a->emb_out = arena_take(act, (size_t)B * HW);
    a->in = arena_take(act, (size_t)B * d->in_ch * HW); a->din = arena_take(act, (size_t)B * d->in_ch * HW);
    for (int l = 0; l < DISC_LAYERS; l++) {
        int oh = conv_out_size(d->s[l].H, 4, d->s[l].S, 1);
        size_t n = (size_t)B * d->s[l].OC * oh * oh, nc = d->s[l].OC;
        a->conv[l] = arena_take(act, n); a->dconv[l] = arena_take(act, n);
        a->act[l] = l < DISC_LAYERS - 1 ? arena_take(act, n) : a->conv[l];
        a->dact[l] = l < DISC_LAYERS - 1 ? arena_take(act, n) : a->dconv[l];
        if (disc_has_bn(l)) {
            a->norm[l] = arena_take(act, n); a->dnorm[l] = arena_take(act, n);
            a->mean[l] = arena_take(act, nc); a->rstd[l] = arena_take(act, nc);
        }
        a->out_hw = oh;
    }
    (void)grd;
}

size_t disc_scratch_floats(const Discriminator *d, int B) {
    ConvShape s[DISC_LAYERS];
    for (int l = 0; l < DISC_LAYERS; l++) s[l] = d->s[l], s[l].B = B;
    return conv_scratch_max(s, DISC_LAYERS);
}

int disc_acts_alloc(const Discriminator *d, DiscActs *a, int B, float *scratch) {
    memset(a, 0, sizeof(*a));
    a->B = B;
    a->scratch = scratch;
    /* the discriminator's gradients live beside its activations: it is
     * always run forward then backward before its next use */
    return acts_memory_alloc(&a->mem, disc_layout, d, a, 0);
}

void disc_acts_free(DiscActs *a) { acts_memory_free(&a->mem); }

static void put_channels(float *dst, int dst_ch, int at, const float *src, int n_ch, int B, int HW) {
    for (int b = 0; b < B; b++)
        memcpy(dst + ((size_t)b * dst_ch + at) * HW, src + (size_t)b * n_ch * HW, sizeof(float) * n_ch * HW);
}
static void add_channels(float *dst, int n_ch, const float *src, int src_ch, int at, int B, int HW) {
    for (int b = 0; b < B; b++) {
        const float *s = src + ((size_t)b * src_ch + at) * HW;
        float *o = dst + (size_t)b * n_ch * HW;
        for (size_t i = 0; i < (size_t)n_ch * HW; i++) o[i] += s[i];
    }
}

const float *disc_forward(const Discriminator *d, DiscActs *a, const float *x,
                          const float *gw_in, const float *y, const float *gw_out) {
    const ParamSet *ps = &d->ps;
    int B = a->B, G = d->cfg.groups, HW = d->cfg.res * d->cfg.res, C = d->in_ch;
    memcpy(a->gw_out, gw_out, sizeof(float) * B * G);
    embedchan_forward(a->emb_out, a->gw_out, PD(*ps, d->emb_out), B, G, HW);
    if (d->cfg.disc_pair) {
        memcpy(a->gw_in, gw_in, sizeof(float) * B * G);
        embedchan_forward(a->emb_in, a->gw_in, PD(*ps, d->emb_in), B, G, HW);
        put_channels(a->in, C, 0, x, 3, B, HW);
        put_channels(a->in, C, 3, a->emb_in, 1, B, HW);
        put_channels(a->in, C, 4, y, 3, B, HW);
        put_channels(a->in, C, 7, a->emb_out, 1, B, HW);
    } else {
        put_channels(a->in, C, 0, y, 3, B, HW);
        put_channels(a->in, C, 3, a->emb_out, 1, B, HW);
    }
    const float *inp = a->in;
    for (int l = 0; l < DISC_LAYERS; l++) {
        ConvShape s = d->s[l];
        s.B = B;
        int oh = conv_out_size(s.H, 4, s.S, 1);
        size_t n = (size_t)B * s.OC * oh * oh;
        conv2d_forward(a->conv[l], inp, PD(*ps, d->w[l]), PD(*ps, d->b[l]), a->scratch, s);
        if (l == 0) leakyrelu_forward(a->act[l], a->conv[l], 0.2f, n);
        else if (disc_has_bn(l)) {
            batchnorm_forward(a->norm[l], a->mean[l], a->rstd[l], a->conv[l], PD(*ps, d->bn_g[l]),
                              PD(*ps, d->bn_b[l]), ((ParamSet *)ps)->data + d->bn_rm[l],
                              ((ParamSet *)ps)->data + d->bn_rv[l], 1, B, s.OC, oh * oh);
            relu_forward(a->act[l], a->norm[l], n);
        }
        inp = a->act[l];
    }
    return a->conv[DISC_LAYERS - 1];
}

void disc_backward(Discriminator *d, DiscActs *a, const float *dlogits, float *dy, int param_grads) {
    ParamSet *ps = &d->ps;
    int B = a->B, G = d->cfg.groups, HW = d->cfg.res * d->cfg.res, C = d->in_ch;
    int L = DISC_LAYERS;
    ConvShape s = d->s[L - 1];
    s.B = B;
    int oh = a->out_hw;
    memcpy(a->dconv[L - 1], dlogits, sizeof(float) * B * oh * oh);
    for (int l = L - 1; l >= 0; l--) {
        s = d->s[l];
        s.B = B;
        oh = conv_out_size(s.H, 4, s.S, 1);
        size_t n = (size_t)B * s.OC * oh * oh;
        if (l < L - 1) {
            memset(a->dconv[l], 0, sizeof(float) * n);
            if (l == 0) leakyrelu_backward(a->dconv[l], a->dact[l], a->conv[l], 0.2f, n);
            else {
                memset(a->dnorm[l], 0, sizeof(float) * n);
                relu_backward(a->dnorm[l], a->dact[l], a->norm[l], n);
                batchnorm_backward(a->dconv[l], param_grads ? PG(*ps, d->bn_g[l]) : NULL,
                                   param_grads ? PG(*ps, d->bn_b[l]) : NULL, a->dnorm[l], a->conv[l],
                                   a->mean[l], a->rstd[l], PD(*ps, d->bn_g[l]), 1, B, s.OC, oh * oh);
            }
        }
        float *dinp = l ? a->dact[l - 1] : a->din;
        const float *inp = l ? a->act[l - 1] : a->in;
        size_t nin = (size_t)B * s.C * s.H * s.W;
        int need_dinp = l > 0 || dy || param_grads;
        if (need_dinp) memset(dinp, 0, sizeof(float) * nin);
        conv2d_backward(need_dinp ? dinp : NULL, param_grads ? PG(*ps, d->w[l]) : NULL,
                        param_grads ? PG(*ps, d->b[l]) : NULL, a->dconv[l], inp, PD(*ps, d->w[l]), a->scratch, s);
    }
    int y_at = d->cfg.disc_pair ? 4 : 0, eout_at = d->cfg.disc_pair ? 7 : 3;
    if (dy) add_channels(dy, 3, a->din, C, y_at, B, HW);
    if (param_grads && ps->grad) {
        /* emb_in/emb_out are free after the forward pass: reuse them for dL/d(channel) */
        memset(a->emb_out, 0, sizeof(float) * B * HW);
        add_channels(a->emb_out, 1, a->din, C, eout_at, B, HW);
        embedchan_backward(PG(*ps, d->emb_out), a->emb_out, a->gw_out, B, G, HW);
        if (d->cfg.disc_pair) {
            memset(a->emb_in, 0, sizeof(float) * B * HW);
            add_channels(a->emb_in, 1, a->din, C, 3, B, HW);
            embedchan_backward(PG(*ps, d->emb_in), a->emb_in, a->gw_in, B, G, HW);
        }
    }
}

double disc_flops(const Discriminator *d) {
    double f = 0;
    for (int l = 0; l < DISC_LAYERS; l++) f += conv_flops(d->s[l]);
    return f;
}

void disc_describe(const Discriminator *d, FILE *f) {
    char name[96], pn[PARAM_NAME_MAX];
    int H = d->cfg.res, G = d->cfg.groups;
    fprintf(f, "Discriminator (%s, %d input channels)\n",
            d->cfg.disc_pair ? "seed PatchGAN on (input, output) pair" : "PatchGAN on output and target age", d->in_ch);
    if (d->cfg.disc_pair) {
        snprintf(name, sizeof(name), "Embedding(%d, %d) input age", G, H * H);
        describe_line(f, name, 1, H, H, tensor_size(&d->ps, "age_embedding_in"));
    }
    snprintf(name, sizeof(name), "Embedding(%d, %d) output age", G, H * H);
    describe_line(f, name, 1, H, H, tensor_size(&d->ps, "age_embedding_out"));
    for (int l = 0; l < DISC_LAYERS; l++) {
        const ConvShape *s = &d->s[l];
        int oh = conv_out_size(s->H, 4, s->S, 1);
        snprintf(name, sizeof(name), "Conv2d(%d,%d,k4,s%d,p1)%s", s->C, s->OC, s->S,
                 l == 0 ? " LeakyReLU(0.2)" : disc_has_bn(l) ? " BatchNorm ReLU" : "");
        snprintf(pn, sizeof(pn), "conv%d.w", l);
        size_t np = tensor_size(&d->ps, pn) + s->OC;
        if (disc_has_bn(l)) np += 2 * s->OC;
        describe_line(f, name, s->OC, oh, oh, np);
    }
    fprintf(f, "Discriminator total: %zu parameters\n", params_trainable_count(&d->ps));
}
