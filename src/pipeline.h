/* The shipped re-aging of one face in a photo: one code path for the page,
 * the CLI and the evaluation. */
#ifndef REAGE_PIPELINE_H
#define REAGE_PIPELINE_H
#include "bundle.h"
#include "facemesh.h"
#include "photo.h"

/* How much larger than a face's crop box the square is that the mesh sees
 * (MediaPipe's square around a detection is about 1.4 times the crop that
 * facespace_crop finds from the mesh, on UTKFace's photos). */
#define PIPELINE_MESH_ROI 1.4f

typedef enum { REAGED_BY_GENERATOR = 0, REAGED_BY_PROTOTYPES = 1, PIPELINE_NEEDS_GENERATOR = -2 } ReagedBy;

/* Re-ages the face in the crop box from source_age to target_age (years),
 * in place. Where the blob carries age prototypes and the mesh (m, may be
 * NULL) finds the face in the box, the prototypes' transform on the mesh,
 * and the change net's own change on top where the blob carries one; else
 * the generator. A black-and-white photo stays black and white.
 * Returns which, or -1 when out of memory, or PIPELINE_NEEDS_GENERATOR
 * when the generator is due but the bundle was loaded without it
 * (bundle_load_generator); the photo is then unchanged. */
int pipeline_reage(Bundle *b, FaceMesh *m, Photo *p, CropBox box, float source_age, float target_age);
#endif
