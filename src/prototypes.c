#include "prototypes.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "facespace.h"
#include "pyramid.h"

#define SHAPE_FLOATS (FACEMESH_POINTS * 2)
#define COLOUR_FLOATS (3 * PROTO_COLOUR_SIDE * PROTO_COLOUR_SIDE)
static size_t amp_floats(int k) { return (size_t)proto_amp_side(k) * proto_amp_side(k); }
static size_t band_floats(int k) { return (size_t)proto_band_side(k) * proto_band_side(k); }
/* one group's floats, laid out shape, colour, amplitudes, bands */
static size_t group_floats(void) {
    size_t n = SHAPE_FLOATS + COLOUR_FLOATS;
    for (int k = 0; k < PROTO_BANDS; k++) n += amp_floats(k) + band_floats(k);
    return n;
}

int proto_alloc(Prototypes *P, int groups) {
    memset(P, 0, sizeof(*P));
    P->groups = groups;
    P->mem = calloc(group_floats() * groups, sizeof(float));
    if (!P->mem) return -1;
    float *m = P->mem;
    P->shape = m, m += (size_t)groups * SHAPE_FLOATS;
    P->colour = m, m += (size_t)groups * COLOUR_FLOATS;
    for (int k = 0; k < PROTO_BANDS; k++) P->amp[k] = m, m += groups * amp_floats(k);
    for (int k = 0; k < PROTO_BANDS; k++) P->tex[k] = m, m += groups * band_floats(k);
    for (int g = 0; g < groups; g++) P->strength[g] = 1.0f;
    return 0;
}

void proto_free(Prototypes *P) {
    free(P->mem);
    memset(P, 0, sizeof(*P));
}

int proto_parse_strength(Prototypes *P, const char *text, Err *e) {
    const char *s = text;
    for (int g = 0; g < P->groups; g++) {
        char *end;
        float v = strtof(s, &end);
        if (end == s || !(v >= 0.0f && v <= 4.0f))
            return err_set(e, "prototype strength \"%.60s\": want %d numbers from 0 to 4, comma-separated", text, P->groups);
        P->strength[g] = v;
        s = end;
        if (g + 1 < P->groups) {
            if (*s != ',') return err_set(e, "prototype strength \"%.60s\": want %d numbers, comma-separated", text, P->groups);
            s++;
        }
    }
    if (*s && *s != '\n') return err_set(e, "prototype strength \"%.60s\": more than %d numbers", text, P->groups);
    return 0;
}

void proto_strength_text(const Prototypes *P, char *buf, size_t n) {
    size_t k = 0;
    buf[0] = 0;
    for (int g = 0; g < P->groups && k < n; g++) k += snprintf(buf + k, n - k, "%s%.3g", g ? "," : "", P->strength[g]);
}

int proto_load(Prototypes *P, const Blob *b, int groups, const char *what, Err *e) {
    memset(P, 0, sizeof(*P));
    if (!blob_find(b, "proto.shape")) return 1;
    if (proto_alloc(P, groups)) return err_set(e, "%s: out of memory for the age prototypes", what);
    char name[32], text[256];
    int rc = blob_read_floats(b, "proto.shape", P->shape, (size_t)groups * SHAPE_FLOATS, what, e) ||
             blob_read_floats(b, "proto.colour", P->colour, (size_t)groups * COLOUR_FLOATS, what, e);
    for (int k = 0; k < PROTO_BANDS && !rc; k++) {
        snprintf(name, sizeof(name), "proto.amp%d", k);
        rc = blob_read_floats(b, name, P->amp[k], groups * amp_floats(k), what, e);
        snprintf(name, sizeof(name), "proto.tex%d", k);
        if (!rc) rc = blob_read_floats(b, name, P->tex[k], groups * band_floats(k), what, e);
    }
    if (!rc && !config_get(b->config, PROTO_STRENGTH_KEY, text, sizeof(text)) && proto_parse_strength(P, text, e)) {
        char msg[sizeof(e->msg)];
        snprintf(msg, sizeof(msg), "%.100s: %.380s", what, e->msg);
        err_set(e, "%s", msg);
        rc = 1;
    }
    /* every value is a mean of photos: anything else is damage */
    size_t total = group_floats() * groups;
    for (size_t i = 0; i < total && !rc; i++)
        if (!isfinite(P->mem[i]) || fabsf(P->mem[i]) > 1000.0f) rc = err_set(e, "%s: age prototypes hold an impossible value", what) || 1;
    if (rc) { proto_free(P); return -1; }
    return 0;
}

/* The colour and the texture bands as int8 with a scale per group (what
 * they change is a few grey levels, a step far below one); the amplitudes
 * float16, as gains are their ratios and a child's fine amplitude is near 0. */
