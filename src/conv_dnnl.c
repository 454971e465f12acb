/* conv2d through oneDNN's convolution primitives: the kernels behind
 * PyTorch's CPU convolutions, measured faster here than im2col + sgemm (see
 * make bench). Native builds with oneDNN only; everything else, and any
 * shape oneDNN declines, takes the im2col path in layers.c.
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
#include <stdlib.h>
#include <string.h>

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

static int switched_off;
void conv_dnnl_enable(int on) { switched_off = !on; }

static Plan *plan_for(ConvShape s, int bias) {
    if (disabled || switched_off) return NULL;
    if (!engine) {
        const char *env = getenv("REAGE_CONV_GEMM");  /* 1: im2col + sgemm everywhere (for comparisons) */
        if (env && *env == '1') { disabled = 1; return NULL; }
        if (dnnl_engine_create(&engine, dnnl_cpu, 0) || dnnl_stream_create(&stream, engine, dnnl_stream_default_flags) ||
            !(attr = user_scratchpad())) {
            disabled = 1;
            return NULL;
        }
    }
    /* a few output channels over a large map: im2col + sgemm measured faster */
    if (s.OC < 4 && (size_t)conv_out_size(s.H, s.K, s.S, s.P) * conv_out_size(s.W, s.K, s.S, s.P) >= 4096) return NULL;
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

int conv_dnnl_forward(float *out, const float *inp, const float *weight, const float *bias, ConvShape s) {
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

int conv_dnnl_backward(float *dinp, float *dweight, float *dbias, const float *dout, const float *inp,
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
#endif
