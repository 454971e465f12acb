#include "facespace.h"
#include "parallel.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* The lips move with every expression: left out of the alignment. */
static const unsigned short LIPS[] = {
    61, 146, 91, 181, 84, 17, 314, 405, 321, 375, 291, 185, 40, 39, 37, 0, 267, 269, 270, 409,
    78, 95, 88, 178, 87, 14, 317, 402, 318, 324, 308, 191, 80, 81, 82, 13, 312, 311, 310, 415,
};

void facespace_points(float out[FACESPACE_POINTS][2]) {
    memcpy(out, FACESPACE_MEAN, sizeof(FACESPACE_MEAN));
    /* the ring: 16 points on a square 1.5 times as wide as the crop, 16 on
     * one 2.5 times (the warp there is the crop's own similarity); none
     * nearer, where a face's outline may reach past the crop's border */
    static const struct { int n; float half; } rings[2] = {{16, 0.75f}, {16, 1.25f}};
    int k = FACEMESH_POINTS;
    for (int r = 0; r < 2; r++)
        for (int i = 0; i < rings[r].n; i++) {
            /* walk the square's perimeter in equal steps from its top-left corner */
            float t = 4.0f * i / rings[r].n, h = rings[r].half, a, b;
            if (t < 1) a = -h + 2 * h * t, b = -h;
            else if (t < 2) a = h, b = -h + 2 * h * (t - 1);
            else if (t < 3) a = h - 2 * h * (t - 2), b = h;
            else a = -h, b = h - 2 * h * (t - 3);
            out[k][0] = 0.5f + a;
            out[k][1] = 0.5f + b;
            k++;
        }
}

CropBox facespace_crop(const FaceLandmarks *l) {
    static unsigned char skip[FACEMESH_POINTS];
    static int ready;
    if (!ready) {
        for (size_t i = 0; i < sizeof(LIPS) / sizeof(LIPS[0]); i++) skip[LIPS[i]] = 1;
        ready = 1;
    }
    /* photo = centre + s R(angle) (mean - 1/2) * side: the closed-form least-squares similarity */
    double mt[2] = {0, 0}, mp[2] = {0, 0}, wsum = 0;
    for (int k = 0; k < FACEMESH_POINTS; k++) {
        if (skip[k]) continue;
        wsum += 1;
        for (int c = 0; c < 2; c++) mt[c] += FACESPACE_MEAN[k][c] - 0.5, mp[c] += l->pt[k][c];
    }
    for (int c = 0; c < 2; c++) mt[c] /= wsum, mp[c] /= wsum;
    double saa = 0, sdot = 0, scross = 0;
    for (int k = 0; k < FACEMESH_POINTS; k++) {
        if (skip[k]) continue;
        double ax = FACESPACE_MEAN[k][0] - 0.5 - mt[0], ay = FACESPACE_MEAN[k][1] - 0.5 - mt[1];
        double bx = l->pt[k][0] - mp[0], by = l->pt[k][1] - mp[1];
        saa += ax * ax + ay * ay;
        sdot += ax * bx + ay * by;
        scross += ax * by - ay * bx;
    }
    double sc = sdot / saa, ss = scross / saa;
    CropBox b;
    b.size = (float)sqrt(sc * sc + ss * ss);
    b.angle = (float)atan2(ss, sc);
    b.cx = (float)(mp[0] - (sc * mt[0] - ss * mt[1]));
    b.cy = (float)(mp[1] - (ss * mt[0] + sc * mt[1]));
    return b;
}

/* ---- thin-plate splines ---- */

/* The mesh's points are approximated with this smoothing: it irons out the
 * mesh's jitter along the face's outline, where an exact fit folds the map
 * over (on three test faces, interpolating put 0.1-0.6 % of the crop's pixels
 * on a fold); the spline then passes within 2 pixels of the points. It also
 * keeps points that nearly coincide (a closed mouth's lips) from making the
 * system singular. */
