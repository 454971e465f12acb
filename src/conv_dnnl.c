/* conv2d natively with oneDNN: its convolution primitives (the kernels
 * behind PyTorch's CPU convolutions) or the im2col + sgemm path of layers.c,
 * whichever is faster for the shape (see conv_dnnl.h). Any shape oneDNN
 * declines takes the im2col path.
 *
 * The caller's plain NCHW / OIHW tensors are reordered into the layouts the
 * primitives choose (blocked by 16 channels on AVX-512) and back. Primitives
 * and their blocked buffers are made once per shape and reused every step:
 * creating them costs milliseconds, and fresh pages cost more. Gradients
 * accumulate, as everywhere in the engine: results come back through a
 * reorder with a sum post-op. */
#ifdef REAGE_DNNL
#include "conv_dnnl.h"
#include <dnnl.h>
#include <float.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* One tensor as the caller holds it and as a primitive wants it. */
typedef struct {
    dnnl_memory_t user;       /* the caller's array; its handle is set per call */
    dnnl_memory_t inner;      /* the primitive's layout (the same object when no reorder is needed) */
    dnnl_primitive_t reorder; /* user -> inner for inputs, inner -> user for outputs */
} Slot;

typedef struct {
    ConvShape s;
    int bias;
    int tried_bwd_data, tried_bwd_weights; /* made on first use: a network may never need them */
    dnnl_primitive_desc_t fwd_pd;
    dnnl_primitive_t fwd, bwd_data, bwd_weights;
    Slot f_src, f_wei, f_dst;
    dnnl_memory_t f_bias;
    Slot d_ddst, d_wei, d_dsrc;
    Slot w_src, w_ddst, w_dwei;
    dnnl_memory_t w_dbias;
    float *dbias;
} Plan;

#define MAX_PLANS 96
static Plan plans[MAX_PLANS];
static int nplans, disabled;
static dnnl_engine_t engine;
static dnnl_stream_t stream;
static dnnl_primitive_attr_t attr; /* user-managed scratchpad */

enum { IN, OUT, OUT_ADD };

/* One scratchpad for every primitive, owned here: left to the library, it is
 * allocated afresh on each run (and fresh pages are slow). Calls are serial,
 * so sharing is safe. */
static dnnl_memory_t scratch_mem;
static size_t scratch_bytes;
static void *scratch_buf;

static dnnl_primitive_attr_t user_scratchpad(void) {
    dnnl_primitive_attr_t attr;
    if (dnnl_primitive_attr_create(&attr)) return NULL;
    if (dnnl_primitive_attr_set_scratchpad_mode(attr, dnnl_scratchpad_mode_user)) {
        dnnl_primitive_attr_destroy(attr);
        return NULL;
    }
    return attr;
}

/* Makes the primitive and grows the shared scratchpad to what it needs. */
static int make_primitive(dnnl_primitive_t *prim, const_dnnl_primitive_desc_t pd) {
    const dnnl_memory_desc_t *md = dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0);
    size_t need = md ? dnnl_memory_desc_get_size(md) : 0;
    if (need > scratch_bytes) {
        void *grown = realloc(scratch_buf, need);
        if (!grown) return -1;
        scratch_buf = grown;
        scratch_bytes = need;
        dnnl_memory_desc_t flat;
        dnnl_dims_t dims = {(dnnl_dim_t)need};
        dnnl_memory_desc_init_by_tag(&flat, 1, dims, dnnl_u8, dnnl_x);
        if (scratch_mem) dnnl_memory_destroy(scratch_mem);
        if (dnnl_memory_create(&scratch_mem, &flat, engine, scratch_buf)) { scratch_mem = NULL; scratch_bytes = 0; return -1; }
    }
    return dnnl_primitive_create(prim, pd) ? -1 : 0;
}

/* Runs a convolution primitive with the shared scratchpad as its last argument. */
static void run_conv(dnnl_primitive_t p, int n, dnnl_exec_arg_t *args) {
    args[n] = (dnnl_exec_arg_t){DNNL_ARG_SCRATCHPAD, scratch_mem};
    dnnl_primitive_execute(p, stream, n + (scratch_mem != NULL), args);
}