void proto_write(BlobWriter *w, const Prototypes *P) {
    int G = P->groups;
    int shape[4] = {G, FACEMESH_POINTS, 2}, col[4] = {G, 3, PROTO_COLOUR_SIDE, PROTO_COLOUR_SIDE};
    blobw_floats(w, "proto.shape", DT_F32, 3, shape, P->shape);
    blobw_floats(w, "proto.colour", DT_Q8, 4, col, P->colour);
    char name[32];
    for (int k = 0; k < PROTO_BANDS; k++) {
        int a[3] = {G, proto_amp_side(k), proto_amp_side(k)}, t[3] = {G, proto_band_side(k), proto_band_side(k)};
        snprintf(name, sizeof(name), "proto.amp%d", k);
        blobw_floats(w, name, DT_F16, 3, a, P->amp[k]);
        snprintf(name, sizeof(name), "proto.tex%d", k);
        blobw_floats(w, name, DT_Q8, 3, t, P->tex[k]);
    }
}

/* ---- one face's measurements ---- */

int face_stats_alloc(FaceStats *s) {
    memset(s, 0, sizeof(*s));
    size_t n = 0;
    for (int k = 0; k < PROTO_BANDS; k++) n += band_floats(k) + amp_floats(k);
    s->mem = malloc(sizeof(float) * n);
    if (!s->mem) return -1;
    float *m = s->mem;
    for (int k = 0; k < PROTO_BANDS; k++) s->band[k] = m, m += band_floats(k), s->amp[k] = m, m += amp_floats(k);
    return 0;
}

void face_stats_free(FaceStats *s) {
    free(s->mem);
    memset(s, 0, sizeof(*s));
}

/* A mesh point in crop fractions of the face's crop box. */
static void to_crop(CropBox b, const float *pt, float *out) {
    float ca = cosf(b.angle), sa = sinf(b.angle), dx = pt[0] - b.cx, dy = pt[1] - b.cy;
    out[0] = 0.5f + (ca * dx + sa * dy) / b.size;
    out[1] = 0.5f + (-sa * dx + ca * dy) / b.size;
}

int face_stats_measure(FaceStats *s, const Photo *p, const FaceLandmarks *l) {
    const int S = PROTO_SIDE;
    size_t n = (size_t)S * S;
    FaceWarp w;
    uint8_t *space = malloc(n * 3);
    float *lev = malloc(sizeof(float) * n * 2), *rgb = malloc(sizeof(float) * n * 2);
    int rc = -1;
    if (!space || !lev || !rgb || facewarp_fit(&w, l)) goto done;
    facewarp_photo_to_space(&w, p, S, space);
    for (int k = 0; k < FACEMESH_POINTS; k++) to_crop(w.box, l->pt[k], s->shape[k]);
    /* brightness (the mean of R, G and B) split into octaves; the colour reduced to the coarsest level */
    float *g = lev, *g1 = lev + n;
    for (size_t i = 0; i < n; i++) g[i] = (space[i * 3] + space[i * 3 + 1] + space[i * 3 + 2]) / 3.0f;
    for (int k = 0; k < PROTO_BANDS; k++) {
        int side = S >> k;
        pyr_reduce(g, side, side, g1);
        pyr_band(g, g1, side, side, s->band[k]);
        pyr_amplitude(s->band[k], side, side, s->amp[k]);
        memcpy(g, g1, sizeof(float) * (side / 2) * (side / 2));
    }
    /* the colour over the photo's own pixels: UTKFace pads crops that reach past a photo's edge with black,
     * which would otherwise darken the prototypes' margins by how often a group's photos were padded */
    const int CS = PROTO_COLOUR_SIDE * PROTO_COLOUR_SIDE;
    for (int c = 0; c <= 3; c++) {
        float *a = rgb, *b = rgb + n;
        for (size_t i = 0; i < n; i++) {
            const uint8_t *px = space + i * 3;
            float valid = px[0] > 8 || px[1] > 8 || px[2] > 8;
            a[i] = c < 3 ? valid * px[c] : valid;
        }
        for (int k = 0; k < PROTO_BANDS; k++) {
            int side = S >> k;
            pyr_reduce(a, side, side, b);
            float *t = a; a = b; b = t;
        }
        memcpy(c < 3 ? s->colour + (size_t)c * CS : s->cover, a, sizeof(float) * CS);
    }
    for (int i = 0; i < CS; i++)
        for (int c = 0; c < 3; c++) s->colour[c * CS + i] = s->cover[i] > 1e-3f ? s->colour[c * CS + i] / s->cover[i] : 0;
    rc = 0;
    facewarp_free(&w);
done:
    free(space);
    free(lev);
    free(rgb);
    return rc;
}

/* ---- sums ---- */

int proto_sums_alloc(ProtoSums *s, int groups) {
    memset(s, 0, sizeof(*s));
    s->groups = groups;
    s->per_group = group_floats() + PROTO_COLOUR_SIDE * PROTO_COLOUR_SIDE; /* and the colour's coverage */
    s->sum = calloc(s->per_group * groups, sizeof(double));
    return s->sum ? 0 : -1;
}

