/* The layers of ReAge's networks, as pairs of plain functions over flat NCHW
 * float arrays (llm.c style).
 *
 * Argument order, everywhere:
 *   X_forward (outputs, saved statistics, inputs, parameters, scratch, sizes)
 *   X_backward(input grads, parameter grads, output grad, saved tensors,
 *              parameters, scratch, sizes)
 * Backward passes ACCUMULATE (+=) into every gradient they are given, so that
 * a tensor feeding several consumers (skips, residuals) just receives each
 * contribution; a NULL gradient pointer means "not needed" and its work is
 * skipped. */
#ifndef REAGE_LAYERS_H
#define REAGE_LAYERS_H
#include <stddef.h>
#include <stdint.h>

/* ---- convolution (lowered to sgemm through im2col) ---- */
typedef struct {
    int B, C, H, W;   /* input */
    int OC, K, S, P;  /* output channels, square kernel, stride, zero padding */
} ConvShape;

int conv_out_size(int in, int k, int s, int p);
/* floats of scratch that conv2d_forward/backward need for this shape */
size_t conv2d_scratch_floats(ConvShape s);
void conv2d_forward(float *out, const float *inp, const float *weight,
                    const float *bias, float *scratch, ConvShape s);
void conv2d_backward(float *dinp, float *dweight, float *dbias,
                     const float *dout, const float *inp, const float *weight,
                     float *scratch, ConvShape s);
/* Programs that run the same shapes many times (training, benchmarks) call
 * this first: unless REAGE_CONV_PATH says otherwise, each convolution shape
 * and direction then times both native paths on its first call and keeps the
 * faster (conv_dnnl.h). Elsewhere (a photo through the CLI) oneDNN takes
 * every shape it accepts: measuring would cost more than it saves. No-op in
 * builds with one path. */
void conv_paths_measure(void);
/* Measured choices differ between processes, and so may their rounding. A
 * checkpoint keeps the choices, as CONV_PATH_WORDS numbers a shape, so that a
 * resumed run takes the same paths and continues bit for bit: conv_paths_export writes at most
 * max numbers and returns how many; conv_paths_import takes them back (before
 * the first convolution). Builds with one path export nothing. */
#define CONV_PATH_WORDS 12
size_t conv_paths_export(uint32_t *out, size_t max);
void conv_paths_import(const uint32_t *in, size_t n);
/* The im2col + sgemm path itself: all that the browser's build has. Native
 * builds with oneDNN choose per shape between it and oneDNN (conv_dnnl.h). */
void conv2d_gemm_forward(float *out, const float *inp, const float *weight,
                         const float *bias, float *scratch, ConvShape s);
void conv2d_gemm_backward(float *dinp, float *dweight, float *dbias,
                          const float *dout, const float *inp, const float *weight,
                          float *scratch, ConvShape s);

/* ---- inference-only layers of the face detector (BlazeFace) ----
 * These run only forward: the detector ships trained, so there is no
 * backward pass to check. */
/* TensorFlow's "SAME" padding: output ceil(in / stride), the padding split
 * with the odd pixel after. */
int same_out_size(int in, int s);
int same_pad_before(int in, int k, int s);
/* 3x3 depthwise convolution (weight [C,3,3], bias [C]), "SAME" padding,
 * stride 1 or 2. */
void dwconv3_forward(float *out, const float *inp, const float *weight, const float *bias,
                     int B, int C, int H, int W, int S);
/* 2x2 max pooling at stride 2 (H and W even). */
void maxpool2_forward(float *out, const float *inp, int B, int C, int H, int W);
/* Copies [B,C,H,W] into [B,C,H+top+bottom,W+left+right] with zero borders. */
void zeropad_forward(float *out, const float *inp, int B, int C, int H, int W,
                     int top, int left, int bottom, int right);

/* ---- normalisation ---- */
/* Batch norm over (B, HW) per channel. Training mode uses the batch's
 * statistics and updates the running ones (PyTorch's momentum 0.1, unbiased
 * running variance); eval mode uses the running statistics. mean/rstd are
 * written in both modes for the backward pass. */
void batchnorm_forward(float *out, float *mean, float *rstd, const float *inp,
                       const float *gamma, const float *beta,
                       float *running_mean, float *running_var, int training,
                       int B, int C, int HW);
void batchnorm_backward(float *dinp, float *dgamma, float *dbeta,
                        const float *dout, const float *inp, const float *mean,
                        const float *rstd, const float *gamma, int training,
                        int B, int C, int HW);
/* Instance norm without affine parameters (FiLM supplies them). */
void instancenorm_forward(float *out, float *mean, float *rstd,
                          const float *inp, int B, int C, int HW);
void instancenorm_backward(float *dinp, const float *dout, const float *out,
                           const float *rstd, int B, int C, int HW);
/* FiLM / AdaIN modulation: out = inp * (1 + gamma[b,c]) + beta[b,c]; gamma and
 * beta are rows of a per-sample code, mod_stride floats apart per sample. */
void film_forward(float *out, const float *inp, const float *gamma,
                  const float *beta, int mod_stride, int B, int C, int HW);
void film_backward(float *dinp, float *dgamma, float *dbeta, const float *dout,
                   const float *inp, const float *gamma, int mod_stride,
                   int B, int C, int HW);

/* ---- pointwise ---- */
void relu_forward(float *out, const float *inp, size_t N);
void relu_backward(float *dinp, const float *dout, const float *inp, size_t N);
void leakyrelu_forward(float *out, const float *inp, float slope, size_t N);
/* PReLU: leaky ReLU with a learned slope per channel, alpha [C]; forward only (the face mesh). */
void prelu_forward(float *out, const float *inp, const float *alpha, int B, int C, int HW);
void leakyrelu_backward(float *dinp, const float *dout, const float *inp,
                        float slope, size_t N);
