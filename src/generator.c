/* The generator: a U-Net that outputs a change added to its input, its
 * bottleneck modulated (FiLM) by a personalized age embedding. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "net_parts.h"

static void gen_widths(const ModelConfig *c, int *w) {
    w[0] = c->gen_width; w[1] = 2 * c->gen_width; w[2] = 4 * c->gen_width; w[3] = c->gen_res_ch;
}

int gen_build(Generator *g, const ModelConfig *cfg) {
    memset(g, 0, sizeof(*g));
    g->cfg = *cfg;
    ParamSet *ps = &g->ps;
    int G = cfg->groups, HW = cfg->res * cfg->res, r = cfg->gen_res_ch, w[GEN_LEVELS];
    gen_widths(cfg, w);
    char name[PARAM_NAME_MAX];
    int eshape[2] = {G, HW};
    g->emb = params_add(ps, "age_embedding", 2, eshape, 1, INIT_NORMAL, 1.0f);
    int cin = 4;
    for (int l = 0; l < GEN_LEVELS; l++) {
        snprintf(name, sizeof(name), "enc%d.w", l);
        g->enc_w[l] = conv_params(ps, name, w[l], cin, 3);
        cin = w[l];
    }
    int cshape[2] = {cfg->gen_code, G};
    g->code_w = params_add(ps, "age_code.w", 2, cshape, 1, INIT_NORMAL, 1.0f);
    int m1[2] = {cfg->gen_hidden, cfg->gen_code + r}, m2[2] = {cfg->gen_nres * 4 * r, cfg->gen_hidden};
    g->mlp1_w = params_add(ps, "mod_mlp1.w", 2, m1, 1, INIT_UNIFORM_FANIN, (float)m1[1]);
    g->mlp1_b = bias_params(ps, "mod_mlp1.b", m1[0], m1[1]);
    /* starts near zero so that every FiLM begins as the identity */
    g->mlp2_w = params_add(ps, "mod_mlp2.w", 2, m2, 1, INIT_NORMAL, 0.01f);
    g->mlp2_b = vec_params(ps, "mod_mlp2.b", m2[0], 1, INIT_ZERO);
    for (int i = 0; i < cfg->gen_nres; i++)
        for (int j = 0; j < 2; j++) {
            snprintf(name, sizeof(name), "res%d.conv%d.w", i, j + 1);
            g->res_w[i][j] = conv_params(ps, name, r, r, 3);
        }
    for (int k = GEN_LEVELS - 2; k >= 0; k--) {
        int below = k == GEN_LEVELS - 2 ? r : w[k + 1];
        snprintf(name, sizeof(name), "dec%d.w", k);
        g->dec_w[k] = conv_params(ps, name, w[k], below + w[k], 3);
    }
    int oshape[4] = {3, w[0], 3, 3};
    /* small output weights: the delta starts near zero, the output near the input */
    g->out_w = params_add(ps, "out.w", 4, oshape, 1, INIT_NORMAL, 1e-3f);
    g->out_b = vec_params(ps, "out.b", 3, 1, INIT_ZERO);
    return 0;
}

