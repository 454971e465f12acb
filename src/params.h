/* A network's parameters: named tensors carved from one float buffer, with a
 * gradient buffer and Adam's moments laid out the same way. Running
 * statistics (batch norm) live here too, marked not trainable, so that
 * checkpoints and blobs carry them. */
#ifndef REAGE_PARAMS_H
#define REAGE_PARAMS_H
#include <stddef.h>
#include <stdint.h>
#include "rng.h"

#define PARAM_NAME_MAX 48
#define PARAM_MAX_TENSORS 128

typedef enum { INIT_ZERO, INIT_ONE, INIT_UNIFORM_FANIN, INIT_NORMAL } ParamInit;

typedef struct {
    char name[PARAM_NAME_MAX];
    int ndim, shape[4];
    size_t offset, size;
    int trainable;
    ParamInit init;
    float init_scale;  /* fan-in for INIT_UNIFORM_FANIN, std for INIT_NORMAL */
    int adam_before;   /* Adam steps its moments held when this run began (a warm start carries
                          them over); Adam's bias correction counts them with the run's own */
} ParamTensor;

typedef struct {
    ParamTensor t[PARAM_MAX_TENSORS];
    int count;
    size_t total;       /* floats, all tensors */
    float *data, *grad, *adam_m, *adam_v;
} ParamSet;

/* Registers a tensor during model construction; returns its offset. */
size_t params_add(ParamSet *ps, const char *name, int ndim, const int *shape,
                  int trainable, ParamInit init, float init_scale);
/* Allocates the buffers once all tensors are registered (grad and Adam
 * state only when training). Returns 0, or -1 when out of memory. */
int params_alloc(ParamSet *ps, int for_training);
void params_free(ParamSet *ps);
void params_init(ParamSet *ps, Rng *rng);
size_t params_trainable_count(const ParamSet *ps);
const ParamTensor *params_find(const ParamSet *ps, const char *name);
void params_zero_grad(ParamSet *ps);

typedef struct {
    float lr, beta1, beta2, eps;
} AdamConfig;
/* avg = decay * avg + (1 - decay) * weights for trainable tensors; other
 * tensors (running statistics) are copied, being averages already. */
void params_average(float *avg, const ParamSet *ps, float decay);
/* One Adam step over all trainable tensors; t counts this run's steps from 1
 * (each tensor's bias correction adds its adam_before). */
void adam_step(ParamSet *ps, const AdamConfig *cfg, int t);
#endif
