/* What the three networks are built from (private to generator.c,
 * discriminator.c and estimator.c): activation memory laid out in one
 * allocation, parameter helpers, and the pieces of their descriptions. */
#ifndef REAGE_NET_PARTS_H
#define REAGE_NET_PARTS_H
#include <stdio.h>
#include "model.h"

/* A layout runs twice: first counting (base NULL, every pointer it takes is
 * NULL), then handing out pointers into one allocation. Blocks are 64-byte
 * aligned. Without a gradient arena (inference) the gradient takes are NULL. */
typedef struct { float *base; size_t used; } Arena;
float *arena_take(Arena *a, size_t n);
float *arena_take_grad(Arena *grad, size_t n);

/* Lays out a network's activations (and, when training, their gradients)
 * into mem: layout(net, acts, act, grad) is called once to count and once to
 * place. Returns 0, or -1 when out of memory. */
typedef void (*ActsLayout)(const void *net, void *acts, Arena *act, Arena *grad);
int acts_memory_alloc(ActsMemory *mem, ActsLayout layout, const void *net, void *acts, int training);
/* Backward passes accumulate into the gradient arena: zeroed before each. */
void acts_zero_grads(ActsMemory *mem);
/* The largest convolution workspace any of these n shapes needs. */
size_t conv_scratch_max(const ConvShape *shapes, int n);

ConvShape conv_shape(int B, int C, int H, int OC, int K, int S, int P);
size_t conv_params(ParamSet *ps, const char *name, int OC, int C, int K);
size_t bias_params(ParamSet *ps, const char *name, int n, int fan_in);
size_t vec_params(ParamSet *ps, const char *name, int n, int trainable, ParamInit init);
/* A batch norm over n channels: PREFIXbnL.weight and .bias, and its running
 * statistics .running_mean and .running_var (not trained); offsets in off. */
void batchnorm_params(ParamSet *ps, const char *prefix, int l, int n, size_t off[4]);
/* conv + instance norm + leaky ReLU (model.h's ConvBlock): its activations
 * laid out, forward from inp, and backward from cb->dact (adds dL/d(inp)
 * into dinp when given, the weight gradient into dw). */
void convblock_layout(ConvBlock *cb, Arena *act, Arena *grd);
void convblock_forward(ConvBlock *cb, const float *inp, const float *w, float *scratch);
void convblock_backward(ConvBlock *cb, float *dinp, float *dw, const float *inp, const float *w, float *scratch);
#define PD(ps, off) ((ps).data + (off))
#define PG(ps, off) ((ps).grad ? (ps).grad + (off) : NULL)

double conv_flops(ConvShape s);
void describe_line(FILE *f, const char *name, int C, int H, int W, size_t params);
/* A tensor's size by name, 0 when the network has none of that name. */
size_t tensor_size(const ParamSet *ps, const char *name);
#endif