#define TPS_LAMBDA 1e-3

static double tps_u(double dx, double dy) {
    double r2 = dx * dx + dy * dy;
    return r2 > 1e-20 ? r2 * log(r2) : 0.0;
}

/* The spline's linear system for control points src (n of them; coordinates
 * scaled by unit so that the kernel sees numbers near 1) into A [m][m], m =
 * n + 3. The first `smoothed` points are approximated (TPS_LAMBDA); the rest
 * are met exactly. */
static void tps_system(const double (*src)[2], int n, int smoothed, double unit, double *A) {
    int m = n + 3;
    memset(A, 0, sizeof(double) * m * m);
    for (int i = 0; i < n; i++) {
        for (int j = 0; j < n; j++)
            A[(size_t)i * m + j] = tps_u((src[i][0] - src[j][0]) / unit, (src[i][1] - src[j][1]) / unit);
        if (i < smoothed) A[(size_t)i * m + i] += TPS_LAMBDA;
        double row[3] = {1, src[i][0] / unit, src[i][1] / unit};
        for (int k = 0; k < 3; k++) A[(size_t)i * m + n + k] = A[(size_t)(n + k) * m + i] = row[k];
    }
}

/* LU factorisation with partial pivoting, in place: U on and above the
 * diagonal, L's multipliers below it, whole rows swapped (piv[col]: the row
 * swapped into col). -1 when singular. */
static int lu_factor(double *A, int *piv, int m) {
    for (int col = 0; col < m; col++) {
        int p = col;
        for (int r = col + 1; r < m; r++)
            if (fabs(A[(size_t)r * m + col]) > fabs(A[(size_t)p * m + col])) p = r;
        if (fabs(A[(size_t)p * m + col]) < 1e-14) return -1;
        piv[col] = p;
        if (p != col)
            for (int c = 0; c < m; c++) {
                double t = A[(size_t)col * m + c];
                A[(size_t)col * m + c] = A[(size_t)p * m + c];
                A[(size_t)p * m + c] = t;
            }
        for (int r = col + 1; r < m; r++) {
            double f = A[(size_t)r * m + col] /= A[(size_t)col * m + col];
            for (int c = col + 1; c < m; c++) A[(size_t)r * m + c] -= f * A[(size_t)col * m + c];
        }
    }
    return 0;
}

/* Solves LU x = b for two right-hand sides (b [m][2], overwritten with x). */
static void lu_solve(const double *LU, const int *piv, int m, double (*b)[2]) {
    /* the factorisation swapped whole rows, its multipliers included: the swaps first, then L */
    for (int col = 0; col < m; col++) {
        int q = piv[col];
        if (q != col)
            for (int d = 0; d < 2; d++) { double t = b[col][d]; b[col][d] = b[q][d]; b[q][d] = t; }
    }
    for (int col = 0; col < m; col++)
        for (int r = col + 1; r < m; r++) {
            double f = LU[(size_t)r * m + col];
            b[r][0] -= f * b[col][0];
            b[r][1] -= f * b[col][1];
        }
    for (int r = m - 1; r >= 0; r--)
        for (int d = 0; d < 2; d++) {
            double s = b[r][d];
            for (int c = r + 1; c < m; c++) s -= LU[(size_t)r * m + c] * b[c][d];
            b[r][d] = s / LU[(size_t)r * m + r];
        }
}

/* The spline through src -> dst (n points, the first `smoothed`
 * approximated; tps_system): weights [n+3][2] into out. */
static int tps_fit(const double (*src)[2], const double (*dst)[2], int n, int smoothed, double unit, double *out) {
    int m = n + 3;
    double *A = malloc(sizeof(double) * m * m);
    int *piv = malloc(sizeof(int) * m);
    int rc = -1;
    if (A && piv) {
        tps_system(src, n, smoothed, unit, A);
        rc = lu_factor(A, piv, m);
    }
    if (!rc) {
        double (*b)[2] = (double (*)[2])out;
        for (int i = 0; i < m; i++) b[i][0] = i < n ? dst[i][0] : 0, b[i][1] = i < n ? dst[i][1] : 0;
        lu_solve(A, piv, m, b);
    }
    free(A);
    free(piv);
    return rc;
}

