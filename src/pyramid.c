#include "pyramid.h"
#include <math.h>
#include <stdlib.h>

static inline int clampi(int v, int lo, int hi) { return v < lo ? lo : v > hi ? hi : v; }

void pyr_reduce(const float *in, int w, int h, float *out) {
    /* output pixel j covers input pixels 2j and 2j+1; the binomial [1 3 3 1]/8 over 2j-1..2j+2 is
     * centred on it, so that a reduced plane lines up with pyr_resize's grid */
    static const float k[4] = {1 / 8.f, 3 / 8.f, 3 / 8.f, 1 / 8.f};
    int W = w / 2, H = h / 2;
    float *rows = malloc(sizeof(float) * (size_t)W * h);
    if (!rows) return;
    for (int y = 0; y < h; y++)
        for (int j = 0; j < W; j++) {
            float s = 0;
            for (int t = 0; t < 4; t++) s += k[t] * in[(size_t)y * w + clampi(2 * j + t - 1, 0, w - 1)];
            rows[(size_t)y * W + j] = s;
        }
    for (int i = 0; i < H; i++)
        for (int j = 0; j < W; j++) {
            float s = 0;
            for (int t = 0; t < 4; t++) s += k[t] * rows[(size_t)clampi(2 * i + t - 1, 0, h - 1) * W + j];
            out[(size_t)i * W + j] = s;
        }
    free(rows);
}

float pyr_sample(const float *in, int w, int h, float x, float y) {
    x -= 0.5f;
    y -= 0.5f;
    x = x < 0 ? 0 : x > w - 1 ? (float)(w - 1) : x;
    y = y < 0 ? 0 : y > h - 1 ? (float)(h - 1) : y;
    int x0 = (int)x, y0 = (int)y, x1 = x0 + 1 < w ? x0 + 1 : x0, y1 = y0 + 1 < h ? y0 + 1 : y0;
    float fx = x - x0, fy = y - y0;
    const float *r0 = in + (size_t)y0 * w, *r1 = in + (size_t)y1 * w;
    return (r0[x0] * (1 - fx) + r0[x1] * fx) * (1 - fy) + (r1[x0] * (1 - fx) + r1[x1] * fx) * fy;
}

void pyr_resize(const float *in, int w, int h, float *out, int W, int H) {
    float sx = (float)w / W, sy = (float)h / H;
    for (int i = 0; i < H; i++)
        for (int j = 0; j < W; j++) out[(size_t)i * W + j] = pyr_sample(in, w, h, (j + 0.5f) * sx, (i + 0.5f) * sy);
}

void pyr_band(const float *g, const float *g1, int w, int h, float *band) {
    pyr_resize(g1, w / 2, h / 2, band, w, h);
    for (size_t i = 0; i < (size_t)w * h; i++) band[i] = g[i] - band[i];
}

void pyr_amplitude(const float *band, int w, int h, float *out) {
    float *sq = malloc(sizeof(float) * (size_t)w * h);
    if (!sq) return;
    for (size_t i = 0; i < (size_t)w * h; i++) sq[i] = band[i] * band[i];
    pyr_reduce(sq, w, h, out);
    for (size_t i = 0; i < (size_t)(w / 2) * (h / 2); i++) out[i] = sqrtf(out[i]);
    free(sq);
}
