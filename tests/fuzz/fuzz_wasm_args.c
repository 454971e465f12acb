/* libFuzzer target: the browser's entry points (src/wasm_api.c, compiled
 * natively) with arbitrary arguments: sizes, buffer lengths, boxes, ages
 * and counts. Whatever the arguments, an entry point either does its work
 * within the buffer it was given or refuses. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "../../src/fileio.h"

int reage_load(const uint8_t *blob, size_t len);
int reage_load_detector(const uint8_t *blob, size_t len);
int reage_load_mesh(const uint8_t *blob, size_t len);
int reage_detect(const uint8_t *rgba, size_t len, int w, int h, float *out, int max);
int reage_mesh(const uint8_t *rgba, size_t len, int w, int h, const float *det, float *out);
float reage_estimate_age(uint8_t *rgba, size_t len, int w, int h, float cx, float cy, float size, float angle);
int reage_apply(uint8_t *rgba, size_t len, int w, int h, const float *faces, int n);

static int load(const char *path, int (*loader)(const uint8_t *, size_t)) {
    uint8_t *buf;
    size_t len;
    Err e;
    if (file_read_all(path, 1 << 26, &buf, &len, &e)) return -1;
    int rc = loader(buf, len);
    free(buf);
    return rc;
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc; (void)argv;
    if (load("weights/reage.blob", reage_load) || load("weights/blazeface.blob", reage_load_detector) ||
        load("weights/facemesh.blob", reage_load_mesh))
        abort(); /* run from the repository's root */
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 4 + 4 * 8) return 0;
    int32_t iw, ih;
    memcpy(&iw, data, 4);
    memcpy(&ih, data + 4, 4);
    float f[6];
    memcpy(f, data + 8, sizeof(f));
    int32_t n, which;
    memcpy(&n, data + 32, 4);
    which = data[36 % size] % 4;
    /* the pixel buffer really allocated: at most 96x96, whatever w and h claim */
    int w = iw % 200, h = ih % 200;
    size_t len = (size_t)(abs(w) % 97) * (size_t)(abs(h) % 97) * 4 + (size > 40 ? data[40] % 3 : 0);
    uint8_t *rgba = malloc(len ? len : 1);
    float *out = malloc(sizeof(float) * (5 + 3 * 468) * 32);
    if (!rgba || !out) { free(rgba); free(out); return 0; }
    memset(rgba, 100, len);
    float det[21] = {0.9f, f[0], f[1], f[2], f[3], f[0], f[1], f[2], f[1]};
    float faces[6 * 2] = {f[0], f[1], f[2], f[3], f[4], f[5], f[0], f[1], f[2], f[3], f[4], f[5]};
    switch (which) {
    case 0: reage_detect(rgba, len, w, h, out, n % 64); break;
    case 1: reage_mesh(rgba, len, w, h, det, out); break;
    case 2: reage_estimate_age(rgba, len, w, h, f[0], f[1], f[2], f[3]); break;
    default: reage_apply(rgba, len, w, h, faces, n % 3); break;
    }
    free(rgba);
    free(out);
    return 0;
}
