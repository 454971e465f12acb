#include "model.h"
#include "blob.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------ config */

void model_config_text(const ModelConfig *c, char *buf, size_t n) {
    int k = snprintf(buf, n,
                     "res=%d\ngroups=%d\ngen_width=%d\ngen_res_ch=%d\ngen_nres=%d\n"
                     "gen_code=%d\ngen_hidden=%d\nest_width=%d\ndisc_width=%d\ndisc_pair=%d\n",
                     c->res, c->groups, c->gen_width, c->gen_res_ch, c->gen_nres,
                     c->gen_code, c->gen_hidden, c->est_width, c->disc_width, c->disc_pair);
    if (c->est_blur) k += snprintf(buf + k, n - k, "est_blur=1\n");
    if (c->gen_dec_film) k += snprintf(buf + k, n - k, "gen_dec_film=1\n");
    if (c->gen_refine) k += snprintf(buf + k, n - k, "gen_refine=%d\n", c->gen_refine);
    k += snprintf(buf + k, n - k, "group_ages=");
    for (int g = 0; g < c->groups; g++)
        k += snprintf(buf + k, n - k, "%s%d-%d", g ? "," : "", c->group_lo[g], c->group_hi[g]);
    snprintf(buf + k, n - k, "\n");
}

int parse_groups(ModelConfig *cfg, const char *spec, Err *e) {
    int g = 0;
    const char *p = spec;
    while (*p) {
        if (g >= MAX_GROUPS) return err_set(e, "age groups '%s': more than %d groups", spec, MAX_GROUPS);
        char *end;
        long lo = strtol(p, &end, 10), hi;
        if (end == p) return err_set(e, "age groups '%s': expected a number at '%s'", spec, p);
        p = end;
        if (*p == '+') { hi = 200; p++; }
        else if (*p == '-') {
            hi = strtol(p + 1, &end, 10);
            if (end == p + 1) return err_set(e, "age groups '%s': expected a number after '-'", spec);
            p = end;
        } else return err_set(e, "age groups '%s': expected 'lo-hi' or 'lo+'", spec);
        if (lo < 0 || hi < lo || hi > 200) return err_set(e, "age groups '%s': bad range %ld-%ld", spec, lo, hi);
        if (g > 0 && lo != cfg->group_hi[g - 1] + 1)
            return err_set(e, "age groups '%s': group %d must start at %d", spec, g + 1, cfg->group_hi[g - 1] + 1);
        cfg->group_lo[g] = (int)lo;
        cfg->group_hi[g] = (int)hi;
        g++;
        if (*p == ',') p++;
        else if (*p) return err_set(e, "age groups '%s': unexpected '%c'", spec, *p);
    }
    if (g < 2) return err_set(e, "age groups '%s': need at least 2 groups", spec);
    cfg->groups = g;
    return 0;
}

int model_config_validate(const ModelConfig *c, Err *e) {
    if (c->res < 16 || c->res > 1024 || c->res % 8)
        return err_set(e, "resolution %d: must be a multiple of 8 between 16 and 1024", c->res);
    if (c->groups < 2 || c->groups > MAX_GROUPS) return err_set(e, "groups %d: must be 2..%d", c->groups, MAX_GROUPS);
    if (c->gen_width < 1 || c->gen_width > 256 || c->gen_res_ch < 1 || c->gen_res_ch > 1024)
        return err_set(e, "generator widths %d/%d out of range", c->gen_width, c->gen_res_ch);
    if (c->gen_nres < 0 || c->gen_nres > MAX_RES_BLOCKS) return err_set(e, "gen_nres %d: must be 0..%d", c->gen_nres, MAX_RES_BLOCKS);
    if (c->gen_code < 1 || c->gen_hidden < 1 || c->est_width < 1 || c->disc_width < 1)
        return err_set(e, "network widths must be positive");
    if (c->est_width > 256 || c->disc_width > 256 || c->gen_code > 1024 || c->gen_hidden > 4096)
        return err_set(e, "network widths out of range");
    if (c->gen_dec_film != 0 && c->gen_dec_film != 1) return err_set(e, "gen_dec_film %d: must be 0 or 1", c->gen_dec_film);
    if (c->gen_refine < 0 || c->gen_refine > 256) return err_set(e, "gen_refine %d: must be 0..256", c->gen_refine);
    return 0;
}

int model_config_parse(ModelConfig *c, const char *text, Err *e) {
    memset(c, 0, sizeof(*c));
    struct { const char *k; int *v; } fields[] = {
        {"res", &c->res}, {"gen_width", &c->gen_width}, {"gen_res_ch", &c->gen_res_ch},
        {"gen_nres", &c->gen_nres}, {"gen_code", &c->gen_code}, {"gen_hidden", &c->gen_hidden},
        {"est_width", &c->est_width}, {"disc_width", &c->disc_width}, {"disc_pair", &c->disc_pair},
    };
    for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++)
        if (config_get_int(text, fields[i].k, fields[i].v))
            return err_set(e, "model config lacks '%s'", fields[i].k);
    /* absent in blobs written before the estimator looked through a blur */
    if (config_get_int(text, "est_blur", &c->est_blur)) c->est_blur = 0;
    /* absent in blobs written before the decoder was modulated */
    if (config_get_int(text, "gen_dec_film", &c->gen_dec_film)) c->gen_dec_film = 0;
    /* absent in blobs written before the full-resolution block */
    if (config_get_int(text, "gen_refine", &c->gen_refine)) c->gen_refine = 0;
    char groups[512];
    if (config_get(text, "group_ages", groups, sizeof(groups))) return err_set(e, "model config lacks 'group_ages'");
    /* "lo-hi,...": the last group is stored with hi 200, which parse_groups reads back */
    if (parse_groups(c, groups, e)) return -1;
    return model_config_validate(c, e);
}

