#include "facemesh.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "blob.h"
#include "facespace.h"
#include "layers.h"

const MeshBlock MESH_TRUNK[FACEMESH_TRUNK] = {
    {1, 2, 2, 16, 16, 1},       {2, 3, 3, 16, 16, 1},       {3, 4, 4, 16, 32, 2},       {4, 5, 5, 32, 32, 1},
    {5, 6, 6, 32, 32, 1},       {6, 7, 7, 32, 64, 2},       {7, 8, 8, 64, 64, 1},       {8, 9, 9, 64, 64, 1},
    {9, 10, 10, 64, 128, 2},    {10, 11, 11, 128, 128, 1},  {11, 12, 12, 128, 128, 1},  {12, 13, 13, 128, 128, 2},
    {13, 14, 14, 128, 128, 1},  {14, 15, 15, 128, 128, 1},  {15, 16, 16, 128, 128, 2},  {16, 17, 17, 128, 128, 1},
};
const MeshHead MESH_LANDMARKS = {{17, 18, 18, 128, 128, 1}, 19, 19, {18, 20, 20, 32, 32, 1}, 21, 3 * FACEMESH_POINTS};
const MeshHead MESH_FACE_FLAG = {{23, 28, 26, 128, 128, 2}, 29, 27, {24, 30, 28, 32, 32, 1}, 31, 1};
/* the face-flag head branches off after this many trunk blocks (6x6, 128 channels) */
#define FLAG_FROM 14

/* Registers layer n's tensor `part` (0: weights or slopes, 1: bias) under the .tflite's name. */
static void add(FaceMesh *m, int kind, int n, int part, int a, int b, int c, int d) {
    static const char *const layer[MESH_KINDS] = {"conv2d", "depthwise_conv2d", "p_re_lu"};
    char name[PARAM_NAME_MAX];
    int shape[4] = {a, b, c, d}, nd = d ? 4 : c ? 3 : b ? 2 : 1;
    snprintf(name, sizeof(name), "%s_%d.%s", layer[kind], n, kind == MESH_PRELU ? "alpha" : part ? "b" : "w");
    m->at[kind][n][part] = params_add(&m->ps, name, nd, shape, 1, INIT_ZERO, 0);
}

static void add_block(FaceMesh *m, const MeshBlock *k) {
    add(m, MESH_DEPTHWISE, k->dw, 0, k->cin, 3, 3, 0);
    add(m, MESH_DEPTHWISE, k->dw, 1, k->cin, 0, 0, 0);
    add(m, MESH_CONV, k->pw, 0, k->cout, k->cin, 1, 1);
    add(m, MESH_CONV, k->pw, 1, k->cout, 0, 0, 0);
    add(m, MESH_PRELU, k->prelu, 0, k->cout, 0, 0, 0);
}

static void add_head(FaceMesh *m, const MeshHead *h) {
    add_block(m, &h->first);
    add(m, MESH_CONV, h->squeeze, 0, h->second.cin, h->first.cout, 1, 1);
    add(m, MESH_CONV, h->squeeze, 1, h->second.cin, 0, 0, 0);
    add(m, MESH_PRELU, h->squeeze_prelu, 0, h->second.cin, 0, 0, 0);
    add_block(m, &h->second);
    add(m, MESH_CONV, h->last, 0, h->out, h->second.cout, 3, 3);
    add(m, MESH_CONV, h->last, 1, h->out, 0, 0, 0);
}

void facemesh_build(FaceMesh *m) {
    memset(m, 0, sizeof(*m));
    add(m, MESH_CONV, 1, 0, 16, 3, 3, 3);
    add(m, MESH_CONV, 1, 1, 16, 0, 0, 0);
    add(m, MESH_PRELU, 1, 0, 16, 0, 0, 0);
    for (int i = 0; i < FACEMESH_TRUNK; i++) add_block(m, &MESH_TRUNK[i]);
    add_head(m, &MESH_LANDMARKS);
    add_head(m, &MESH_FACE_FLAG);
}

/* Activations: the padded input, then ping-pong maps, the depthwise output,
 * the pooled shortcut and the 6x6 map the face-flag head starts from. */
#define PADDED (3 * 193 * 193)
#define MAXMAP (16 * 96 * 96)
#define FLAG_MAP (128 * 6 * 6)

/* The largest workspace of any of the network's convolutions. */
static size_t scratch_floats(void) {
    size_t most = conv2d_scratch_floats((ConvShape){1, 3, 193, 193, 16, 3, 2, 0});
    int H = 96;
    for (int i = 0; i < FACEMESH_TRUNK; i++) {
        H = same_out_size(H, MESH_TRUNK[i].stride);
        size_t n = conv2d_scratch_floats((ConvShape){1, MESH_TRUNK[i].cin, H, H, MESH_TRUNK[i].cout, 1, 1, 0});
        if (n > most) most = n;
    }
    const MeshHead *heads[2] = {&MESH_LANDMARKS, &MESH_FACE_FLAG};
    for (int k = 0; k < 2; k++) {
        size_t n = conv2d_scratch_floats((ConvShape){1, 32, 3, 3, heads[k]->out, 3, 3, 0});
        if (n > most) most = n;
    }
    return most;
}