/* acts: GenActs */
static void gen_layout(const void *net, void *acts, Arena *act, Arena *grd) {
    const Generator *g = net;
    GenActs *a = acts;
    const ModelConfig *c = &g->cfg;
    int B = a->B, G = c->groups, H = c->res, HW = H * H, r = c->gen_res_ch, w[GEN_LEVELS];
    gen_widths(c, w);
    a->groupw = arena_take(act, (size_t)B * G);
    a->emb = arena_take(act, (size_t)B * HW);
    a->in0 = arena_take(act, (size_t)B * 4 * HW);
    a->din0 = arena_take_grad(grd, (size_t)B * 4 * HW);
    int cin = 4, h = H;
    for (int l = 0; l < GEN_LEVELS; l++) {
        ConvBlock *cb = &a->enc[l];
        cb->s = conv_shape(B, cin, h, w[l], 3, l ? 2 : 1, 1);
        cb->OH = cb->OW = conv_out_size(h, 3, l ? 2 : 1, 1);
        convblock_layout(cb, act, grd);
        cin = w[l];
        h = cb->OH;
    }
    int nmod = c->gen_nres * 4 * r, hb = h;
    a->pooled = arena_take(act, (size_t)B * r); a->dpooled = arena_take_grad(grd, (size_t)B * r);
    a->code = arena_take(act, (size_t)B * c->gen_code); a->dcode = arena_take_grad(grd, (size_t)B * c->gen_code);
    a->h0 = arena_take(act, (size_t)B * (c->gen_code + r)); a->dh0 = arena_take_grad(grd, (size_t)B * (c->gen_code + r));
    a->h1 = arena_take(act, (size_t)B * c->gen_hidden); a->dh1 = arena_take_grad(grd, (size_t)B * c->gen_hidden);
    a->h1r = arena_take(act, (size_t)B * c->gen_hidden); a->dh1r = arena_take_grad(grd, (size_t)B * c->gen_hidden);
    a->mod = arena_take(act, (size_t)B * nmod); a->dmod = arena_take_grad(grd, (size_t)B * nmod);
    size_t nb = (size_t)B * r * hb * hb, ns = (size_t)B * r;
    for (int i = 0; i < c->gen_nres; i++) {
        a->res[i].t1 = arena_take(act, nb); a->res[i].n1 = arena_take(act, nb); a->res[i].m1 = arena_take(act, nb);
        a->res[i].r1 = arena_take(act, nb); a->res[i].t2 = arena_take(act, nb); a->res[i].n2 = arena_take(act, nb);
        a->res[i].m2 = arena_take(act, nb); a->res[i].out = arena_take(act, nb);
        a->res[i].mean1 = arena_take(act, ns); a->res[i].rstd1 = arena_take(act, ns);
        a->res[i].mean2 = arena_take(act, ns); a->res[i].rstd2 = arena_take(act, ns);
        a->res[i].dt1 = arena_take_grad(grd, nb); a->res[i].dn1 = arena_take_grad(grd, nb); a->res[i].dm1 = arena_take_grad(grd, nb);
        a->res[i].dr1 = arena_take_grad(grd, nb); a->res[i].dt2 = arena_take_grad(grd, nb); a->res[i].dn2 = arena_take_grad(grd, nb);
        a->res[i].dm2 = arena_take_grad(grd, nb); a->res[i].dout = arena_take_grad(grd, nb);
    }
    for (int k = GEN_LEVELS - 2; k >= 0; k--) {
        int below = k == GEN_LEVELS - 2 ? r : w[k + 1], hk = H >> k;
        size_t nup = (size_t)B * below * hk * hk, ncat = (size_t)B * (below + w[k]) * hk * hk;
        a->dec[k].up = arena_take(act, nup); a->dec[k].dup = arena_take_grad(grd, nup);
        a->dec[k].cat = arena_take(act, ncat); a->dec[k].dcat = arena_take_grad(grd, ncat);
        ConvBlock *cb = &a->dec[k].cb;
        cb->s = conv_shape(B, below + w[k], hk, w[k], 3, 1, 1);
        cb->OH = cb->OW = hk;
        convblock_layout(cb, act, grd);
    }
    a->out_s = conv_shape(B, w[0], H, 3, 3, 1, 1);
    a->delta = arena_take(act, (size_t)B * 3 * HW);
    a->y = arena_take(act, (size_t)B * 3 * HW);
    a->ddelta = arena_take_grad(grd, (size_t)B * 3 * HW);
}

size_t gen_scratch_floats(const Generator *g, int B) {
    GenActs a;
    memset(&a, 0, sizeof(a));
    a.B = B;
    Arena count = {0};
    gen_layout(g, &a, &count, NULL); /* the shapes only */
    ConvShape s[GEN_LEVELS + GEN_LEVELS - 1 + 2];
    int n = 0;
    for (int l = 0; l < GEN_LEVELS; l++) s[n++] = a.enc[l].s;
    for (int k = 0; k < GEN_LEVELS - 1; k++) s[n++] = a.dec[k].cb.s;
    s[n++] = conv_shape(B, g->cfg.gen_res_ch, g->cfg.res / 8, g->cfg.gen_res_ch, 3, 1, 1);
    s[n++] = a.out_s;
    return conv_scratch_max(s, n);
}

int gen_acts_alloc(const Generator *g, GenActs *a, int B, int training, float *scratch) {
    memset(a, 0, sizeof(*a));
    a->B = B;
    a->scratch = scratch;
    return acts_memory_alloc(&a->mem, gen_layout, g, a, training);
}