int model_config_match(const ModelConfig *f, const ModelConfig *m, const char *what, Err *e) {
#define CHECK(field) \
    if (f->field != m->field) \
        return err_set(e, "%s: does not match this model: %s is %d in the file, %d in the model", what, #field, f->field, m->field)
    CHECK(res); CHECK(groups); CHECK(gen_width); CHECK(gen_res_ch); CHECK(gen_nres);
    CHECK(gen_code); CHECK(gen_hidden); CHECK(est_width); CHECK(gen_dec_film); CHECK(gen_refine);
#undef CHECK
    for (int g = 0; g < m->groups; g++)
        if (f->group_lo[g] != m->group_lo[g] || f->group_hi[g] != m->group_hi[g])
            return err_set(e, "%s: does not match this model: age group %d differs", what, g + 1);
    return 0;
}

int age_to_group(const ModelConfig *c, int age) {
    for (int g = 0; g < c->groups; g++) if (age <= c->group_hi[g]) return g;
    return c->groups - 1;
}

float group_center(const ModelConfig *c, int g) {
    int hi = c->group_hi[g];
    /* an open-ended last group ("60+") is centred ten years in */
    if (g == c->groups - 1 && hi >= 120) hi = c->group_lo[g] + 19;
    return 0.5f * (c->group_lo[g] + hi);
}

void age_to_groupw(const ModelConfig *c, float age, float *w) {
    memset(w, 0, sizeof(float) * c->groups);
    if (age <= group_center(c, 0)) { w[0] = 1.0f; return; }
    for (int g = 0; g + 1 < c->groups; g++) {
        float a = group_center(c, g), b = group_center(c, g + 1);
        if (age <= b) {
            float t = (age - a) / (b - a);
            w[g] = 1.0f - t;
            w[g + 1] = t;
            return;
        }
    }
    w[c->groups - 1] = 1.0f;
}

/* ------------------------------------------------------------- arenas */

/* Contexts are laid out twice: first counting (base NULL), then handing out
 * pointers into one allocation. Blocks are 64-byte aligned. */
typedef struct { float *base; size_t used; } Arena;
static float *take(Arena *a, size_t n) {
    float *p = a->base ? a->base + a->used : NULL;
    a->used += (n + 15) & ~(size_t)15;
    return p;
}

static float *alloc_floats(size_t n) {
    size_t bytes = (sizeof(float) * (n ? n : 1) + 63) & ~(size_t)63;
    float *p = aligned_alloc(64, bytes);
    if (p) memset(p, 0, bytes);
    return p;
}

/* Runs layout(arena, grads) once to count and once to place. */
#define ALLOC_CONTEXT(a, layout_call, training)                                 \
    do {                                                                        \
        Arena A = {0}, G = {0};                                                 \
        Arena *act = &A, *grd = (training) ? &G : NULL;                         \
        layout_call;                                                            \
        (a)->arena_floats = A.used;                                             \
        (a)->grad_floats = G.used;                                              \
        (a)->arena = alloc_floats(A.used);                                      \
        (a)->grad_arena = (training) ? alloc_floats(G.used) : NULL;             \
        if (!(a)->arena || ((training) && !(a)->grad_arena)) return -1;         \
        A.base = (a)->arena; A.used = 0;                                        \
        G.base = (a)->grad_arena; G.used = 0;                                   \
        layout_call;                                                            \
    } while (0)

static float *gtake(Arena *g, size_t n) { return g ? take(g, n) : NULL; }

/* ---------------------------------------------------------- conv block */

static void convblock_layout(ConvBlock *cb, int modulated, Arena *act, Arena *grd) {
    size_t n = (size_t)cb->s.B * cb->s.OC * cb->OH * cb->OW, nc = (size_t)cb->s.B * cb->s.OC;
    cb->conv = take(act, n); cb->norm = take(act, n); cb->act = take(act, n);
    cb->mean = take(act, nc); cb->rstd = take(act, nc);
    cb->dconv = gtake(grd, n); cb->dnorm = gtake(grd, n); cb->dact = gtake(grd, n);
    cb->film = modulated ? take(act, n) : NULL;
    cb->dfilm = modulated ? gtake(grd, n) : NULL;
}

/* mod (NULL: none) holds each image's FiLM, gamma at mod, beta at mod + OC,
 * images mod_stride apart; only blocks laid out as modulated take one. */
static void convblock_forward(ConvBlock *cb, const float *inp, const float *w, const float *mod,
                              int mod_stride, float *scratch) {
    int HW = cb->OH * cb->OW, B = cb->s.B, C = cb->s.OC;
    size_t n = (size_t)B * C * HW;
    conv2d_forward(cb->conv, inp, w, NULL, scratch, cb->s);
    instancenorm_forward(cb->norm, cb->mean, cb->rstd, cb->conv, B, C, HW);
    const float *pre = cb->norm;
    if (mod) {
        film_forward(cb->film, cb->norm, mod, mod + C, mod_stride, B, C, HW);
        pre = cb->film;
    }
    leakyrelu_forward(cb->act, pre, 0.2f, n);
}

/* cb->dact holds dL/d(act); adds dL/d(inp) into dinp (if given) and the
 * FiLM's gradient into dmod (laid out as mod) */
static void convblock_backward(ConvBlock *cb, float *dinp, float *dw, const float *inp, const float *w,
                               const float *mod, float *dmod, int mod_stride, float *scratch) {
    int HW = cb->OH * cb->OW, B = cb->s.B, C = cb->s.OC;
    size_t n = (size_t)B * C * HW;
    if (mod) {
        leakyrelu_backward(cb->dfilm, cb->dact, cb->film, 0.2f, n);
        film_backward(cb->dnorm, dmod, dmod + C, cb->dfilm, cb->norm, mod, mod_stride, B, C, HW);
    } else {
        leakyrelu_backward(cb->dnorm, cb->dact, cb->norm, 0.2f, n);
    }
    instancenorm_backward(cb->dconv, cb->dnorm, cb->norm, cb->rstd, B, C, HW);
    conv2d_backward(dinp, dw, NULL, cb->dconv, inp, w, scratch, cb->s);
}

static ConvShape conv_shape(int B, int C, int H, int OC, int K, int S, int P) {
    ConvShape s = {B, C, H, H, OC, K, S, P};
    return s;
}

static size_t conv_params(ParamSet *ps, const char *name, int OC, int C, int K) {
    int shape[4] = {OC, C, K, K};
    return params_add(ps, name, 4, shape, 1, INIT_UNIFORM_FANIN, (float)(C * K * K));
}
static size_t bias_params(ParamSet *ps, const char *name, int n, int fan_in) {
    int shape[1] = {n};
    return params_add(ps, name, 1, shape, 1, INIT_UNIFORM_FANIN, (float)fan_in);
}
static size_t vec_params(ParamSet *ps, const char *name, int n, int trainable, ParamInit init) {
    int shape[1] = {n};
    return params_add(ps, name, 1, shape, trainable, init, 0.0f);
}

#define PD(ps, off) ((ps).data + (off))
#define PG(ps, off) ((ps).grad ? (ps).grad + (off) : NULL)

/* ---------------------------------------------------------- generator */

static void gen_widths(const ModelConfig *c, int *w) {
    w[0] = c->gen_width; w[1] = 2 * c->gen_width; w[2] = 4 * c->gen_width; w[3] = c->gen_res_ch;
}

/* Decoder FiLM: level k's gamma and beta (w[k] each) at dec_mod_offset(k);
 * dec_mod_size in all, per image (0 without the modulated decoder). */
static int dec_mod_offset(const ModelConfig *c, int k) {
    int w[GEN_LEVELS], off = 0;
    gen_widths(c, w);
    for (int j = 0; j < k; j++) off += 2 * w[j];
    return off;
}
static int dec_mod_size(const ModelConfig *c) { return c->gen_dec_film ? dec_mod_offset(c, GEN_LEVELS - 1) : 0; }

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
    if (cfg->gen_dec_film) {
        /* zero: a modulated decoder starts as the plain one exactly, so that a
         * model warm-started from one without it begins where that one was */
        int dm[2] = {dec_mod_size(cfg), cfg->gen_hidden};
        g->dec_mod_w = params_add(ps, "dec_film.w", 2, dm, 1, INIT_ZERO, 0.0f);
        g->dec_mod_b = vec_params(ps, "dec_film.b", dm[0], 1, INIT_ZERO);
    }
    if (cfg->gen_refine) {
        g->refine_w1 = conv_params(ps, "refine.conv1.w", cfg->gen_refine, w[0] + 4, 3);
        /* zero: the block starts as the identity, so that a generator that gains
         * it (warm-started from one without) begins where that one was */
        int rshape[4] = {w[0], cfg->gen_refine, 3, 3};
        g->refine_w2 = params_add(ps, "refine.conv2.w", 4, rshape, 1, INIT_ZERO, 0.0f);
    }
    int oshape[4] = {3, w[0], 3, 3};
    /* small output weights: the delta starts near zero, the output near the input */
    g->out_w = params_add(ps, "out.w", 4, oshape, 1, INIT_NORMAL, 1e-3f);
    g->out_b = vec_params(ps, "out.b", 3, 1, INIT_ZERO);
    return 0;
}