/* The forward spline's system depends on the canonical points alone: it is
 * factorised once, and each face's fit is then two triangular solves instead
 * of an elimination of the whole matrix. */
static double *canon_lu;
static int *canon_piv;

static int canonical_factors(void) {
    _Pragma("omp critical(facespace_canonical)")
    if (!canon_lu) {
        int n = FACESPACE_POINTS, m = n + 3;
        float canon[FACESPACE_POINTS][2];
        double c[FACESPACE_POINTS][2];
        facespace_points(canon);
        for (int i = 0; i < n; i++) c[i][0] = canon[i][0], c[i][1] = canon[i][1];
        double *A = malloc(sizeof(double) * m * m);
        int *piv = malloc(sizeof(int) * m);
        if (A && piv) tps_system((const double (*)[2])c, n, FACEMESH_POINTS, 1.0, A);
        if (A && piv && !lu_factor(A, piv, m)) canon_piv = piv, canon_lu = A;
        else free(A), free(piv);
    }
    return canon_lu ? 0 : -1;
}

/* The forward spline's weights for photo positions p: out [n+3][2]. */
static int canonical_solve(const double (*p)[2], double *out) {
    if (canonical_factors()) return -1;
    int n = FACESPACE_POINTS, m = n + 3;
    double (*b)[2] = (double (*)[2])out;
    for (int i = 0; i < m; i++) b[i][0] = i < n ? p[i][0] : 0, b[i][1] = i < n ? p[i][1] : 0;
    lu_solve(canon_lu, canon_piv, m, b);
    return 0;
}

/* The forward spline at (u, v) and its Jacobian J = d(x, y)/d(u, v) as
 * {dx/du, dx/dv, dy/du, dy/dv}: dU/du of U = r^2 log r^2 is 2 du (log r^2 + 1). */
static void tps_eval_jacobian(const double (*src)[2], const double *wts, int n, double u, double v, double *ox, double *oy,
                              double J[4]) {
    /* unit 1: the forward spline's own */
    const double (*w)[2] = (const double (*)[2])wts;
    double sx = w[n][0] + w[n + 1][0] * u + w[n + 2][0] * v, sy = w[n][1] + w[n + 1][1] * u + w[n + 2][1] * v;
    double a = w[n + 1][0], b = w[n + 2][0], c = w[n + 1][1], d = w[n + 2][1];
    for (int i = 0; i < n; i++) {
        double du = u - src[i][0], dv = v - src[i][1], r2 = du * du + dv * dv;
        if (r2 <= 1e-20) continue;
        double l = log(r2), U = r2 * l, g = 2 * (l + 1);
        sx += w[i][0] * U;
        sy += w[i][1] * U;
        a += w[i][0] * g * du, b += w[i][0] * g * dv;
        c += w[i][1] * g * du, d += w[i][1] * g * dv;
    }
    *ox = sx, *oy = sy;
    J[0] = a, J[1] = b, J[2] = c, J[3] = d;
}

static void tps_eval(const double (*src)[2], const double *wts, int n, double unit, double x, double y, double *ox,
                     double *oy) {
    const double (*w)[2] = (const double (*)[2])wts;
    double sx = w[n][0] + w[n + 1][0] * x / unit + w[n + 2][0] * y / unit;
    double sy = w[n][1] + w[n + 1][1] * x / unit + w[n + 2][1] * y / unit;
    for (int i = 0; i < n; i++) {
        double u = tps_u((x - src[i][0]) / unit, (y - src[i][1]) / unit);
        sx += w[i][0] * u;
        sy += w[i][1] * u;
    }
    *ox = sx;
    *oy = sy;
}

