#include "facedetect.h"
#include "parallel.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "blob.h"
#include "layers.h"

const BlazeBlock BLAZE_BLOCKS[FACEDET_BLOCKS] = {
    {24, 24, 1}, {24, 28, 1}, {28, 32, 2}, {32, 36, 1}, {36, 42, 1}, {42, 48, 2},
    {48, 56, 1}, {56, 64, 1}, {64, 72, 1}, {72, 80, 1}, {80, 88, 1}, {88, 96, 2},
    {96, 96, 1}, {96, 96, 1}, {96, 96, 1}, {96, 96, 1},
};
/* block 10 (88 channels, 16x16) feeds the stride-8 heads, the last block
 * (96 channels, 8x8) the stride-16 ones */
#define HEAD16_BLOCK 10
#define ANCHORS16 2  /* per cell of the 16x16 grid */
#define ANCHORS8 6   /* per cell of the 8x8 grid */
#define NCOORD 16    /* box (x, y, w, h) + 6 keypoints (x, y) */

/* Measured by build/reage-template on 1,000 photos spread over the train
 * split (992 with a face; spread about 0.03 of the side for eyes, nose and
 * mouth, 0.07 for the ears). */
const float FACE_TEMPLATE[KP_COUNT][2] = {
    {0.2837f, 0.3022f},  /* right eye */
    {0.6940f, 0.2913f},  /* left eye */
    {0.4850f, 0.5217f},  /* nose */
    {0.4921f, 0.7284f},  /* mouth */
    {0.0853f, 0.3896f},  /* right ear */
    {0.9093f, 0.3701f},  /* left ear */
};

static size_t add(ParamSet *ps, const char *name, int a, int b, int c, int d) {
    int shape[4] = {a, b, c, d}, nd = d ? 4 : c ? 3 : b ? 2 : 1;
    return params_add(ps, name, nd, shape, 1, INIT_ZERO, 0);
}

void facedet_build(FaceDetector *fd) {
    memset(fd, 0, sizeof(*fd));
    ParamSet *ps = &fd->ps;
    char name[PARAM_NAME_MAX];
    fd->stem_w = add(ps, "stem.w", 24, 3, 5, 5);
    fd->stem_b = add(ps, "stem.b", 24, 0, 0, 0);
    for (int i = 0; i < FACEDET_BLOCKS; i++) {
        const BlazeBlock *k = &BLAZE_BLOCKS[i];
        snprintf(name, sizeof(name), "b%d.dw.w", i);
        fd->dw_w[i] = add(ps, name, k->cin, 3, 3, 0);
        snprintf(name, sizeof(name), "b%d.dw.b", i);
        fd->dw_b[i] = add(ps, name, k->cin, 0, 0, 0);
        snprintf(name, sizeof(name), "b%d.pw.w", i);
        fd->pw_w[i] = add(ps, name, k->cout, k->cin, 1, 1);
        snprintf(name, sizeof(name), "b%d.pw.b", i);
        fd->pw_b[i] = add(ps, name, k->cout, 0, 0, 0);
    }
    /* in the .tflite's order: classificator_8, classificator_16, regressor_8, regressor_16 */
    fd->cls16_w = add(ps, "cls16.w", ANCHORS16, 88, 1, 1);
    fd->cls16_b = add(ps, "cls16.b", ANCHORS16, 0, 0, 0);
    fd->cls8_w = add(ps, "cls8.w", ANCHORS8, 96, 1, 1);
    fd->cls8_b = add(ps, "cls8.b", ANCHORS8, 0, 0, 0);
    fd->reg16_w = add(ps, "reg16.w", ANCHORS16 * NCOORD, 88, 1, 1);
    fd->reg16_b = add(ps, "reg16.b", ANCHORS16 * NCOORD, 0, 0, 0);
    fd->reg8_w = add(ps, "reg8.w", ANCHORS8 * NCOORD, 96, 1, 1);
    fd->reg8_b = add(ps, "reg8.b", ANCHORS8 * NCOORD, 0, 0, 0);
    int a = 0;
    for (int y = 0; y < 16; y++)
        for (int x = 0; x < 16; x++)
            for (int k = 0; k < ANCHORS16; k++, a++) {
                fd->anchors[a][0] = (x + 0.5f) / 16;
                fd->anchors[a][1] = (y + 0.5f) / 16;
            }
    for (int y = 0; y < 8; y++)
        for (int x = 0; x < 8; x++)
            for (int k = 0; k < ANCHORS8; k++, a++) {
                fd->anchors[a][0] = (x + 0.5f) / 8;
                fd->anchors[a][1] = (y + 0.5f) / 8;
            }
}

