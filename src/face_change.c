/* Applying a change (prototypes.h's FaceChange) to a face in its photo: the
 * masks in the face space, the photo's own detail scaled, and the warp at the
 * photo's resolution. In three steps, so that one face can take many changes
 * (the slider's preview): face_setup once per face and photo, face_plan per
 * change, face_plan_render per picture. */
#include "prototypes.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "facespace.h"
#include "parallel.h"
#include "pyramid.h"

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
static void change_at(const FaceChange *c, const float *fold, int fold_side, double u, double v, float rgb[3],
                      float *detail_weight, float *shape_weight) {
    float md, mc, span = 1 + 2 * FACESPACE_MARGIN;
    mask_at(u, v, &md, &mc, shape_weight);
    float fu = (float)((u + FACESPACE_MARGIN) / span), fv = (float)((v + FACESPACE_MARGIN) / span);
    float f = pyr_sample(fold, fold_side, fold_side, fu * fold_side, fv * fold_side);
    for (int ch = 0; ch < 3; ch++)
        rgb[ch] = mc * f * pyr_sample(c->colour + (size_t)ch * PROTO_COLOUR_SIDE * PROTO_COLOUR_SIDE, PROTO_COLOUR_SIDE,
                                      PROTO_COLOUR_SIDE, fu * PROTO_COLOUR_SIDE, fv * PROTO_COLOUR_SIDE);
    *detail_weight = md * f;
}

/* Per grid point of the photo: face-space u, v; the source pixel x, y; whether the map is sound there; the
 * colour change r, g, b; the detail change's weight. */
enum { M_U, M_V, M_X, M_Y, M_OK, M_R, M_G, M_B, M_DW, M_FIELDS };

/* where the map folds: the Jacobian's determinant of the face space's map, over rows [i0, i1) of the fold grid */
static void fold_rows(void *ctx, int i0, int i1, int thread) {
    FaceSetup *s = ctx;
    const FaceWarp *w = &s->w;
    int F = s->fold_side;
    double span = 1 + 2 * FACESPACE_MARGIN, lo = -FACESPACE_MARGIN;
    (void)thread;
    for (int i = i0; i < i1; i++)
        for (int j = 0; j < F; j++) {
            double h = span / F, u = lo + (j + 0.5) * h, v = lo + (i + 0.5) * h, x0, y0, x1, y1, x2, y2;
            facewarp_to_photo(w, u - h / 2, v - h / 2, &x0, &y0);
            facewarp_to_photo(w, u + h / 2, v - h / 2, &x1, &y1);
            facewarp_to_photo(w, u - h / 2, v + h / 2, &x2, &y2);
            double det = ((x1 - x0) * (y2 - y0) - (x2 - x0) * (y1 - y0)) / (h * h * w->box.size * w->box.size);
            s->fold[i * F + j] = smoothstep(0.15f, 0.4f, (float)det);
        }
}

int face_setup(FaceSetup *s, const Photo *p, const FaceLandmarks *l, int grid_div) {
    hull_dist_ready();
    memset(s, 0, sizeof(*s));
    if (facewarp_fit(&s->w, l)) return -1;
    s->l = *l;
    /* the face space at about the photo's own resolution: PROTO_SIDE times a power of two, at most 4 */
    FaceWarp *w = &s->w;
    double span = 1 + 2 * FACESPACE_MARGIN, want = w->box.size * span / PROTO_SIDE;
    s->extra = grid_div <= FACE_GRID_LIVE ? 0 : want > 2.8 ? 2 : want > 1.4 ? 1 : 0;
    s->S = PROTO_SIDE << s->extra;
    s->space = malloc((size_t)s->S * s->S * 3);
    /* where the map folds, on the masks' grid; half as fine on a coarse grid (the preview, the camera) */
    int F = s->fold_side = grid_div >= FACE_GRID_DIV ? MASK_SIDE : MASK_SIDE / 2;
    s->fold = malloc(sizeof(float) * F * F);
    if (!s->space || !s->fold) { face_setup_free(s); return -1; }
    facewarp_photo_to_space(w, p, s->S, s->space);
    /* where the face's map folds over or nearly (the far side of a face in profile), its face-space image
     * is squeezed photo, whose detail is no face's: no change there */
    parallel_for(F, 4, fold_rows, s);
    /* the photo pixels the face space covers (the reshaping leaves its border where it is) */
    if (!facewarp_photo_bounds(w, p, &s->x0, &s->y0, &s->x1, &s->y1)) { s->x1 = s->x0, s->y1 = s->y0; return 0; }
    /* the warps and the colour change are smooth: computed on a grid about 1/grid_div of the face apart and
     * interpolated */
    int step = (int)(w->box.size / grid_div);
    s->step = step < 2 ? 2 : step;
    s->GW = (s->x1 - s->x0) / s->step + 2, s->GH = (s->y1 - s->y0) / s->step + 2;
    return 0;
}

