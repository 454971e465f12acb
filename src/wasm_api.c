/* The browser's entry points into the engine (web/reage.wasm). The page's
 * worker copies the weight blob and the photo's RGBA pixels into this
 * module's memory and calls these; web/reage.js wraps them. */
#include <stdlib.h>
#include <string.h>
#include "bundle.h"
#include "facedetect.h"
#include "facemesh.h"
#include <math.h>
#include "kernels.h"
#include "parallel.h"
#include "photo.h"
#include "pipeline.h"
#include "sgemm.h"

#define EXPORT __attribute__((visibility("default"), used))

/* Photos larger than this are downscaled by the page before they get here. */
#define WASM_MAX_PIXELS (24u * 1024u * 1024u)

static Bundle bundle;
static int loaded;
static Preview preview; /* the slider's, on the loaded bundle */
static int preview_w, preview_h;
static FaceDetector detector;
static int detector_loaded;
static FaceMesh mesh;
static int mesh_loaded;
static Err err;

EXPORT void *reage_malloc(size_t n) { return malloc(n); }
EXPORT void reage_free(void *p) { free(p); }
EXPORT const char *reage_error(void) { return err.msg; }
EXPORT const char *reage_backend(void) { return sgemm_backend(); }

/* Threads (web/reage.js starts the helpers; in the single-threaded build
 * there are none and these change nothing): how many to use, the word the
 * helpers sleep on, and what a helper calls when it changes. */
EXPORT void reage_set_threads(int n) { parallel_set_threads(n); }
EXPORT int reage_threads(void) { return parallel_threads(); }
EXPORT int *reage_thread_word(void) { return parallel_job_word(); }
EXPORT void reage_thread_help(int thread) { parallel_help(thread); }

/* Returns 0, or -1 with reage_error() set; a failed load keeps the model
 * that was loaded before. */
EXPORT int reage_load(const uint8_t *blob, size_t len) {
    Bundle next;
    if (bundle_load(&next, blob, len, NULL, "weights", &err)) return -1;
    pipeline_preview_free(&preview);
    preview_w = preview_h = 0;
    if (loaded) bundle_free(&bundle);
    bundle = next;
    loaded = 1;
    return 0;
}

/* The generator's blob, for weights loaded without it (the page fetches it
 * only when a face needs it); same contract. */
EXPORT int reage_load_generator(const uint8_t *blob, size_t len) {
    if (!loaded) return err_set(&err, "load the weights before the generator"), -1;
    return bundle_load_generator(&bundle, blob, len, "generator", &err);
}

/* The face detector's blob (weights/blazeface.blob); same contract. */
EXPORT int reage_load_detector(const uint8_t *blob, size_t len) {
    FaceDetector next;
    if (facedet_load(&next, blob, len, "face detector", &err)) return -1;
    if (detector_loaded) facedet_free(&detector);
    detector = next;
    detector_loaded = 1;
    return 0;
}

/* The face mesh's blob (weights/facemesh.blob); same contract. */
EXPORT int reage_load_mesh(const uint8_t *blob, size_t len) {
    FaceMesh next;
    if (facemesh_load(&next, blob, len, "face mesh", &err)) return -1;
    if (mesh_loaded) facemesh_free(&mesh);
    mesh = next;
    mesh_loaded = 1;
    return 0;
}

EXPORT int reage_res(void) { return loaded ? bundle.cfg.res : 0; }
EXPORT int reage_groups(void) { return loaded ? bundle.cfg.groups : 0; }
EXPORT int reage_group_lo(int g) { return loaded && g >= 0 && g < bundle.cfg.groups ? bundle.cfg.group_lo[g] : -1; }
EXPORT int reage_group_hi(int g) { return loaded && g >= 0 && g < bundle.cfg.groups ? bundle.cfg.group_hi[g] : -1; }
EXPORT const char *reage_info(void) { return loaded ? bundle.info : ""; }

/* A photo's arguments: a size within the limit (each side first, so that
 * the product cannot wrap) and a buffer of exactly w*h*4 bytes. */
