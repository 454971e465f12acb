#include "pipeline.h"
#include "prototypes.h"

int pipeline_reage(Bundle *b, FaceMesh *m, Photo *p, CropBox box, float source_age, float target_age) {
    if (b->proto && m) {
        static FaceLandmarks lm;
        CropBox roi = {box.cx, box.cy, box.size * PIPELINE_MESH_ROI, box.angle};
        facemesh_photo(m, p, roi, &lm);
        if (lm.score >= FACEMESH_MIN_FLAG) return proto_reage(b->proto, &b->cfg, p, &lm, source_age, target_age) ? -1 : REAGED_BY_PROTOTYPES;
    }
    photo_reage(b, p, box, source_age, target_age);
    return REAGED_BY_GENERATOR;
}
