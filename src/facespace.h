/* The face space: a common frame in which every face's landmarks sit where
 * the training faces' do on average, so that pixels of different faces
 * correspond. A face is warped from its photo into the face space and back
 * at any resolution, the photo's own included.
 *
 * The frame is UTKFace's aligned crop, in fractions of its side: its mean
 * shape (FACESPACE_MEAN) is the mean of the training photos' meshes after a
 * similarity alignment (generalised Procrustes), measured by
 * build/reage-landmarks --face-space. Around the mesh, a ring of points
 * beyond the crop's border, which follow the crop box, keeps the forehead,
 * hair and background moving smoothly and the far background still.
 *
 * The warp is a thin-plate spline through the mesh's points and the ring
 * (smooth everywhere: no seams between triangles), one each way; the way
 * back is refined by Newton's method so that a round trip returns each
 * pixel to within a hundredth of a pixel. */
#ifndef REAGE_FACESPACE_H
#define REAGE_FACESPACE_H
#include "facemesh.h"
#include "photo.h"

/* The ring: points on squares of 1.5 and 2.5 times the crop's side. */
#define FACESPACE_RING 32
#define FACESPACE_POINTS (FACEMESH_POINTS + FACESPACE_RING)

extern const float FACESPACE_MEAN[FACEMESH_POINTS][2];
/* MediaPipe's canonical triangulation of the mesh (drawing and masks). */
#define FACESPACE_TRIANGLES 898
extern const unsigned short FACESPACE_TRIS[FACESPACE_TRIANGLES][3];

/* Canonical positions of all points, mesh and ring, in crop fractions. */
void facespace_points(float out[FACESPACE_POINTS][2]);
/* The crop box that best maps the face's mesh onto the mean shape (a
 * least-squares similarity over the points that expressions move least). */
CropBox facespace_crop(const FaceLandmarks *l);

typedef struct {
    int n;                              /* control points */
    double (*c)[2];                     /* canonical positions */
    double (*p)[2];                     /* photo positions */
    double *fw, *bw;                    /* spline weights: canonical->photo, photo->canonical; [n+3][2] each */
    CropBox box;                        /* the face's crop (facespace_crop) */
} FaceWarp;

/* Fits the warp for a face's mesh; 0, or -1 when out of memory. */
int facewarp_fit(FaceWarp *w, const FaceLandmarks *l);
void facewarp_free(FaceWarp *w);
/* A reshaping of the face in its photo: its mesh's points moved by shift
 * (photo pixels), the ring left where it is. A spline from the photo
 * reshaped back to the photo as it was, so that each output pixel finds its
 * source without inverting a map. */
typedef struct {
    int n;
    double unit;
    double (*src)[2];   /* control points in the reshaped photo */
    double *wts;        /* [n+3][2] */
} FaceReshape;
int facewarp_reshape(const FaceWarp *w, const float (*shift)[2], FaceReshape *r);
void facewarp_reshape_source(const FaceReshape *r, double x, double y, double *sx, double *sy);
void facewarp_reshape_free(FaceReshape *r);
/* Canonical (crop fractions) -> photo pixels, and back. */
void facewarp_to_photo(const FaceWarp *w, double u, double v, double *x, double *y);
/* The same and its Jacobian {dx/du, dx/dv, dy/du, dy/dv}, for the way back. */
void facewarp_to_photo_jacobian(const FaceWarp *w, double u, double v, double *x, double *y, double J[4]);
/* The way back is exact (Newton's method on the forward spline) except where
 * the map folds over: there it returns -1 and the backward spline's smooth
 * estimate. */
int facewarp_to_space(const FaceWarp *w, double x, double y, double *u, double *v);

/* Bilinear sample of the first three channels of rows of w pixels (ch bytes
 * each) at (x, y), pixel centres at integers, the edges repeated. */
void pixels_sample_rgb(const uint8_t *px, int w, int h, int ch, double x, double y, double out[3]);
/* The same with a Catmull-Rom cubic (16 taps): a photo resampled at fractions
 * of a pixel keeps its finest detail, which the bilinear sample halves at
 * half-pixel offsets. Exact at pixel centres; may overshoot 0..255 a little. */
void pixels_sample_rgb_cubic(const uint8_t *px, int w, int h, int ch, double x, double y, double out[3]);

/* The face space's images cover the crop square and a margin of a quarter
 * of its side around it (the mesh's forehead reaches past the crop's top). */
#define FACESPACE_MARGIN 0.25
/* The photo in the face space: out [S,S,3] (rows of S RGB pixels), the
 * crop square with its margin at S pixels a side, sampled bilinearly
 * (edges repeat). */
void facewarp_photo_to_space(const FaceWarp *w, const Photo *p, int S, uint8_t *out);
/* The photo's pixels the face space covers, [x0, x1) x [y0, y1); 0 when none. */
int facewarp_photo_bounds(const FaceWarp *w, const Photo *p, int *x0, int *y0, int *x1, int *y1);
/* A face-space image [S,S,3] back into the photo, over the pixels whose
 * canonical position lies inside it; others are left alone. */
void facewarp_space_to_photo(const FaceWarp *w, const uint8_t *space, int S, Photo *p);
#endif