int facewarp_fit(FaceWarp *w, const FaceLandmarks *l) {
    memset(w, 0, sizeof(*w));
    int n = FACESPACE_POINTS;
    w->n = n;
    w->c = malloc(sizeof(*w->c) * n);
    w->p = malloc(sizeof(*w->p) * n);
    w->fw = malloc(sizeof(double) * 2 * (n + 3));
    w->bw = malloc(sizeof(double) * 2 * (n + 3));
    if (!w->c || !w->p || !w->fw || !w->bw) { facewarp_free(w); return -1; }
    float canon[FACESPACE_POINTS][2];
    facespace_points(canon);
    w->box = facespace_crop(l);
    double ca = cos(w->box.angle), sa = sin(w->box.angle);
    for (int k = 0; k < n; k++) {
        w->c[k][0] = canon[k][0];
        w->c[k][1] = canon[k][1];
        if (k < FACEMESH_POINTS) {
            w->p[k][0] = l->pt[k][0];
            w->p[k][1] = l->pt[k][1];
        } else { /* the ring follows the crop box */
            double u = (canon[k][0] - 0.5) * w->box.size, v = (canon[k][1] - 0.5) * w->box.size;
            w->p[k][0] = w->box.cx + ca * u - sa * v;
            w->p[k][1] = w->box.cy + sa * u + ca * v;
        }
    }
    if (canonical_solve((const double (*)[2])w->p, w->fw) ||
        tps_fit((const double (*)[2])w->p, (const double (*)[2])w->c, n, FACEMESH_POINTS, w->box.size, w->bw)) {
        facewarp_free(w);
        return -1;
    }
    return 0;
}

/* Every RESHAPE_EVERY-th mesh point guides a reshaping: the shape change is
 * smooth, and a few hundred control points would only cost time. */
#define RESHAPE_EVERY 3

int facewarp_reshape(const FaceWarp *w, const float (*shift)[2], FaceReshape *r) {
    memset(r, 0, sizeof(*r));
    int mesh = (FACEMESH_POINTS + RESHAPE_EVERY - 1) / RESHAPE_EVERY, n = mesh + FACESPACE_RING;
    r->n = n;
    r->unit = w->box.size;
    r->src = malloc(sizeof(*r->src) * n);
    r->wts = malloc(sizeof(double) * 2 * (n + 3));
    double (*dst)[2] = malloc(sizeof(*dst) * n);
    if (!r->src || !r->wts || !dst) { free(dst); facewarp_reshape_free(r); return -1; }
    for (int i = 0; i < n; i++) {
        int k = i < mesh ? i * RESHAPE_EVERY : FACEMESH_POINTS + (i - mesh);
        dst[i][0] = w->p[k][0];
        dst[i][1] = w->p[k][1];
        r->src[i][0] = w->p[k][0] + (k < FACEMESH_POINTS ? shift[k][0] : 0);
        r->src[i][1] = w->p[k][1] + (k < FACEMESH_POINTS ? shift[k][1] : 0);
    }
    int rc = tps_fit((const double (*)[2])r->src, (const double (*)[2])dst, n, mesh, r->unit, r->wts);
    free(dst);
    if (rc) facewarp_reshape_free(r);
    return rc;
}

void facewarp_reshape_source(const FaceReshape *r, double x, double y, double *sx, double *sy) {
    tps_eval((const double (*)[2])r->src, r->wts, r->n, r->unit, x, y, sx, sy);
}

void facewarp_reshape_free(FaceReshape *r) {
    free(r->src);
    free(r->wts);
    memset(r, 0, sizeof(*r));
}

void facewarp_free(FaceWarp *w) {
    free(w->c);
    free(w->p);
    free(w->fw);
    free(w->bw);
    memset(w, 0, sizeof(*w));
}