/* Activation buffers: the padded input, two ping-pong maps, the depthwise
 * output, the pooled shortcut and the four heads. */
#define PADDED (3 * 131 * 131)
#define MAXMAP (28 * 64 * 64)
#define HEADS (ANCHORS16 * (1 + NCOORD) * 256 + ANCHORS8 * (1 + NCOORD) * 64)

static size_t conv_scratch_max(void) {
    size_t m = conv2d_scratch_floats((ConvShape){1, 3, 131, 131, 24, 5, 2, 0});
    int H = 64;
    for (int i = 0; i < FACEDET_BLOCKS; i++) {
        H = same_out_size(H, BLAZE_BLOCKS[i].stride);
        size_t s = conv2d_scratch_floats((ConvShape){1, BLAZE_BLOCKS[i].cin, H, H, BLAZE_BLOCKS[i].cout, 1, 1, 0});
        if (s > m) m = s;
    }
    return m + 96 * 16 * 64;  /* the heads are 1x1 convolutions too */
}

int facedet_load(FaceDetector *fd, const uint8_t *buf, size_t len, const char *what, Err *e) {
    facedet_build(fd);
    static Blob b;  /* large; the detector loads once per program */
    if (blob_parse(&b, buf, len, FACEDET_MAGIC, what, e)) return -1;
    char model[64];
    if (config_get(b.config, "model", model, sizeof(model)) || strcmp(model, "blazeface-short-range") != 0)
        return err_set(e, "%s: not a BlazeFace short-range detector blob", what);
    if (params_alloc(&fd->ps, 0)) return err_set(e, "%s: out of memory", what);
    fd->work = malloc(sizeof(float) * (PADDED + 4 * (size_t)MAXMAP + HEADS));
    fd->scratch = malloc(sizeof(float) * conv_scratch_max());
    if (!fd->work || !fd->scratch) { facedet_free(fd); return err_set(e, "%s: out of memory", what); }
    if (blob_read_params(&b, "", &fd->ps, what, e)) { facedet_free(fd); return -1; }
    return 0;
}

void facedet_free(FaceDetector *fd) {
    params_free(&fd->ps);
    free(fd->work);
    free(fd->scratch);
    fd->work = fd->scratch = NULL;
}

static void conv1x1(FaceDetector *fd, float *out, const float *inp, size_t w, size_t b, int cin, int cout, int hw) {
    const float *P = fd->ps.data;
    conv2d_forward(out, inp, P + w, P + b, fd->scratch, (ConvShape){1, cin, hw, hw, cout, 1, 1, 0});
}

