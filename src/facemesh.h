/* Dense face landmarks: MediaPipe's Face Mesh landmark network (Apache-2.0),
 * converted from its .tflite by tools/tflite_convert.c and run by ReAge's
 * own layers, natively and in the browser.
 *
 * The network sees a 192x192 RGB square around a face and returns 468
 * points (x, y in the square's pixels, z a relative depth at the same
 * scale) and a logit of how surely the square holds a face. The square is
 * the one MediaPipe's own pipeline cuts from a BlazeFace detection: the
 * detection box's centre, 1.5 times its longer side, turned so that the
 * eyes are level. */
#ifndef REAGE_FACEMESH_H
#define REAGE_FACEMESH_H
#include <stddef.h>
#include <stdint.h>
#include "errors.h"
#include "facedetect.h"
#include "params.h"
#include "photo.h"

#define FACEMESH_MAGIC "REAGEMSH"
#define FACEMESH_RES 192
#define FACEMESH_POINTS 468

/* One residual block: 3x3 depthwise (stride), 1x1 to cout, plus the input
 * (max-pooled at stride 2, zero-extended to cout channels), PReLU. The
 * numbers are the .tflite's layer names: depthwise_conv2d_<dw>,
 * conv2d_<pw>, p_re_lu_<prelu>. */
typedef struct { int dw, pw, prelu, cin, cout, stride; } MeshBlock;
#define FACEMESH_TRUNK 16
extern const MeshBlock MESH_TRUNK[FACEMESH_TRUNK];
/* A head: a block, a 1x1 convolution to 32 channels with its PReLU, a block
 * at 32, and a 3x3 convolution over the last 3x3 map to `out` values. The
 * landmark head starts from the trunk's end, the face-flag head from its
 * 14th block (6x6), with a block of stride 2. */
typedef struct { MeshBlock first; int squeeze, squeeze_prelu; MeshBlock second; int last, out; } MeshHead;
extern const MeshHead MESH_LANDMARKS, MESH_FACE_FLAG;

/* The kinds of layer, numbered as the .tflite numbers them (up to 31). */
enum { MESH_CONV, MESH_DEPTHWISE, MESH_PRELU, MESH_KINDS };
#define FACEMESH_LAYERS 32

typedef struct {
    ParamSet ps;
    size_t at[MESH_KINDS][FACEMESH_LAYERS][2]; /* each layer's weights (or PReLU slopes) and bias in ps */
    float *work, *scratch;  /* activations and conv scratch, allocated once */
} FaceMesh;

/* Registers the tensors under the .tflite's layer names ("conv2d_1.w",
 * "depthwise_conv2d_3.b", "p_re_lu_2.alpha"), for the converter and the
 * loader. */
void facemesh_build(FaceMesh *m);
int facemesh_load(FaceMesh *m, const uint8_t *buf, size_t len, const char *what, Err *e);
void facemesh_free(FaceMesh *m);

/* The raw network: img [3,192,192] in [0,1] -> points [468*3] (x, y, z in
 * the input's pixels) and the face flag's logit. */
void facemesh_forward(FaceMesh *m, const float *img, float *points, float *flag_logit);

/* The square MediaPipe's pipeline feeds the network for a detection. */
CropBox facemesh_roi(const FaceDet *d);

typedef struct {
    float score;                       /* sigmoid of the face flag: how surely the square holds a face */
    float pt[FACEMESH_POINTS][3];      /* x, y in photo pixels; z at the same scale */
    CropBox roi;                       /* the square the network saw */
} FaceLandmarks;

/* Runs the mesh on the square roi of a photo. */
void facemesh_photo(FaceMesh *m, const Photo *p, CropBox roi, FaceLandmarks *out);

/* The mesh's word on each detection: the ones it does not confirm as a
 * face (its flag below FACEMESH_MIN_FLAG) are dropped, the others are
 * ranked by flag times detection score, and each gets its crop from the mesh (facespace_crop: the
 * similarity that puts the mesh where UTKFace's crops have it on average),
 * and its mesh in lm (if given). Returns how many are kept. */
#define FACEMESH_MIN_FLAG 0.5f
int facemesh_confirm(FaceMesh *m, const Photo *p, FaceDet *d, int n, CropBox *crops, FaceLandmarks *lm);

/* The mesh of a photo that is already a face crop (UTKFace's aligned
 * photos): around the detector's first face, or, where the detector finds
 * none, around the whole crop. Returns 1 when the detector found the face;
 * the mesh's flag (out->score) says whether the mesh did. */
int facemesh_in_crop(FaceDetector *fd, FaceMesh *m, const Photo *p, FaceLandmarks *out);

/* A mesh as FACEMESH_FLOATS floats, the form the browser and the parity
 * test read: score, roi cx cy size angle, then the points x y z. */
#define FACEMESH_FLOATS (5 + 3 * FACEMESH_POINTS)
void facemesh_to_floats(const FaceLandmarks *l, float *out);
/* The detection a facedet_to_floats record describes (score, box, keypoints). */
FaceDet facedet_from_floats(const float *f);
#endif
