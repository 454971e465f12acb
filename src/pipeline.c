#include "pipeline.h"
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

static int reage_face(Bundle *b, FaceMesh *m, Photo *p, CropBox box, float source_age, float target_age) {
    if (b->proto && m) {
        static FaceLandmarks lm;
        CropBox roi = {box.cx, box.cy, box.size * PIPELINE_MESH_ROI, box.angle};
        facemesh_photo(m, p, roi, &lm);
        if (lm.score >= FACEMESH_MIN_FLAG) {
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
    int grey = photo_is_grey(p);
    int by = reage_face(b, m, p, box, source_age, target_age);
    if (grey && by >= 0) photo_to_grey(p);
    return by;
}
