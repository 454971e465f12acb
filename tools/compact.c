/* build/reage-compact: a weight blob with its float16 tensors stored as int8
 * with one scale per output channel (DT_Q8, src/blob.h), half their size;
 * or only some of its tensors.
 *
 * usage: reage-compact IN.blob OUT.blob [--only PREFIX] [--without PREFIX]
 *
 * Tensors of fewer than BLOB_Q8_MIN values (biases, norms, slopes, small
 * kernels) and float32 ones (kept so on purpose: running statistics, the
 * prototypes' shape) are copied bit for bit, as are the prototypes, stored
 * as proto_write chose (src/prototypes.c). --only
 * keeps just the tensors whose names start with PREFIX, --without drops
 * them; the config travels unchanged. OUT is written whole or not at all. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "blob.h"
#include "facedetect.h"
#include "facemesh.h"
#include "fileio.h"

int main(int argc, char **argv) {
    const char *in = NULL, *out = NULL, *only = NULL, *without = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--only") || !strcmp(a, "--without")) {
            if (i + 1 >= argc) { fprintf(stderr, "reage-compact: %s needs a tensor name prefix\n", a); return 2; }
            *(!strcmp(a, "--only") ? &only : &without) = argv[++i];
        } else if (a[0] == '-') {
            fprintf(stderr, "reage-compact: unknown option %s (usage: reage-compact IN.blob OUT.blob [--only P] [--without P])\n", a);
            return 2;
        } else if (!in) in = a;
        else if (!out) out = a;
        else { fprintf(stderr, "reage-compact: one input and one output, not %s too\n", a); return 2; }
    }
    if (!in || !out) { fprintf(stderr, "usage: reage-compact IN.blob OUT.blob [--only PREFIX] [--without PREFIX]\n"); return 2; }
    Err e;
    uint8_t *buf;
    size_t len;
    Blob *blob = malloc(sizeof(Blob));
    if (!blob) { fprintf(stderr, "reage-compact: out of memory\n"); return 1; }
    /* the model, the face mesh and the face detector share the format under their own magic */
    const char *magic = BLOB_MAGIC;
    if (file_read_all(in, 256u << 20, &buf, &len, &e)) { fprintf(stderr, "reage-compact: %s\n", e.msg); return 1; }
    if (len >= 8 && !memcmp(buf, FACEMESH_MAGIC, 8)) magic = FACEMESH_MAGIC;
    if (len >= 8 && !memcmp(buf, FACEDET_MAGIC, 8)) magic = FACEDET_MAGIC;
    if (blob_parse(blob, buf, len, magic, in, &e)) {
        fprintf(stderr, "reage-compact: %s\n", e.msg);
        return 1;
    }
    BlobWriter w;
    blobw_begin(&w, magic, blob->config);
    int kept = 0, int8 = 0;
    for (uint32_t i = 0; i < blob->ntensors; i++) {
        const BlobTensor *t = &blob->t[i];
        if ((only && !blob_tensor_starts(t, only)) || (without && blob_tensor_starts(t, without))) continue;
        kept++;
        if (t->dtype != DT_F16 || t->count < BLOB_Q8_MIN || blob_tensor_starts(t, "proto.")) {
            int8 += t->dtype == DT_Q8;
            blobw_copy(&w, t);
            continue;
        }
        float *v = malloc(sizeof(float) * t->count);
        char name[256];
        snprintf(name, sizeof(name), "%.*s", (int)t->name_len, t->name);
        if (!v || blob_read_floats(blob, name, v, t->count, in, &e)) {
            fprintf(stderr, "reage-compact: %s\n", v ? e.msg : "out of memory");
            return 1;
        }
        int shape[4];
        for (uint32_t d = 0; d < t->ndim; d++) shape[d] = (int)t->shape[d];
        blobw_floats(&w, name, DT_Q8, (int)t->ndim, shape, v);
        free(v);
        int8++;
    }
    if (!kept) { fprintf(stderr, "reage-compact: no tensor of %s is left to write\n", in); return 1; }
    size_t size = w.out.len + 4; /* and the checksum */
    if (blobw_save(&w, out, &e)) { fprintf(stderr, "reage-compact: %s\n", e.msg); return 1; }
    fprintf(stderr, "reage-compact: wrote %s (%d tensors, %d of them int8; %zu -> %zu bytes)\n", out, kept, int8, len,
            size);
    free(buf);
    free(blob);
    return 0;
}
