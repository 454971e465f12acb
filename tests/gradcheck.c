#include "gradcheck.h"
#include "../src/rng.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

double gradcheck(LossFn loss, void *ctx, float *x, const float *analytic,
                 size_t n, int samples, float eps) {
    double num2 = 0, ana2 = 0, diff2 = 0;
    int count = 0;
    size_t step = n > (size_t)samples ? n / samples : 1;
    for (size_t i = 0; i < n; i += step) {
        float keep = x[i];
        x[i] = keep + eps;
        double lp = loss(ctx);
        x[i] = keep - eps;
        double lm = loss(ctx);
        x[i] = keep;
        double num = (lp - lm) / (2.0 * eps), a = analytic[i];
        num2 += num * num;
        ana2 += a * a;
        diff2 += (num - a) * (num - a);
        count++;
    }
    /* The floor keeps float rounding noise on gradients that are zero by
     * construction (a bias right before batch norm) from reading as error. */
    double denom = sqrt(num2) + sqrt(ana2), floor = 1e-2 * sqrt((double)count);
    return sqrt(diff2) / (denom > floor ? denom : floor);
}

double dot(const float *a, const float *b, size_t n) {
    double s = 0;
    for (size_t i = 0; i < n; i++) s += (double)a[i] * b[i];
    return s;
}

void fill_uniform(float *x, size_t n, float lo, float hi, unsigned seed) {
    Rng r;
    rng_seed(&r, seed);
    for (size_t i = 0; i < n; i++) x[i] = lo + (hi - lo) * rng_uniform(&r);
}