void gen_acts_free(GenActs *a) { acts_memory_free(&a->mem); }

void gen_forward(const Generator *g, GenActs *a, const float *x, const float *groupw) {
    const ModelConfig *c = &g->cfg;
    const ParamSet *ps = &g->ps;
    int B = a->B, G = c->groups, HW = c->res * c->res, r = c->gen_res_ch, nres = c->gen_nres;
    int nmod = nres * 4 * r;
    a->x = x;
    memcpy(a->groupw, groupw, sizeof(float) * B * G);
    embedchan_forward(a->emb, a->groupw, PD(*ps, g->emb), B, G, HW);
    concat_forward(a->in0, x, a->emb, B, 3, 1, HW);
    const float *inp = a->in0;
    for (int l = 0; l < GEN_LEVELS; l++) {
        convblock_forward(&a->enc[l], inp, PD(*ps, g->enc_w[l]), a->scratch);
        inp = a->enc[l].act;
    }
    int HWb = a->enc[GEN_LEVELS - 1].OH * a->enc[GEN_LEVELS - 1].OW;
    /* personalized age embedding: the group's code mixed with this face's pooled features */
    avgpool_forward(a->pooled, inp, B, r, HWb);
    linear_forward(a->code, a->groupw, PD(*ps, g->code_w), NULL, B, G, c->gen_code);
    concat_forward(a->h0, a->code, a->pooled, B, c->gen_code, r, 1);
    linear_forward(a->h1, a->h0, PD(*ps, g->mlp1_w), PD(*ps, g->mlp1_b), B, c->gen_code + r, c->gen_hidden);
    relu_forward(a->h1r, a->h1, (size_t)B * c->gen_hidden);
    linear_forward(a->mod, a->h1r, PD(*ps, g->mlp2_w), PD(*ps, g->mlp2_b), B, c->gen_hidden, nmod);
    ConvShape rs = conv_shape(B, r, c->res / 8, r, 3, 1, 1);
    size_t nb = (size_t)B * r * HWb;
    for (int i = 0; i < nres; i++) {
        const float *mod = a->mod + (size_t)i * 4 * r;
        conv2d_forward(a->res[i].t1, inp, PD(*ps, g->res_w[i][0]), NULL, a->scratch, rs);
        instancenorm_forward(a->res[i].n1, a->res[i].mean1, a->res[i].rstd1, a->res[i].t1, B, r, HWb);
        film_forward(a->res[i].m1, a->res[i].n1, mod, mod + r, nmod, B, r, HWb);
        relu_forward(a->res[i].r1, a->res[i].m1, nb);
        conv2d_forward(a->res[i].t2, a->res[i].r1, PD(*ps, g->res_w[i][1]), NULL, a->scratch, rs);
        instancenorm_forward(a->res[i].n2, a->res[i].mean2, a->res[i].rstd2, a->res[i].t2, B, r, HWb);
        film_forward(a->res[i].m2, a->res[i].n2, mod + 2 * r, mod + 3 * r, nmod, B, r, HWb);
        residual_forward(a->res[i].out, inp, a->res[i].m2, nb);
        inp = a->res[i].out;
    }
    int below = r;
    for (int k = GEN_LEVELS - 2; k >= 0; k--) {
        int hk = c->res >> k;
        upsample2x_forward(a->dec[k].up, inp, B, below, hk / 2, hk / 2);
        concat_forward(a->dec[k].cat, a->dec[k].up, a->enc[k].act, B, below, a->enc[k].s.OC, hk * hk);
        convblock_forward(&a->dec[k].cb, a->dec[k].cat, PD(*ps, g->dec_w[k]), a->scratch);
        inp = a->dec[k].cb.act;
        below = a->dec[k].cb.s.OC;
    }
    conv2d_forward(a->delta, inp, PD(*ps, g->out_w), PD(*ps, g->out_b), a->scratch, a->out_s);
    residual_forward(a->y, x, a->delta, (size_t)B * 3 * HW);
}