int gen_in_bottleneck(const Generator *g, size_t offset) {
    if (offset == g->code_w || offset == g->mlp1_w || offset == g->mlp1_b || offset == g->mlp2_w || offset == g->mlp2_b)
        return 1;
    for (int i = 0; i < g->cfg.gen_nres; i++)
        if (offset == g->res_w[i][0] || offset == g->res_w[i][1]) return 1;
    return 0;
}

/* One convolution's weights [O2, I2, K, K] from a narrower one's [O, I, K,
 * K], Net2Net's widening: output channel o copies old channel o % O, and an
 * input channel of a segment that grew by a factor f (the segments are the
 * parts of a concatenated input) copies its old channel's weights divided by
 * f, so that a layer reading a widened one sums to what it did. */
static void widen_conv(float *dst, int O2, const float *src, int O, int nseg, const int *in_old, const int *in_new, int KK) {
    int I = 0, I2 = 0;
    for (int s = 0; s < nseg; s++) I += in_old[s], I2 += in_new[s];
    for (int o = 0; o < O2; o++)
        for (int s = 0, bo = 0, bn = 0; s < nseg; bo += in_old[s], bn += in_new[s], s++)
            for (int p = 0; p < in_new[s]; p++) {
                const float *from = src + ((size_t)(o % O) * I + bo + p % in_old[s]) * KK;
                float *to = dst + ((size_t)o * I2 + bn + p) * KK, scale = (float)in_old[s] / in_new[s];
                for (int k = 0; k < KK; k++) to[k] = from[k] * scale;
            }
}

