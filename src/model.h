/* The Re-Aging GAN: generator, PatchGAN discriminator and age estimator.
 *
 * Each network is a ParamSet (its weights) plus, per batch size, an
 * activation context allocated once and reused every step. Forward passes
 * read inputs and fill the context; backward passes take the gradient of the
 * output, accumulate parameter gradients (when asked) and optionally add the
 * gradient of the image input into a caller's buffer.
 *
 * model_config.c holds the configuration; generator.c, discriminator.c and
 * estimator.c one network each; net_parts.c what they share. */
#ifndef REAGE_MODEL_H
#define REAGE_MODEL_H
#include <stdio.h>
#include "errors.h"
#include "layers.h"
#include "params.h"

#define MAX_GROUPS 16
#define GEN_LEVELS 4 /* encoder scales: 1, 1/2, 1/4, 1/8 */
#define MAX_RES_BLOCKS 8
#define DISC_LAYERS 5
#define EST_LEVELS 5

typedef struct {
    int res;                      /* square image side the networks see */
    int groups;                   /* age groups */
    int group_lo[MAX_GROUPS];     /* first age of each group */
    int group_hi[MAX_GROUPS];     /* last age, inclusive (the last may be 200) */
    int gen_width;                /* encoder width at full resolution */
    int gen_res_ch;               /* bottleneck channels */
    int gen_nres;                 /* residual blocks at the bottleneck */
    int gen_code;                 /* learned age-code size */
    int gen_hidden;               /* hidden width of the age-code MLP */
    int est_width;                /* age estimator's first width */
    int disc_width;               /* PatchGAN's first width (64 in the seed) */
    int disc_pair;                /* 1: the seed's (input, output) pair; 0: output only */
    int est_blur;                 /* 1: the estimator sees its input through blur5 */
} ModelConfig;

/* "key=value" lines describing cfg (the blob and checkpoint header). */
void model_config_text(const ModelConfig *cfg, char *buf, size_t n);
int model_config_parse(ModelConfig *cfg, const char *text, Err *e);
/* Returns 0 when a and b describe the same generator and estimator (the
 * blob's networks), else -1 with the first difference in e. */
int model_config_match(const ModelConfig *file, const ModelConfig *model, const char *what, Err *e);
int model_config_validate(const ModelConfig *cfg, Err *e);
/* Parses "0-9,10-19,...,60+" into the config's groups. */
int parse_groups(ModelConfig *cfg, const char *spec, Err *e);
int age_to_group(const ModelConfig *cfg, int age);
/* Soft group weights for an age in years: two neighbouring groups blended
 * by where the age sits between their centres. */
void age_to_groupw(const ModelConfig *cfg, float age, float *groupw);
float group_center(const ModelConfig *cfg, int g);

/* A network's activations for one batch size, and their gradients, each in
 * one allocation (net_parts.c), made once and reused every step. */
typedef struct {
    float *arena, *grad_arena;
    size_t arena_floats, grad_floats;
} ActsMemory;
void acts_memory_free(ActsMemory *mem);

/* conv + instance norm + leaky ReLU, the generator's building block */
typedef struct {
    ConvShape s;
    size_t w, b;
    int OH, OW;
    float *conv, *norm, *mean, *rstd, *act;
    float *dconv, *dnorm, *dact;
} ConvBlock;

typedef struct {
    ModelConfig cfg;
    ParamSet ps;
    size_t emb;                         /* [G, HW] target-age channel */
    size_t enc_w[GEN_LEVELS], enc_b[GEN_LEVELS];
    size_t code_w;                      /* [code, G] learned group code */
    size_t mlp1_w, mlp1_b, mlp2_w, mlp2_b;
    size_t res_w[MAX_RES_BLOCKS][2], res_b[MAX_RES_BLOCKS][2];
    size_t dec_w[GEN_LEVELS - 1], dec_b[GEN_LEVELS - 1];
    size_t out_w, out_b;
} Generator;

typedef struct {
    int B;
    ActsMemory mem;
    float *scratch;                     /* shared conv workspace, sized for all layers */
    const float *x;                     /* input image, not owned */
    float *groupw, *emb, *in0, *din0;
    ConvBlock enc[GEN_LEVELS];
    float *pooled, *code, *h0, *h1, *h1r, *mod;
    float *dpooled, *dcode, *dh0, *dh1, *dh1r, *dmod;
    struct {
        float *t1, *n1, *mean1, *rstd1, *m1, *r1, *t2, *n2, *mean2, *rstd2, *m2, *out;
        float *dt1, *dn1, *dm1, *dr1, *dt2, *dn2, *dm2, *dout;
    } res[MAX_RES_BLOCKS];
    struct { float *up, *cat, *dup, *dcat; ConvBlock cb; } dec[GEN_LEVELS - 1];
    ConvShape out_s;
    float *delta, *y, *ddelta;
} GenActs;