static int check_photo(size_t len, int w, int h) {
    if (w < 1 || h < 1 || w > 65536 || h > 65536 || (uint64_t)w * (uint64_t)h > WASM_MAX_PIXELS)
        return err_set(&err, "photo of %dx%d pixels is larger than %u megapixels", w, h, WASM_MAX_PIXELS >> 20), -1;
    if (len != (size_t)w * (size_t)h * 4)
        return err_set(&err, "the pixels are %zu bytes, not the %dx%dx4 of the photo's size", len, w, h), -1;
    return 0;
}

static int check(size_t len, int w, int h) {
    if (!loaded) return err_set(&err, "no weights loaded"), -1;
    return check_photo(len, w, h);
}

/* A crop box: finite, turned at most a full turn, at least 8 pixels and
 * within reach of the photo (its centre at most one side outside it). */
static int check_box(CropBox b, int w, int h) {
    if (!(isfinite(b.cx) && isfinite(b.cy) && isfinite(b.size) && isfinite(b.angle)) || !(b.size >= 8) ||
        b.size > 4.0f * ((float)w + h) || fabsf(b.angle) > 6.3f || b.cx < -b.size || b.cx > w + b.size ||
        b.cy < -b.size || b.cy > h + b.size)
        return err_set(&err, "face box (%g, %g, side %g, %g rad) is not a box in a %dx%d photo", b.cx, b.cy, b.size, b.angle, w, h), -1;
    return 0;
}

/* Finds the faces in a photo (rgba: w*h*4 bytes), best first: writes
 * FACEDET_FLOATS floats a face to out (see facedet_to_floats) and returns
 * how many (at most max), or -1. With the face mesh loaded, it confirms
 * each detection (dropping what it does not see as a face) and aligns the
 * crop; without it, the detector's keypoints align it. */
EXPORT int reage_face_floats(void) { return FACEDET_FLOATS; }
EXPORT int reage_detect(const uint8_t *rgba, size_t len, int w, int h, float *out, int max) {
    if (!detector_loaded) return err_set(&err, "no face detector loaded"), -1;
    if (check_photo(len, w, h)) return -1;
    if (max < 0) return err_set(&err, "max faces %d: must not be negative", max), -1;
    Photo p = {(uint8_t *)rgba, w, h, 4};
    FaceDet d[FACEDET_MAX_FACES];
    CropBox crops[FACEDET_MAX_FACES];
    int n = facedet_photo(&detector, &p, d, FACEDET_MAX_FACES);
    if (mesh_loaded) n = facemesh_confirm(&mesh, &p, d, n, crops, NULL);
    else for (int i = 0; i < n; i++) crops[i] = facedet_crop(&d[i]);
    if (n > max) n = max;
    for (int i = 0; i < n; i++) facedet_to_floats(&d[i], crops[i], out + (size_t)i * FACEDET_FLOATS);
    return n;
}

/* The mesh of one detected face (det: a reage_detect record of
 * FACEDET_FLOATS floats) in a photo (rgba: w*h*4 bytes): writes
 * FACEMESH_FLOATS floats to out (see facemesh_to_floats); returns 0, or -1. */
EXPORT int reage_mesh_floats(void) { return FACEMESH_FLOATS; }
EXPORT int reage_mesh(const uint8_t *rgba, size_t len, int w, int h, const float *det, float *out) {
    if (!mesh_loaded) return err_set(&err, "no face mesh loaded"), -1;
    if (check_photo(len, w, h)) return -1;
    FaceDet d = facedet_from_floats(det);
    CropBox roi = facemesh_roi(&d);
    if (!(isfinite(roi.cx) && isfinite(roi.cy) && isfinite(roi.angle) && roi.size >= 1 && roi.size <= 4.0f * (w + h)))
        return err_set(&err, "the detection's box is not a face box in a %dx%d photo", w, h), -1;
    static FaceLandmarks lm;
    Photo p = {(uint8_t *)rgba, w, h, 4};
    facemesh_photo(&mesh, &p, roi, &lm);
    facemesh_to_floats(&lm, out);
    return 0;
}

/* rgba: w*h*4 bytes. Returns the age in years, or -1. */
EXPORT float reage_estimate_age(uint8_t *rgba, size_t len, int w, int h, float cx, float cy, float size, float angle) {
    CropBox box = {cx, cy, size, angle};
    if (check(len, w, h) || check_box(box, w, h)) return -1;
    Photo p = {rgba, w, h, 4};
    return photo_estimate_age(&bundle, &p, box);
}

