/* libFuzzer target: the photo pipeline on a real face photo with random
 * boxes, ages and photo sizes (the same calls the page and the CLI make,
 * after their argument checks: here the pipeline itself must hold), by the
 * generator and by the shipped path (the mesh, then the age prototypes
 * wherever it finds the face). */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "../../src/bundle.h"
#include "../../src/fileio.h"
#include "../../src/image.h"
#include "../../src/photo.h"
#include "../../src/pipeline.h"

static Bundle bundle;
static FaceMesh mesh;
static Image face;

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc; (void)argv;
    uint8_t *buf;
    size_t len;
    Err e;
    if (file_read_all("weights/reage.blob", 1 << 26, &buf, &len, &e) || bundle_load(&bundle, buf, len, NULL, "weights", &e) ||
        image_load("web/sample.jpg", &face, &e))
        abort(); /* run from the repository's root */
    free(buf);
    if (file_read_all("weights/facemesh.blob", 1 << 26, &buf, &len, &e) || facemesh_load(&mesh, buf, len, "mesh", &e)) abort();
    free(buf);
    return 0;
}

static float take(const uint8_t **d, size_t *n, float lo, float hi) {
    uint16_t v = 0;
    if (*n >= 2) { v = (uint16_t)((*d)[0] | (*d)[1] << 8); *d += 2; *n -= 2; }
    return lo + (hi - lo) * v / 65535.0f;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    /* a photo of 1-400 pixels a side holding the face, and a box near it */
    int w = 1 + (int)take(&data, &size, 0, 399), h = 1 + (int)take(&data, &size, 0, 399);
    Image p;
    if (image_resize(&face, w, h, &p)) return 0;
    CropBox box = {take(&data, &size, -w, 2.0f * w), take(&data, &size, -h, 2.0f * h), take(&data, &size, 8, 3.0f * (w + h)),
                   take(&data, &size, -7, 7)};
    float from = take(&data, &size, 0, 120), to = take(&data, &size, 0, 120);
    Photo ph = {p.rgb, p.w, p.h, 3};
    photo_estimate_age(&bundle, &ph, box);
    photo_reage(&bundle, &ph, box, from, to);
    pipeline_reage(&bundle, &mesh, &ph, box, from, to);
    image_free(&p);
    return 0;
}