/* Copies receive the same gradient and (Adam being blind to its scale) the
 * same steps: they would stay copies and the width go unused. Noise of a
 * fraction of the layer's spread on the new copies (channels O..O2) tells
 * them apart. per: weights per output channel. */
static void jitter_copies(float *wt, int O, int O2, size_t per, float noise, Rng *rng) {
    double ss = 0;
    for (size_t q = 0; q < (size_t)O * per; q++) ss += (double)wt[q] * wt[q];
    float sd = noise * (float)sqrt(ss / ((double)O * per));
    for (size_t q = (size_t)O * per; q < (size_t)O2 * per; q++) wt[q] += sd * rng_normal(rng);
}

int gen_widen(Generator *dst, const Generator *src, float noise, Rng *rng, Err *e) {
    const ModelConfig *c = &src->cfg, *d = &dst->cfg;
    ModelConfig want = *c;
    want.gen_width = d->gen_width;
    want.est_width = d->est_width;
    if (model_config_match(&want, d, "the generator to widen", e)) return -1;
    if (d->gen_width < c->gen_width)
        return err_set(e, "cannot narrow a generator from width %d to %d: it can only be widened", c->gen_width, d->gen_width);
    if (d->gen_width % c->gen_width)
        return err_set(e, "cannot widen a generator from width %d to %d: not a whole multiple", c->gen_width, d->gen_width);
    if (c->gen_dec_film) return err_set(e, "cannot widen a generator with a modulated decoder (gen_dec_film)");
    int w[GEN_LEVELS], v[GEN_LEVELS], r = c->gen_res_ch, K = 9;
    gen_widths(c, w);
    gen_widths(d, v);
    const float *S = src->ps.data;
    float *D = dst->ps.data;
    for (int i = 0; i < dst->ps.count; i++) {
        const ParamTensor *t = &dst->ps.t[i], *f = params_find(&src->ps, t->name);
        if (f && f->size == t->size) memcpy(D + t->offset, S + f->offset, sizeof(float) * t->size);
    }
    for (int l = 0; l < GEN_LEVELS; l++) {
        int io[1] = {l ? w[l - 1] : 4}, in[1] = {l ? v[l - 1] : 4};
        widen_conv(D + dst->enc_w[l], v[l], S + src->enc_w[l], w[l], 1, io, in, K);
        jitter_copies(D + dst->enc_w[l], w[l], v[l], (size_t)in[0] * K, noise, rng);
    }
    for (int k = GEN_LEVELS - 2; k >= 0; k--) {
        int last = k == GEN_LEVELS - 2, io[2] = {last ? r : w[k + 1], w[k]}, in[2] = {last ? r : v[k + 1], v[k]};
        widen_conv(D + dst->dec_w[k], v[k], S + src->dec_w[k], w[k], 2, io, in, K);
        jitter_copies(D + dst->dec_w[k], w[k], v[k], (size_t)(in[0] + in[1]) * K, noise, rng);
    }
    if (c->gen_refine) {
        int io[2] = {w[0], 4}, in[2] = {v[0], 4}, W = c->gen_refine;
        widen_conv(D + dst->refine_w1, W, S + src->refine_w1, W, 2, io, in, K);
        widen_conv(D + dst->refine_w2, v[0], S + src->refine_w2, w[0], 1, &W, &W, K);
        jitter_copies(D + dst->refine_w2, w[0], v[0], (size_t)W * K, noise, rng);
    }
    int io[1] = {w[0]}, in[1] = {v[0]};
    widen_conv(D + dst->out_w, 3, S + src->out_w, 3, 1, io, in, K);
    return 0;
}

