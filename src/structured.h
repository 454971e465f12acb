/* The structured re-ageing: the prototypes' transform (prototypes.h), then
 * the change net's own change for this face (change_net.h) on top, both
 * applied at the photo's own resolution through face_change_apply. The net
 * sees the prototypes' result in the face space and answers with a field
 * of displacement, colour and detail gains; here that field becomes a
 * FaceChange, so that no pixel is painted free. */
#ifndef REAGE_STRUCTURED_H
#define REAGE_STRUCTURED_H
#include "blob.h"
#include "change_net.h"
#include "prototypes.h"

typedef struct ChangeModel {
    ChangeNet net;
    ChangeNetActs acts;
    float *scratch, *x;
    uint8_t *space;
} ChangeModel;

/* The change net a blob carries (tensors change.*, its config's
 * change_side and change_width): 1 when it has none, 0 when loaded, -1 on
 * error. */
int change_model_load(ChangeModel *m, const Blob *b, int groups, const char *what, Err *e);
void change_model_free(ChangeModel *m);

/* A face-space image [S][S][3] (bytes) as planes [3][S][S] in [-1, 1]. */
void change_space_to_planes(const uint8_t *space, int S, float *x);
/* The brightness detail of planes x [3][S][S]: bands [CHANGE_BANDS][S][S],
 * octave k (the finest first) brought up to S, as the transform splits
 * it. work: 2*S*S floats. */
void change_bands(const float *x, int S, float *bands, float *work);
/* What the transform lets each of the field's channels change, [CHANGE_FIELDS][S][S]:
 * the reshaping's mask on the displacement, the colour's on the colour, the
 * detail's on the gains (face_space_masks). */
void change_masks(int S, float *mask);
/* The field [CHANGE_FIELDS][s][s] of a face space of side S as a FaceChange
 * (allocated by the caller): the mesh moved against the displacement at
 * its mean position, the colour and gains sampled on the prototypes'
 * grids, nothing injected. */
void change_to_face_change(const float *field, int S, FaceChange *c);

/* Re-ages the face whose mesh is l from source_age to target_age in place:
 * the prototypes, then the net's change. 0, or -1 when out of memory. */
int change_reage(ChangeModel *m, const Prototypes *P, const ModelConfig *cfg, Photo *p, const FaceLandmarks *l,
                 float source_age, float target_age);
#endif