void facedet_forward(FaceDetector *fd, const float *img, float *logits, float *regs) {
    const float *P = fd->ps.data;
    float *pad = fd->work, *x = pad + PADDED, *y = x + MAXMAP, *dw = y + MAXMAP, *pool = dw + MAXMAP;
    float *h16c = pool + MAXMAP, *h16r = h16c + ANCHORS16 * 256, *h8c = h16r + ANCHORS16 * NCOORD * 256,
          *h8r = h8c + ANCHORS8 * 64;
    /* TensorFlow's "SAME" 5x5 stride-2 convolution pads 1 before and 2 after */
    zeropad_forward(pad, img, 1, 3, 128, 128, 1, 1, 2, 2);
    conv2d_forward(x, pad, P + fd->stem_w, P + fd->stem_b, fd->scratch, (ConvShape){1, 3, 131, 131, 24, 5, 2, 0});
    relu_forward(x, x, 24 * 64 * 64);
    int H = 64;
    for (int i = 0; i < FACEDET_BLOCKS; i++) {
        const BlazeBlock *k = &BLAZE_BLOCKS[i];
        int OH = same_out_size(H, k->stride);
        size_t plane = (size_t)OH * OH;
        dwconv3_forward(dw, x, P + fd->dw_w[i], P + fd->dw_b[i], 1, k->cin, H, H, k->stride);
        conv1x1(fd, y, dw, fd->pw_w[i], fd->pw_b[i], k->cin, k->cout, OH);
        const float *shortcut = x;
        if (k->stride == 2) { maxpool2_forward(pool, x, 1, k->cin, H, H); shortcut = pool; }
        /* the shortcut is zero-extended to cout channels: only the first cin get it */
        residual_forward(y, y, shortcut, (size_t)k->cin * plane);
        relu_forward(y, y, (size_t)k->cout * plane);
        float *t = x; x = y; y = t;
        H = OH;
        if (i == HEAD16_BLOCK) {
            conv1x1(fd, h16c, x, fd->cls16_w, fd->cls16_b, 88, ANCHORS16, 16);
            conv1x1(fd, h16r, x, fd->reg16_w, fd->reg16_b, 88, ANCHORS16 * NCOORD, 16);
        }
    }
    conv1x1(fd, h8c, x, fd->cls8_w, fd->cls8_b, 96, ANCHORS8, 8);
    conv1x1(fd, h8r, x, fd->reg8_w, fd->reg8_b, 96, ANCHORS8 * NCOORD, 8);
    /* NCHW heads -> anchor order (cell-major, then the cell's anchors) */
    int a = 0;
    for (int c = 0; c < 256; c++)
        for (int k = 0; k < ANCHORS16; k++, a++) {
            logits[a] = h16c[k * 256 + c];
            for (int j = 0; j < NCOORD; j++) regs[a * NCOORD + j] = h16r[(k * NCOORD + j) * 256 + c];
        }
    for (int c = 0; c < 64; c++)
        for (int k = 0; k < ANCHORS8; k++, a++) {
            logits[a] = h8c[k * 64 + c];
            for (int j = 0; j < NCOORD; j++) regs[a * NCOORD + j] = h8r[(k * NCOORD + j) * 64 + c];
        }
}

int facedet_decode(const FaceDetector *fd, const float *logits, const float *regs, float min_score,
                   FaceDet *out, int max) {
    int n = 0;
    for (int a = 0; a < FACEDET_ANCHORS && n < max; a++) {
        float l = logits[a] < -100 ? -100 : logits[a] > 100 ? 100 : logits[a];
        float score = 1.0f / (1.0f + expf(-l));
        if (score < min_score) continue;
        /* offsets are in input pixels from the anchor's centre (anchors are 1x1) */
        const float *r = regs + (size_t)a * NCOORD;
        float ax = fd->anchors[a][0] * FACEDET_RES, ay = fd->anchors[a][1] * FACEDET_RES;
        float cx = ax + r[0], cy = ay + r[1], w = r[2], h = r[3];
        FaceDet *d = &out[n++];
        d->score = score;
        d->x0 = cx - w * 0.5f;
        d->y0 = cy - h * 0.5f;
        d->x1 = cx + w * 0.5f;
        d->y1 = cy + h * 0.5f;
        for (int k = 0; k < KP_COUNT; k++) {
            d->kp[k][0] = ax + r[4 + 2 * k];
            d->kp[k][1] = ay + r[5 + 2 * k];
        }
    }
    return n;
}

static float iou(const FaceDet *a, const FaceDet *b) {
    float ix = fminf(a->x1, b->x1) - fmaxf(a->x0, b->x0), iy = fminf(a->y1, b->y1) - fmaxf(a->y0, b->y0);
    if (ix <= 0 || iy <= 0) return 0;
    float inter = ix * iy, ua = (a->x1 - a->x0) * (a->y1 - a->y0) + (b->x1 - b->x0) * (b->y1 - b->y0) - inter;
    return ua > 0 ? inter / ua : 0;
}

static int by_score(const void *a, const void *b) {
    float sa = ((const FaceDet *)a)->score, sb = ((const FaceDet *)b)->score;
    return (sa < sb) - (sa > sb);
}