void face_setup_free(FaceSetup *s) {
    facewarp_free(&s->w);
    free(s->space);
    free(s->fold);
    memset(s, 0, sizeof(*s));
}

static size_t plan_map_doubles(const FaceSetup *s) { return (size_t)s->GW * s->GH * M_FIELDS; }

int face_plan_alloc(FacePlan *f, const FaceSetup *s) {
    f->map = malloc(sizeof(double) * (plan_map_doubles(s) + 1));
    f->detail = malloc(sizeof(float) * s->S * s->S);
    if (!f->map || !f->detail) { face_plan_free(f); return -1; }
    return 0;
}

void face_plan_free(FacePlan *f) {
    free(f->map);
    free(f->detail);
    f->map = NULL, f->detail = NULL;
}

/* a plan's map over rows [gi0, gi1) of its grid: where each grid point's pixel comes from, and its colour and
 * detail change */
typedef struct {
    const FaceSetup *s;
    const FaceChange *c;
    const FaceReshape *rs;
    double (*map)[M_FIELDS];
} PlanRows;

static void plan_rows(void *ctx, int gi0, int gi1, int thread) {
    const PlanRows *r = ctx;
    const FaceSetup *s = r->s;
    const FaceWarp *w = &s->w;
    const FaceLandmarks *l = &s->l;
    double lo = -FACESPACE_MARGIN, hi = 1 + FACESPACE_MARGIN;
    int GW = s->GW, step = s->step;
    (void)thread;
    for (int gi = gi0; gi < gi1; gi++)
        for (int gj = 0; gj < GW; gj++) {
            double x = s->x0 + gj * step + 0.5, y = s->y0 + gi * step + 0.5, u, v, sx, sy;
            float ms, rgb[3], dw;
            /* where this pixel of the reshaped face comes from in the photo as it was, and so in the face space */
            facewarp_reshape_source(r->rs, x, y, &sx, &sy);
            int folded = facewarp_to_space(w, sx, sy, &u, &v);
            change_at(r->c, s->fold, s->fold_side, u, v, rgb, &dw, &ms);
            int inside = u >= lo && u <= hi && v >= lo && v <= hi;
            /* where the face's map folds over, the face-space position is only roughly right: the colour
             * change (low-pass) is taken there all the same, the detail not, or neighbouring pixels would
             * take their detail from far apart */
            /* out of the eyes' and the mouth's openings, by a hundredth of the face */
            float open = smoothstep(-0.003f, 0.012f, (float)(opening_distance(l, sx, sy) / w->box.size));
            for (int ch = 0; ch < 3; ch++) rgb[ch] *= open;
            dw *= open;
            double *m = r->map[gi * GW + gj];
            m[M_U] = u, m[M_V] = v, m[M_OK] = inside;
            m[M_X] = x + inside * ms * (sx - x), m[M_Y] = y + inside * ms * (sy - y);
            for (int ch = 0; ch < 3; ch++) m[M_R + ch] = inside * rgb[ch];
            m[M_DW] = inside && !folded ? dw : 0;
        }
}