void proto_sums_free(ProtoSums *s) {
    free(s->sum);
    memset(s, 0, sizeof(*s));
}

void proto_sums_add(ProtoSums *s, int group, double weight, const FaceStats *f) {
    double *d = s->sum + s->per_group * group;
    s->wsum[group] += weight;
    for (int i = 0; i < SHAPE_FLOATS; i++) *d++ += weight * f->shape[i / 2][i % 2];
    const int CS = PROTO_COLOUR_SIDE * PROTO_COLOUR_SIDE;
    for (int i = 0; i < COLOUR_FLOATS; i++) *d++ += weight * f->cover[i % CS] * f->colour[i];
    for (int k = 0; k < PROTO_BANDS; k++)
        for (size_t i = 0; i < amp_floats(k); i++) *d++ += weight * f->amp[k][i];
    for (int k = 0; k < PROTO_BANDS; k++)
        for (size_t i = 0; i < band_floats(k); i++) *d++ += weight * f->band[k][i];
    for (int i = 0; i < CS; i++) *d++ += weight * f->cover[i];
}

void proto_sums_merge(ProtoSums *into, const ProtoSums *from) {
    for (int g = 0; g < into->groups; g++) into->wsum[g] += from->wsum[g];
    for (size_t i = 0; i < into->per_group * into->groups; i++) into->sum[i] += from->sum[i];
}

/* How far the texture-enhanced band may be scaled past the plain mean: the
 * finest band's mean keeps a tenth of a face's amplitude or more where the
 * mesh aligns skin features; more than that would amplify averaging noise. */
#define TEX_MAX_SCALE 6.0f

void proto_sums_finish(const ProtoSums *s, Prototypes *P) {
    for (int g = 0; g < s->groups; g++) {
        const double *d = s->sum + s->per_group * g;
        double inv = s->wsum[g] > 0 ? 1.0 / s->wsum[g] : 0;
        for (int i = 0; i < SHAPE_FLOATS; i++) P->shape[(size_t)g * SHAPE_FLOATS + i] = (float)(*d++ * inv);
        /* the colour is weighted by its coverage too (the sums' last plane) */
        const int CS = PROTO_COLOUR_SIDE * PROTO_COLOUR_SIDE;
        const double *cover = s->sum + s->per_group * g + group_floats();
        for (int i = 0; i < COLOUR_FLOATS; i++, d++)
            P->colour[(size_t)g * COLOUR_FLOATS + i] = cover[i % CS] > 1e-9 ? (float)(*d / cover[i % CS]) : 0.0f;
        for (int k = 0; k < PROTO_BANDS; k++)
            for (size_t i = 0; i < amp_floats(k); i++) P->amp[k][g * amp_floats(k) + i] = (float)(*d++ * inv);
        for (int k = 0; k < PROTO_BANDS; k++) {
            int side = proto_band_side(k), half = proto_amp_side(k);
            float *t = P->tex[k] + g * band_floats(k);
            for (size_t i = 0; i < band_floats(k); i++) t[i] = (float)(*d++ * inv);
            /* the mean band rescaled to the group's mean amplitude (Tiddeman, Burt & Perrett 2001) */
            float *own = malloc(sizeof(float) * amp_floats(k)), *up_own = malloc(sizeof(float) * band_floats(k)),
                  *up_mean = malloc(sizeof(float) * band_floats(k));
            if (own && up_own && up_mean) {
                pyr_amplitude(t, side, side, own);
                pyr_resize(own, half, half, up_own, side, side);
                pyr_resize(P->amp[k] + g * amp_floats(k), half, half, up_mean, side, side);
                for (size_t i = 0; i < band_floats(k); i++) {
                    float scale = up_mean[i] / (up_own[i] + 0.05f);
                    t[i] *= scale > TEX_MAX_SCALE ? TEX_MAX_SCALE : scale;
                }
            }
            free(own);
            free(up_own);
            free(up_mean);
        }
    }
}

/* ---- the change ---- */

int face_change_alloc(FaceChange *c) {
    memset(c, 0, sizeof(*c));
    size_t n = 0;
    for (int k = 0; k < PROTO_BANDS; k++) n += 2 * amp_floats(k) + band_floats(k);
    c->mem = calloc(n, sizeof(float));
    if (!c->mem) return -1;
    float *m = c->mem;
    for (int k = 0; k < PROTO_BANDS; k++) {
        c->gain[k] = m, m += amp_floats(k);
        c->target_amp[k] = m, m += amp_floats(k);
        c->inject[k] = m, m += band_floats(k);
    }
    return 0;
}

void face_change_free(FaceChange *c) {
    free(c->mem);
    memset(c, 0, sizeof(*c));
}

/* The largest change of a band's amplitude either way: beyond it a photo's own
 * noise (JPEG blocks, sensor grain) would be amplified into grain. */