static int slot_make(Slot *sl, const dnnl_memory_desc_t *user_md, const dnnl_memory_desc_t *inner_md, int dir) {
    if (dnnl_memory_create(&sl->user, user_md, engine, DNNL_MEMORY_NONE)) return -1;
    if (dir != OUT_ADD && dnnl_memory_desc_equal(user_md, inner_md)) {
        sl->inner = sl->user;
        return 0;
    }
    if (dnnl_memory_create(&sl->inner, inner_md, engine, DNNL_MEMORY_ALLOCATE)) return -1;
    dnnl_primitive_attr_t attr = NULL;
    dnnl_post_ops_t po = NULL;
    if (dir == OUT_ADD) {
        if (dnnl_primitive_attr_create(&attr) || dnnl_post_ops_create(&po) || dnnl_post_ops_append_sum(po, 1.0f) ||
            dnnl_primitive_attr_set_post_ops(attr, po))
            return -1;
    }
    dnnl_primitive_desc_t rpd;
    int rc = dir == IN ? dnnl_reorder_primitive_desc_create(&rpd, user_md, engine, inner_md, engine, attr)
                       : dnnl_reorder_primitive_desc_create(&rpd, inner_md, engine, user_md, engine, attr);
    if (po) dnnl_post_ops_destroy(po);
    if (attr) dnnl_primitive_attr_destroy(attr);
    if (rc) return -1;
    rc = dnnl_primitive_create(&sl->reorder, rpd);
    dnnl_primitive_desc_destroy(rpd);
    return rc ? -1 : 0;
}

static void run(dnnl_primitive_t p, int n, const dnnl_exec_arg_t *args) { dnnl_primitive_execute(p, stream, n, args); }

static void slot_bind(Slot *sl, const float *data) { dnnl_memory_set_data_handle(sl->user, (void *)data); }

static void slot_in(Slot *sl, const float *data) {
    slot_bind(sl, data);
    if (sl->reorder) run(sl->reorder, 2, (dnnl_exec_arg_t[]){{DNNL_ARG_FROM, sl->user}, {DNNL_ARG_TO, sl->inner}});
}

static void slot_out(Slot *sl) {
    if (sl->reorder) run(sl->reorder, 2, (dnnl_exec_arg_t[]){{DNNL_ARG_FROM, sl->inner}, {DNNL_ARG_TO, sl->user}});
}

/* A shape's tensors in the caller's plain layouts and as "any" (the
 * primitive's choice), with strides and padding. */
typedef struct {
    dnnl_memory_desc_t src, wei, bias, dst, any_src, any_wei, any_dst;
    dnnl_dims_t strides, pad_l, pad_r;
} Descs;

static void descs_of(ConvShape s, Descs *d) {
    int OH = conv_out_size(s.H, s.K, s.S, s.P), OW = conv_out_size(s.W, s.K, s.S, s.P);
    dnnl_dims_t ds = {s.B, s.C, s.H, s.W}, dw = {s.OC, s.C, s.K, s.K}, db = {s.OC}, dd = {s.B, s.OC, OH, OW};
    dnnl_memory_desc_init_by_tag(&d->src, 4, ds, dnnl_f32, dnnl_nchw);
    dnnl_memory_desc_init_by_tag(&d->wei, 4, dw, dnnl_f32, dnnl_oihw);
    dnnl_memory_desc_init_by_tag(&d->bias, 1, db, dnnl_f32, dnnl_x);
    dnnl_memory_desc_init_by_tag(&d->dst, 4, dd, dnnl_f32, dnnl_nchw);
    dnnl_memory_desc_init_by_tag(&d->any_src, 4, ds, dnnl_f32, dnnl_format_tag_any);
    dnnl_memory_desc_init_by_tag(&d->any_wei, 4, dw, dnnl_f32, dnnl_format_tag_any);
    dnnl_memory_desc_init_by_tag(&d->any_dst, 4, dd, dnnl_f32, dnnl_format_tag_any);
    d->strides[0] = d->strides[1] = s.S;
    d->pad_l[0] = d->pad_l[1] = s.P;
    /* the far side's padding as PyTorch implies it (a stride can leave it short) */
    d->pad_r[0] = (OH - 1) * s.S + s.K - s.H - s.P;
    d->pad_r[1] = (OW - 1) * s.S + s.K - s.W - s.P;
}

static const dnnl_memory_desc_t *md_of(const_dnnl_primitive_desc_t pd, dnnl_query_t what) {
    return dnnl_primitive_desc_query_md(pd, what, 0);
}