void facewarp_to_photo(const FaceWarp *w, double u, double v, double *x, double *y) {
    tps_eval((const double (*)[2])w->c, w->fw, w->n, 1.0, u, v, x, y);
}

void facewarp_to_photo_jacobian(const FaceWarp *w, double u, double v, double *x, double *y, double J[4]) {
    tps_eval_jacobian((const double (*)[2])w->c, w->fw, w->n, u, v, x, y, J);
}

int facewarp_to_space(const FaceWarp *w, double x, double y, double *u, double *v) {
    /* the backward spline is close; Newton's method on the forward one makes it its inverse */
    double u0, v0;
    tps_eval((const double (*)[2])w->p, w->bw, w->n, w->box.size, x, y, &u0, &v0);
    *u = u0, *v = v0;
    for (int it = 0; it < 12; it++) {
        double fx, fy, J[4];
        facewarp_to_photo_jacobian(w, *u, *v, &fx, &fy, J);
        double rx = x - fx, ry = y - fy;
        if (rx * rx + ry * ry < 1e-12) return 0;
        double j00 = J[0], j01 = J[1], j10 = J[2], j11 = J[3];
        double det = j00 * j11 - j01 * j10;
        if (fabs(det) < 1e-12) break;
        *u += (j11 * rx - j01 * ry) / det;
        *v += (-j10 * rx + j00 * ry) / det;
    }
    double fx, fy;
    facewarp_to_photo(w, *u, *v, &fx, &fy);
    if ((x - fx) * (x - fx) + (y - fy) * (y - fy) < 0.01) return 0;
    /* where the map folds over (a face in profile, the mesh's outline jittering), no point or several map
     * here: the smooth backward spline's answer, rather than wherever Newton's method wandered */
    *u = u0, *v = v0;
    return -1;
}

/* ---- images ---- */

void pixels_sample_rgb(const uint8_t *px, int w, int h, int ch, double x, double y, double out[3]) {
    x = x < 0 ? 0 : x > w - 1 ? w - 1 : x;
    y = y < 0 ? 0 : y > h - 1 ? h - 1 : y;
    int x0 = (int)x, y0 = (int)y, x1 = x0 + 1 < w ? x0 + 1 : x0, y1 = y0 + 1 < h ? y0 + 1 : y0;
    double fx = x - x0, fy = y - y0;
    const uint8_t *a = px + ((size_t)y0 * w + x0) * ch, *b = px + ((size_t)y0 * w + x1) * ch,
                  *c = px + ((size_t)y1 * w + x0) * ch, *d = px + ((size_t)y1 * w + x1) * ch;
    for (int k = 0; k < 3; k++)
        out[k] = (a[k] * (1 - fx) + b[k] * fx) * (1 - fy) + (c[k] * (1 - fx) + d[k] * fx) * fy;
}

/* Catmull-Rom weights of the four taps around a sample f in [0, 1) past the second. */
static void cubic_weights(double f, double wt[4]) {
    double f2 = f * f, f3 = f2 * f;
    wt[0] = -0.5 * f3 + f2 - 0.5 * f;
    wt[1] = 1.5 * f3 - 2.5 * f2 + 1;
    wt[2] = -1.5 * f3 + 2 * f2 + 0.5 * f;
    wt[3] = 0.5 * f3 - 0.5 * f2;
}