#define GAIN_LIMIT 3.0f
/* The detail is exaggerated less than the shape and the colour: past this,
 * a face taken to 60+ holds more wrinkles and shading than real faces of
 * that age (texture by scale up to 1.3 times theirs), while the judged age
 * rises mostly with the shape and the colour. */
#define DETAIL_STRENGTH_MAX 1.8f
/* The low-pass colour likewise: exaggerated further, the averages' shading
 * (eye bags, the jaw's shadow) and whatever lies beside a face in most
 * photos of a group turn into blotches on a real photo. */
#define COLOUR_STRENGTH_MAX 1.5f

void proto_change(const Prototypes *P, const ModelConfig *cfg, float source_age, float target_age, FaceChange *c) {
    int G = P->groups;
    float ws[MAX_GROUPS], wt[MAX_GROUPS], strength = 0;
    age_to_groupw(cfg, source_age, ws);
    age_to_groupw(cfg, target_age, wt);
    for (int g = 0; g < G; g++) strength += wt[g] * P->strength[g];
    memset(c->shape, 0, sizeof(c->shape));
    memset(c->colour, 0, sizeof(c->colour));
    float colour = strength < COLOUR_STRENGTH_MAX ? strength : COLOUR_STRENGTH_MAX;
    for (int g = 0; g < G; g++) {
        float d = wt[g] - ws[g];
        if (d == 0) continue;
        for (int i = 0; i < SHAPE_FLOATS; i++) c->shape[i / 2][i % 2] += d * strength * P->shape[(size_t)g * SHAPE_FLOATS + i];
        for (int i = 0; i < COLOUR_FLOATS; i++) c->colour[i] += d * colour * P->colour[(size_t)g * COLOUR_FLOATS + i];
    }
    float detail = strength < DETAIL_STRENGTH_MAX ? strength : DETAIL_STRENGTH_MAX;
    for (int k = 0; k < PROTO_BANDS; k++) {
        size_t na = amp_floats(k), nb = band_floats(k);
        for (size_t i = 0; i < na; i++) {
            float as = 0, at = 0;
            for (int g = 0; g < G; g++) as += ws[g] * P->amp[k][g * na + i], at += wt[g] * P->amp[k][g * na + i];
            float gain = powf((at + 0.05f) / (as + 0.05f), detail);
            gain = gain > GAIN_LIMIT ? GAIN_LIMIT : gain < 1 / GAIN_LIMIT ? 1 / GAIN_LIMIT : gain;
            c->gain[k][i] = gain;
            c->target_amp[k][i] = as * gain;
        }
        for (size_t i = 0; i < nb; i++) {
            float d = 0;
            for (int g = 0; g < G; g++) d += (wt[g] - ws[g]) * P->tex[k][g * nb + i];
            c->inject[k][i] = d * detail;
        }
    }
}

/* ---- masks in the face space ---- */

/* Signed distance (crop fractions, negative inside) to the mean shape's
 * convex hull, on a MASK_SIDE grid over the face space. */
#define MASK_SIDE 64
static float hull_dist[MASK_SIDE * MASK_SIDE];
static int hull_ready;

static double cross(const double *o, const double *a, const double *b) {
    return (a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0]);
}

static int by_xy(const void *a, const void *b) {
    const double *p = a, *q = b;
    return p[0] < q[0] ? -1 : p[0] > q[0] ? 1 : p[1] < q[1] ? -1 : p[1] > q[1];
}

static void make_hull_dist(void) {
    static double pts[FACEMESH_POINTS][2], hull[2 * FACEMESH_POINTS][2];
    for (int i = 0; i < FACEMESH_POINTS; i++) pts[i][0] = FACESPACE_MEAN[i][0], pts[i][1] = FACESPACE_MEAN[i][1];
    qsort(pts, FACEMESH_POINTS, sizeof(pts[0]), by_xy);
    int h = 0; /* Andrew's monotone chain */
    for (int i = 0; i < FACEMESH_POINTS; i++) {
        while (h >= 2 && cross(hull[h - 2], hull[h - 1], pts[i]) <= 0) h--;
        hull[h][0] = pts[i][0], hull[h][1] = pts[i][1], h++;
    }
    for (int i = FACEMESH_POINTS - 2, lo = h + 1; i >= 0; i--) {
        while (h >= lo && cross(hull[h - 2], hull[h - 1], pts[i]) <= 0) h--;
        hull[h][0] = pts[i][0], hull[h][1] = pts[i][1], h++;
    }
    h--; /* the last point repeats the first */
    for (int i = 0; i < MASK_SIDE; i++)
        for (int j = 0; j < MASK_SIDE; j++) {
            double q[2] = {-FACESPACE_MARGIN + (j + 0.5) / MASK_SIDE * (1 + 2 * FACESPACE_MARGIN),
                           -FACESPACE_MARGIN + (i + 0.5) / MASK_SIDE * (1 + 2 * FACESPACE_MARGIN)};
            double best = 1e30;
            int inside = 1;
            for (int e = 0; e < h; e++) {
                const double *a = hull[e], *b = hull[(e + 1) % h];
                if (cross(a, b, q) < 0) inside = 0;
                double dx = b[0] - a[0], dy = b[1] - a[1], t = ((q[0] - a[0]) * dx + (q[1] - a[1]) * dy) / (dx * dx + dy * dy);
                t = t < 0 ? 0 : t > 1 ? 1 : t;
                double ex = a[0] + t * dx - q[0], ey = a[1] + t * dy - q[1], d = sqrt(ex * ex + ey * ey);
                if (d < best) best = d;
            }
            hull_dist[i * MASK_SIDE + j] = (float)(inside ? -best : best);
        }
}