static int make_fwd(Plan *p) {
    Descs d;
    descs_of(p->s, &d);
    dnnl_convolution_desc_t cd;
    if (dnnl_convolution_forward_desc_init(&cd, dnnl_forward_training, dnnl_convolution_direct, &d.any_src, &d.any_wei,
                                           p->bias ? &d.bias : NULL, &d.any_dst, d.strides, d.pad_l, d.pad_r) ||
        dnnl_primitive_desc_create(&p->fwd_pd, &cd, attr, engine, NULL) ||
        make_primitive(&p->fwd, p->fwd_pd))
        return -1;
    if (slot_make(&p->f_src, &d.src, md_of(p->fwd_pd, dnnl_query_src_md), IN) ||
        slot_make(&p->f_wei, &d.wei, md_of(p->fwd_pd, dnnl_query_weights_md), IN) ||
        slot_make(&p->f_dst, &d.dst, md_of(p->fwd_pd, dnnl_query_dst_md), OUT))
        return -1;
    if (p->bias && dnnl_memory_create(&p->f_bias, &d.bias, engine, DNNL_MEMORY_NONE)) return -1;
    return 0;
}

static int make_bwd_data(Plan *p) {
    Descs d;
    descs_of(p->s, &d);
    dnnl_convolution_desc_t cd;
    dnnl_primitive_desc_t pd;
    if (dnnl_convolution_backward_data_desc_init(&cd, dnnl_convolution_direct, &d.any_src, &d.any_wei, &d.any_dst,
                                                 d.strides, d.pad_l, d.pad_r) ||
        dnnl_primitive_desc_create(&pd, &cd, attr, engine, p->fwd_pd))
        return -1;
    int rc = make_primitive(&p->bwd_data, pd) ||
             slot_make(&p->d_ddst, &d.dst, md_of(pd, dnnl_query_diff_dst_md), IN) ||
             slot_make(&p->d_wei, &d.wei, md_of(pd, dnnl_query_weights_md), IN) ||
             slot_make(&p->d_dsrc, &d.src, md_of(pd, dnnl_query_diff_src_md), OUT_ADD);
    dnnl_primitive_desc_destroy(pd);
    return rc ? -1 : 0;
}

static int make_bwd_weights(Plan *p) {
    Descs d;
    descs_of(p->s, &d);
    dnnl_convolution_desc_t cd;
    dnnl_primitive_desc_t pd;
    if (dnnl_convolution_backward_weights_desc_init(&cd, dnnl_convolution_direct, &d.any_src, &d.any_wei,
                                                    p->bias ? &d.bias : NULL, &d.any_dst, d.strides, d.pad_l, d.pad_r) ||
        dnnl_primitive_desc_create(&pd, &cd, attr, engine, p->fwd_pd))
        return -1;
    int rc = make_primitive(&p->bwd_weights, pd) ||
             slot_make(&p->w_src, &d.src, md_of(pd, dnnl_query_src_md), IN) ||
             slot_make(&p->w_ddst, &d.dst, md_of(pd, dnnl_query_diff_dst_md), IN) ||
             slot_make(&p->w_dwei, &d.wei, md_of(pd, dnnl_query_diff_weights_md), OUT_ADD);
    dnnl_primitive_desc_destroy(pd);
    if (rc) return -1;
    if (p->bias) {
        p->dbias = malloc(sizeof(float) * p->s.OC);
        if (!p->dbias || dnnl_memory_create(&p->w_dbias, &d.bias, engine, p->dbias)) return -1;
    }
    return 0;
}

static Plan *plan_for(ConvShape s, int bias) {
    if (disabled) return NULL;
    if (!engine) {
        if (dnnl_engine_create(&engine, dnnl_cpu, 0) || dnnl_stream_create(&stream, engine, dnnl_stream_default_flags) ||
            !(attr = user_scratchpad())) {
            disabled = 1;
            return NULL;
        }
    }
    for (int i = 0; i < nplans; i++)
        if (!memcmp(&plans[i].s, &s, sizeof(s)) && plans[i].bias == bias) return &plans[i];
    if (nplans == MAX_PLANS) return NULL;
    Plan *p = &plans[nplans++];
    memset(p, 0, sizeof(*p));
    p->s = s;
    p->bias = bias;
    if (make_fwd(p)) p->fwd = NULL; /* declined: this shape stays on the im2col path */
    return p;
}