static void gen_layout(const Generator *g, GenActs *a, Arena *act, Arena *grd) {
    const ModelConfig *c = &g->cfg;
    int B = a->B, G = c->groups, H = c->res, HW = H * H, r = c->gen_res_ch, w[GEN_LEVELS];
    gen_widths(c, w);
    a->groupw = take(act, (size_t)B * G);
    a->emb = take(act, (size_t)B * HW);
    a->in0 = take(act, (size_t)B * 4 * HW);
    a->din0 = gtake(grd, (size_t)B * 4 * HW);
    int cin = 4, h = H;
    for (int l = 0; l < GEN_LEVELS; l++) {
        ConvBlock *cb = &a->enc[l];
        cb->s = conv_shape(B, cin, h, w[l], 3, l ? 2 : 1, 1);
        cb->OH = cb->OW = conv_out_size(h, 3, l ? 2 : 1, 1);
        convblock_layout(cb, 0, act, grd);
        cin = w[l];
        h = cb->OH;
    }
    int nmod = c->gen_nres * 4 * r, hb = h;
    a->pooled = take(act, (size_t)B * r); a->dpooled = gtake(grd, (size_t)B * r);
    a->code = take(act, (size_t)B * c->gen_code); a->dcode = gtake(grd, (size_t)B * c->gen_code);
    a->h0 = take(act, (size_t)B * (c->gen_code + r)); a->dh0 = gtake(grd, (size_t)B * (c->gen_code + r));
    a->h1 = take(act, (size_t)B * c->gen_hidden); a->dh1 = gtake(grd, (size_t)B * c->gen_hidden);
    a->h1r = take(act, (size_t)B * c->gen_hidden); a->dh1r = gtake(grd, (size_t)B * c->gen_hidden);
    a->mod = take(act, (size_t)B * nmod); a->dmod = gtake(grd, (size_t)B * nmod);
    if (c->gen_dec_film) {
        size_t ndm = (size_t)B * dec_mod_size(c);
        a->dec_mod = take(act, ndm); a->ddec_mod = gtake(grd, ndm);
    }
    size_t nb = (size_t)B * r * hb * hb, ns = (size_t)B * r;
    for (int i = 0; i < c->gen_nres; i++) {
        a->res[i].t1 = take(act, nb); a->res[i].n1 = take(act, nb); a->res[i].m1 = take(act, nb);
        a->res[i].r1 = take(act, nb); a->res[i].t2 = take(act, nb); a->res[i].n2 = take(act, nb);
        a->res[i].m2 = take(act, nb); a->res[i].out = take(act, nb);
        a->res[i].mean1 = take(act, ns); a->res[i].rstd1 = take(act, ns);
        a->res[i].mean2 = take(act, ns); a->res[i].rstd2 = take(act, ns);
        a->res[i].dt1 = gtake(grd, nb); a->res[i].dn1 = gtake(grd, nb); a->res[i].dm1 = gtake(grd, nb);
        a->res[i].dr1 = gtake(grd, nb); a->res[i].dt2 = gtake(grd, nb); a->res[i].dn2 = gtake(grd, nb);
        a->res[i].dm2 = gtake(grd, nb); a->res[i].dout = gtake(grd, nb);
    }
    for (int k = GEN_LEVELS - 2; k >= 0; k--) {
        int below = k == GEN_LEVELS - 2 ? r : w[k + 1], hk = H >> k;
        size_t nup = (size_t)B * below * hk * hk, ncat = (size_t)B * (below + w[k]) * hk * hk;
        a->dec[k].up = take(act, nup); a->dec[k].dup = gtake(grd, nup);
        a->dec[k].cat = take(act, ncat); a->dec[k].dcat = gtake(grd, ncat);
        ConvBlock *cb = &a->dec[k].cb;
        cb->s = conv_shape(B, below + w[k], hk, w[k], 3, 1, 1);
        cb->OH = cb->OW = hk;
        convblock_layout(cb, c->gen_dec_film, act, grd);
    }
    if (c->gen_refine) {
        size_t ncat = (size_t)B * (w[0] + 4) * HW, nout = (size_t)B * w[0] * HW;
        a->rcat = take(act, ncat); a->drcat = gtake(grd, ncat);
        a->refine.s = conv_shape(B, w[0] + 4, H, c->gen_refine, 3, 1, 1);
        a->refine.OH = a->refine.OW = H;
        convblock_layout(&a->refine, 0, act, grd);
        a->refine2_s = conv_shape(B, c->gen_refine, H, w[0], 3, 1, 1);
        a->rconv = take(act, nout); a->drconv = gtake(grd, nout);
        a->rout = take(act, nout); a->drout = gtake(grd, nout);
    }
    a->out_s = conv_shape(B, w[0], H, 3, 3, 1, 1);
    a->delta = take(act, (size_t)B * 3 * HW);
    a->y = take(act, (size_t)B * 3 * HW);
    a->ddelta = gtake(grd, (size_t)B * 3 * HW);
}

size_t gen_scratch_floats(const Generator *g, int B) {
    GenActs a;
    memset(&a, 0, sizeof(a));
    a.B = B;
    Arena A = {0};
    gen_layout(g, &a, &A, NULL);
    size_t m = conv2d_scratch_floats(a.out_s);
    for (int l = 0; l < GEN_LEVELS; l++) {
        size_t n = conv2d_scratch_floats(a.enc[l].s);
        if (n > m) m = n;
    }
    for (int k = 0; k < GEN_LEVELS - 1; k++) {
        size_t n = conv2d_scratch_floats(a.dec[k].cb.s);
        if (n > m) m = n;
    }
    if (g->cfg.gen_refine) {
        size_t n1 = conv2d_scratch_floats(a.refine.s), n2 = conv2d_scratch_floats(a.refine2_s);
        if (n1 > m) m = n1;
        if (n2 > m) m = n2;
    }
    ConvShape rs = conv_shape(B, g->cfg.gen_res_ch, g->cfg.res / 8, g->cfg.gen_res_ch, 3, 1, 1);
    size_t n = conv2d_scratch_floats(rs);
    return n > m ? n : m;
}

