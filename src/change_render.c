#include "change_render.h"
#include "layers.h"
#include <math.h>
#include <stddef.h>
#include <string.h>

/* The field brought up from s to S is layers.c's bilinear resampling of the whole plane. */
void change_upsample_forward(float *up, const float *field, ChangeShape sh) {
    crop_resize_forward(up, field, sh.B * CHANGE_FIELDS, sh.s, 0, sh.s, sh.S);
}

void change_upsample_backward(float *dfield, const float *dup, ChangeShape sh) {
    crop_resize_backward(dfield, dup, sh.B * CHANGE_FIELDS, sh.s, 0, sh.s, sh.S);
}

/* Where output pixel (i, j) samples the image before resampling: its two columns and rows, their weights,
 * and whether each coordinate moves with the displacement (not where the edge holds it). */
typedef struct { int x0, x1, y0, y1; float fx, fy; int free_x, free_y; } Tap;

static inline Tap sample_at(float X, float Y, int S) {
    Tap t;
    t.free_x = X > 0 && X < S - 1;
    t.free_y = Y > 0 && Y < S - 1;
    X = X < 0 ? 0 : X > S - 1 ? (float)(S - 1) : X;
    Y = Y < 0 ? 0 : Y > S - 1 ? (float)(S - 1) : Y;
    t.x0 = (int)X, t.y0 = (int)Y;
    t.x1 = t.x0 + 1 < S ? t.x0 + 1 : t.x0;
    t.y1 = t.y0 + 1 < S ? t.y0 + 1 : t.y0;
    t.fx = X - t.x0, t.fy = Y - t.y0;
    return t;
}

void change_render_forward(float *y, float *mid, const float *x, const float *bands, const float *up, ChangeShape sh) {
    int S = sh.S;
    size_t n = (size_t)S * S;
    for (int b = 0; b < sh.B; b++) {
        const float *xb = x + (size_t)b * 3 * n, *kb = bands + (size_t)b * CHANGE_BANDS * n, *u = up + (size_t)b * CHANGE_FIELDS * n;
        float *m = mid + (size_t)b * 3 * n, *yb = y + (size_t)b * 3 * n;
        for (size_t p = 0; p < n; p++) {
            float detail = 0;
            for (int k = 0; k < CHANGE_BANDS; k++) detail += (expf(u[(CHANGE_GAIN + k) * n + p]) - 1) * kb[k * n + p];
            for (int c = 0; c < 3; c++) m[c * n + p] = xb[c * n + p] + u[(CHANGE_COLOUR + c) * n + p] + detail;
        }
        for (int i = 0; i < S; i++)
            for (int j = 0; j < S; j++) {
                size_t p = (size_t)i * S + j;
                Tap t = sample_at(j + u[CHANGE_DX * n + p], i + u[CHANGE_DY * n + p], S);
                for (int c = 0; c < 3; c++) {
                    const float *mc = m + c * n;
                    yb[c * n + p] = (mc[t.y0 * S + t.x0] * (1 - t.fx) + mc[t.y0 * S + t.x1] * t.fx) * (1 - t.fy) +
                                    (mc[t.y1 * S + t.x0] * (1 - t.fx) + mc[t.y1 * S + t.x1] * t.fx) * t.fy;
                }
            }
    }
}

void change_render_backward(float *dup, const float *dy, const float *mid, const float *bands, const float *up, float *scratch,
                            ChangeShape sh) {
    int S = sh.S;
    size_t n = (size_t)S * S;
    for (int b = 0; b < sh.B; b++) {
        const float *kb = bands + (size_t)b * CHANGE_BANDS * n, *u = up + (size_t)b * CHANGE_FIELDS * n;
        const float *m = mid + (size_t)b * 3 * n, *g = dy + (size_t)b * 3 * n;
        float *du = dup + (size_t)b * CHANGE_FIELDS * n;
        /* the resampling: into the displacement, and scattered back onto the image before it */
        float *dmid = scratch;
        memset(dmid, 0, sizeof(float) * 3 * n);
        for (int i = 0; i < S; i++)
            for (int j = 0; j < S; j++) {
                size_t p = (size_t)i * S + j;
                Tap t = sample_at(j + u[CHANGE_DX * n + p], i + u[CHANGE_DY * n + p], S);
                float gx = 0, gy = 0;
                for (int c = 0; c < 3; c++) {
                    const float *mc = m + c * n;
                    float v = g[c * n + p], a = mc[t.y0 * S + t.x0], bb = mc[t.y0 * S + t.x1], cc = mc[t.y1 * S + t.x0],
                          d = mc[t.y1 * S + t.x1];
                    gx += v * ((bb - a) * (1 - t.fy) + (d - cc) * t.fy);
                    gy += v * ((cc - a) * (1 - t.fx) + (d - bb) * t.fx);
                    float *dm = dmid + c * n;
                    dm[t.y0 * S + t.x0] += v * (1 - t.fx) * (1 - t.fy);
                    dm[t.y0 * S + t.x1] += v * t.fx * (1 - t.fy);
                    dm[t.y1 * S + t.x0] += v * (1 - t.fx) * t.fy;
                    dm[t.y1 * S + t.x1] += v * t.fx * t.fy;
                }
                if (t.free_x) du[CHANGE_DX * n + p] += gx;
                if (t.free_y) du[CHANGE_DY * n + p] += gy;
            }
        /* mid = x + colour + sum_k (exp(gain_k) - 1) band_k: the colour's gradient is dmid itself, each
         * gain's the sum over channels of dmid times exp(gain_k) band_k */
        for (size_t p = 0; p < n; p++) {
            float s = dmid[p] + dmid[n + p] + dmid[2 * n + p];
            for (int c = 0; c < 3; c++) du[(CHANGE_COLOUR + c) * n + p] += dmid[c * n + p];
            for (int k = 0; k < CHANGE_BANDS; k++)
                du[(CHANGE_GAIN + k) * n + p] += s * expf(u[(CHANGE_GAIN + k) * n + p]) * kb[k * n + p];
        }
    }
}