int face_plan(FacePlan *f, const FaceSetup *s, const FaceChange *c) {
    const FaceWarp *w = &s->w;
    float shift[FACEMESH_POINTS][2], ca = cosf(w->box.angle), sa = sinf(w->box.angle);
    for (int k = 0; k < FACEMESH_POINTS; k++) {
        float du = c->shape[k][0] * w->box.size, dv = c->shape[k][1] * w->box.size;
        shift[k][0] = ca * du - sa * dv;
        shift[k][1] = sa * du + ca * dv;
    }
    FaceReshape rs;
    if (facewarp_reshape(w, (const float (*)[2])shift, &rs)) return -1;
    int rc = -1, GW = s->GW, GH = s->GH, step = s->step;
    if (detail_change(c, s->space, s->S, s->extra, f->detail)) goto done;
    double (*map)[M_FIELDS] = (double (*)[M_FIELDS])f->map;
    PlanRows rows = {s, c, &rs, map};
    parallel_for(s->GH, 1, plan_rows, &rows);
    /* near a fold-over, neighbouring grid points can land far apart in the face space (a step of the grid
     * should move about step / side there): no detail change where it moves four times that */
    {
        double expect = step / w->box.size * 4;
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
    rc = 0;
done:
    facewarp_reshape_free(&rs);
    return rc;
}

void face_plan_mix(FacePlan *out, const FaceSetup *s, const FacePlan *a, const FacePlan *b, float t) {
    size_t nm = plan_map_doubles(s), nd = (size_t)s->S * s->S;
    for (size_t i = 0; i < nm; i++) out->map[i] = a->map[i] + t * (b->map[i] - a->map[i]);
    for (size_t i = 0; i < nd; i++) out->detail[i] = a->detail[i] + t * (b->detail[i] - a->detail[i]);
}

/* rows [y0, y1) of the face's region in the photo: the plan's map interpolated, the photo sampled where it says and
 * the changes added */
typedef struct {
    const FaceSetup *s;
    const FacePlan *f;
    const Photo *src;
    int ox, oy;
    Photo *p;
} RenderRows;

static void render_rows(void *ctx, int y0, int y1, int thread) {
    const RenderRows *r = ctx;
    const FaceSetup *s = r->s;
    const Photo *src = r->src;
    const double (*map)[M_FIELDS] = (const double (*)[M_FIELDS])r->f->map;
    int GW = s->GW, step = s->step, S = s->S;
    double span = 1 + 2 * FACESPACE_MARGIN, lo = -FACESPACE_MARGIN;
    float k = (float)(S / span);
    (void)thread;
    for (int y = s->y0 + y0; y < s->y0 + y1; y++)
        for (int x = s->x0; x < s->x1; x++) {
            int gi = (y - s->y0) / step, gj = (x - s->x0) / step;
            double fy = (double)((y - s->y0) % step) / step, fx = (double)((x - s->x0) % step) / step, m[M_FIELDS];
            for (int q = 0; q < M_FIELDS; q++)
                m[q] = (map[gi * GW + gj][q] * (1 - fx) + map[gi * GW + gj + 1][q] * fx) * (1 - fy) +
                       (map[(gi + 1) * GW + gj][q] * (1 - fx) + map[(gi + 1) * GW + gj + 1][q] * fx) * fy;
            if (m[M_OK] <= 0) continue;
            double rgb[3];
            pixels_sample_rgb_cubic(src->px, src->w, src->h, src->channels, m[M_X] - 0.5 - r->ox, m[M_Y] - 0.5 - r->oy, rgb);
            float d = (float)m[M_DW] * pyr_sample(r->f->detail, S, S, (float)((m[M_U] - lo) * k), (float)((m[M_V] - lo) * k));
            uint8_t *o = r->p->px + ((size_t)y * r->p->w + x) * r->p->channels;
            for (int ch = 0; ch < 3; ch++) {
                float val = (float)rgb[ch] + (float)m[M_R + ch] + d + 0.5f;
                o[ch] = val <= 0 ? 0 : val >= 255 ? 255 : (uint8_t)val;
            }
        }
}

void face_plan_render(const FaceSetup *s, const FacePlan *f, const Photo *src, int ox, int oy, Photo *p) {
    RenderRows rows = {s, f, src, ox, oy, p};
    parallel_for(s->y1 - s->y0, 8, render_rows, &rows);
}

int face_change_apply(const FaceChange *c, Photo *p, const FaceLandmarks *l) {
    return face_change_apply_grid(c, p, l, FACE_GRID_DIV);
}

int face_change_apply_grid(const FaceChange *c, Photo *p, const FaceLandmarks *l, int grid_div) {
    FaceSetup s;
    FacePlan f = {0};
    uint8_t *orig = NULL;
    int rc = -1;
    if (face_setup(&s, p, l, grid_div)) return -1;
    if (s.x1 <= s.x0) { rc = 0; goto done; }
    /* the region the change covers, as it was: the change writes into the photo it reads */
    int RW = s.x1 - s.x0, RH = s.y1 - s.y0;
    orig = malloc((size_t)RW * RH * p->channels);
    if (!orig || face_plan_alloc(&f, &s) || face_plan(&f, &s, c)) goto done;
    for (int y = 0; y < RH; y++)
        memcpy(orig + (size_t)y * RW * p->channels, p->px + ((size_t)(s.y0 + y) * p->w + s.x0) * p->channels, (size_t)RW * p->channels);
    Photo region = {orig, RW, RH, p->channels};
    face_plan_render(&s, &f, &region, s.x0, s.y0, p);
    rc = 0;
done:
    face_plan_free(&f);
    face_setup_free(&s);
    free(orig);
    return rc;
}