int facedet_nms(FaceDet *dets, int n, float thresh) {
    qsort(dets, (size_t)n, sizeof(FaceDet), by_score);
    char *used = calloc((size_t)n + 1, 1);
    if (!used) return 0;
    int kept = 0;
    for (int i = 0; i < n; i++) {
        if (used[i]) continue;
        FaceDet best = dets[i], sum = {0};
        float wsum = 0;
        for (int j = i; j < n; j++) {
            if (used[j] || (j != i && iou(&best, &dets[j]) <= thresh)) continue;
            used[j] = 1;
            float w = dets[j].score;
            wsum += w;
            sum.x0 += w * dets[j].x0;
            sum.y0 += w * dets[j].y0;
            sum.x1 += w * dets[j].x1;
            sum.y1 += w * dets[j].y1;
            for (int k = 0; k < KP_COUNT; k++) {
                sum.kp[k][0] += w * dets[j].kp[k][0];
                sum.kp[k][1] += w * dets[j].kp[k][1];
            }
        }
        FaceDet *o = &dets[kept++];
        o->score = best.score;
        o->x0 = sum.x0 / wsum;
        o->y0 = sum.y0 / wsum;
        o->x1 = sum.x1 / wsum;
        o->y1 = sum.y1 / wsum;
        for (int k = 0; k < KP_COUNT; k++) {
            o->kp[k][0] = sum.kp[k][0] / wsum;
            o->kp[k][1] = sum.kp[k][1] / wsum;
        }
    }
    free(used);
    return kept;
}

typedef struct {
    const Photo *p;
    int side;
    float scale, offx, offy;
    uint8_t *out;
} Letterbox;

static void letterbox_rows(void *ctx, int i0, int i1, int thread) {
    const Letterbox *b = ctx;
    const Photo *p = b->p;
    int side = b->side;
    float scale = b->scale, offx = b->offx, offy = b->offy;
    (void)thread;
    for (int i = i0; i < i1; i++) {
        int sy0 = (int)floorf(i * scale - offy), sy1 = (int)floorf((i + 1) * scale - offy);
        if (sy1 <= sy0) sy1 = sy0 + 1;
        if (sy0 < 0) sy0 = 0;
        if (sy1 > p->h) sy1 = p->h;
        int ystep = (sy1 - sy0 + 3) / 4;
        for (int j = 0; j < side; j++) {
            int sx0 = (int)floorf(j * scale - offx), sx1 = (int)floorf((j + 1) * scale - offx);
            if (sx1 <= sx0) sx1 = sx0 + 1;
            if (sx0 < 0) sx0 = 0;
            if (sx1 > p->w) sx1 = p->w;
            if (sx0 >= sx1 || sy0 >= sy1) continue;
            int xstep = (sx1 - sx0 + 3) / 4;
            unsigned acc[3] = {0, 0, 0}, cnt = 0;
            for (int y = sy0; y < sy1; y += ystep)
                for (int x = sx0; x < sx1; x += xstep, cnt++) {
                    const uint8_t *px = p->px + ((size_t)y * p->w + x) * p->channels;
                    acc[0] += px[0];
                    acc[1] += px[1];
                    acc[2] += px[2];
                }
            for (int c = 0; c < 3; c++) b->out[((size_t)i * side + j) * 3 + c] = (uint8_t)((acc[c] + cnt / 2) / cnt);
        }
    }
}

/* The photo letterboxed into a black square of side `side` (at most the
 * photo's longer side), each pixel the average of up to 4x4 photo pixels
 * spread over its footprint: enough against aliasing for a detector, and a
 * 12-megapixel photo is only sampled, not read whole. */
static uint8_t *letterbox(const Photo *p, int side, float *scale, float *offx, float *offy) {
    int L = p->w > p->h ? p->w : p->h;
    uint8_t *out = calloc((size_t)side * side * 3, 1);
    if (!out) return NULL;
    *scale = (float)L / side;
    *offx = (L - p->w) * 0.5f;
    *offy = (L - p->h) * 0.5f;
    Letterbox b = {p, side, *scale, *offx, *offy, out};
    parallel_for(side, 8, letterbox_rows, &b);
    return out;
}

#define MIN_SCORE 0.5f
#define NMS_IOU 0.3f

