/* build/reage-parity BLOB OUT: the native engine's generator output on the
 * input that tests/wasm.test.js gives the WebAssembly build, as raw
 * float32, so that the two can be compared. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include "../src/bundle.h"
#include "../src/fileio.h"

int main(int argc, char **argv) {
    if (argc != 3) { fprintf(stderr, "usage: reage-parity BLOB OUT\n"); return 2; }
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
    return 0;
}