void gen_backward(Generator *g, GenActs *a, const float *dy, float *dx) {
    const ModelConfig *c = &g->cfg;
    ParamSet *ps = &g->ps;
    int B = a->B, G = c->groups, HW = c->res * c->res, r = c->gen_res_ch, nres = c->gen_nres;
    int nmod = nres * 4 * r, L = GEN_LEVELS;
    acts_zero_grads(&a->mem);
    size_t nimg = (size_t)B * 3 * HW;
    residual_backward(dx, a->ddelta, dy, nimg);
    conv2d_backward(a->dec[0].cb.dact, PG(*ps, g->out_w), PG(*ps, g->out_b), a->ddelta, a->dec[0].cb.act,
                    PD(*ps, g->out_w), a->scratch, a->out_s);
    for (int k = 0; k <= L - 2; k++) {
        int hk = c->res >> k, below = a->dec[k].cb.s.C - a->enc[k].s.OC;
        convblock_backward(&a->dec[k].cb, a->dec[k].dcat, PG(*ps, g->dec_w[k]), a->dec[k].cat, PD(*ps, g->dec_w[k]),
                           a->scratch);
        concat_backward(a->dec[k].dup, a->enc[k].dact, a->dec[k].dcat, B, below, a->enc[k].s.OC, hk * hk);
        float *dbelow = k == L - 2 ? (nres ? a->res[nres - 1].dout : a->enc[L - 1].dact) : a->dec[k + 1].cb.dact;
        upsample2x_backward(dbelow, a->dec[k].dup, B, below, hk / 2, hk / 2);
    }
    int HWb = a->enc[L - 1].OH * a->enc[L - 1].OW;
    ConvShape rs = conv_shape(B, r, c->res / 8, r, 3, 1, 1);
    size_t nb = (size_t)B * r * HWb;
    for (int i = nres - 1; i >= 0; i--) {
        const float *xin = i ? a->res[i - 1].out : a->enc[L - 1].act;
        float *dxin = i ? a->res[i - 1].dout : a->enc[L - 1].dact;
        const float *mod = a->mod + (size_t)i * 4 * r;
        float *dmod = a->dmod + (size_t)i * 4 * r;
        residual_backward(dxin, a->res[i].dm2, a->res[i].dout, nb);
        film_backward(a->res[i].dn2, dmod + 2 * r, dmod + 3 * r, a->res[i].dm2, a->res[i].n2, mod + 2 * r, nmod, B, r, HWb);
        instancenorm_backward(a->res[i].dt2, a->res[i].dn2, a->res[i].n2, a->res[i].rstd2, B, r, HWb);
        conv2d_backward(a->res[i].dr1, PG(*ps, g->res_w[i][1]), NULL, a->res[i].dt2, a->res[i].r1,
                        PD(*ps, g->res_w[i][1]), a->scratch, rs);
        relu_backward(a->res[i].dm1, a->res[i].dr1, a->res[i].m1, nb);
        film_backward(a->res[i].dn1, dmod, dmod + r, a->res[i].dm1, a->res[i].n1, mod, nmod, B, r, HWb);
        instancenorm_backward(a->res[i].dt1, a->res[i].dn1, a->res[i].n1, a->res[i].rstd1, B, r, HWb);
        conv2d_backward(dxin, PG(*ps, g->res_w[i][0]), NULL, a->res[i].dt1, xin,
                        PD(*ps, g->res_w[i][0]), a->scratch, rs);
    }
    linear_backward(a->dh1r, PG(*ps, g->mlp2_w), PG(*ps, g->mlp2_b), a->dmod, a->h1r, PD(*ps, g->mlp2_w), B, c->gen_hidden, nmod);
    relu_backward(a->dh1, a->dh1r, a->h1, (size_t)B * c->gen_hidden);
    linear_backward(a->dh0, PG(*ps, g->mlp1_w), PG(*ps, g->mlp1_b), a->dh1, a->h0, PD(*ps, g->mlp1_w), B, c->gen_code + r, c->gen_hidden);
    concat_backward(a->dcode, a->dpooled, a->dh0, B, c->gen_code, r, 1);
    linear_backward(NULL, PG(*ps, g->code_w), NULL, a->dcode, a->groupw, PD(*ps, g->code_w), B, G, c->gen_code);
    avgpool_backward(a->enc[L - 1].dact, a->dpooled, B, r, HWb);
    for (int l = L - 1; l >= 0; l--)
        convblock_backward(&a->enc[l], l ? a->enc[l - 1].dact : a->din0, PG(*ps, g->enc_w[l]),
                           l ? a->enc[l - 1].act : a->in0, PD(*ps, g->enc_w[l]), a->scratch);
    /* the input's image channels go to dx, its age channel to the embedding table */
    float *demb = a->dec[0].dup; /* free again: reused as a [B, HW] buffer */
    memset(demb, 0, sizeof(float) * B * HW);
    concat_backward(dx, demb, a->din0, B, 3, 1, HW);
    if (ps->grad) embedchan_backward(PG(*ps, g->emb), demb, a->groupw, B, G, HW);
}