void pixels_sample_rgb_cubic(const uint8_t *px, int w, int h, int ch, double x, double y, double out[3]) {
    x = x < 0 ? 0 : x > w - 1 ? w - 1 : x;
    y = y < 0 ? 0 : y > h - 1 ? h - 1 : y;
    int xi = (int)x, yi = (int)y, cx[4], cy[4];
    double wx[4], wy[4];
    cubic_weights(x - xi, wx);
    cubic_weights(y - yi, wy);
    for (int t = 0; t < 4; t++) {
        int a = xi - 1 + t, b = yi - 1 + t;
        cx[t] = a < 0 ? 0 : a > w - 1 ? w - 1 : a;
        cy[t] = b < 0 ? 0 : b > h - 1 ? h - 1 : b;
    }
    for (int k = 0; k < 3; k++) out[k] = 0;
    for (int j = 0; j < 4; j++) {
        if (wy[j] == 0) continue;
        const uint8_t *row = px + (size_t)cy[j] * w * ch;
        double r[3] = {0, 0, 0};
        for (int i = 0; i < 4; i++)
            for (int k = 0; k < 3; k++) r[k] += wx[i] * row[(size_t)cx[i] * ch + k];
        for (int k = 0; k < 3; k++) out[k] += wy[j] * r[k];
    }
}

static uint8_t to_byte(double v) { return (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v + 0.5); }

/* The spline is smooth: evaluated every GRID pixels and interpolated between. */
#define GRID 4
/* canonical coordinate of face-space pixel centre i of S */
static double space_coord(int i, int S) { return -FACESPACE_MARGIN + (i + 0.5) / S * (1 + 2 * FACESPACE_MARGIN); }

/* A map sampled every GRID pixels and interpolated: for the rows of a face space (or a photo's region) the
 * spline's values on the grid's points, then each pixel from the four around it. */
typedef struct {
    const FaceWarp *w;
    int x0, y0, x1;       /* the region's columns [x0, x1) and first row (photo pixels; 0 for the face space) */
    int S;                /* the face space's side */
    int GW, GH;           /* grid points a row, rows */
    double (*map)[2];
    const uint8_t *space; /* the face space's pixels (to the photo) */
    const Photo *p;       /* the photo (from it); written (to it) */
    uint8_t *out;
} SpaceGrid;

static void interpolate(const SpaceGrid *g, int i, int j, double out[2]) {
    int gi = i / GRID, gj = j / GRID, GW = g->GW;
    double fy = (double)(i % GRID) / GRID, fx = (double)(j % GRID) / GRID;
    for (int c = 0; c < 2; c++)
        out[c] = (g->map[gi * GW + gj][c] * (1 - fx) + g->map[gi * GW + gj + 1][c] * fx) * (1 - fy) +
                 (g->map[(gi + 1) * GW + gj][c] * (1 - fx) + g->map[(gi + 1) * GW + gj + 1][c] * fx) * fy;
}

static void to_photo_grid_rows(void *ctx, int gi0, int gi1, int thread) {
    const SpaceGrid *g = ctx;
    (void)thread;
    for (int gi = gi0; gi < gi1; gi++)
        for (int gj = 0; gj < g->GW; gj++)
            facewarp_to_photo(g->w, space_coord(gj * GRID, g->S), space_coord(gi * GRID, g->S), &g->map[gi * g->GW + gj][0],
                              &g->map[gi * g->GW + gj][1]);
}

static void photo_to_space_rows(void *ctx, int i0, int i1, int thread) {
    const SpaceGrid *g = ctx;
    const Photo *p = g->p;
    (void)thread;
    for (int i = i0; i < i1; i++)
        for (int j = 0; j < g->S; j++) {
            double xy[2], rgb[3];
            interpolate(g, i, j, xy);
            pixels_sample_rgb(p->px, p->w, p->h, p->channels, xy[0] - 0.5, xy[1] - 0.5, rgb);
            for (int k = 0; k < 3; k++) g->out[((size_t)i * g->S + j) * 3 + k] = to_byte(rgb[k]);
        }
}

void facewarp_photo_to_space(const FaceWarp *w, const Photo *p, int S, uint8_t *out) {
    int G = S / GRID + 2;
    SpaceGrid g = {.w = w, .S = S, .GW = G, .GH = G, .p = p, .out = out};
    g.map = malloc(sizeof(*g.map) * (size_t)G * G);
    if (!g.map) return;
    parallel_for(G, 1, to_photo_grid_rows, &g);
    parallel_for(S, 8, photo_to_space_rows, &g);
    free(g.map);
}

