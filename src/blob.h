/* ReAge's weight file, shared by the browser blob and the trainer's
 * checkpoint (they differ by magic and content):
 *
 *   char[8]  magic ("REAGEBLB" blob, "REAGECKP" checkpoint)
 *   u32      format version (BLOB_VERSION)
 *   u32 n,   n bytes of config text, "key=value" lines (model config:
 *            resolution, widths, age groups and their ranges, ...)
 *   u32      tensor count, then per tensor:
 *            u32 name length, name, u32 dtype, u32 ndim, u32 dims[ndim], data
 *            (DT_Q8's data: dims[0] float32 scales, then one int8 per value,
 *            value = int8 * the scale of its slice along the first dimension)
 *   u32      CRC-32 of every byte before it
 *
 * Little-endian throughout. Parsing works on a memory buffer, so the page
 * and the native tools share it. */
#ifndef REAGE_BLOB_H
#define REAGE_BLOB_H
#include <stddef.h>
#include <stdint.h>
#include "bytes.h"
#include "errors.h"
#include "params.h"

#define BLOB_VERSION 1
#define BLOB_MAGIC "REAGEBLB"
#define CKPT_MAGIC "REAGECKP"
#define BLOB_MAX_TENSORS 1024

typedef enum { DT_F32 = 0, DT_F16 = 1, DT_U32 = 2, DT_Q8 = 3 } DType;

typedef struct {
    Bytes out;
    size_t count_pos;
    uint32_t ntensors;
} BlobWriter;

void blobw_begin(BlobWriter *w, const char *magic, const char *config);
/* Stores n floats under name as dtype (DT_F32, DT_F16, or DT_Q8: int8 with
 * one scale per slice along the first dimension, the output channel of
 * every layer's weights; symmetric, so zero stays zero). */
void blobw_floats(BlobWriter *w, const char *name, DType dtype, int ndim,
                  const int *shape, const float *data);
void blobw_u32(BlobWriter *w, const char *name, size_t n, const uint32_t *data);
/* Tensors of fewer values than this stay float16 when DT_Q8 is asked for:
 * biases, norms, slopes and small kernels, where int8's step would show and
 * the bytes saved would not. */
#define BLOB_Q8_MIN 2048
/* Every tensor of a parameter set, named prefix + tensor name (DT_Q8: the
 * trainable ones of BLOB_Q8_MIN values or more, the rest float16). */
void blobw_params(BlobWriter *w, const char *prefix, const ParamSet *ps, DType dtype);
/* Another blob's tensor, bit for bit. */
struct BlobTensor;
void blobw_copy(BlobWriter *w, const struct BlobTensor *t);
/* Finishes with the checksum and writes atomically; frees the buffer. */
int blobw_save(BlobWriter *w, const char *path, Err *e);
/* Finishes with the checksum and hands the bytes over (caller frees). */
uint8_t *blobw_finish(BlobWriter *w, size_t *len);

typedef struct BlobTensor {
    const char *name;  /* not NUL-terminated: name_len bytes */
    uint32_t name_len, dtype, ndim, shape[4];
    size_t count;
    const uint8_t *data;
} BlobTensor;

typedef struct {
    char magic[9];
    uint32_t version;
    char config[4096];
    uint32_t ntensors;
    BlobTensor t[BLOB_MAX_TENSORS];
} Blob;

/* Validates and indexes a buffer (which must outlive the Blob). Each failure
 * has its own message: truncated, bad magic, wrong version, bad checksum. */
int blob_parse(Blob *b, const uint8_t *buf, size_t len, const char *magic,
               const char *what, Err *e);
const BlobTensor *blob_find(const Blob *b, const char *name);
/* Whether tensor t's name, or any tensor's name, starts with prefix. */
int blob_tensor_starts(const BlobTensor *t, const char *prefix);
int blob_has_prefix(const Blob *b, const char *prefix);
/* The blob's tensors, bit for bit, under another config text, with a new
 * checksum; the bytes are the caller's to free, NULL when out of memory. */
uint8_t *blob_with_config(const Blob *b, const char *config, size_t *len);
/* The bytes of a tensor's data as stored. */
size_t blob_tensor_bytes(uint32_t dtype, uint32_t ndim, const uint32_t *shape, size_t count);
/* Copies tensor name into dst (converting from float16 or int8 if stored so),
 * checking that it holds exactly n elements. */
int blob_read_floats(const Blob *b, const char *name, float *dst, size_t n,
                     const char *what, Err *e);
int blob_read_u32(const Blob *b, const char *name, uint32_t *dst, size_t n,
                  const char *what, Err *e);
/* Loads every tensor of a parameter set (prefix + name), checking shapes. */
int blob_read_params(const Blob *b, const char *prefix, ParamSet *ps,
                     const char *what, Err *e);

/* Config text helpers: "key=value" lines. */
int config_get(const char *config, const char *key, char *val, size_t n);
int config_get_int(const char *config, const char *key, int *val);
/* config's lines less those that start with prefix, into out (n bytes):
 * lines that would not fit are left out too; ends with a newline unless
 * empty. Returns its length, so that a caller can add lines after it. */
size_t config_without(const char *config, const char *prefix, char *out, size_t n);

uint32_t crc32_bytes(const uint8_t *p, size_t n, uint32_t crc);
uint16_t f32_to_f16(float f);
float f16_to_f32(uint16_t h);
#endif