static int onednn_forward(float *out, const float *inp, const float *weight, const float *bias, ConvShape s) {
    Plan *p = plan_for(s, bias != NULL);
    if (!p || !p->fwd) return -1;
    slot_in(&p->f_src, inp);
    slot_in(&p->f_wei, weight);
    slot_bind(&p->f_dst, out);
    if (bias) dnnl_memory_set_data_handle(p->f_bias, (void *)bias);
    dnnl_exec_arg_t args[5] = {{DNNL_ARG_SRC, p->f_src.inner}, {DNNL_ARG_WEIGHTS, p->f_wei.inner},
                               {DNNL_ARG_DST, p->f_dst.inner}, {DNNL_ARG_BIAS, p->f_bias}};
    run_conv(p->fwd, bias ? 4 : 3, args);
    slot_out(&p->f_dst);
    dnnl_stream_wait(stream);
    return 0;
}

static int onednn_backward(float *dinp, float *dweight, float *dbias, const float *dout, const float *inp,
                       const float *weight, int has_bias, ConvShape s) {
    Plan *p = plan_for(s, has_bias);
    if (!p || !p->fwd) return -1;
    if (dinp && !p->tried_bwd_data) { p->tried_bwd_data = 1; if (make_bwd_data(p)) p->bwd_data = NULL; }
    if (dweight && !p->tried_bwd_weights) { p->tried_bwd_weights = 1; if (make_bwd_weights(p)) p->bwd_weights = NULL; }
    if ((dinp && !p->bwd_data) || (dweight && !p->bwd_weights) || (dbias && !dweight)) return -1;
    if (dinp) {
        slot_in(&p->d_ddst, dout);
        slot_in(&p->d_wei, weight);
        slot_bind(&p->d_dsrc, dinp);
        dnnl_exec_arg_t args[4] = {{DNNL_ARG_DIFF_DST, p->d_ddst.inner}, {DNNL_ARG_WEIGHTS, p->d_wei.inner},
                                   {DNNL_ARG_DIFF_SRC, p->d_dsrc.inner}};
        run_conv(p->bwd_data, 3, args);
        slot_out(&p->d_dsrc);
    }
    if (dweight) {
        slot_in(&p->w_src, inp);
        slot_in(&p->w_ddst, dout);
        slot_bind(&p->w_dwei, dweight);
        dnnl_exec_arg_t args[5] = {{DNNL_ARG_SRC, p->w_src.inner}, {DNNL_ARG_DIFF_DST, p->w_ddst.inner},
                                   {DNNL_ARG_DIFF_WEIGHTS, p->w_dwei.inner}, {DNNL_ARG_DIFF_BIAS, p->w_dbias}};
        run_conv(p->bwd_weights, p->bias ? 4 : 3, args);
        slot_out(&p->w_dwei);
    }
    dnnl_stream_wait(stream);
    if (dbias && p->bias)
        for (int oc = 0; oc < s.OC; oc++) dbias[oc] += p->dbias[oc];
    return 0;
}

/* ------------------------------------------------------ choice of path */

enum { FWD, BWD_DATA, BWD_WEIGHTS, DIRECTIONS };
static const char *direction_name[DIRECTIONS] = {"forward", "input-grad", "weight-grad"};

typedef struct {
    ConvShape s;
    int bias;
    signed char onednn[DIRECTIONS]; /* -1 until measured */
    float ms[DIRECTIONS][2];        /* best time of [im2col, oneDNN]; oneDNN's is 0 where it declined */
} Choice;

#define MAX_CHOICES 128
static Choice choices[MAX_CHOICES];
static int nchoices;
static int mode = -1; /* a ConvPathMode once read */
static ConvPathMode program_default = CONV_PATH_ONEDNN;

void conv_path_mode(ConvPathMode m) { mode = m; }
void conv_paths_measure(void) { program_default = CONV_PATH_MEASURE; }

static ConvPathMode path_mode(void) {
    if (mode < 0) {
        const char *env = getenv("REAGE_CONV_PATH");
        mode = !env || !*env               ? program_default
             : !strcmp(env, "measure")     ? CONV_PATH_MEASURE
             : !strcmp(env, "onednn")      ? CONV_PATH_ONEDNN
             : !strcmp(env, "im2col")      ? CONV_PATH_IM2COL
                                           : program_default;
        if (env && *env && strcmp(env, "measure") && strcmp(env, "onednn") && strcmp(env, "im2col"))
            fprintf(stderr, "warning: REAGE_CONV_PATH=%s is not measure, onednn or im2col; ignored\n", env);
    }
    return (ConvPathMode)mode;
}