int facemesh_load(FaceMesh *m, const uint8_t *buf, size_t len, const char *what, Err *e) {
    facemesh_build(m);
    static Blob b;  /* large; the mesh loads once per program */
    if (blob_parse(&b, buf, len, FACEMESH_MAGIC, what, e)) return -1;
    char model[64];
    if (config_get(b.config, "model", model, sizeof(model)) || strcmp(model, "face-mesh") != 0)
        return err_set(e, "%s: not a Face Mesh landmark blob", what);
    if (params_alloc(&m->ps, 0)) return err_set(e, "%s: out of memory", what);
    m->work = malloc(sizeof(float) * (PADDED + 4 * (size_t)MAXMAP + FLAG_MAP));
    m->scratch = malloc(sizeof(float) * scratch_floats());
    if (!m->work || !m->scratch) { facemesh_free(m); return err_set(e, "%s: out of memory", what); }
    if (blob_read_params(&b, "", &m->ps, what, e)) { facemesh_free(m); return -1; }
    return 0;
}

void facemesh_free(FaceMesh *m) {
    params_free(&m->ps);
    free(m->work);
    free(m->scratch);
    m->work = m->scratch = NULL;
}

/* Layer n's tensor `part` (0: weights or slopes, 1: bias), found when the mesh was built. */
static const float *param(const FaceMesh *m, int kind, int n, int part) { return m->ps.data + m->at[kind][n][part]; }

/* conv2d_<n> as a 1x1 convolution, bias added, then p_re_lu_<prelu> (0: none) */
static void conv1x1_prelu(FaceMesh *m, float *out, const float *inp, int n, int prelu, int cin, int cout, int H) {
    conv2d_forward(out, inp, param(m, MESH_CONV, n, 0), param(m, MESH_CONV, n, 1), m->scratch,
                   (ConvShape){1, cin, H, H, cout, 1, 1, 0});
    if (prelu) prelu_forward(out, out, param(m, MESH_PRELU, prelu, 0), 1, cout, H * H);
}

/* One block on x [cin,H,H] into y [cout,OH,OH]; dw and pool are scratch maps. */
static int block(FaceMesh *m, const MeshBlock *k, float *y, const float *x, float *dw, float *pool, int H) {
    int OH = same_out_size(H, k->stride);
    size_t plane = (size_t)OH * OH;
    dwconv3_forward(dw, x, param(m, MESH_DEPTHWISE, k->dw, 0), param(m, MESH_DEPTHWISE, k->dw, 1), 1,
                    k->cin, H, H, k->stride);
    conv1x1_prelu(m, y, dw, k->pw, 0, k->cin, k->cout, OH);
    const float *shortcut = x;
    if (k->stride == 2) { maxpool2_forward(pool, x, 1, k->cin, H, H); shortcut = pool; }
    /* the shortcut is zero-extended to cout channels: only the first cin get it */
    residual_forward(y, y, shortcut, (size_t)k->cin * plane);
    prelu_forward(y, y, param(m, MESH_PRELU, k->prelu, 0), 1, k->cout, (int)plane);
    return OH;
}

/* A head from x [first.cin,H,H] to out [h->out]; x itself is not written. */
static void head(FaceMesh *m, const MeshHead *h, const float *x, int H, float *out) {
    float *a = m->work + PADDED, *b = a + MAXMAP, *dw = b + MAXMAP, *pool = dw + MAXMAP;
    H = block(m, &h->first, a, x, dw, pool, H);
    conv1x1_prelu(m, b, a, h->squeeze, h->squeeze_prelu, h->first.cout, h->second.cin, H);
    H = block(m, &h->second, a, b, dw, pool, H);
    /* the last 3x3 convolution covers the whole 3x3 map */
    conv2d_forward(out, a, param(m, MESH_CONV, h->last, 0), param(m, MESH_CONV, h->last, 1), m->scratch,
                   (ConvShape){1, h->second.cout, H, H, h->out, 3, 3, 0});
}

void facemesh_forward(FaceMesh *m, const float *img, float *points, float *flag_logit) {
    float *pad = m->work, *x = pad + PADDED, *y = x + MAXMAP, *dw = y + MAXMAP, *pool = dw + MAXMAP,
          *flag_in = pool + MAXMAP;
    /* TensorFlow's "SAME" 3x3 stride-2 convolution on 192 pads 0 before and 1 after */
    zeropad_forward(pad, img, 1, 3, FACEMESH_RES, FACEMESH_RES, 0, 0, 1, 1);
    conv2d_forward(x, pad, param(m, MESH_CONV, 1, 0), param(m, MESH_CONV, 1, 1), m->scratch,
                   (ConvShape){1, 3, 193, 193, 16, 3, 2, 0});
    int H = 96;
    prelu_forward(x, x, param(m, MESH_PRELU, 1, 0), 1, 16, H * H);
    for (int i = 0; i < FACEMESH_TRUNK; i++) {
        H = block(m, &MESH_TRUNK[i], y, x, dw, pool, H);
        float *t = x; x = y; y = t;
        if (i + 1 == FLAG_FROM) memcpy(flag_in, x, sizeof(float) * 128 * H * H);
    }
    /* the heads reuse the trunk's maps: the trunk's output moves out of their way */
    float trunk_out[128 * 3 * 3];
    memcpy(trunk_out, x, sizeof(trunk_out));
    head(m, &MESH_LANDMARKS, trunk_out, H, points);
    head(m, &MESH_FACE_FLAG, flag_in, 6, flag_logit);
}