void tanh_forward(float *out, const float *inp, size_t N);
void tanh_backward(float *dinp, const float *dout, const float *out, size_t N);
void residual_forward(float *out, const float *a, const float *b, size_t N);
void residual_backward(float *da, float *db, const float *dout, size_t N);

/* ---- shape ---- */
void concat_forward(float *out, const float *a, const float *b,
                    int B, int Ca, int Cb, int HW);
void concat_backward(float *da, float *db, const float *dout,
                     int B, int Ca, int Cb, int HW);
void upsample2x_forward(float *out, const float *inp, int B, int C, int H, int W);
void upsample2x_backward(float *dinp, const float *dout, int B, int C, int H, int W);
/* A fixed 5x5 binomial blur ([1 4 6 4 1]/16 each way), edges repeated: what
 * the age estimator looks through, so that pixel-level speckle cannot sway it. */
void blur5_forward(float *out, const float *inp, int B, int C, int H, int W);
void blur5_backward(float *dinp, const float *dout, int B, int C, int H, int W);
/* The square of side crop at (off, off) of each of BC planes of side S,
 * resampled bilinearly to side D (pixel centres aligned, edges repeated):
 * out [BC,D,D]. The backward pass adds into dinp [BC,S,S]. */
void crop_resize_forward(float *out, const float *inp, int BC, int S, int off, int crop, int D);
void crop_resize_backward(float *dinp, const float *dout, int BC, int S, int off, int crop, int D);
void avgpool_forward(float *out, const float *inp, int B, int C, int HW);
void avgpool_backward(float *dinp, const float *dout, int B, int C, int HW);

/* ---- conditioning ---- */
/* The seed's age embedding: a table of G planes of HW values; sample b gets
 * the plane mix sum_g groupw[b,g] * table[g] as one extra channel. A one-hot
 * groupw is the seed's nn.Embedding lookup; a soft one blends neighbouring
 * age groups. */
void embedchan_forward(float *out, const float *groupw, const float *table,
                       int B, int G, int HW);
void embedchan_backward(float *dtable, const float *dout, const float *groupw,
                        int B, int G, int HW);
/* out[B,OUT] = inp[B,IN] * weight[OUT,IN]^T + bias (bias may be NULL) */
void linear_forward(float *out, const float *inp, const float *weight,
                    const float *bias, int B, int IN, int OUT);
void linear_backward(float *dinp, float *dweight, float *dbias,
                     const float *dout, const float *inp, const float *weight,
                     int B, int IN, int OUT);

/* ---- losses: forward returns the mean loss, backward adds scale * dL/dx ---- */
float mse_const_forward(const float *x, float target, size_t N);
void mse_const_backward(float *dx, const float *x, float target, float scale, size_t N);
float bce_logits_const_forward(const float *x, float target, size_t N);
void bce_logits_const_backward(float *dx, const float *x, float target, float scale, size_t N);
/* mean |a - b|; b NULL means zeros */
float l1_forward(const float *a, const float *b, size_t N);
void l1_backward(float *da, const float *a, const float *b, float scale, size_t N);
/* total variation of a - b (b NULL: zeros), mean over pixels of
 * |horizontal step| + |vertical step|: penalises speckle in a delta */
float tv_forward(const float *a, const float *b, int BC, int H, int W);
/* The colour of a change: per pixel, two chroma channels of (a - b) for RGB
 * images [B,3,HW]: R - G and B - G (b may be NULL). out is [B,2,HW]. */
void chroma_forward(float *out, const float *a, const float *b, int B, int HW);
void chroma_backward(float *da, const float *dout, int B, int HW);
void tv_backward(float *da, const float *a, const float *b, float scale, int BC, int H, int W);
/* Mean of a - b (b NULL: zeros) over the window rows y0..y1-1, columns
 * x0..x1-1 of each of BC planes [H,W]; out is [BC]. */
void window_mean_forward(float *out, const float *a, const float *b, int BC, int H, int W, int y0, int y1, int x0, int x1);
void window_mean_backward(float *da, const float *dout, int BC, int H, int W, int y0, int y1, int x0, int x1);
/* The brightness of a change, coarsely: the mean of a - b (b NULL: zeros)
 * over the three channels of RGB images [B,3,H,W] and each k x k block;
 * out is [B, H/k, W/k] (rows and columns past the last whole block are left out). */
void shade_forward(float *out, const float *a, const float *b, int B, int H, int W, int k);
void shade_backward(float *da, const float *dout, int B, int H, int W, int k);
/* mean over N of max(0, -x - margin): how far values fall below -margin */
float hinge_below_forward(const float *x, float margin, size_t N);
void hinge_below_backward(float *dx, const float *x, float margin, float scale, size_t N);
/* softmax cross-entropy against integer labels; probs [B,G] is written */
float crossentropy_forward(float *probs, const float *logits, const int *labels,
                           int B, int G);
void crossentropy_backward(float *dlogits, const float *probs, const int *labels,
                           float scale, int B, int G);
/* The mean of per-class values under softmax probabilities probs [B,G] (as
 * crossentropy_forward writes them): out [B]. Backward adds dout's gradient,
 * taken through the softmax, to dlogits. */
void expected_value_forward(float *out, const float *probs, const float *values, int B, int G);
void expected_value_backward(float *dlogits, const float *probs, const float *out, const float *values,
                             const float *dout, int B, int G);
#endif