/* One call's arguments, so that either path can run it again. */
typedef struct {
    float *out, *dinp, *dweight, *dbias;
    const float *inp, *weight, *bias, *dout;
    float *scratch;
    ConvShape s;
} Call;

/* Runs one direction of the call on one path: 0 done, -1 oneDNN declined. */
static int run_path(const Call *c, int dir, int onednn) {
    int has_bias = c->dbias != NULL;
    switch (dir) {
    case FWD:
        if (onednn) return onednn_forward(c->out, c->inp, c->weight, c->bias, c->s);
        conv2d_gemm_forward(c->out, c->inp, c->weight, c->bias, c->scratch, c->s);
        return 0;
    case BWD_DATA:
        if (onednn) return onednn_backward(c->dinp, NULL, NULL, c->dout, c->inp, c->weight, has_bias, c->s);
        conv2d_gemm_backward(c->dinp, NULL, NULL, c->dout, c->inp, c->weight, c->scratch, c->s);
        return 0;
    default:
        if (onednn) return onednn_backward(NULL, c->dweight, c->dbias, c->dout, c->inp, c->weight, has_bias, c->s);
        conv2d_gemm_backward(NULL, c->dweight, c->dbias, c->dout, c->inp, c->weight, c->scratch, c->s);
        return 0;
    }
}

static double now_ms(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e3 + t.tv_nsec * 1e-6;
}

/* What a direction writes: the forward overwrites its output, a backward
 * accumulates, so trial runs of a backward are undone from a copy. */
typedef struct { float *at[2]; float *copy[2]; size_t n[2]; } Saved;

static int save(Saved *v, const Call *c, int dir) {
    memset(v, 0, sizeof(*v));
    if (dir == BWD_DATA) {
        v->at[0] = c->dinp;
        v->n[0] = (size_t)c->s.B * c->s.C * c->s.H * c->s.W;
    } else if (dir == BWD_WEIGHTS) {
        v->at[0] = c->dweight;
        v->n[0] = (size_t)c->s.OC * c->s.C * c->s.K * c->s.K;
        v->at[1] = c->dbias;
        v->n[1] = c->dbias ? (size_t)c->s.OC : 0;
    }
    for (int i = 0; i < 2; i++) {
        if (!v->n[i]) continue;
        if (!(v->copy[i] = malloc(sizeof(float) * v->n[i]))) return -1;
        memcpy(v->copy[i], v->at[i], sizeof(float) * v->n[i]);
    }
    return 0;
}
static void restore(const Saved *v) {
    for (int i = 0; i < 2; i++)
        if (v->copy[i]) memcpy(v->at[i], v->copy[i], sizeof(float) * v->n[i]);
}
static void saved_free(Saved *v) { free(v->copy[0]); free(v->copy[1]); }

/* Times both paths on this very call, alternating (best of 3 each, after a
 * run of each that builds oneDNN's primitive and touches its buffers),
 * leaving the call's outputs as they were. Returns 1 if oneDNN is faster. */
static int measure(const Call *c, int dir, float ms[2]) {
    Saved v;
    if (save(&v, c, dir)) { saved_free(&v); return 1; }
    int onednn = !run_path(c, dir, 1);
    restore(&v);
    run_path(c, dir, 0);
    restore(&v);
    double best[2] = {DBL_MAX, DBL_MAX};
    for (int r = 0; r < 3; r++)
        for (int p = onednn; p >= 0; p--) {
            double t0 = now_ms();
            run_path(c, dir, p);
            double t = now_ms() - t0;
            restore(&v);
            if (t < best[p]) best[p] = t;
        }
    saved_free(&v);
    ms[0] = (float)best[0];
    ms[1] = onednn ? (float)best[1] : 0.0f;
    return onednn && best[1] <= best[0];
}