CropBox facemesh_roi(const FaceDet *d) {
    CropBox b;
    float w = d->x1 - d->x0, h = d->y1 - d->y0;
    b.cx = 0.5f * (d->x0 + d->x1);
    b.cy = 0.5f * (d->y0 + d->y1);
    b.size = 1.5f * (w > h ? w : h);
    /* level eyes: the turn from the right eye (the image's left) to the left one */
    b.angle = atan2f(d->kp[KP_LEFT_EYE][1] - d->kp[KP_RIGHT_EYE][1], d->kp[KP_LEFT_EYE][0] - d->kp[KP_RIGHT_EYE][0]);
    return b;
}

int facemesh_confirm(FaceMesh *m, const Photo *p, FaceDet *d, int n, CropBox *crops, FaceLandmarks *lm) {
    static FaceLandmarks one;
    float rank[FACEDET_MAX_FACES];
    int kept = 0;
    for (int i = 0; i < n && i < FACEDET_MAX_FACES; i++) {
        FaceLandmarks *l = lm ? &lm[kept] : &one;
        facemesh_photo(m, p, facemesh_roi(&d[i]), l);
        if (!(l->score >= FACEMESH_MIN_FLAG)) continue;
        /* the mesh's flag is the sharper judge: a blurred crowd's face-like patch can outscore a real face in
         * the detector; ranked by the two together, the face the mesh is sure of comes first */
        rank[kept] = l->score * d[i].score;
        d[kept] = d[i];
        crops[kept++] = facespace_crop(l);
    }
    /* insertion sort by rank, best first, keeping the detector's order among equals */
    for (int i = 1; i < kept; i++)
        for (int j = i; j > 0 && rank[j] > rank[j - 1]; j--) {
            float r = rank[j]; rank[j] = rank[j - 1]; rank[j - 1] = r;
            FaceDet t = d[j]; d[j] = d[j - 1]; d[j - 1] = t;
            CropBox c = crops[j]; crops[j] = crops[j - 1]; crops[j - 1] = c;
            if (lm) { static FaceLandmarks tl; tl = lm[j]; lm[j] = lm[j - 1]; lm[j - 1] = tl; }
        }
    return kept;
}

int facemesh_in_crop(FaceDetector *fd, FaceMesh *m, const Photo *p, FaceLandmarks *out) {
    FaceDet d[4];
    CropBox roi;
    int found = facedet_photo(fd, p, d, 4) > 0;
    /* undetected, the square MediaPipe would cut around a face filling the crop */
    roi = found ? facemesh_roi(&d[0]) : (CropBox){p->w * 0.5f, p->h * 0.5f, 1.5f * (p->w > p->h ? p->w : p->h), 0};
    facemesh_photo(m, p, roi, out);
    return found;
}

void facemesh_to_floats(const FaceLandmarks *l, float *o) {
    o[0] = l->score;
    o[1] = l->roi.cx, o[2] = l->roi.cy, o[3] = l->roi.size, o[4] = l->roi.angle;
    memcpy(o + 5, l->pt, sizeof(l->pt));
}

FaceDet facedet_from_floats(const float *f) {
    FaceDet d;
    d.score = f[0];
    d.x0 = f[1], d.y0 = f[2], d.x1 = f[3], d.y1 = f[4];
    for (int k = 0; k < KP_COUNT; k++) d.kp[k][0] = f[5 + 2 * k], d.kp[k][1] = f[6 + 2 * k];
    return d;
}

void facemesh_photo(FaceMesh *m, const Photo *p, CropBox roi, FaceLandmarks *out) {
    static float img[3 * FACEMESH_RES * FACEMESH_RES];
    float pts[3 * FACEMESH_POINTS], logit;
    photo_sample(p, roi, FACEMESH_RES, 1, img);
    for (size_t i = 0; i < sizeof(img) / sizeof(img[0]); i++) img[i] = 0.5f * (img[i] + 1.0f); /* [-1,1] -> [0,1] */
    facemesh_forward(m, img, pts, &logit);
    out->score = 1.0f / (1.0f + expf(-logit));
    out->roi = roi;
    float scale = roi.size / FACEMESH_RES, half = 0.5f * roi.size, ca = cosf(roi.angle), sa = sinf(roi.angle);
    for (int k = 0; k < FACEMESH_POINTS; k++) {
        float u = pts[3 * k] * scale - half, v = pts[3 * k + 1] * scale - half;
        out->pt[k][0] = roi.cx + ca * u - sa * v;
        out->pt[k][1] = roi.cy + sa * u + ca * v;
        out->pt[k][2] = pts[3 * k + 2] * scale;
    }
}