/* The hull's distances, made on first use (once, whichever thread comes first). */
static void hull_dist_ready(void) {
    _Pragma("omp critical(prototypes_mask)")
    if (!hull_ready) { make_hull_dist(); hull_ready = 1; }
}

/* The openings of the eyes and the mouth (MediaPipe's inner contours): no
 * prototype's colour or detail belongs inside them (children's eyes show
 * more iris within the same outline, so the averages darken an adult's
 * whites into dark holes; teeth show in some photos and not in others).
 * Measured on the face's own mesh in its photo: in the face space an open
 * mouth is squeezed into the mean shape's closed one. */
static const unsigned short OPENINGS[3][20] = {
    {33, 7, 163, 144, 145, 153, 154, 155, 133, 173, 157, 158, 159, 160, 161, 246},
    {263, 249, 390, 373, 374, 380, 381, 382, 362, 398, 384, 385, 386, 387, 388, 466},
    {78, 95, 88, 178, 87, 14, 317, 402, 318, 324, 308, 415, 310, 311, 312, 13, 82, 81, 80, 191},
};
static const int OPENING_POINTS[3] = {16, 16, 20};

/* Signed distance (photo pixels, negative inside) from (x, y) to the nearest opening of mesh l. */
static double opening_distance(const FaceLandmarks *l, double x, double y) {
    double best = 1e30;
    for (int o = 0; o < 3; o++) {
        int n = OPENING_POINTS[o], inside = 0;
        double near = 1e30;
        for (int e = 0; e < n; e++) {
            const float *a = l->pt[OPENINGS[o][e]], *b = l->pt[OPENINGS[o][(e + 1) % n]];
            /* crossing count (any polygon), and the distance to the edge */
            if ((a[1] > y) != (b[1] > y) && x < a[0] + (y - a[1]) * (b[0] - a[0]) / (b[1] - a[1])) inside = !inside;
            double dx = b[0] - a[0], dy = b[1] - a[1], len2 = dx * dx + dy * dy;
            double t = len2 > 0 ? ((x - a[0]) * dx + (y - a[1]) * dy) / len2 : 0;
            t = t < 0 ? 0 : t > 1 ? 1 : t;
            double ex = a[0] + t * dx - x, ey = a[1] + t * dy - y;
            near = fmin(near, sqrt(ex * ex + ey * ey));
        }
        best = fmin(best, inside ? -near : near);
    }
    return best;
}

static float smoothstep(float e0, float e1, float x) {
    float t = (x - e0) / (e1 - e0);
    t = t < 0 ? 0 : t > 1 ? 1 : t;
    return t * t * (3 - 2 * t);
}

/* The weights at canonical (u, v): of the detail change (the face inside its
 * outline), of the colour change (reaching into the hair and the face's
 * border), and of the reshaping (all but the face space's edge). */
static void mask_at(double u, double v, float *detail, float *colour, float *shape) {
    float span = 1 + 2 * FACESPACE_MARGIN;
    float d = pyr_sample(hull_dist, MASK_SIDE, MASK_SIDE, (float)((u + FACESPACE_MARGIN) / span * MASK_SIDE),
                         (float)((v + FACESPACE_MARGIN) / span * MASK_SIDE));
    *detail = smoothstep(0.03f, -0.03f, d);
    /* the colour change reaches into the hair above the face and at its temples, not beside the cheeks
     * and down the neck, where the background or whatever lies below the chin shows */
    float reach = 0.05f + 0.17f * smoothstep(0.45f, 0.25f, (float)v);
    *colour = smoothstep(reach, 0.02f, d);
    float edge = (float)fmin(fmin(u + FACESPACE_MARGIN, 1 + FACESPACE_MARGIN - u), fmin(v + FACESPACE_MARGIN, 1 + FACESPACE_MARGIN - v));
    *shape = smoothstep(0.0f, 0.12f, edge);
}

void face_space_masks(int S, float *detail, float *colour, float *shape) {
    hull_dist_ready();
    double span = 1 + 2 * FACESPACE_MARGIN;
    for (int i = 0; i < S; i++)
        for (int j = 0; j < S; j++) {
            size_t q = (size_t)i * S + j;
            mask_at(-FACESPACE_MARGIN + (j + 0.5) / S * span, -FACESPACE_MARGIN + (i + 0.5) / S * span, detail + q, colour + q,
                    shape + q);
        }
}

