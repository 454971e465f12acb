#include "pipeline.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "prototypes.h"
#include "structured.h"

/* A black-and-white photo has R = G = B at every pixel; the colour change of
 * ageing (greying hair, ruddier or paler skin) would tint it. */
static int photo_is_grey(const Photo *p) {
    size_t n = (size_t)p->w * p->h;
    for (size_t i = 0; i < n; i++) {
        const uint8_t *q = p->px + i * p->channels;
        if (q[0] != q[1] || q[1] != q[2]) return 0;
    }
    return 1;
}

static void photo_to_grey(Photo *p) {
    size_t n = (size_t)p->w * p->h;
    for (size_t i = 0; i < n; i++) {
        uint8_t *q = p->px + i * p->channels;
        if (q[0] == q[1] && q[1] == q[2]) continue;
        uint8_t v = (uint8_t)((q[0] + q[1] + q[2] + 1) / 3);
        q[0] = q[1] = q[2] = v;
    }
}

/* The mesh of the face in crop box `box`: whether it finds one there. */
static int mesh_in_box(FaceMesh *m, const Photo *p, CropBox box, FaceLandmarks *lm) {
    CropBox roi = {box.cx, box.cy, box.size * PIPELINE_MESH_ROI, box.angle};
    facemesh_photo(m, p, roi, lm);
    return lm->score >= FACEMESH_MIN_FLAG;
}

static int reage_face(Bundle *b, FaceMesh *m, Photo *p, CropBox box, float source_age, float target_age) {
    if (b->proto && m) {
        static FaceLandmarks lm;
        if (mesh_in_box(m, p, box, &lm)) {
            int rc = b->change ? change_reage(b->change, b->proto, &b->cfg, p, &lm, source_age, target_age)
                               : proto_reage(b->proto, &b->cfg, p, &lm, source_age, target_age);
            return rc ? -1 : REAGED_BY_PROTOTYPES;
        }
    }
    if (!b->has_generator) return PIPELINE_NEEDS_GENERATOR;
    photo_reage(b, p, box, source_age, target_age);
    return REAGED_BY_GENERATOR;
}

int pipeline_reage(Bundle *b, FaceMesh *m, Photo *p, CropBox box, float source_age, float target_age) {
    if (source_age == target_age) return REAGED_NOT_AT_ALL;
    int grey = photo_is_grey(p);
    int by = reage_face(b, m, p, box, source_age, target_age);
    if (grey && by >= 0) photo_to_grey(p);
    return by;
}

/* ---- the camera ---- */

int pipeline_reage_frame(Bundle *b, FaceMesh *m, Photo *p, CropBox *box, float source_age, float target_age) {
    static FaceLandmarks lm;
    if (!b->proto || !m || !mesh_in_box(m, p, *box, &lm)) return 0;
    *box = facespace_crop(&lm);
    if (source_age == target_age) return 1;
    int grey = photo_is_grey(p);
    if (proto_reage_grid(b->proto, &b->cfg, p, &lm, source_age, target_age, CAMERA_GRID_DIV)) return -1;
    if (grey) photo_to_grey(p);
    return 1;
}

/* ---- the slider's preview ---- */

static int by_age(const void *a, const void *b) {
    float x = *(const float *)a, y = *(const float *)b;
    return x < y ? -1 : x > y;
}

static int preview_face(PreviewFace *f, const Bundle *b, FaceMesh *m, const Photo *p, CropBox box, float source) {
    static FaceLandmarks lm;
    if (!mesh_in_box(m, p, box, &lm)) return 0;
    if (face_setup(&f->setup, p, &lm, PREVIEW_GRID_DIV)) return -1;
    f->found = 1;
    f->source = source;
    /* the anchors: the slider's ends, the groups' centres, and the face's own age (no change at all) */
    const ModelConfig *cfg = &b->cfg;
    float hi = cfg->group_hi[cfg->groups - 1] < 100 ? (float)cfg->group_hi[cfg->groups - 1] : 100;
    float all[PREVIEW_MAX_ANCHORS];
    int n = 0;
    all[n++] = (float)cfg->group_lo[0];
    for (int g = 0; g < cfg->groups; g++) all[n++] = group_center(cfg, g);
    all[n++] = hi;
    all[n++] = source;
    qsort(all, n, sizeof(float), by_age);
    f->anchors = 0;
    for (int i = 0; i < n; i++)
        if (!f->anchors || all[i] - f->age[f->anchors - 1] > 0.5f) f->age[f->anchors++] = all[i];
        else if (all[i] == source) f->age[f->anchors - 1] = source; /* the face's own age exactly */
    if (f->setup.x1 <= f->setup.x0) return 0;
    return face_plan_alloc(&f->mix, &f->setup);
}

