#include "photo.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "layers.h"
#include "parallel.h"

CropBox crop_default(int w, int h) {
    CropBox b = {w * 0.5f, h * 0.5f, (float)(w < h ? w : h), 0.0f};
    return b;
}

/* Adds the bilinear sample at (x, y) of the first three channels to acc
 * (outside the photo the edge repeats). */
static inline void sample_add(const Photo *p, float x, float y, float acc[3]) {
    x = x < 0 ? 0 : x > p->w - 1 ? (float)(p->w - 1) : x;
    y = y < 0 ? 0 : y > p->h - 1 ? (float)(p->h - 1) : y;
    int x0 = (int)x, y0 = (int)y, x1 = x0 + 1 < p->w ? x0 + 1 : x0, y1 = y0 + 1 < p->h ? y0 + 1 : y0;
    float fx = x - x0, fy = y - y0;
    const uint8_t *r0 = p->px + (size_t)y0 * p->w * p->channels, *r1 = p->px + (size_t)y1 * p->w * p->channels;
    const uint8_t *a = r0 + x0 * p->channels, *b = r0 + x1 * p->channels, *c = r1 + x0 * p->channels, *d = r1 + x1 * p->channels;
    float wa = (1 - fx) * (1 - fy), wb = fx * (1 - fy), wc = (1 - fx) * fy, wd = fx * fy;
    for (int k = 0; k < 3; k++) acc[k] += a[k] * wa + b[k] * wb + c[k] * wc + d[k] * wd;
}

void photo_crop(const Photo *p, CropBox box, int res, float *face) { photo_sample(p, box, res, 8, face); }

typedef struct {
    const Photo *p;
    CropBox box;
    int res, taps;
    float scale, half, ca, sa, norm;
    float *face;
} CropRows;

static void crop_rows(void *ctx, int i0, int i1, int thread) {
    const CropRows *r = ctx;
    int res = r->res, taps = r->taps;
    size_t n = (size_t)res * res;
    (void)thread;
    for (int i = i0; i < i1; i++)
        for (int j = 0; j < res; j++) {
            float acc[3] = {0, 0, 0};
            for (int a = 0; a < taps; a++)
                for (int b = 0; b < taps; b++) {
                    /* box coordinates relative to its centre, rotated into the photo */
                    float u = (j + (b + 0.5f) / taps) * r->scale - r->half, v = (i + (a + 0.5f) / taps) * r->scale - r->half;
                    sample_add(r->p, r->box.cx + r->ca * u - r->sa * v - 0.5f, r->box.cy + r->sa * u + r->ca * v - 0.5f, acc);
                }
            for (int c = 0; c < 3; c++) r->face[c * n + (size_t)i * res + j] = acc[c] * r->norm - 1.0f;
        }
}

void photo_sample(const Photo *p, CropBox box, int res, int max_taps, float *face) {
    float scale = box.size / res;
    /* area-average when the box is much larger than the crop, so that the
     * generator sees what the training resize showed it, not aliasing */
    int taps = scale > 1.5f ? (int)ceilf(scale) : 1;
    if (taps > max_taps) taps = max_taps;
    CropRows r = {p, box, res, taps, scale, box.size * 0.5f, cosf(box.angle), sinf(box.angle), 2.0f / (255.0f * taps * taps), face};
    parallel_for(res, 4, crop_rows, &r);
}

float photo_estimate_age(Bundle *b, const Photo *p, CropBox box) {
    int R = b->cfg.res;
    float *face = malloc(sizeof(float) * 3 * R * R);
    if (!face) return -1;
    photo_crop(p, box, R, face);
    float age = bundle_estimate_age(b, face);
    free(face);
    return age;
}

/* Four 5x5 binomial passes: a Gaussian of sigma 2 generator pixels. */
#define SOFTEN_COLOUR_PASSES 4

void soften_change_colour(float *change, int res, float *scratch) {
    size_t n = (size_t)res * res;
    float *bright = scratch + 3 * n;
    for (size_t i = 0; i < n; i++) {
        bright[i] = (change[i] + change[n + i] + change[2 * n + i]) / 3.0f;
        for (int c = 0; c < 3; c++) change[c * n + i] -= bright[i];
    }
    for (int pass = 0; pass < SOFTEN_COLOUR_PASSES; pass++) {
        blur5_forward(scratch, change, 1, 3, res, res);
        memcpy(change, scratch, sizeof(float) * 3 * n);
    }
    for (size_t i = 0; i < 3 * n; i++) change[i] += bright[i % n];
}