/* The shape's entry, added unmeasured if new; NULL when the table is full. */
static Choice *choice_for(ConvShape s, int bias) {
    for (int i = 0; i < nchoices; i++)
        if (!memcmp(&choices[i].s, &s, sizeof(s)) && choices[i].bias == bias) return &choices[i];
    if (nchoices == MAX_CHOICES) return NULL;
    Choice *ch = &choices[nchoices++];
    memset(ch, 0, sizeof(*ch));
    ch->s = s;
    ch->bias = bias;
    memset(ch->onednn, -1, sizeof(ch->onednn));
    return ch;
}

static int use_onednn(const Call *c, int dir, int bias) {
    switch (path_mode()) {
    case CONV_PATH_IM2COL: return 0;
    case CONV_PATH_ONEDNN: return 1;
    default: break;
    }
    Choice *ch = choice_for(c->s, bias);
    if (!ch) return 1;
    if (ch->onednn[dir] < 0) ch->onednn[dir] = (signed char)measure(c, dir, ch->ms[dir]);
    return ch->onednn[dir];
}

static void run_direction(const Call *c, int dir, int bias) {
    if (!use_onednn(c, dir, bias) || run_path(c, dir, 1)) run_path(c, dir, 0);
}

void conv2d_forward(float *out, const float *inp, const float *weight,
                    const float *bias, float *scratch, ConvShape s) {
    Call c = {.out = out, .inp = inp, .weight = weight, .bias = bias, .scratch = scratch, .s = s};
    run_direction(&c, FWD, bias != NULL);
}

void conv2d_backward(float *dinp, float *dweight, float *dbias,
                     const float *dout, const float *inp, const float *weight,
                     float *scratch, ConvShape s) {
    Call c = {.dinp = dinp, .dweight = dweight, .dbias = dbias, .dout = dout, .inp = inp, .weight = weight,
              .scratch = scratch, .s = s};
    if (dweight) run_direction(&c, BWD_WEIGHTS, dbias != NULL);
    else if (dbias) conv2d_gemm_backward(NULL, NULL, dbias, dout, inp, weight, scratch, s);
    if (dinp) run_direction(&c, BWD_DATA, dbias != NULL);
}

size_t conv_paths_export(uint32_t *out, size_t max) {
    size_t n = 0;
    for (int i = 0; i < nchoices && n + CONV_PATH_WORDS <= max; i++) {
        const Choice *ch = &choices[i];
        const int w[CONV_PATH_WORDS] = {ch->s.B, ch->s.C, ch->s.H, ch->s.W, ch->s.OC, ch->s.K, ch->s.S, ch->s.P,
                                        ch->bias, ch->onednn[FWD], ch->onednn[BWD_DATA], ch->onednn[BWD_WEIGHTS]};
        for (int k = 0; k < CONV_PATH_WORDS; k++) out[n++] = (uint32_t)w[k];
    }
    return n;
}

void conv_paths_import(const uint32_t *in, size_t n) {
    for (size_t i = 0; i + CONV_PATH_WORDS <= n; i += CONV_PATH_WORDS) {
        int w[CONV_PATH_WORDS];
        for (int k = 0; k < CONV_PATH_WORDS; k++) w[k] = (int)in[i + k];
        Choice *ch = choice_for((ConvShape){w[0], w[1], w[2], w[3], w[4], w[5], w[6], w[7]}, w[8]);
        if (!ch) return;
        for (int d = 0; d < DIRECTIONS; d++) ch->onednn[d] = (signed char)(w[9 + d] < 0 ? -1 : w[9 + d] > 0);
    }
}

void conv_path_report(FILE *f) {
    for (int i = 0; i < nchoices; i++) {
        const Choice *ch = &choices[i];
        ConvShape s = ch->s;
        fprintf(f, "conv B%d %dx%dx%d -> %d k%d s%d p%d%s:", s.B, s.C, s.H, s.W, s.OC, s.K, s.S, s.P,
                ch->bias ? "" : " (no bias)");
        for (int d = 0; d < DIRECTIONS; d++) {
            if (ch->onednn[d] < 0) continue;
            fprintf(f, " %s %s", direction_name[d], ch->onednn[d] ? "onednn" : "im2col");
            if (ch->ms[d][1] > 0) fprintf(f, " (onednn %.1f ms, im2col %.1f)", ch->ms[d][1], ch->ms[d][0]);
            else if (ch->ms[d][0] > 0) fprintf(f, " (oneDNN declined the shape)");
            else fprintf(f, " (from a checkpoint)");
        }
        fprintf(f, "\n");
    }
}
#endif
