/* build/reage-parity BLOB OUT [DETECTOR PHOTO PIXELS FACES [MESH MESHES]]:
 * the native engine's generator output on the input that tests/wasm.test.js
 * gives the WebAssembly build, as raw float32, so that the two can be
 * compared; with a detector and a photo, also the photo's RGBA pixels (as
 * decoded here, so that both builds see the same bytes) and the faces found
 * in it (score, box, keypoints, aligned crop: 21 float32 each); with a mesh,
 * each face's mesh (FACEMESH_FLOATS float32: facemesh_to_floats).
 *
 * build/reage-parity --pipeline BLOB DETECTOR MESH PHOTO PIXELS OUT: the
 * photo's RGBA pixels, and the same with its first face re-aged by the
 * shipped pipeline (src/pipeline.h) from 30 to 75 years. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "../src/bundle.h"
#include "../src/facedetect.h"
#include "../src/facemesh.h"
#include "../src/image.h"
#include "../src/fileio.h"
#include "../src/pipeline.h"

static int pipeline_main(char **argv) {
    Err e;
    uint8_t *buf;
    size_t len;
    static Bundle b;
    static FaceDetector fd;
    static FaceMesh fm;
    Image img;
    const char *what = argv[0];
    int rc = file_read_all(argv[0], 1 << 26, &buf, &len, &e) || bundle_load(&b, buf, len, NULL, argv[0], &e);
    if (!rc) free(buf), what = argv[1], rc = file_read_all(argv[1], 1 << 24, &buf, &len, &e) || facedet_load(&fd, buf, len, argv[1], &e);
    if (!rc) free(buf), what = argv[2], rc = file_read_all(argv[2], 1 << 24, &buf, &len, &e) || facemesh_load(&fm, buf, len, argv[2], &e);
    if (!rc) free(buf), rc = image_load(argv[3], &img, &e);
    if (rc) { fprintf(stderr, "reage-parity: %s (%s)\n", e.msg, what); return 1; }
    size_t np = (size_t)img.w * img.h;
    uint8_t *rgba = malloc(np * 4);
    for (size_t i = 0; i < np; i++) {
        memcpy(rgba + 4 * i, img.rgb + 3 * i, 3);
        rgba[4 * i + 3] = 255;
    }
    if (file_write_atomic(argv[4], rgba, np * 4, &e)) { fprintf(stderr, "reage-parity: %s\n", e.msg); return 1; }
    Photo p = {rgba, img.w, img.h, 4};
    FaceDet d[FACEDET_MAX_FACES];
    CropBox crops[FACEDET_MAX_FACES];
    int n = facemesh_confirm(&fm, &p, d, facedet_photo(&fd, &p, d, FACEDET_MAX_FACES), crops, NULL);
    if (n < 1) { fprintf(stderr, "reage-parity: no face in %s\n", argv[3]); return 1; }
    int by = pipeline_reage(&b, &fm, &p, crops[0], 30, 75);
    if (file_write_atomic(argv[5], rgba, np * 4, &e)) { fprintf(stderr, "reage-parity: %s\n", e.msg); return 1; }
    printf("%d %d %s\n", img.w, img.h, by == REAGED_BY_PROTOTYPES ? "prototypes" : "generator");
    return 0;
}

int main(int argc, char **argv) {
    if (argc == 8 && !strcmp(argv[1], "--pipeline")) return pipeline_main(argv + 2);
    if (argc != 3 && argc != 7 && argc != 9) {
        fprintf(stderr, "usage: reage-parity BLOB OUT [DETECTOR PHOTO PIXELS FACES [MESH MESHES]]\n");
        return 2;
    }
    Err e;
    uint8_t *buf;
    size_t len;
    Bundle b;
    if (file_read_all(argv[1], 1 << 26, &buf, &len, &e) || bundle_load(&b, buf, len, NULL, argv[1], &e)) {
        fprintf(stderr, "reage-parity: %s\n", e.msg);
        return 1;
    }
    int R = b.cfg.res, G = b.cfg.groups;
    size_t n = (size_t)3 * R * R;
    float *face = malloc(sizeof(float) * n), *out = malloc(sizeof(float) * n), gw[MAX_GROUPS] = {0};
    /* the same formulas as tests/wasm.test.js */
    for (size_t i = 0; i < n; i++) face[i] = 0.8f * sinf(0.01f * (float)i) * cosf(0.003f * (float)i);
    gw[G / 2 - 1] = 0.3f;
    gw[G / 2] = 0.7f;
    bundle_reage(&b, face, gw, out);
    float age = bundle_estimate_age(&b, face);
    if (file_write_atomic(argv[2], out, sizeof(float) * n, &e)) { fprintf(stderr, "reage-parity: %s\n", e.msg); return 1; }
    printf("%.6f\n", age);
    if (argc >= 7) {
        static FaceDetector fd;
        Image img;
        free(buf);
        if (file_read_all(argv[3], 1 << 24, &buf, &len, &e) || facedet_load(&fd, buf, len, argv[3], &e) ||
            image_load(argv[4], &img, &e)) {
            fprintf(stderr, "reage-parity: %s\n", e.msg);
            return 1;
        }
        size_t np = (size_t)img.w * img.h;
        uint8_t *rgba = malloc(np * 4);
        for (size_t i = 0; i < np; i++) {
            memcpy(rgba + 4 * i, img.rgb + 3 * i, 3);
            rgba[4 * i + 3] = 255;
        }
        Photo p = {rgba, img.w, img.h, 4};
        FaceDet d[FACEDET_MAX_FACES];
        int n = facedet_photo(&fd, &p, d, FACEDET_MAX_FACES);
        float faces[FACEDET_MAX_FACES * FACEDET_FLOATS];
        for (int i = 0; i < n; i++) facedet_to_floats(&d[i], facedet_crop(&d[i]), faces + i * FACEDET_FLOATS);
        if (file_write_atomic(argv[5], rgba, np * 4, &e) || file_write_atomic(argv[6], faces, sizeof(float) * FACEDET_FLOATS * (size_t)n, &e)) {
            fprintf(stderr, "reage-parity: %s\n", e.msg);
            return 1;
        }
        if (argc == 9) {
            static FaceMesh fm;
            static FaceLandmarks lm;
            static float meshes[FACEDET_MAX_FACES * FACEMESH_FLOATS];
            free(buf);
            if (file_read_all(argv[7], 1 << 24, &buf, &len, &e) || facemesh_load(&fm, buf, len, argv[7], &e)) {
                fprintf(stderr, "reage-parity: %s\n", e.msg);
                return 1;
            }
            for (int i = 0; i < n; i++) {
                facemesh_photo(&fm, &p, facemesh_roi(&d[i]), &lm);
                facemesh_to_floats(&lm, meshes + (size_t)i * FACEMESH_FLOATS);
            }
            if (file_write_atomic(argv[8], meshes, sizeof(float) * FACEMESH_FLOATS * (size_t)n, &e)) {
                fprintf(stderr, "reage-parity: %s\n", e.msg);
                return 1;
            }
        }
        printf("%d %d\n", img.w, img.h);
    }
    return 0;
}