/* A second look at one face: the detector run again on a window of the
 * full-resolution photo centred on it, about 2.2 faces wide and turned so
 * that the eyes are level (BlazeFace knows upright faces best). Small and
 * tilted faces get their keypoints from a sharp, upright view. */
static void refine(FaceDetector *fd, const Photo *p, const Photo *base, float scale, float offx, float offy,
                   FaceDet *f, float *img, float *logits, float *regs) {
    float ex = f->kp[KP_LEFT_EYE][0] - f->kp[KP_RIGHT_EYE][0], ey = f->kp[KP_LEFT_EYE][1] - f->kp[KP_RIGHT_EYE][1];
    float side = 2.2f * fmaxf(f->x1 - f->x0, f->y1 - f->y0);
    CropBox win = {(f->x0 + f->x1) * 0.5f, (f->y0 + f->y1) * 0.5f, side, atan2f(ey, ex)};
    if (side / scale >= 0.75f * FACEDET_RES) {
        /* the downscaled copy is sharp enough here, and far cheaper to sample
         * than a large photo (whose rows are far apart in memory) */
        CropBox bw = {(win.cx + offx) / scale, (win.cy + offy) / scale, side / scale, win.angle};
        photo_sample(base, bw, FACEDET_RES, 2, img);
    } else {
        photo_sample(p, win, FACEDET_RES, 3, img);
    }
    facedet_forward(fd, img, logits, regs);
    FaceDet found[64];
    int k = facedet_nms(found, facedet_decode(fd, logits, regs, MIN_SCORE, found, 64), NMS_IOU);
    /* the face is the detection nearest the window's centre */
    int best = -1;
    float bestd = 0.25f * FACEDET_RES;
    for (int i = 0; i < k; i++) {
        float d = hypotf((found[i].x0 + found[i].x1) * 0.5f - FACEDET_RES * 0.5f, (found[i].y0 + found[i].y1) * 0.5f - FACEDET_RES * 0.5f);
        if (d < bestd) { bestd = d; best = i; }
    }
    if (best < 0) return;
    /* window pixels -> photo pixels: scale, rotate by the window's angle, shift */
    float s = side / FACEDET_RES, c = cosf(win.angle), sn = sinf(win.angle);
    for (int q = 0; q < KP_COUNT; q++) {
        float u = (found[best].kp[q][0] - FACEDET_RES * 0.5f) * s, v = (found[best].kp[q][1] - FACEDET_RES * 0.5f) * s;
        f->kp[q][0] = win.cx + c * u - sn * v;
        f->kp[q][1] = win.cy + sn * u + c * v;
    }
}

#define BASE_SIDE 256  /* two detector inputs across */