float photo_detail_gain(float source_age, float target_age) {
    float years = source_age - target_age;
    return years <= 0 ? 0.0f : years >= DETAIL_FADE_YEARS ? -1.0f : -years / DETAIL_FADE_YEARS;
}

void photo_apply_change(Photo *p, CropBox box, int R, const float *change, const float *face, float detail_gain) {
    size_t n = (size_t)R * R;
    float half = box.size * 0.5f, inv = R / box.size, ca = cosf(box.angle), sa = sinf(box.angle);
    float feather = box.size * 0.08f, reach = half * (fabsf(ca) + fabsf(sa));
    int px0 = (int)floorf(box.cx - reach), py0 = (int)floorf(box.cy - reach);
    int px1 = (int)ceilf(box.cx + reach), py1 = (int)ceilf(box.cy + reach);
    if (px0 < 0) px0 = 0;
    if (py0 < 0) py0 = 0;
    if (px1 > p->w) px1 = p->w;
    if (py1 > p->h) py1 = p->h;
    for (int y = py0; y < py1; y++) {
        uint8_t *row = p->px + (size_t)y * p->w * p->channels;
        float dy = y + 0.5f - box.cy;
        for (int x = px0; x < px1; x++) {
            /* the pixel in box coordinates (the inverse rotation), 0..size */
            float dx = x + 0.5f - box.cx, bu = ca * dx + sa * dy + half, bv = -sa * dx + ca * dy + half;
            float d = fminf(fminf(bu, box.size - bu), fminf(bv, box.size - bv));
            if (d <= 0) continue;
            /* a smooth ramp over the outer 8% of the box hides its edge */
            float t = d >= feather ? 1.0f : d / feather, wgt = t * t * (3 - 2 * t);
            float u = bu * inv - 0.5f, v = bv * inv - 0.5f;
            u = u < 0 ? 0 : u > R - 1 ? (float)(R - 1) : u;
            v = v < 0 ? 0 : v > R - 1 ? (float)(R - 1) : v;
            int u0 = (int)u, u1 = u0 + 1 < R ? u0 + 1 : u0, v0 = (int)v, v1 = v0 + 1 < R ? v0 + 1 : v0;
            float fu = u - u0, fv = v - v0, w00 = (1 - fu) * (1 - fv), w01 = fu * (1 - fv), w10 = (1 - fu) * fv, w11 = fu * fv;
            size_t i00 = (size_t)v0 * R + u0, i01 = (size_t)v0 * R + u1, i10 = (size_t)v1 * R + u0, i11 = (size_t)v1 * R + u1;
            uint8_t *px = row + (size_t)x * p->channels;
            /* the photo's brightness detail finer than the crop's pixel: the photo less the crop brought back up */
            float detail = 0;
            if (detail_gain != 0) {
                for (int c = 0; c < 3; c++) {
                    const float *f = face + c * n;
                    float coarse = (f[i00] * w00 + f[i01] * w01 + f[i10] * w10 + f[i11] * w11) * 127.5f + 127.5f;
                    detail += (px[c] - coarse) / 3.0f;
                }
            }
            for (int c = 0; c < 3; c++) {
                const float *ch = change + c * n;
                float delta = ch[i00] * w00 + ch[i01] * w01 + ch[i10] * w10 + ch[i11] * w11;
                float val = px[c] + wgt * (delta + detail_gain * detail) + 0.5f;
                px[c] = val <= 0 ? 0 : val >= 255 ? 255 : (uint8_t)val;
            }
        }
    }
}

void photo_reage(Bundle *b, Photo *p, CropBox box, float source_age, float target_age) {
    int R = b->cfg.res;
    size_t n = (size_t)R * R;
    float *face = malloc(sizeof(float) * 3 * n), *aged = malloc(sizeof(float) * 3 * n);
    float *same = malloc(sizeof(float) * 3 * n), *scratch = malloc(sizeof(float) * 4 * n), gw[MAX_GROUPS];
    if (!face || !aged || !same || !scratch) { free(face); free(aged); free(same); free(scratch); return; }
    photo_crop(p, box, R, face);
    bundle_age_weights(b, target_age, gw);
    bundle_reage(b, face, gw, aged);
    bundle_age_weights(b, source_age, gw);
    bundle_reage(b, face, gw, same);
    /* the change in 0..255 units; the reconstruction's own error cancels */
    for (size_t i = 0; i < 3 * n; i++) aged[i] = (aged[i] - same[i]) * 127.5f;
    soften_change_colour(aged, R, scratch);
    photo_apply_change(p, box, R, aged, face, photo_detail_gain(source_age, target_age));
    free(face);
    free(aged);
    free(same);
    free(scratch);
}
