/* Image pyramids over float planes (rows of w values): the multi-scale
 * split of brightness into octaves of detail that the age prototypes and the
 * transform share (Burt & Adelson's Laplacian pyramid). */
#ifndef REAGE_PYRAMID_H
#define REAGE_PYRAMID_H

/* Blurs by the binomial [1 3 3 1]/8 each way and keeps every other
 * pixel: in [h][w] (both even) -> out [h/2][w/2]. Edges repeat. */
void pyr_reduce(const float *in, int w, int h, float *out);
/* Bilinear resampling of in [h][w] to out [H][W], pixel centres aligned
 * (the inverse of pyr_reduce's grid when W = 2w). Edges repeat. */
void pyr_resize(const float *in, int w, int h, float *out, int W, int H);
/* Detail at one octave: band [h][w] = g [h][w] less its reduction g1
 * [h/2][w/2] brought back up. Summing bands and the coarsest level back up
 * restores the image exactly. */
void pyr_band(const float *g, const float *g1, int w, int h, float *band);
/* The local amplitude of a band: the square root of its reduced square,
 * out [h/2][w/2]. */
void pyr_amplitude(const float *band, int w, int h, float *out);
/* Bilinear sample of plane [h][w] at (x, y) in pixel units (centres at +0.5). */
float pyr_sample(const float *in, int w, int h, float x, float y);
#endif
