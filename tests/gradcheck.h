/* Finite-difference gradient checking shared by the layer and model tests.
 * The loss is always L = sum(out * R) for a fixed random R, so the analytic
 * gradient is the backward pass fed with dout = R. */
#ifndef REAGE_GRADCHECK_H
#define REAGE_GRADCHECK_H
#include <stddef.h>

typedef double (*LossFn)(void *ctx);

/* Compares analytic[i] with (L(x+eps) - L(x-eps)) / 2eps on up to `samples`
 * coordinates of x spread over the tensor. Returns the relative error
 * ||a - n|| / max(||a|| + ||n||, 0.01 sqrt(count)) over the sampled
 * coordinates. */
double gradcheck(LossFn loss, void *ctx, float *x, const float *analytic,
                 size_t n, int samples, float eps);
double dot(const float *a, const float *b, size_t n);
void fill_uniform(float *x, size_t n, float lo, float hi, unsigned seed);
#endif
