/* The shipped re-aging of one face in a photo: one code path for the page,
 * the CLI and the evaluation. */
#ifndef REAGE_PIPELINE_H
#define REAGE_PIPELINE_H
#include "bundle.h"
#include "facemesh.h"
#include "photo.h"
#include "prototypes.h"

/* How much larger than a face's crop box the square is that the mesh sees
 * (MediaPipe's square around a detection is about 1.4 times the crop that
 * facespace_crop finds from the mesh, on UTKFace's photos). */
#define PIPELINE_MESH_ROI 1.4f

typedef enum { REAGED_BY_GENERATOR = 0, REAGED_BY_PROTOTYPES = 1, REAGED_NOT_AT_ALL = 2, PIPELINE_NEEDS_GENERATOR = -2 } ReagedBy;

/* Re-ages the face in the crop box from source_age to target_age (years),
 * in place. Where the blob carries age prototypes and the mesh (m, may be
 * NULL) finds the face in the box, the prototypes' transform on the mesh,
 * and the change net's own change on top where the blob carries one; else
 * the generator. A black-and-white photo stays black and white. Taken to
 * its own age a face does not change, and nothing is computed
 * (REAGED_NOT_AT_ALL): the page's first result after a drop.
 * Returns which, or -1 when out of memory, or PIPELINE_NEEDS_GENERATOR
 * when the generator is due but the bundle was loaded without it
 * (bundle_load_generator); the photo is then unchanged. */
int pipeline_reage(Bundle *b, FaceMesh *m, Photo *p, CropBox box, float source_age, float target_age);

/* One frame of the camera: the face whose crop box is *box re-aged as
 * pipeline_reage does, on a grid of a 16th of the face (the full result's: a
 * 96th; at 640x480 the two look alike, and the grid is most of a frame's
 * time) and a face space of PROTO_SIDE (FACE_GRID_LIVE), in place; *box becomes
 * the crop the face's mesh gives, to follow the face into the next frame.
 * Returns 1, 0 where the mesh does not find a face in the box (the frame
 * unchanged: detect again), or -1 when out of memory. */
#define CAMERA_GRID_DIV FACE_GRID_LIVE
int pipeline_reage_frame(Bundle *b, FaceMesh *m, Photo *p, CropBox *box, float source_age, float target_age);

/* The slider's preview: the prototypes' changes to a few anchor ages (the
 * slider's ends, each group's centre, the face's own age) planned on a small
 * copy of the photo, on a coarser grid; each move of the slider then mixes
 * the two anchors around its age and draws them, without the mesh, the
 * splines or the pyramid. An approximation of pipeline_reage's result (which
 * the page computes when the slider stops); faces the mesh does not find stay
 * unchanged, and a change net's own change is left out. Planning goes an
 * anchor at a time, nearest the slider first, so that the first moves need
 * not wait for all of them. */
#define PREVIEW_GRID_DIV 32
#define PREVIEW_MAX_ANCHORS (MAX_GROUPS + 3)
typedef struct {
    int found; /* the mesh found the face */
    float source;
    FaceSetup setup;
    int anchors, planned[PREVIEW_MAX_ANCHORS];
    float age[PREVIEW_MAX_ANCHORS];
    FacePlan plan[PREVIEW_MAX_ANCHORS], mix;
} PreviewFace;
typedef struct {
    int n, grey;
    PreviewFace *face;
    const Bundle *bundle; /* must outlive the preview */
    FaceChange change;
} Preview;
/* Finds n faces' meshes (boxes, their own ages) in photo p and sets them up;
 * plans nothing yet. 0, or -1 when out of memory or without prototypes (pv
 * is then empty). */
int pipeline_preview_prepare(Preview *pv, const Bundle *b, FaceMesh *m, const Photo *p, const CropBox *boxes, const float *sources,
                             int n);
/* Plans, for each face, the anchor nearest target not planned yet. Returns
 * how many are left to plan (0: all), or -1 when out of memory. */
int pipeline_preview_plan(Preview *pv, float target);
/* Whether the anchors around target are planned for every face. */
int pipeline_preview_ready(const Preview *pv, float target);
/* dst (the size of the prepared photo src): src with every found face at
 * target_age, from the planned anchors nearest it; bounds gets the changed
 * region x0, y0, x1, y1 (empty when x1 <= x0). */
void pipeline_preview_render(Preview *pv, const Photo *src, Photo *dst, float target_age, int bounds[4]);
void pipeline_preview_free(Preview *pv);
#endif