int pipeline_preview_prepare(Preview *pv, const Bundle *b, FaceMesh *m, const Photo *p, const CropBox *boxes, const float *sources,
                             int n) {
    memset(pv, 0, sizeof(*pv));
    if (!b->proto || !m || n <= 0) return -1;
    pv->face = calloc((size_t)n, sizeof(PreviewFace));
    if (!pv->face || face_change_alloc(&pv->change)) { free(pv->face); pv->face = NULL; return -1; }
    pv->bundle = b;
    pv->n = n;
    pv->grey = photo_is_grey(p);
    int rc = 0;
    for (int i = 0; i < n && !rc; i++) rc = preview_face(&pv->face[i], b, m, p, boxes[i], sources[i]);
    if (rc) pipeline_preview_free(pv);
    return rc;
}

/* The anchors around target: lo and hi (lo == hi at or beyond an end). */
static void bracket(const PreviewFace *f, float target, int *lo, int *hi) {
    int k = 0;
    while (k + 1 < f->anchors && f->age[k + 1] <= target) k++;
    *lo = k;
    *hi = k + 1 < f->anchors && f->age[k] < target ? k + 1 : k;
}

static int needs_plans(const PreviewFace *f) { return f->found && f->setup.x1 > f->setup.x0; }

int pipeline_preview_ready(const Preview *pv, float target) {
    for (int i = 0; i < pv->n; i++) {
        const PreviewFace *f = &pv->face[i];
        int lo, hi;
        if (!needs_plans(f)) continue;
        bracket(f, target, &lo, &hi);
        if (!f->planned[lo] || !f->planned[hi]) return 0;
    }
    return 1;
}

int pipeline_preview_plan(Preview *pv, float target) {
    int left = 0;
    for (int i = 0; i < pv->n; i++) {
        PreviewFace *f = &pv->face[i];
        if (!needs_plans(f)) continue;
        int best = -1;
        for (int k = 0; k < f->anchors; k++)
            if (!f->planned[k] && (best < 0 || fabsf(f->age[k] - target) < fabsf(f->age[best] - target))) best = k;
        if (best < 0) continue;
        proto_change(pv->bundle->proto, &pv->bundle->cfg, f->source, f->age[best], &pv->change);
        if (face_plan_alloc(&f->plan[best], &f->setup) || face_plan(&f->plan[best], &f->setup, &pv->change)) return -1;
        f->planned[best] = 1;
        for (int k = 0; k < f->anchors; k++) left += !f->planned[k];
    }
    return left;
}

void pipeline_preview_render(Preview *pv, const Photo *src, Photo *dst, float target, int bounds[4]) {
    memcpy(dst->px, src->px, (size_t)src->w * src->h * src->channels);
    bounds[0] = bounds[1] = 1 << 30, bounds[2] = bounds[3] = -(1 << 30);
    for (int i = 0; i < pv->n; i++) {
        PreviewFace *f = &pv->face[i];
        const FaceSetup *s = &f->setup;
        if (!needs_plans(f)) continue;
        /* the nearest planned anchors around target; one alone where the other is not planned yet */
        int lo = -1, hi = -1;
        for (int k = 0; k < f->anchors; k++) {
            if (!f->planned[k]) continue;
            if (f->age[k] <= target) lo = k;
            if (f->age[k] >= target && hi < 0) hi = k;
        }
        if (lo < 0 && hi < 0) continue;
        if (lo < 0) lo = hi;
        if (hi < 0) hi = lo;
        float t = hi == lo ? 0 : (target - f->age[lo]) / (f->age[hi] - f->age[lo]);
        face_plan_mix(&f->mix, s, &f->plan[lo], &f->plan[hi], t);
        face_plan_render(s, &f->mix, src, 0, 0, dst);
        bounds[0] = bounds[0] < s->x0 ? bounds[0] : s->x0, bounds[1] = bounds[1] < s->y0 ? bounds[1] : s->y0;
        bounds[2] = bounds[2] > s->x1 ? bounds[2] : s->x1, bounds[3] = bounds[3] > s->y1 ? bounds[3] : s->y1;
    }
    if (bounds[2] <= bounds[0]) bounds[0] = bounds[1] = bounds[2] = bounds[3] = 0;
    if (pv->grey) photo_to_grey(dst);
}

void pipeline_preview_free(Preview *pv) {
    for (int i = 0; i < pv->n; i++) {
        PreviewFace *f = &pv->face[i];
        for (int k = 0; k < f->anchors; k++) face_plan_free(&f->plan[k]);
        face_plan_free(&f->mix);
        if (f->found) face_setup_free(&f->setup);
    }
    free(pv->face);
    if (pv->bundle) face_change_free(&pv->change);
    memset(pv, 0, sizeof(*pv));
}
