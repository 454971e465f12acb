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
    for (int g = 0; g < groups; g++) P->strength[g] = 1.0f, P->colour_max[g] = PROTO_COLOUR_MAX_DEFAULT;
    return 0;
}

void proto_free(Prototypes *P) {
    free(P->mem);
    memset(P, 0, sizeof(*P));
}

/* "a,b,...": one number from 0 to 4 for each of the groups into out */
static int parse_per_group(const char *what, const char *text, int groups, float *out, Err *e) {
    const char *s = text;
    for (int g = 0; g < groups; g++) {
        char *end;
        float v = strtof(s, &end);
        if (end == s || !(v >= 0.0f && v <= 4.0f))
            return err_set(e, "%s \"%.60s\": want %d numbers from 0 to 4, comma-separated", what, text, groups);
        out[g] = v;
        s = end;
        if (g + 1 < groups) {
            if (*s != ',') return err_set(e, "%s \"%.60s\": want %d numbers, comma-separated", what, text, groups);
            s++;
        }
    }
    if (*s && *s != '\n') return err_set(e, "%s \"%.60s\": more than %d numbers", what, text, groups);
    return 0;
}

int proto_parse_strength(Prototypes *P, const char *text, Err *e) {
    return parse_per_group("prototype strength", text, P->groups, P->strength, e);
}

int proto_parse_colour_max(Prototypes *P, const char *text, Err *e) {
    return parse_per_group("prototype colour exaggeration", text, P->groups, P->colour_max, e);
}

static void per_group_text(const float *v, int groups, char *buf, size_t n) {
    size_t k = 0;
    buf[0] = 0;
    for (int g = 0; g < groups && k < n; g++) k += snprintf(buf + k, n - k, "%s%.3g", g ? "," : "", v[g]);
}

void proto_strength_text(const Prototypes *P, char *buf, size_t n) { per_group_text(P->strength, P->groups, buf, n); }

void proto_colour_max_text(const Prototypes *P, char *buf, size_t n) { per_group_text(P->colour_max, P->groups, buf, n); }

int proto_read_config(Prototypes *P, const char *config, const char *what, Err *e) {
    char text[256];
    if ((!config_get(config, PROTO_STRENGTH_KEY, text, sizeof(text)) && proto_parse_strength(P, text, e)) ||
        (!config_get(config, PROTO_COLOUR_MAX_KEY, text, sizeof(text)) && proto_parse_colour_max(P, text, e))) {
        char msg[sizeof(e->msg)];
        snprintf(msg, sizeof(msg), "%.100s: %.380s", what, e->msg);
        return err_set(e, "%s", msg);
    }
    return 0;
}

int proto_load(Prototypes *P, const Blob *b, int groups, const char *what, Err *e) {
    memset(P, 0, sizeof(*P));
    if (!blob_find(b, "proto.shape")) return 1;
    if (proto_alloc(P, groups)) return err_set(e, "%s: out of memory for the age prototypes", what);
    char name[32];
    int rc = blob_read_floats(b, "proto.shape", P->shape, (size_t)groups * SHAPE_FLOATS, what, e) ||
             blob_read_floats(b, "proto.colour", P->colour, (size_t)groups * COLOUR_FLOATS, what, e);
    for (int k = 0; k < PROTO_BANDS && !rc; k++) {
        snprintf(name, sizeof(name), "proto.amp%d", k);
        rc = blob_read_floats(b, name, P->amp[k], groups * amp_floats(k), what, e);
        snprintf(name, sizeof(name), "proto.tex%d", k);
        if (!rc) rc = blob_read_floats(b, name, P->tex[k], groups * band_floats(k), what, e);
    }
    if (!rc && proto_read_config(P, b->config, what, e)) rc = 1;
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
/* The detail is exaggerated less than the shape: past this,
 * a face taken to 60+ holds more wrinkles and shading than real faces of
 * that age (texture by scale up to 1.3 times theirs), while the judged age
 * rises mostly with the shape and the colour. */
#define DETAIL_STRENGTH_MAX 1.8f

void proto_change(const Prototypes *P, const ModelConfig *cfg, float source_age, float target_age, FaceChange *c) {
    int G = P->groups;
    float ws[MAX_GROUPS], wt[MAX_GROUPS], strength = 0, colour = 0;
    age_to_groupw(cfg, source_age, ws);
    age_to_groupw(cfg, target_age, wt);
    for (int g = 0; g < G; g++) {
        strength += wt[g] * P->strength[g];
        colour += wt[g] * (P->strength[g] < P->colour_max[g] ? P->strength[g] : P->colour_max[g]);
    }
    memset(c->shape, 0, sizeof(c->shape));
    memset(c->colour, 0, sizeof(c->colour));
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

int proto_reage(const Prototypes *P, const ModelConfig *cfg, Photo *p, const FaceLandmarks *l, float source_age,
                float target_age) {
    return proto_reage_grid(P, cfg, p, l, source_age, target_age, FACE_GRID_DIV);
}

int proto_reage_grid(const Prototypes *P, const ModelConfig *cfg, Photo *p, const FaceLandmarks *l, float source_age,
                     float target_age, int grid_div) {
    FaceChange c;
    if (face_change_alloc(&c)) return -1;
    proto_change(P, cfg, source_age, target_age, &c);
    int rc = face_change_apply_grid(&c, p, l, grid_div);
    face_change_free(&c);
    return rc;
}