int facedet_photo(FaceDetector *fd, const Photo *p, FaceDet *out, int max) {
    int L = p->w > p->h ? p->w : p->h, side = L < BASE_SIDE ? L : BASE_SIDE;
    float scale, offx, offy;
    uint8_t *base = letterbox(p, side, &scale, &offx, &offy);
    float *img = malloc(sizeof(float) * 3 * FACEDET_RES * FACEDET_RES);
    float *logits = malloc(sizeof(float) * FACEDET_ANCHORS), *regs = malloc(sizeof(float) * FACEDET_ANCHORS * NCOORD);
    int cap = 256, n = 0;
    FaceDet *all = malloc(sizeof(FaceDet) * cap), found[64];
    if (!base || !img || !logits || !regs || !all) { n = 0; goto done; }
    Photo bp = {base, side, side, 3};
    /* the whole square, then four overlapping windows of 0.6 of its side, so
     * that a face an eighth of the photo wide is found as readily as one that
     * fills it */
    static const struct { float frac; int steps; } LEVELS[] = {{1.0f, 1}, {0.6f, 2}};
    for (size_t lv = 0; lv < sizeof(LEVELS) / sizeof(LEVELS[0]); lv++) {
        float ws = side * LEVELS[lv].frac;
        int steps = LEVELS[lv].steps;
        for (int gy = 0; gy < steps; gy++)
            for (int gx = 0; gx < steps; gx++) {
                float wx0 = steps > 1 ? (side - ws) * gx / (steps - 1) : 0, wy0 = steps > 1 ? (side - ws) * gy / (steps - 1) : 0;
                CropBox win = {wx0 + ws * 0.5f, wy0 + ws * 0.5f, ws, 0.0f};
                photo_sample(&bp, win, FACEDET_RES, 2, img);
                facedet_forward(fd, img, logits, regs);
                int k = facedet_decode(fd, logits, regs, MIN_SCORE, found, 64);
                float f = ws / FACEDET_RES;
                for (int i = 0; i < k && n < cap; i++) {
                    FaceDet d = found[i];
                    /* a face cut by an inner window edge is found whole in another window */
                    float m = 0.02f * FACEDET_RES;
                    if (lv > 0 && ((d.x0 < -m && gx > 0) || (d.y0 < -m && gy > 0) ||
                                   (d.x1 > FACEDET_RES + m && gx < steps - 1) || (d.y1 > FACEDET_RES + m && gy < steps - 1)))
                        continue;
                    /* window pixels -> letterbox pixels -> photo pixels */
                    d.x0 = (wx0 + d.x0 * f) * scale - offx;
                    d.x1 = (wx0 + d.x1 * f) * scale - offx;
                    d.y0 = (wy0 + d.y0 * f) * scale - offy;
                    d.y1 = (wy0 + d.y1 * f) * scale - offy;
                    for (int q = 0; q < KP_COUNT; q++) {
                        d.kp[q][0] = (wx0 + d.kp[q][0] * f) * scale - offx;
                        d.kp[q][1] = (wy0 + d.kp[q][1] * f) * scale - offy;
                    }
                    all[n++] = d;
                }
            }
    }
    n = facedet_nms(all, n, NMS_IOU);
    if (n > max) n = max;
    for (int i = 0; i < n; i++) refine(fd, p, &bp, scale, offx, offy, &all[i], img, logits, regs);
    memcpy(out, all, sizeof(FaceDet) * (size_t)n);
done:
    free(base);
    free(img);
    free(logits);
    free(regs);
    free(all);
    return n;
}

CropBox facedet_crop(const FaceDet *f) {
    static const float W[KP_COUNT] = {1.0f, 1.0f, 0.5f, 1.0f, 0.25f, 0.25f};
    float wsum = 0, mt[2] = {0, 0}, mp[2] = {0, 0};
    for (int k = 0; k < KP_COUNT; k++) {
        wsum += W[k];
        for (int c = 0; c < 2; c++) {
            mt[c] += W[k] * (FACE_TEMPLATE[k][c] - 0.5f);
            mp[c] += W[k] * f->kp[k][c];
        }
    }
    for (int c = 0; c < 2; c++) { mt[c] /= wsum; mp[c] /= wsum; }
    /* p = centre + s R(angle) t: the closed-form least-squares similarity */
    double saa = 0, sdot = 0, scross = 0;
    for (int k = 0; k < KP_COUNT; k++) {
        double ax = FACE_TEMPLATE[k][0] - 0.5f - mt[0], ay = FACE_TEMPLATE[k][1] - 0.5f - mt[1];
        double bx = f->kp[k][0] - mp[0], by = f->kp[k][1] - mp[1];
        saa += W[k] * (ax * ax + ay * ay);
        sdot += W[k] * (ax * bx + ay * by);
        scross += W[k] * (ax * by - ay * bx);
    }
    float sc = (float)(sdot / saa), ss = (float)(scross / saa);
    CropBox b;
    b.size = sqrtf(sc * sc + ss * ss);
    b.angle = atan2f(ss, sc);
    b.cx = mp[0] - (sc * mt[0] - ss * mt[1]);
    b.cy = mp[1] - (ss * mt[0] + sc * mt[1]);
    return b;
}

void facedet_to_floats(const FaceDet *f, CropBox b, float *o) {
    o[0] = f->score;
    o[1] = f->x0, o[2] = f->y0, o[3] = f->x1, o[4] = f->y1;
    for (int k = 0; k < KP_COUNT; k++) o[5 + 2 * k] = f->kp[k][0], o[6 + 2 * k] = f->kp[k][1];
    o[17] = b.cx, o[18] = b.cy, o[19] = b.size, o[20] = b.angle;
}