double gen_flops(const Generator *g) {
    const ModelConfig *c = &g->cfg;
    int r = c->gen_res_ch, w[GEN_LEVELS], h = c->res;
    gen_widths(c, w);
    double f = 0;
    int cin = 4;
    for (int l = 0; l < GEN_LEVELS; l++) {
        f += conv_flops(conv_shape(1, cin, h, w[l], 3, l ? 2 : 1, 1));
        h = conv_out_size(h, 3, l ? 2 : 1, 1);
        cin = w[l];
    }
    f += 2.0 * c->gen_nres * conv_flops(conv_shape(1, r, h, r, 3, 1, 1));
    for (int k = GEN_LEVELS - 2; k >= 0; k--) {
        int below = k == GEN_LEVELS - 2 ? r : w[k + 1];
        f += conv_flops(conv_shape(1, below + w[k], c->res >> k, w[k], 3, 1, 1));
    }
    f += conv_flops(conv_shape(1, w[0], c->res, 3, 3, 1, 1));
    f += 2.0 * ((double)(c->gen_code + r) * c->gen_hidden + (double)c->gen_hidden * c->gen_nres * 4 * r);
    return f;
}

void gen_describe(const Generator *g, FILE *f) {
    const ModelConfig *c = &g->cfg;
    int r = c->gen_res_ch, w[GEN_LEVELS], h = c->res;
    char name[96], pn[PARAM_NAME_MAX];
    gen_widths(c, w);
    fprintf(f, "Generator (input 3x%dx%d + target-age channel)\n", c->res, c->res);
    describe_line(f, "Embedding(groups, H*W) age channel", 1, c->res, c->res, tensor_size(&g->ps, "age_embedding"));
    int cin = 4;
    for (int l = 0; l < GEN_LEVELS; l++) {
        int s = l ? 2 : 1;
        h = conv_out_size(h, 3, s, 1);
        snprintf(name, sizeof(name), "Conv2d(%d,%d,k3,s%d,p1) IN LReLU", cin, w[l], s);
        snprintf(pn, sizeof(pn), "enc%d.w", l);
        describe_line(f, name, w[l], h, h, tensor_size(&g->ps, pn));
        cin = w[l];
    }
    snprintf(name, sizeof(name), "AgeCode(%d)+pool(%d) MLP->FiLM", c->gen_code, r);
    describe_line(f, name, c->gen_nres * 4 * r, 1, 1,
                  tensor_size(&g->ps, "age_code.w") + tensor_size(&g->ps, "mod_mlp1.w") + tensor_size(&g->ps, "mod_mlp1.b") +
                  tensor_size(&g->ps, "mod_mlp2.w") + tensor_size(&g->ps, "mod_mlp2.b"));
    for (int i = 0; i < c->gen_nres; i++) {
        snprintf(name, sizeof(name), "ResBlock(%d) conv-IN-FiLM x2", r);
        snprintf(pn, sizeof(pn), "res%d.conv1.w", i);
        describe_line(f, name, r, h, h, 2 * tensor_size(&g->ps, pn));
    }
    for (int k = GEN_LEVELS - 2; k >= 0; k--) {
        int below = k == GEN_LEVELS - 2 ? r : w[k + 1];
        h = c->res >> k;
        snprintf(name, sizeof(name), "Up2x+skip Conv2d(%d,%d,k3) IN LReLU", below + w[k], w[k]);
        snprintf(pn, sizeof(pn), "dec%d.w", k);
        describe_line(f, name, w[k], h, h, tensor_size(&g->ps, pn));
    }
    snprintf(name, sizeof(name), "Conv2d(%d,3,k3) delta; y = x + delta", w[0]);
    describe_line(f, name, 3, c->res, c->res, tensor_size(&g->ps, "out.w") + tensor_size(&g->ps, "out.b"));
    fprintf(f, "Generator total: %zu parameters, %.3f GFLOPs per image\n",
            params_trainable_count(&g->ps), gen_flops(g) / 1e9);
}