int gen_acts_alloc(const Generator *g, GenActs *a, int B, int training, float *scratch) {
    memset(a, 0, sizeof(*a));
    a->B = B;
    a->scratch = scratch;
    ALLOC_CONTEXT(a, gen_layout(g, a, act, grd), training);
    return 0;
}

void gen_acts_free(GenActs *a) { free(a->arena); free(a->grad_arena); a->arena = a->grad_arena = NULL; }

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
        convblock_forward(&a->enc[l], inp, PD(*ps, g->enc_w[l]), NULL, 0, a->scratch);
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
    int ndm = dec_mod_size(c);
    if (ndm) linear_forward(a->dec_mod, a->h1r, PD(*ps, g->dec_mod_w), PD(*ps, g->dec_mod_b), B, c->gen_hidden, ndm);
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
        const float *dmod = ndm ? a->dec_mod + dec_mod_offset(c, k) : NULL;
        convblock_forward(&a->dec[k].cb, a->dec[k].cat, PD(*ps, g->dec_w[k]), dmod, ndm, a->scratch);
        inp = a->dec[k].cb.act;
        below = a->dec[k].cb.s.OC;
    }
    if (c->gen_refine) {
        int w0 = a->dec[0].cb.s.OC;
        concat_forward(a->rcat, inp, a->in0, B, w0, 4, HW);
        convblock_forward(&a->refine, a->rcat, PD(*ps, g->refine_w1), NULL, 0, a->scratch);
        conv2d_forward(a->rconv, a->refine.act, PD(*ps, g->refine_w2), NULL, a->scratch, a->refine2_s);
        residual_forward(a->rout, inp, a->rconv, (size_t)B * w0 * HW);
        inp = a->rout;
    }
    conv2d_forward(a->delta, inp, PD(*ps, g->out_w), PD(*ps, g->out_b), a->scratch, a->out_s);
    residual_forward(a->y, x, a->delta, (size_t)B * 3 * HW);
}