/* ---- applying a change ---- */

/* The detail change of brightness in the face space at side S = PROTO_SIDE <<
 * extra: the photo's own octaves (the face space's pixels) scaled by the
 * gains, the prototypes' detail added where the photo lacks it; octaves finer
 * than the prototypes' take the finest gain. Writes out [S][S]. */
static int detail_change(const FaceChange *c, const uint8_t *space, int S, int extra, float *out) {
    int levels = PROTO_BANDS + extra;
    size_t n = (size_t)S * S;
    float *band = malloc(sizeof(float) * n), *amp = malloc(sizeof(float) * n / 4),
          *acc = malloc(sizeof(float) * n), *tmp = malloc(sizeof(float) * n);
    float **lev = calloc(levels + 1, sizeof(float *));
    int rc = -1;
    if (!band || !amp || !acc || !tmp || !lev) goto done;
    /* the Gaussian levels, kept: level l is (S>>l)^2 floats */
    size_t total = 0;
    for (int l = 0; l <= levels; l++) total += (size_t)(S >> l) * (S >> l);
    float *all = malloc(sizeof(float) * total);
    if (!all) goto done;
    lev[0] = all;
    for (size_t i = 0; i < n; i++) all[i] = (space[i * 3] + space[i * 3 + 1] + space[i * 3 + 2]) / 3.0f;
    for (int l = 1; l <= levels; l++) {
        lev[l] = lev[l - 1] + (size_t)(S >> (l - 1)) * (S >> (l - 1));
        pyr_reduce(lev[l - 1], S >> (l - 1), S >> (l - 1), lev[l]);
    }
    /* coarse to fine: the change at each octave, plus the coarser ones brought up */
    int side = S >> levels;
    memset(acc, 0, sizeof(float) * side * side);
    for (int l = levels - 1; l >= 0; l--) {
        int sd = S >> l, k = l - extra < 0 ? 0 : l - extra, as = proto_amp_side(k), bs = proto_band_side(k);
        pyr_resize(acc, sd / 2, sd / 2, tmp, sd, sd);
        memcpy(acc, tmp, sizeof(float) * sd * sd);
        pyr_band(lev[l], lev[l + 1], sd, sd, band);
        pyr_amplitude(band, sd, sd, amp);
        float to_a = (float)as / sd, to_b = (float)bs / sd;
        int injects = l >= extra;
        for (int i = 0; i < sd; i++)
            for (int j = 0; j < sd; j++) {
                float x = j + 0.5f, y = i + 0.5f;
                float gain = pyr_sample(c->gain[k], as, as, x * to_a, y * to_a);
                float delta = band[(size_t)i * sd + j] * (gain - 1);
                if (injects && gain > 1) {
                    /* the share of the target's amplitude the photo's own scaled detail does not reach */
                    float want = pyr_sample(c->target_amp[k], as, as, x * to_a, y * to_a);
                    float have = gain * pyr_sample(amp, sd / 2, sd / 2, x * 0.5f, y * 0.5f);
                    float lack = want > 1e-3f ? 1 - have / want : 0;
                    lack = lack < 0 ? 0 : lack > 1 ? 1 : lack;
                    float ramp = (gain - 1) / 0.25f;
                    delta += lack * (ramp > 1 ? 1 : ramp) * pyr_sample(c->inject[k], bs, bs, x * to_b, y * to_b);
                }
                acc[(size_t)i * sd + j] += delta;
            }
    }
    memcpy(out, acc, sizeof(float) * n);
    free(all);
    rc = 0;
done:
    free(band);
    free(amp);
    free(acc);
    free(tmp);
    free(lev);
    return rc;
}

/* The change at a face-space position: the colour change (masked, out of
 * the fold-over) into rgb[3], the weight of the detail change, and that of
 * the reshaping (mask_at's). */
static void change_at(const FaceChange *c, const float *fold, double u, double v, float rgb[3], float *detail_weight,
                      float *shape_weight) {
    float md, mc, span = 1 + 2 * FACESPACE_MARGIN;
    mask_at(u, v, &md, &mc, shape_weight);
    float fu = (float)((u + FACESPACE_MARGIN) / span), fv = (float)((v + FACESPACE_MARGIN) / span);
    float f = pyr_sample(fold, MASK_SIDE, MASK_SIDE, fu * MASK_SIDE, fv * MASK_SIDE);
    for (int ch = 0; ch < 3; ch++)
        rgb[ch] = mc * f * pyr_sample(c->colour + (size_t)ch * PROTO_COLOUR_SIDE * PROTO_COLOUR_SIDE, PROTO_COLOUR_SIDE,
                                      PROTO_COLOUR_SIDE, fu * PROTO_COLOUR_SIDE, fv * PROTO_COLOUR_SIDE);
    *detail_weight = md * f;
}

