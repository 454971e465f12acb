#include "net_parts.h"
#include <stdlib.h>
#include <string.h>

float *arena_take(Arena *a, size_t n) {
    float *p = a->base ? a->base + a->used : NULL;
    a->used += (n + 15) & ~(size_t)15;
    return p;
}

float *arena_take_grad(Arena *grad, size_t n) { return grad ? arena_take(grad, n) : NULL; }

static float *alloc_floats(size_t n) {
    size_t bytes = (sizeof(float) * (n ? n : 1) + 63) & ~(size_t)63;
    float *p = aligned_alloc(64, bytes);
    if (p) memset(p, 0, bytes);
    return p;
}

int acts_memory_alloc(ActsMemory *mem, ActsLayout layout, const void *net, void *acts, int training) {
    Arena act = {0}, grad = {0};
    layout(net, acts, &act, training ? &grad : NULL);
    mem->arena_floats = act.used;
    mem->grad_floats = grad.used;
    mem->arena = alloc_floats(act.used);
    mem->grad_arena = training ? alloc_floats(grad.used) : NULL;
    if (!mem->arena || (training && !mem->grad_arena)) {
        acts_memory_free(mem);
        return -1;
    }
    act = (Arena){mem->arena, 0};
    grad = (Arena){mem->grad_arena, 0};
    layout(net, acts, &act, training ? &grad : NULL);
    return 0;
}

void acts_memory_free(ActsMemory *mem) {
    free(mem->arena);
    free(mem->grad_arena);
    memset(mem, 0, sizeof(*mem));
}

void acts_zero_grads(ActsMemory *mem) {
    if (mem->grad_arena) memset(mem->grad_arena, 0, sizeof(float) * mem->grad_floats);
}

size_t conv_scratch_max(const ConvShape *shapes, int n) {
    size_t m = 0;
    for (int i = 0; i < n; i++) {
        size_t k = conv2d_scratch_floats(shapes[i]);
        if (k > m) m = k;
    }
    return m;
}

ConvShape conv_shape(int B, int C, int H, int OC, int K, int S, int P) {
    ConvShape s = {B, C, H, H, OC, K, S, P};
    return s;
}

size_t conv_params(ParamSet *ps, const char *name, int OC, int C, int K) {
    int shape[4] = {OC, C, K, K};
    return params_add(ps, name, 4, shape, 1, INIT_UNIFORM_FANIN, (float)(C * K * K));
}

size_t bias_params(ParamSet *ps, const char *name, int n, int fan_in) {
    int shape[1] = {n};
    return params_add(ps, name, 1, shape, 1, INIT_UNIFORM_FANIN, (float)fan_in);
}

size_t vec_params(ParamSet *ps, const char *name, int n, int trainable, ParamInit init) {
    int shape[1] = {n};
    return params_add(ps, name, 1, shape, trainable, init, 0.0f);
}

void batchnorm_params(ParamSet *ps, const char *prefix, int l, int n, size_t off[4]) {
    static const char *const part[4] = {"weight", "bias", "running_mean", "running_var"};
    static const ParamInit init[4] = {INIT_ONE, INIT_ZERO, INIT_ZERO, INIT_ONE};
    char name[PARAM_NAME_MAX];
    for (int k = 0; k < 4; k++) {
        snprintf(name, sizeof(name), "%sbn%d.%s", prefix, l, part[k]);
        off[k] = vec_params(ps, name, n, k < 2, init[k]);
    }
}

double conv_flops(ConvShape s) {
    double OH = conv_out_size(s.H, s.K, s.S, s.P), OW = conv_out_size(s.W, s.K, s.S, s.P);
    return 2.0 * s.OC * s.C * s.K * s.K * OH * OW;
}

void describe_line(FILE *f, const char *name, int C, int H, int W, size_t params) {
    fprintf(f, "  %-40s -> [%4d, %4d, %4d]  %9zu params\n", name, C, H, W, params);
}

size_t tensor_size(const ParamSet *ps, const char *name) {
    const ParamTensor *t = params_find(ps, name);
    return t ? t->size : 0;
}

/* conv + instance norm + leaky ReLU */
void convblock_layout(ConvBlock *cb, Arena *act, Arena *grd) {
    size_t n = (size_t)cb->s.B * cb->s.OC * cb->OH * cb->OW, nc = (size_t)cb->s.B * cb->s.OC;
    cb->conv = arena_take(act, n); cb->norm = arena_take(act, n); cb->act = arena_take(act, n);
    cb->mean = arena_take(act, nc); cb->rstd = arena_take(act, nc);
    cb->dconv = arena_take_grad(grd, n); cb->dnorm = arena_take_grad(grd, n); cb->dact = arena_take_grad(grd, n);
}

void convblock_forward(ConvBlock *cb, const float *inp, const float *w, float *scratch) {
    int HW = cb->OH * cb->OW, B = cb->s.B, C = cb->s.OC;
    conv2d_forward(cb->conv, inp, w, NULL, scratch, cb->s);
    instancenorm_forward(cb->norm, cb->mean, cb->rstd, cb->conv, B, C, HW);
    leakyrelu_forward(cb->act, cb->norm, 0.2f, (size_t)B * C * HW);
}

/* cb->dact holds dL/d(act); adds dL/d(inp) into dinp (if given) */
void convblock_backward(ConvBlock *cb, float *dinp, float *dw, const float *inp, const float *w, float *scratch) {
    int HW = cb->OH * cb->OW, B = cb->s.B, C = cb->s.OC;
    leakyrelu_backward(cb->dnorm, cb->dact, cb->norm, 0.2f, (size_t)B * C * HW);
    instancenorm_backward(cb->dconv, cb->dnorm, cb->norm, cb->rstd, B, C, HW);
    conv2d_backward(dinp, dw, NULL, cb->dconv, inp, w, scratch, cb->s);
}