void gen_backward(Generator *g, GenActs *a, const float *dy, float *dx) {
    const ModelConfig *c = &g->cfg;
    ParamSet *ps = &g->ps;
    int B = a->B, G = c->groups, HW = c->res * c->res, r = c->gen_res_ch, nres = c->gen_nres;
    int nmod = nres * 4 * r, L = GEN_LEVELS, ndm = dec_mod_size(c);
    memset(a->grad_arena, 0, sizeof(float) * a->grad_floats);
    size_t nimg = (size_t)B * 3 * HW;
    residual_backward(dx, a->ddelta, dy, nimg);
    int refine = c->gen_refine > 0, w0 = a->dec[0].cb.s.OC;
    conv2d_backward(refine ? a->drout : a->dec[0].cb.dact, PG(*ps, g->out_w), PG(*ps, g->out_b), a->ddelta,
                    refine ? a->rout : a->dec[0].cb.act, PD(*ps, g->out_w), a->scratch, a->out_s);
    if (refine) {
        residual_backward(a->dec[0].cb.dact, a->drconv, a->drout, (size_t)B * w0 * HW);
        conv2d_backward(a->refine.dact, PG(*ps, g->refine_w2), NULL, a->drconv, a->refine.act,
                        PD(*ps, g->refine_w2), a->scratch, a->refine2_s);
        convblock_backward(&a->refine, a->drcat, PG(*ps, g->refine_w1), a->rcat, PD(*ps, g->refine_w1),
                           NULL, NULL, 0, a->scratch);
        concat_backward(a->dec[0].cb.dact, a->din0, a->drcat, B, w0, 4, HW);
    }
    for (int k = 0; k <= L - 2; k++) {
        int hk = c->res >> k, below = a->dec[k].cb.s.C - a->enc[k].s.OC;
        const float *dmod = ndm ? a->dec_mod + dec_mod_offset(c, k) : NULL;
        convblock_backward(&a->dec[k].cb, a->dec[k].dcat, PG(*ps, g->dec_w[k]), a->dec[k].cat, PD(*ps, g->dec_w[k]),
                           dmod, ndm ? a->ddec_mod + dec_mod_offset(c, k) : NULL, ndm, a->scratch);
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
    if (ndm)
        linear_backward(a->dh1r, PG(*ps, g->dec_mod_w), PG(*ps, g->dec_mod_b), a->ddec_mod, a->h1r, PD(*ps, g->dec_mod_w),
                        B, c->gen_hidden, ndm);
    relu_backward(a->dh1, a->dh1r, a->h1, (size_t)B * c->gen_hidden);
    linear_backward(a->dh0, PG(*ps, g->mlp1_w), PG(*ps, g->mlp1_b), a->dh1, a->h0, PD(*ps, g->mlp1_w), B, c->gen_code + r, c->gen_hidden);
    concat_backward(a->dcode, a->dpooled, a->dh0, B, c->gen_code, r, 1);
    linear_backward(NULL, PG(*ps, g->code_w), NULL, a->dcode, a->groupw, PD(*ps, g->code_w), B, G, c->gen_code);
    avgpool_backward(a->enc[L - 1].dact, a->dpooled, B, r, HWb);
    for (int l = L - 1; l >= 0; l--)
        convblock_backward(&a->enc[l], l ? a->enc[l - 1].dact : a->din0, PG(*ps, g->enc_w[l]),
                           l ? a->enc[l - 1].act : a->in0, PD(*ps, g->enc_w[l]), NULL, NULL, 0, a->scratch);
    /* the input's image channels go to dx, its age channel to the embedding table */
    float *demb = a->dec[0].dup; /* free again: reused as a [B, HW] buffer */
    memset(demb, 0, sizeof(float) * B * HW);
    concat_backward(dx, demb, a->din0, B, 3, 1, HW);
    if (ps->grad) embedchan_backward(PG(*ps, g->emb), demb, a->groupw, B, G, HW);
}

static double conv_flops(ConvShape s) {
    double OH = conv_out_size(s.H, s.K, s.S, s.P), OW = conv_out_size(s.W, s.K, s.S, s.P);
    return 2.0 * s.OC * s.C * s.K * s.K * OH * OW;
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
    if (c->gen_refine)
        f += conv_flops(conv_shape(1, w[0] + 4, c->res, c->gen_refine, 3, 1, 1)) +
             conv_flops(conv_shape(1, c->gen_refine, c->res, w[0], 3, 1, 1));
    f += conv_flops(conv_shape(1, w[0], c->res, 3, 3, 1, 1));
    f += 2.0 * ((double)(c->gen_code + r) * c->gen_hidden + (double)c->gen_hidden * (c->gen_nres * 4 * r + dec_mod_size(c)));
    return f;
}

static void describe_line(FILE *f, const char *name, int C, int H, int W, size_t params) {
    fprintf(f, "  %-40s -> [%4d, %4d, %4d]  %9zu params\n", name, C, H, W, params);
}

static size_t tensor_size(const ParamSet *ps, const char *name) {
    const ParamTensor *t = params_find(ps, name);
    return t ? t->size : 0;
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
    if (c->gen_dec_film)
        describe_line(f, "Same MLP's hidden layer -> decoder FiLM", dec_mod_size(c), 1, 1,
                      tensor_size(&g->ps, "dec_film.w") + tensor_size(&g->ps, "dec_film.b"));
    for (int i = 0; i < c->gen_nres; i++) {
        snprintf(name, sizeof(name), "ResBlock(%d) conv-IN-FiLM x2", r);
        snprintf(pn, sizeof(pn), "res%d.conv1.w", i);
        describe_line(f, name, r, h, h, 2 * tensor_size(&g->ps, pn));
    }
    for (int k = GEN_LEVELS - 2; k >= 0; k--) {
        int below = k == GEN_LEVELS - 2 ? r : w[k + 1];
        h = c->res >> k;
        snprintf(name, sizeof(name), "Up2x+skip Conv2d(%d,%d,k3) IN%s LReLU", below + w[k], w[k],
                 c->gen_dec_film ? " FiLM" : "");
        snprintf(pn, sizeof(pn), "dec%d.w", k);
        describe_line(f, name, w[k], h, h, tensor_size(&g->ps, pn));
    }
    if (c->gen_refine) {
        snprintf(name, sizeof(name), "+ Conv2d(%d+4,%d,k3) IN LReLU Conv2d(%d,%d,k3)", w[0], c->gen_refine, c->gen_refine, w[0]);
        describe_line(f, name, w[0], c->res, c->res,
                      tensor_size(&g->ps, "refine.conv1.w") + tensor_size(&g->ps, "refine.conv2.w"));
    }
    snprintf(name, sizeof(name), "Conv2d(%d,3,k3) delta; y = x + delta", w[0]);
    describe_line(f, name, 3, c->res, c->res, tensor_size(&g->ps, "out.w") + tensor_size(&g->ps, "out.b"));
    fprintf(f, "Generator total: %zu parameters, %.3f GFLOPs per image\n",
            params_trainable_count(&g->ps), gen_flops(g) / 1e9);
}

/* ------------------------------------------------------ discriminator */

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
            snprintf(name, sizeof(name), "bn%d.weight", l);
            d->bn_g[l] = vec_params(ps, name, oc, 1, INIT_ONE);
            snprintf(name, sizeof(name), "bn%d.bias", l);
            d->bn_b[l] = vec_params(ps, name, oc, 1, INIT_ZERO);
            snprintf(name, sizeof(name), "bn%d.running_mean", l);
            d->bn_rm[l] = vec_params(ps, name, oc, 0, INIT_ZERO);
            snprintf(name, sizeof(name), "bn%d.running_var", l);
            d->bn_rv[l] = vec_params(ps, name, oc, 0, INIT_ONE);
        }
        cin = oc;
    }
    return 0;
}

static int disc_has_bn(int l) { return l >= 1 && l <= 3; }