int facewarp_photo_bounds(const FaceWarp *w, const Photo *p, int *x0, int *y0, int *x1, int *y1) {
    /* the bounds of the face space's border, warped */
    double bx0 = 1e30, by0 = 1e30, bx1 = -1e30, by1 = -1e30, lo = -FACESPACE_MARGIN, hi = 1 + FACESPACE_MARGIN;
    for (int i = 0; i <= 64; i++)
        for (int side = 0; side < 4; side++) {
            double t = lo + (hi - lo) * i / 64.0, u = side == 0 ? t : side == 1 ? hi : side == 2 ? hi + lo - t : lo,
                   v = side == 0 ? lo : side == 1 ? t : side == 2 ? hi : hi + lo - t, x, y;
            facewarp_to_photo(w, u, v, &x, &y);
            bx0 = fmin(bx0, x), by0 = fmin(by0, y), bx1 = fmax(bx1, x), by1 = fmax(by1, y);
        }
    *x0 = (int)floor(bx0) - 1, *x1 = (int)ceil(bx1) + 1, *y0 = (int)floor(by0) - 1, *y1 = (int)ceil(by1) + 1;
    *x0 = *x0 < 0 ? 0 : *x0;
    *y0 = *y0 < 0 ? 0 : *y0;
    *x1 = *x1 > p->w ? p->w : *x1;
    *y1 = *y1 > p->h ? p->h : *y1;
    return *x1 > *x0 && *y1 > *y0;
}

static void to_space_grid_rows(void *ctx, int gi0, int gi1, int thread) {
    const SpaceGrid *g = ctx;
    (void)thread;
    for (int gi = gi0; gi < gi1; gi++)
        for (int gj = 0; gj < g->GW; gj++)
            facewarp_to_space(g->w, g->x0 + gj * GRID + 0.5, g->y0 + gi * GRID + 0.5, &g->map[gi * g->GW + gj][0],
                              &g->map[gi * g->GW + gj][1]);
}

static void space_to_photo_rows(void *ctx, int y0, int y1, int thread) {
    const SpaceGrid *g = ctx;
    const Photo *p = g->p;
    double lo = -FACESPACE_MARGIN, hi = 1 + FACESPACE_MARGIN, k = g->S / (hi - lo);
    (void)thread;
    for (int y = g->y0 + y0; y < g->y0 + y1; y++)
        for (int x = g->x0; x < g->x1; x++) {
            double uv[2], rgb[3];
            interpolate(g, y - g->y0, x - g->x0, uv);
            if (uv[0] < lo || uv[0] > hi || uv[1] < lo || uv[1] > hi) continue;
            pixels_sample_rgb(g->space, g->S, g->S, 3, (uv[0] - lo) * k - 0.5, (uv[1] - lo) * k - 0.5, rgb);
            uint8_t *o = p->px + ((size_t)y * p->w + x) * p->channels;
            for (int c = 0; c < 3; c++) o[c] = to_byte(rgb[c]);
        }
}

void facewarp_space_to_photo(const FaceWarp *w, const uint8_t *space, int S, Photo *p) {
    int x0, y0, x1, y1;
    if (!facewarp_photo_bounds(w, p, &x0, &y0, &x1, &y1)) return;
    SpaceGrid g = {.w = w, .x0 = x0, .y0 = y0, .x1 = x1, .S = S, .GW = (x1 - x0) / GRID + 2, .GH = (y1 - y0) / GRID + 2,
                   .space = space, .p = p};
    g.map = malloc(sizeof(*g.map) * (size_t)g.GW * g.GH);
    if (!g.map) return;
    parallel_for(g.GH, 1, to_space_grid_rows, &g);
    parallel_for(y1 - y0, 8, space_to_photo_rows, &g);
    free(g.map);
}
