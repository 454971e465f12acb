/* Face detection: MediaPipe's BlazeFace short-range model (Apache-2.0),
 * converted from its .tflite by tools/tflite_convert.c and run by ReAge's
 * own layers, natively and in the browser.
 *
 * The network sees a 128x128 RGB square in [-1,1] and scores 896 anchors
 * (16x16 cells x 2 at stride 8, 8x8 cells x 6 at stride 16); each anchor
 * regresses a box and six keypoints. A photo is searched in square windows
 * at three scales (the whole photo, then overlapping halves and thirds of
 * it), so that small faces in large photos are found too; detections from
 * all windows are merged by weighted non-maximum suppression. */
#ifndef REAGE_FACEDETECT_H
#define REAGE_FACEDETECT_H
#include <stddef.h>
#include <stdint.h>
#include "errors.h"
#include "params.h"
#include "photo.h"

#define FACEDET_MAGIC "REAGEDET"
#define FACEDET_RES 128
#define FACEDET_ANCHORS 896
#define FACEDET_BLOCKS 16
#define FACEDET_MAX_FACES 32

/* Keypoints as BlazeFace orders them. "Right" is the person's right, which
 * sits on the image's left in an ordinary photo. */
enum { KP_RIGHT_EYE, KP_LEFT_EYE, KP_NOSE, KP_MOUTH, KP_RIGHT_EAR, KP_LEFT_EAR, KP_COUNT };

typedef struct {
    float score;
    float x0, y0, x1, y1;     /* box, photo pixels */
    float kp[KP_COUNT][2];    /* keypoints (x, y), photo pixels */
} FaceDet;

typedef struct {
    ParamSet ps;
    size_t stem_w, stem_b;
    size_t dw_w[FACEDET_BLOCKS], dw_b[FACEDET_BLOCKS], pw_w[FACEDET_BLOCKS], pw_b[FACEDET_BLOCKS];
    size_t cls16_w, cls16_b, reg16_w, reg16_b, cls8_w, cls8_b, reg8_w, reg8_b;
    float *work, *scratch;     /* activations and conv scratch, allocated once */
    float anchors[FACEDET_ANCHORS][2];  /* centres in [0,1] */
} FaceDetector;

/* One block: 3x3 depthwise (stride), 1x1 to cout, plus the input
 * (max-pooled at stride 2, zero-extended to cout channels), ReLU. */
typedef struct { int cin, cout, stride; } BlazeBlock;
extern const BlazeBlock BLAZE_BLOCKS[FACEDET_BLOCKS];

/* Registers the tensors (for the converter and the loader). */
void facedet_build(FaceDetector *fd);
/* Builds the detector and loads its weights from a detector blob in memory. */
int facedet_load(FaceDetector *fd, const uint8_t *buf, size_t len, const char *what, Err *e);
void facedet_free(FaceDetector *fd);

/* The raw network: img [3,128,128] in [-1,1] -> logits [896] and
 * regressors [896,16] in anchor order. */
void facedet_forward(FaceDetector *fd, const float *img, float *logits, float *regs);
/* Turns raw outputs into detections in the 128x128 input's pixels, keeping
 * scores >= min_score; returns how many (at most max). */
int facedet_decode(const FaceDetector *fd, const float *logits, const float *regs, float min_score,
                   FaceDet *out, int max);
/* Weighted non-maximum suppression (MediaPipe's "WEIGHTED"): the best box
 * absorbs every box overlapping it by more than iou, averaging their
 * coordinates by score. Sorts and rewrites dets in place; returns the count. */
int facedet_nms(FaceDet *dets, int n, float iou);
/* Finds the faces in a photo, best first; returns how many (at most max). */
int facedet_photo(FaceDetector *fd, const Photo *p, FaceDet *out, int max);

/* A face as FACEDET_FLOATS floats, the form the browser and the parity
 * test read: score, box x0 y0 x1 y1, six keypoints x y, then the aligned
 * crop (facedet_crop) cx cy size angle. */
#define FACEDET_FLOATS 21
void facedet_to_floats(const FaceDet *f, CropBox crop, float *out);

/* Where UTKFace's aligned crops put the keypoints, as fractions of the crop
 * side (measured on the training split by tools/measure_template.c). */
extern const float FACE_TEMPLATE[KP_COUNT][2];
/* The crop box that maps a face's keypoints onto the template: a least-
 * squares similarity fit (scale, rotation, shift) over eyes, nose and mouth,
 * the ears weighted less because a turned head hides one of them. */
CropBox facedet_crop(const FaceDet *f);
#endif