static void disc_layout(const Discriminator *d, DiscActs *a, Arena *act, Arena *grd) {
    int B = a->B, G = d->cfg.groups, HW = d->cfg.res * d->cfg.res;
    a->gw_in = take(act, (size_t)B * G); a->gw_out = take(act, (size_t)B * G);
    a->emb_in = take(act, (size_t)B * HW); a->emb_out = take(act, (size_t)B * HW);
    a->in = take(act, (size_t)B * d->in_ch * HW); a->din = take(act, (size_t)B * d->in_ch * HW);
    for (int l = 0; l < DISC_LAYERS; l++) {
        int oh = conv_out_size(d->s[l].H, 4, d->s[l].S, 1);
        size_t n = (size_t)B * d->s[l].OC * oh * oh, nc = d->s[l].OC;
        a->conv[l] = take(act, n); a->dconv[l] = take(act, n);
        a->act[l] = l < DISC_LAYERS - 1 ? take(act, n) : a->conv[l];
        a->dact[l] = l < DISC_LAYERS - 1 ? take(act, n) : a->dconv[l];
        if (disc_has_bn(l)) {
            a->norm[l] = take(act, n); a->dnorm[l] = take(act, n);
            a->mean[l] = take(act, nc); a->rstd[l] = take(act, nc);
        }
        a->out_hw = oh;
    }
    (void)grd;
}

size_t disc_scratch_floats(const Discriminator *d, int B) {
    size_t m = 0;
    for (int l = 0; l < DISC_LAYERS; l++) {
        ConvShape s = d->s[l];
        s.B = B;
        size_t n = conv2d_scratch_floats(s);
        if (n > m) m = n;
    }
    return m;
}

int disc_acts_alloc(const Discriminator *d, DiscActs *a, int B, float *scratch) {
    memset(a, 0, sizeof(*a));
    a->B = B;
    a->scratch = scratch;
    /* the discriminator's gradients live beside its activations: it is
     * always run forward then backward before its next use */
    ALLOC_CONTEXT(a, disc_layout(d, a, act, grd), 0);
    return 0;
}

void disc_acts_free(DiscActs *a) { free(a->arena); free(a->grad_arena); a->arena = a->grad_arena = NULL; }

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

/* ------------------------------------------------------ age estimator */

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
        snprintf(name, sizeof(name), "est.bn%d.weight", l);
        m->bn_g[l] = vec_params(ps, name, oc, 1, INIT_ONE);
        snprintf(name, sizeof(name), "est.bn%d.bias", l);
        m->bn_b[l] = vec_params(ps, name, oc, 1, INIT_ZERO);
        snprintf(name, sizeof(name), "est.bn%d.running_mean", l);
        m->bn_rm[l] = vec_params(ps, name, oc, 0, INIT_ZERO);
        snprintf(name, sizeof(name), "est.bn%d.running_var", l);
        m->bn_rv[l] = vec_params(ps, name, oc, 0, INIT_ONE);
        cin = oc;
    }
    m->feat = cin;
    int fshape[2] = {cfg->groups, cin};
    m->fc_w = params_add(ps, "est.fc.w", 2, fshape, 1, INIT_UNIFORM_FANIN, (float)cin);
    m->fc_b = bias_params(ps, "est.fc.b", cfg->groups, cin);
    return 0;
}

static void est_layout(const Estimator *m, EstActs *a, Arena *act, Arena *grd) {
    int B = a->B;
    if (m->cfg.est_blur) {
        size_t n = (size_t)B * 3 * m->cfg.res * m->cfg.res;
        a->blur = take(act, n); a->dblur = gtake(grd, n);
    }
    for (int l = 0; l < EST_LEVELS; l++) {
        int oh = conv_out_size(m->s[l].H, 3, 2, 1);
        size_t n = (size_t)B * m->s[l].OC * oh * oh, nc = m->s[l].OC;
        a->conv[l] = take(act, n); a->norm[l] = take(act, n); a->act[l] = take(act, n);
        a->mean[l] = take(act, nc); a->rstd[l] = take(act, nc);
        a->dconv[l] = gtake(grd, n); a->dnorm[l] = gtake(grd, n); a->dact[l] = gtake(grd, n);
    }
    a->pooled = take(act, (size_t)B * m->feat); a->dpooled = gtake(grd, (size_t)B * m->feat);
    a->logits = take(act, (size_t)B * m->cfg.groups); a->probs = take(act, (size_t)B * m->cfg.groups);
    a->dlogits = gtake(grd, (size_t)B * m->cfg.groups);
}

size_t est_scratch_floats(const Estimator *m, int B) {
    size_t mx = 0;
    for (int l = 0; l < EST_LEVELS; l++) {
        ConvShape s = m->s[l];
        s.B = B;
        size_t n = conv2d_scratch_floats(s);
        if (n > mx) mx = n;
    }
    return mx;
}

int est_acts_alloc(const Estimator *m, EstActs *a, int B, int training, float *scratch) {
    memset(a, 0, sizeof(*a));
    a->B = B;
    a->scratch = scratch;
    ALLOC_CONTEXT(a, est_layout(m, a, act, grd), training);
    return 0;
}

void est_acts_free(EstActs *a) { free(a->arena); free(a->grad_arena); a->arena = a->grad_arena = NULL; }

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
    memset(a->grad_arena, 0, sizeof(float) * a->grad_floats);
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