/* Per grid point of the photo: face-space u, v; the source pixel x, y; whether the map is sound there; the
 * colour change r, g, b; the detail change's weight. */
enum { M_U, M_V, M_X, M_Y, M_OK, M_R, M_G, M_B, M_DW, M_FIELDS };

int face_change_apply(const FaceChange *c, Photo *p, const FaceLandmarks *l) {
    hull_dist_ready();
    FaceWarp w;
    FaceReshape rs;
    if (facewarp_fit(&w, l)) return -1;
    /* the face space at about the photo's own resolution: PROTO_SIDE times a power of two, at most 4 */
    double span = 1 + 2 * FACESPACE_MARGIN, want = w.box.size * span / PROTO_SIDE, lo = -FACESPACE_MARGIN, hi = 1 + FACESPACE_MARGIN;
    int extra = want > 2.8 ? 2 : want > 1.4 ? 1 : 0, S = PROTO_SIDE << extra;
    size_t n = (size_t)S * S;
    float shift[FACEMESH_POINTS][2], ca = cosf(w.box.angle), sa = sinf(w.box.angle);
    for (int k = 0; k < FACEMESH_POINTS; k++) {
        float du = c->shape[k][0] * w.box.size, dv = c->shape[k][1] * w.box.size;
        shift[k][0] = ca * du - sa * dv;
        shift[k][1] = sa * du + ca * dv;
    }
    uint8_t *space = malloc(n * 3);
    float *detail = malloc(sizeof(float) * n), *fold = malloc(sizeof(float) * MASK_SIDE * MASK_SIDE);
    double (*map)[M_FIELDS] = NULL;
    uint8_t *orig = NULL;
    int rc = -1, have_reshape = 0;
    if (!space || !detail || !fold) goto done;
    if (facewarp_reshape(&w, (const float (*)[2])shift, &rs)) goto done;
    have_reshape = 1;
    facewarp_photo_to_space(&w, p, S, space);
    if (detail_change(c, space, S, extra, detail)) goto done;
    /* where the face's map folds over or nearly (the far side of a face in profile), its face-space image
     * is squeezed photo, whose detail is no face's: no change there */
    _Pragma("omp parallel for schedule(static)")
    for (int i = 0; i < MASK_SIDE; i++)
        for (int j = 0; j < MASK_SIDE; j++) {
            double h = span / MASK_SIDE, u = lo + (j + 0.5) * h, v = lo + (i + 0.5) * h, x0, y0, x1, y1, x2, y2;
            facewarp_to_photo(&w, u - h / 2, v - h / 2, &x0, &y0);
            facewarp_to_photo(&w, u + h / 2, v - h / 2, &x1, &y1);
            facewarp_to_photo(&w, u - h / 2, v + h / 2, &x2, &y2);
            double det = ((x1 - x0) * (y2 - y0) - (x2 - x0) * (y1 - y0)) / (h * h * w.box.size * w.box.size);
            fold[i * MASK_SIDE + j] = smoothstep(0.15f, 0.4f, (float)det);
        }
    /* the photo pixels the face space covers (the reshaping leaves its border where it is) */
    int x0, y0, x1, y1;
    if (!facewarp_photo_bounds(&w, p, &x0, &y0, &x1, &y1)) { rc = 0; goto done; }
    int RW = x1 - x0, RH = y1 - y0;
    /* the warps and the colour change are smooth: computed on a grid about a hundredth of the face apart and
     * interpolated */
    int step = (int)(w.box.size / 96);
    step = step < 2 ? 2 : step;
    int GW = RW / step + 2, GH = RH / step + 2;
    map = malloc(sizeof(*map) * (size_t)GW * GH);
    orig = malloc((size_t)RW * RH * p->channels);
    if (!map || !orig) goto done;
    for (int y = 0; y < RH; y++)
        memcpy(orig + (size_t)y * RW * p->channels, p->px + ((size_t)(y0 + y) * p->w + x0) * p->channels, (size_t)RW * p->channels);
    _Pragma("omp parallel for schedule(dynamic)")
    for (int gi = 0; gi < GH; gi++)
        for (int gj = 0; gj < GW; gj++) {
            double x = x0 + gj * step + 0.5, y = y0 + gi * step + 0.5, u, v, sx, sy;
            float ms, rgb[3], dw;
            /* where this pixel of the reshaped face comes from in the photo as it was, and so in the face space */
            facewarp_reshape_source(&rs, x, y, &sx, &sy);
            int folded = facewarp_to_space(&w, sx, sy, &u, &v);
            change_at(c, fold, u, v, rgb, &dw, &ms);
            int inside = u >= lo && u <= hi && v >= lo && v <= hi;
            /* where the face's map folds over, the face-space position is only roughly right: the colour
             * change (low-pass) is taken there all the same, the detail not, or neighbouring pixels would
             * take their detail from far apart */
            /* out of the eyes' and the mouth's openings, by a hundredth of the face */
            float open = smoothstep(-0.003f, 0.012f, (float)(opening_distance(l, sx, sy) / w.box.size));
            for (int ch = 0; ch < 3; ch++) rgb[ch] *= open;
            dw *= open;
            double *m = map[gi * GW + gj];
            m[M_U] = u, m[M_V] = v, m[M_OK] = inside;
            m[M_X] = x + inside * ms * (sx - x), m[M_Y] = y + inside * ms * (sy - y);
            for (int ch = 0; ch < 3; ch++) m[M_R + ch] = inside * rgb[ch];
            m[M_DW] = inside && !folded ? dw : 0;
        }
    /* near a fold-over, neighbouring grid points can land far apart in the face space (a step of the grid
     * should move about step / side there): no detail change where it moves four times that */
    {
        double expect = step / w.box.size * 4;
        unsigned char *bad = calloc((size_t)GW * GH, 1);
        if (!bad) goto done;
        for (int gi = 0; gi < GH; gi++)
            for (int gj = 0; gj < GW; gj++) {
                const double *m = map[gi * GW + gj];
                for (int d = 0; d < 2; d++) {
                    int ni = gi + d, nj = gj + !d;
                    if (ni >= GH || nj >= GW) continue;
                    const double *o = map[ni * GW + nj];
                    if (fabs(o[M_U] - m[M_U]) + fabs(o[M_V] - m[M_V]) > expect) bad[gi * GW + gj] = bad[ni * GW + nj] = 1;
                }
            }
        for (int q = 0; q < GW * GH; q++)
            if (bad[q]) map[q][M_DW] = 0;
        free(bad);
    }
    /* the colour change is a low-pass field: a pass of [1 2 1] over the grid keeps a point the map got
     * wrong (near a fold-over) from showing as a dot */
    double *tmp = malloc(sizeof(double) * (size_t)GW * GH);
    if (!tmp) goto done;
    for (int ch = M_R; ch <= M_B; ch++)
        for (int pass = 0; pass < 2; pass++) {
            for (int gi = 0; gi < GH; gi++)
                for (int gj = 0; gj < GW; gj++) {
                    int a = pass ? gi : gj, lim = pass ? GH : GW, am = a > 0 ? a - 1 : a, ap = a + 1 < lim ? a + 1 : a;
                    double l0 = pass ? map[am * GW + gj][ch] : map[gi * GW + am][ch];
                    double l2 = pass ? map[ap * GW + gj][ch] : map[gi * GW + ap][ch];
                    tmp[gi * GW + gj] = 0.25 * l0 + 0.5 * map[gi * GW + gj][ch] + 0.25 * l2;
                }
            for (int q = 0; q < GW * GH; q++) map[q][ch] = tmp[q];
        }
    free(tmp);
    float k = (float)(S / span);
    _Pragma("omp parallel for schedule(static)")
    for (int y = y0; y < y1; y++)
        for (int x = x0; x < x1; x++) {
            int gi = (y - y0) / step, gj = (x - x0) / step;
            double fy = (double)((y - y0) % step) / step, fx = (double)((x - x0) % step) / step, m[M_FIELDS];
            for (int q = 0; q < M_FIELDS; q++)
                m[q] = (map[gi * GW + gj][q] * (1 - fx) + map[gi * GW + gj + 1][q] * fx) * (1 - fy) +
                       (map[(gi + 1) * GW + gj][q] * (1 - fx) + map[(gi + 1) * GW + gj + 1][q] * fx) * fy;
            if (m[M_OK] <= 0) continue;
            double rgb[3];
            pixels_sample_rgb_cubic(orig, RW, RH, p->channels, m[M_X] - 0.5 - x0, m[M_Y] - 0.5 - y0, rgb);
            float d = (float)m[M_DW] * pyr_sample(detail, S, S, (float)((m[M_U] - lo) * k), (float)((m[M_V] - lo) * k));
            uint8_t *o = p->px + ((size_t)y * p->w + x) * p->channels;
            for (int ch = 0; ch < 3; ch++) {
                float val = (float)rgb[ch] + (float)m[M_R + ch] + d + 0.5f;
                o[ch] = val <= 0 ? 0 : val >= 255 ? 255 : (uint8_t)val;
            }
        }
    rc = 0;
done:
    if (have_reshape) facewarp_reshape_free(&rs);
    facewarp_free(&w);
    free(space);
    free(detail);
    free(fold);
    free(map);
    free(orig);
    return rc;
}

int proto_reage(const Prototypes *P, const ModelConfig *cfg, Photo *p, const FaceLandmarks *l, float source_age,
                float target_age) {
    FaceChange c;
    if (face_change_alloc(&c)) return -1;
    proto_change(P, cfg, source_age, target_age, &c);
    int rc = face_change_apply(&c, p, l);
    face_change_free(&c);
    return rc;
}