int gen_build(Generator *g, const ModelConfig *cfg);
int gen_acts_alloc(const Generator *g, GenActs *a, int B, int training, float *scratch);
void gen_acts_free(GenActs *a);
size_t gen_scratch_floats(const Generator *g, int B);
/* y = x + delta(x, target groups); groupw [B,G] (one-hot or blended) */
void gen_forward(const Generator *g, GenActs *a, const float *x, const float *groupw);
/* Adds parameter gradients into g->ps.grad and, if dx, dL/dx into dx. */
void gen_backward(Generator *g, GenActs *a, const float *dy, float *dx);
double gen_flops(const Generator *g);
void gen_describe(const Generator *g, FILE *f);

typedef struct {
    ModelConfig cfg;
    ParamSet ps;
    int in_ch;
    size_t emb_in, emb_out;             /* [G, HW] each */
    ConvShape s[DISC_LAYERS];
    size_t w[DISC_LAYERS], b[DISC_LAYERS];
    size_t bn_g[DISC_LAYERS], bn_b[DISC_LAYERS], bn_rm[DISC_LAYERS], bn_rv[DISC_LAYERS];
} Discriminator;

typedef struct {
    int B;
    ActsMemory mem;
    float *scratch;
    float *gw_in, *gw_out;
    float *emb_in, *emb_out, *in, *din;
    float *conv[DISC_LAYERS], *norm[DISC_LAYERS], *mean[DISC_LAYERS], *rstd[DISC_LAYERS], *act[DISC_LAYERS];
    float *dconv[DISC_LAYERS], *dnorm[DISC_LAYERS], *dact[DISC_LAYERS];
    int out_hw;                         /* side of the patch map */
} DiscActs;

int disc_build(Discriminator *d, const ModelConfig *cfg);
int disc_acts_alloc(const Discriminator *d, DiscActs *a, int B, float *scratch);
void disc_acts_free(DiscActs *a);
size_t disc_scratch_floats(const Discriminator *d, int B);
/* Patch logits [B,1,out_hw,out_hw] in a->conv[DISC_LAYERS-1]. x and gw_in
 * (the input image and its age) are used by the pair discriminator only. */
const float *disc_forward(const Discriminator *d, DiscActs *a, const float *x,
                          const float *gw_in, const float *y, const float *gw_out);
/* param_grads=0 skips the weight gradients (when only dy is wanted). */
void disc_backward(Discriminator *d, DiscActs *a, const float *dlogits,
                   float *dy, int param_grads);
void disc_describe(const Discriminator *d, FILE *f);
double disc_flops(const Discriminator *d); /* forward, one image */

typedef struct {
    ModelConfig cfg;
    ParamSet ps;
    ConvShape s[EST_LEVELS];
    size_t w[EST_LEVELS], b[EST_LEVELS];
    size_t bn_g[EST_LEVELS], bn_b[EST_LEVELS], bn_rm[EST_LEVELS], bn_rv[EST_LEVELS];
    size_t fc_w, fc_b;
    int feat;
} Estimator;

typedef struct {
    int B;
    ActsMemory mem;
    float *scratch;
    int training;
    const float *x;
    float *blur, *dblur;                /* the blurred input (est_blur) and its gradient */
    float *conv[EST_LEVELS], *norm[EST_LEVELS], *mean[EST_LEVELS], *rstd[EST_LEVELS], *act[EST_LEVELS];
    float *dconv[EST_LEVELS], *dnorm[EST_LEVELS], *dact[EST_LEVELS];
    float *pooled, *dpooled, *logits, *probs, *dlogits;
} EstActs;

int est_build(Estimator *m, const ModelConfig *cfg);
int est_acts_alloc(const Estimator *m, EstActs *a, int B, int training, float *scratch);
void est_acts_free(EstActs *a);
size_t est_scratch_floats(const Estimator *m, int B);
/* Logits [B,G]; training=1 uses batch statistics and updates running ones. */
const float *est_forward(const Estimator *m, EstActs *a, const float *x, int training);
void est_backward(Estimator *m, EstActs *a, const float *dlogits, float *dx, int param_grads);
/* Expected age in years under the softmax of the logits. */
float est_age_years(const Estimator *m, const float *logits);
void est_describe(const Estimator *m, FILE *f);
#endif