/* Re-ages n faces in place (src/pipeline.h: the age prototypes on the face
 * mesh where the weights carry them and the mesh is loaded); faces holds 6
 * floats each: the crop (cx cy size angle), the face's own age and the
 * target age. Returns 0, or -1, or -2 when a face needs the generator and
 * the weights were loaded without it (reage_load_generator; faces before it
 * are re-aged already, so the caller starts again from its own copy). */
/* n faces of 6 floats (crop cx cy size angle, own age, target age), at
 * least `least` of them, each a box in the photo and two ages in 0..120. */
static int check_faces(const float *faces, int n, int least, int w, int h) {
    if (n < least || n > FACEDET_MAX_FACES) return err_set(&err, "face count %d: must be %d..%d", n, least, FACEDET_MAX_FACES), -1;
    for (int i = 0; i < n; i++) {
        const float *f = faces + (size_t)i * 6;
        if (check_box((CropBox){f[0], f[1], f[2], f[3]}, w, h)) return -1;
        if (!(f[4] >= 0 && f[4] <= 120 && f[5] >= 0 && f[5] <= 120))
            return err_set(&err, "face %d: ages %g -> %g: each must be 0..120 years", i + 1, f[4], f[5]), -1;
    }
    return 0;
}

EXPORT int reage_apply(uint8_t *rgba, size_t len, int w, int h, const float *faces, int n) {
    if (check(len, w, h) || check_faces(faces, n, 0, w, h)) return -1;
    Photo p = {rgba, w, h, 4};
    for (int i = 0; i < n; i++) {
        const float *f = faces + (size_t)i * 6;
        CropBox box = {f[0], f[1], f[2], f[3]};
        int rc = pipeline_reage(&bundle, mesh_loaded ? &mesh : NULL, &p, box, f[4], f[5]);
        if (rc == PIPELINE_NEEDS_GENERATOR) return err_set(&err, "face %d needs the generator, which is not loaded", i + 1), -2;
        if (rc < 0) return err_set(&err, "out of memory re-aging face %d", i + 1), -1;
    }
    return 0;
}

/* One camera frame (rgba, w x h) in place: the face in box (4 floats: cx cy
 * size angle, updated to follow it) from source to target age. Returns 1,
 * 0 where the face was lost (detect again), or -1 with reage_error() set. */
EXPORT int reage_frame(uint8_t *rgba, size_t len, int w, int h, float *box, float source, float target) {
    if (check(len, w, h)) return -1;
    CropBox b = {box[0], box[1], box[2], box[3]};
    if (check_box(b, w, h)) return -1;
    if (!mesh_loaded || !bundle.proto) return err_set(&err, "the camera needs the face mesh and the age prototypes"), -1;
    if (!(source >= 0 && source <= 120 && target >= 0 && target <= 120))
        return err_set(&err, "ages %g -> %g: each must be 0..120 years", source, target), -1;
    Photo p = {rgba, w, h, 4};
    int rc = pipeline_reage_frame(&bundle, &mesh, &p, &b, source, target);
    if (rc < 0) return err_set(&err, "out of memory re-aging a frame"), -1;
    box[0] = b.cx, box[1] = b.cy, box[2] = b.size, box[3] = b.angle;
    return rc;
}

/* The slider's preview (src/pipeline.h) of a small copy of the photo:
 * faces as for reage_apply (the target checked, then ignored); reage_preview_plan then
 * plans its anchors one a call. Replaces the preview prepared before.
 * Returns 0, or -1 with reage_error() set. */
EXPORT int reage_preview_prepare(uint8_t *rgba, size_t len, int w, int h, const float *faces, int n) {
    pipeline_preview_free(&preview);
    preview_w = preview_h = 0;
    if (check(len, w, h)) return -1;
    if (!mesh_loaded || !bundle.proto) return err_set(&err, "the preview needs the face mesh and the age prototypes"), -1;
    if (check_faces(faces, n, 1, w, h)) return -1;
    CropBox boxes[FACEDET_MAX_FACES];
    float sources[FACEDET_MAX_FACES];
    for (int i = 0; i < n; i++) {
        const float *f = faces + (size_t)i * 6;
        boxes[i] = (CropBox){f[0], f[1], f[2], f[3]};
        sources[i] = f[4];
    }
    Photo p = {rgba, w, h, 4};
    if (pipeline_preview_prepare(&preview, &bundle, &mesh, &p, boxes, sources, n))
        return err_set(&err, "out of memory preparing the preview"), -1;
    preview_w = w, preview_h = h;
    return 0;
}

