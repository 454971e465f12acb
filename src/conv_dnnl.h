/* conv2d_forward/backward's oneDNN backend (native builds with oneDNN).
 * Each returns 0 when it did the work, -1 when the caller must (no oneDNN,
 * or a shape it declines). Same meaning and accumulation as in layers.h. */
#ifndef REAGE_CONV_DNNL_H
#define REAGE_CONV_DNNL_H
#include "layers.h"
int conv_dnnl_forward(float *out, const float *inp, const float *weight, const float *bias, ConvShape s);
int conv_dnnl_backward(float *dinp, float *dweight, float *dbias, const float *dout, const float *inp,
                       const float *weight, int has_bias, ConvShape s);
/* on=0 sends every convolution down the im2col path (the tests compare both) */
void conv_dnnl_enable(int on);
#endif
