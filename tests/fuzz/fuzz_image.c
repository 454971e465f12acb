/* libFuzzer target: image decoding (JPEG and PNG, with the size limits). */
#include <stdint.h>
#include <stdlib.h>
#include "../../src/image.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    Image img;
    Err e;
    if (image_decode(data, size, &img, "fuzz", &e) == 0) image_free(&img);
    return 0;
}