/* Plans the next anchor nearest target: how many are left, or -1. */
EXPORT int reage_preview_plan(float target) {
    if (!preview_w) return err_set(&err, "no preview prepared"), -1;
    int left = pipeline_preview_plan(&preview, target);
    if (left < 0) err_set(&err, "out of memory planning the preview");
    return left;
}

/* 1 when the anchors around target are planned, else 0. */
EXPORT int reage_preview_ready(float target) { return preview_w && pipeline_preview_ready(&preview, target); }

/* dst = src (the photo the preview was prepared on) with its faces at
 * target, from the planned anchors nearest it; bounds (4 ints) gets the
 * changed region x0 y0 x1 y1. 0, or -1. */
EXPORT int reage_preview_render(uint8_t *src, uint8_t *dst, size_t len, int w, int h, float target, int *bounds) {
    if (!preview_w || w != preview_w || h != preview_h || check(len, w, h))
        return err_set(&err, "no preview prepared for a %dx%d photo", w, h), -1;
    if (!(target >= 0 && target <= 120)) return err_set(&err, "age %g: must be 0..120 years", target), -1;
    Photo s = {src, w, h, 4}, d = {dst, w, h, 4};
    pipeline_preview_render(&preview, &s, &d, target, bounds);
    return 0;
}

/* For the parity test: the generator's raw output for a [3,res,res] face. */
EXPORT int reage_generate(const float *face, const float *groupw, float *out) {
    if (!loaded || !bundle.has_generator) return err_set(&err, "no generator loaded");
    bundle_reage(&bundle, face, groupw, out);
    return 0;
}

/* For the kernel test: C = A (MxK) * B (KxN) through the SIMD kernel
 * (reference = 0) or the scalar reference (reference = 1). */
EXPORT void reage_test_sgemm(int reference, int ta, int tb, int M, int N, int K, const float *A, const float *B,
                             float beta, float *C) {
    (reference ? sgemm_ref : sgemm)(ta, tb, M, N, K, 1.0f, A, ta ? M : K, B, tb ? K : N, beta, C, N);
}

EXPORT const char *reage_kernel_backend(void) { return kernel_backend(); }

/* For the kernel test: runs elementwise kernel `which` (0 scale-shift, 1 leaky,
 * 2 mean/var into y[0..1], 3 upsample row, 4 depthwise 3x3 row over three
 * rows of n in x with fixed taps) in its SIMD or reference form. */
EXPORT void reage_test_kernel(int which, int reference, float *y, const float *x, int n) {
    switch (which) {
    case 0: (reference ? kernel_scale_shift_ref : kernel_scale_shift)(y, x, 0.7f, -0.2f, n); break;
    case 1: (reference ? kernel_leaky_ref : kernel_leaky)(y, x, 0.2f, n); break;
    case 2: (reference ? kernel_mean_var_ref : kernel_mean_var)(x, n, y, y + 1); break;
    case 3: (reference ? kernel_upsample_row_ref : kernel_upsample_row)(y, x, n); break;
    case 4: {
        static const float taps[9] = {0.1f, -0.7f, 0.3f, 1.1f, 0.5f, -0.2f, 0.9f, -1.3f, 0.4f};
        (reference ? kernel_dw3_row_ref : kernel_dw3_row)(y, x, x + n, x + 2 * n, taps, 0.05f, n);
        break;
    }
    }
}

/* For the thread pool's test: out[i] += 1 + the thread that ran index i, for i below n in ranges of
 * `grain` (each index once: out[i] - 1 names its thread) */
static void mark_thread(void *ctx, int begin, int end, int thread) {
    int *out = ctx;
    for (int i = begin; i < end; i++) {
        for (volatile int spin = 0; spin < 2000; spin++) {}
        out[i] += 1 + thread;
    }
}
EXPORT void reage_test_parallel(int n, int grain, int *out) { parallel_for(n, grain, mark_thread, out); }
