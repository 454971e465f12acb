/* libFuzzer target: every reader of ReAge's blob format on the same bytes:
 * the page's weights, the face detector, the face mesh, a checkpoint's
 * configuration. The reader is chosen by the input's first byte, whose
 * magic is written over the rest's first 8 bytes, and the checksum is made
 * right: the readers' parsing of a damaged structure is what is fuzzed, not
 * the CRC that would refuse it first. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "../../src/blob.h"
#include "../../src/bundle.h"
#include "../../src/facedetect.h"
#include "../../src/facemesh.h"
#include "../../src/fileio.h"
#include "../../src/trainer.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    static const char *const magic[] = {BLOB_MAGIC, FACEDET_MAGIC, FACEMESH_MAGIC, CKPT_MAGIC};
    int which = data[0] % 4;
    /* the rest, with the chosen magic written over its first 8 bytes */
    size_t n = size - 1;
    uint8_t *buf = malloc(n + 8);
    if (!buf) return 0;
    memcpy(buf, data + 1, n);
    if (n >= 8) memcpy(buf, magic[which], 8);
    if (n >= 12) {
        uint32_t crc = crc32_bytes(buf, n - 4, 0);
        for (int k = 0; k < 4; k++) buf[n - 4 + k] = (uint8_t)(crc >> (8 * k));
    }
    Err e;
    if (which == 0) {
        Bundle b;
        if (bundle_load(&b, buf, n, NULL, "fuzz", &e) == 0) bundle_free(&b);
    } else if (which == 1) {
        static FaceDetector fd;
        if (facedet_load(&fd, buf, n, "fuzz", &e) == 0) facedet_free(&fd);
    } else if (which == 2) {
        static FaceMesh fm;
        if (facemesh_load(&fm, buf, n, "fuzz", &e) == 0) facemesh_free(&fm);
    } else {
        char path[64];
        snprintf(path, sizeof(path), "/tmp/reage-fuzz-%d.ckpt", (int)getpid());
        TrainConfig tc;
        if (file_write_atomic(path, buf, n, &e) == 0) checkpoint_read_config(path, &tc, &e);
    }
    free(buf);
    return 0;
}
