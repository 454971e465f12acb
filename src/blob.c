#include "blob.h"
#include "fileio.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

uint32_t crc32_bytes(const uint8_t *p, size_t n, uint32_t crc) {
    static uint32_t table[256];
    if (!table[1])
        for (uint32_t i = 0; i < 256; i++) {
            uint32_t c = i;
            for (int k = 0; k < 8; k++) c = c & 1 ? 0xEDB88320u ^ (c >> 1) : c >> 1;
            table[i] = c;
        }
    crc = ~crc;
    for (size_t i = 0; i < n; i++) crc = table[(crc ^ p[i]) & 0xFF] ^ (crc >> 8);
    return ~crc;
}

uint16_t f32_to_f16(float f) {
    uint32_t x;
    memcpy(&x, &f, 4);
    uint32_t sign = (x >> 16) & 0x8000, mant = x & 0x7FFFFF;
    int exp = (int)((x >> 23) & 0xFF) - 127 + 15;
    if (((x >> 23) & 0xFF) == 0xFF) return (uint16_t)(sign | 0x7C00 | (mant ? 0x200 : 0));
    if (exp >= 31) return (uint16_t)(sign | 0x7C00);
    if (exp <= 0) {
        if (exp < -10) return (uint16_t)sign;
        mant |= 0x800000;
        int shift = 14 - exp;
        uint32_t h = mant >> shift, rem = mant & ((1u << shift) - 1), half = 1u << (shift - 1);
        if (rem > half || (rem == half && (h & 1))) h++;
        return (uint16_t)(sign | h);
    }
    uint32_t h = ((uint32_t)exp << 10) | (mant >> 13), rem = mant & 0x1FFF;
    if (rem > 0x1000 || (rem == 0x1000 && (h & 1))) h++; /* round to nearest even; may carry into exp */
    return (uint16_t)(sign | h);
}

float f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16, exp = (h >> 10) & 0x1F, mant = h & 0x3FF, x;
    if (exp == 0) {
        if (mant == 0) x = sign;
        else {
            exp = 127 - 15 + 1;
            while (!(mant & 0x400)) { mant <<= 1; exp--; }
            x = sign | (exp << 23) | ((mant & 0x3FF) << 13);
        }
    } else if (exp == 31) x = sign | 0x7F800000 | (mant << 13);
    else x = sign | ((exp - 15 + 127) << 23) | (mant << 13);
    float f;
    memcpy(&f, &x, 4);
    return f;
}

/* ---------------------------------------------------------------- writer */

static void put(BlobWriter *w, const void *p, size_t n) { bytes_append(&w->out, p, n); }
static void put_u32(BlobWriter *w, uint32_t v) { put(w, &v, 4); }

void blobw_begin(BlobWriter *w, const char *magic, const char *config) {
    memset(w, 0, sizeof(*w));
    put(w, magic, 8);
    put_u32(w, BLOB_VERSION);
    put_u32(w, (uint32_t)strlen(config));
    put(w, config, strlen(config));
    w->count_pos = w->out.len;
    put_u32(w, 0);
}

/* A tensor's header up to its dimensions, which the caller puts next. */
static void put_head(BlobWriter *w, const char *name, size_t len, uint32_t dt, uint32_t ndim) {
    put_u32(w, (uint32_t)len);
    put(w, name, len);
    put_u32(w, dt);
    put_u32(w, ndim);
    w->ntensors++;
}

static void put_header(BlobWriter *w, const char *name, DType dt, int ndim, const int *shape) {
    put_head(w, name, strlen(name), dt, (uint32_t)ndim);
    for (int i = 0; i < ndim; i++) put_u32(w, (uint32_t)shape[i]);
}

/* The largest magnitude, or NaN where any value is not finite: a scale the
 * reader refuses, so that a broken tensor is not stored as numbers. */
static float abs_max(const float *x, size_t n) {
    float m = 0;
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(x[i])) return NAN;
        m = fmaxf(m, fabsf(x[i]));
    }
    return m;
}

/* An int8 tensor's scales: one per slice along its first dimension. */
static size_t q8_rows(uint32_t ndim, uint32_t first) { return ndim ? first : 1; }

void blobw_floats(BlobWriter *w, const char *name, DType dtype, int ndim,
                  const int *shape, const float *data) {
    size_t n = 1;
    for (int i = 0; i < ndim; i++) n *= shape[i];
    put_header(w, name, dtype, ndim, shape);
    if (dtype == DT_F32) { put(w, data, n * 4); return; }
    if (dtype == DT_Q8) {
        size_t rows = q8_rows((uint32_t)ndim, ndim ? (uint32_t)shape[0] : 0), per = rows ? n / rows : 0;
        /* the scales go first: put them, then read each back for its row's values */
        size_t at = w->out.len;
        for (size_t r = 0; r < rows; r++) {
            float scale = abs_max(data + r * per, per) / 127;
            put(w, &scale, 4);
        }
        for (size_t r = 0; r < rows && !w->out.failed; r++) {
            float scale;
            memcpy(&scale, w->out.buf + at + 4 * r, 4);
            for (size_t i = 0; i < per; i++) {
                int8_t q = scale > 0 ? (int8_t)lrintf(data[r * per + i] / scale) : 0;
                put(w, &q, 1);
            }
        }
        return;
    }
    for (size_t i = 0; i < n; i++) {
        uint16_t h = f32_to_f16(data[i]);
        put(w, &h, 2);
    }
}

void blobw_u32(BlobWriter *w, const char *name, size_t n, const uint32_t *data) {
    int shape[1] = {(int)n};
    put_header(w, name, DT_U32, 1, shape);
    put(w, data, n * 4);
}

void blobw_params(BlobWriter *w, const char *prefix, const ParamSet *ps, DType dtype) {
    char name[128];
    for (int i = 0; i < ps->count; i++) {
        const ParamTensor *t = &ps->t[i];
        snprintf(name, sizeof(name), "%s%s", prefix, t->name);
        /* running statistics stay float32: they can exceed float16's range */
        DType dt = !t->trainable ? DT_F32 : dtype == DT_Q8 && t->size < BLOB_Q8_MIN ? DT_F16 : dtype;
        blobw_floats(w, name, dt, t->ndim, t->shape, ps->data + t->offset);
    }
}

uint8_t *blobw_finish(BlobWriter *w, size_t *len) {
    if (!w->out.failed) memcpy(w->out.buf + w->count_pos, &w->ntensors, 4);
    uint32_t crc = w->out.failed ? 0 : crc32_bytes(w->out.buf, w->out.len, 0);
    put_u32(w, crc);
    if (w->out.failed) { free(w->out.buf); w->out.buf = NULL; *len = 0; return NULL; }
    *len = w->out.len;
    uint8_t *b = w->out.buf;
    w->out.buf = NULL;
    return b;
}

void blobw_copy(BlobWriter *w, const BlobTensor *t) {
    put_head(w, t->name, t->name_len, t->dtype, t->ndim);
    for (uint32_t d = 0; d < t->ndim; d++) put_u32(w, t->shape[d]);
    put(w, t->data, blob_tensor_bytes(t->dtype, t->ndim, t->shape, t->count));
}

size_t blob_tensor_bytes(uint32_t dtype, uint32_t ndim, const uint32_t *shape, size_t count) {
    if (dtype == DT_Q8) return q8_rows(ndim, ndim ? shape[0] : 0) * 4 + count;
    return count * (dtype == DT_F16 ? 2 : 4);
}

uint8_t *blob_with_config(const Blob *b, const char *config, size_t *len) {
    BlobWriter w;
    blobw_begin(&w, b->magic, config);
    for (uint32_t i = 0; i < b->ntensors; i++) blobw_copy(&w, &b->t[i]);
    return blobw_finish(&w, len);
}

#ifndef __EMSCRIPTEN__ /* the browser build has no file system */
int blobw_save(BlobWriter *w, const char *path, Err *e) {
    size_t len;
    uint8_t *b = blobw_finish(w, &len);
    if (!b) return err_set(e, "%s: out of memory while serialising", path);
    int rc = file_write_atomic(path, b, len, e);
    free(b);
    return rc;
}
#endif

/* ---------------------------------------------------------------- reader */

typedef struct { const uint8_t *p; size_t left; } Cursor;
static int take(Cursor *c, void *dst, size_t n) {
    if (c->left < n) return -1;
    if (dst) memcpy(dst, c->p, n);
    c->p += n;
    c->left -= n;
    return 0;
}

int blob_parse(Blob *b, const uint8_t *buf, size_t len, const char *magic,
               const char *what, Err *e) {
    memset(b, 0, sizeof(*b));
    if (len < 8) return err_set(e, "%s: truncated (only %zu bytes)", what, len);
    memcpy(b->magic, buf, 8);
    if (memcmp(buf, magic, 8) != 0)
        return err_set(e, "%s: bad magic: not a ReAge %s file", what,
                       !strcmp(magic, BLOB_MAGIC) ? "weight" : "checkpoint");
    Cursor c = {buf + 8, len - 8};
    uint32_t clen;
    if (take(&c, &b->version, 4)) return err_set(e, "%s: truncated in the header", what);
    if (b->version != BLOB_VERSION)
        return err_set(e, "%s: unsupported format version %u (this build reads version %d)",
                       what, b->version, BLOB_VERSION);
    if (take(&c, &clen, 4)) return err_set(e, "%s: truncated in the header", what);
    if (clen >= sizeof(b->config)) return err_set(e, "%s: config text too long (%u bytes)", what, clen);
    if (take(&c, b->config, clen)) return err_set(e, "%s: truncated in the config", what);
    b->config[clen] = 0;
    if (take(&c, &b->ntensors, 4)) return err_set(e, "%s: truncated in the header", what);
    if (b->ntensors > BLOB_MAX_TENSORS) return err_set(e, "%s: too many tensors (%u)", what, b->ntensors);
    for (uint32_t i = 0; i < b->ntensors; i++) {
        BlobTensor *t = &b->t[i];
        if (take(&c, &t->name_len, 4) || t->name_len > 200) return err_set(e, "%s: truncated at tensor %u", what, i);
        t->name = (const char *)c.p;
        if (take(&c, NULL, t->name_len) || take(&c, &t->dtype, 4) || take(&c, &t->ndim, 4))
            return err_set(e, "%s: truncated at tensor %u", what, i);
        if (t->ndim > 4) return err_set(e, "%s: malformed tensor %u", what, i);
        if (t->dtype > DT_Q8)
            return err_set(e, "%s: tensor %u is stored in a scheme this build does not know (%u): made by a newer ReAge?",
                           what, i, t->dtype);
        uint64_t count = 1;
        for (uint32_t d = 0; d < t->ndim; d++) {
            if (take(&c, &t->shape[d], 4)) return err_set(e, "%s: truncated at tensor %u", what, i);
            count *= t->shape[d];
            if (count > ((uint64_t)1 << 29)) return err_set(e, "%s: malformed tensor %u (too large)", what, i);
        }
        t->count = (size_t)count;
        /* an empty int8 tensor could name any number of scales (its first dimension): none is allowed, so
         * that the scales are never more than the values (2^29), whose bytes fit a 32-bit size_t */
        if (t->dtype == DT_Q8 && t->count == 0) return err_set(e, "%s: malformed tensor %u (empty int8)", what, i);
        size_t bytes = blob_tensor_bytes(t->dtype, t->ndim, t->shape, t->count);
        t->data = c.p;
        if (take(&c, NULL, bytes)) return err_set(e, "%s: truncated in tensor '%.*s'", what, (int)t->name_len, t->name);
        if (t->dtype == DT_Q8) {
            size_t rows = q8_rows(t->ndim, t->shape[0]);
            for (size_t r = 0; r < rows; r++) {
                float s;
                memcpy(&s, t->data + 4 * r, 4);
                if (!(s >= 0 && s < 1e30f))
                    return err_set(e, "%s: tensor '%.*s' has a bad scale", what, (int)t->name_len, t->name);
            }
        }
    }
    uint32_t crc;
    if (take(&c, &crc, 4)) return err_set(e, "%s: truncated (checksum missing)", what);
    if (c.left != 0) return err_set(e, "%s: %zu unexpected bytes after the checksum", what, c.left);
    if (crc32_bytes(buf, len - 4, 0) != crc) return err_set(e, "%s: checksum mismatch: the file is corrupt", what);
    return 0;
}

const BlobTensor *blob_find(const Blob *b, const char *name) {
    size_t n = strlen(name);
    for (uint32_t i = 0; i < b->ntensors; i++)
        if (b->t[i].name_len == n && !memcmp(b->t[i].name, name, n)) return &b->t[i];
    return NULL;
}

int blob_tensor_starts(const BlobTensor *t, const char *prefix) {
    size_t n = strlen(prefix);
    return t->name_len >= n && !memcmp(t->name, prefix, n);
}

int blob_has_prefix(const Blob *b, const char *prefix) {
    for (uint32_t i = 0; i < b->ntensors; i++)
        if (blob_tensor_starts(&b->t[i], prefix)) return 1;
    return 0;
}

int blob_read_floats(const Blob *b, const char *name, float *dst, size_t n,
                     const char *what, Err *e) {
    const BlobTensor *t = blob_find(b, name);
    if (!t) return err_set(e, "%s: does not match this model: tensor '%s' is missing", what, name);
    if (t->count != n)
        return err_set(e, "%s: does not match this model: tensor '%s' has %zu values, the model expects %zu",
                       what, name, t->count, n);
    if (t->dtype == DT_F32) memcpy(dst, t->data, n * 4);
    else if (t->dtype == DT_F16)
        for (size_t i = 0; i < n; i++) {
            uint16_t h;
            memcpy(&h, t->data + 2 * i, 2);
            dst[i] = f16_to_f32(h);
        }
    else if (t->dtype == DT_Q8) {
        size_t rows = q8_rows(t->ndim, t->shape[0]), per = rows ? n / rows : 0;
        const int8_t *q = (const int8_t *)(t->data + 4 * rows);
        for (size_t r = 0; r < rows; r++) {
            float scale;
            memcpy(&scale, t->data + 4 * r, 4);
            for (size_t i = 0; i < per; i++) dst[r * per + i] = q[r * per + i] * scale;
        }
    } else return err_set(e, "%s: tensor '%s' is not floating point", what, name);
    return 0;
}

int blob_read_u32(const Blob *b, const char *name, uint32_t *dst, size_t n,
                  const char *what, Err *e) {
    const BlobTensor *t = blob_find(b, name);
    if (!t || t->dtype != DT_U32 || t->count != n)
        return err_set(e, "%s: tensor '%s' is missing or has the wrong size", what, name);
    memcpy(dst, t->data, n * 4);
    return 0;
}

int blob_read_params(const Blob *b, const char *prefix, ParamSet *ps,
                     const char *what, Err *e) {
    char name[128];
    for (int i = 0; i < ps->count; i++) {
        const ParamTensor *pt = &ps->t[i];
        snprintf(name, sizeof(name), "%s%s", prefix, pt->name);
        const BlobTensor *t = blob_find(b, name);
        if (t && t->ndim == (uint32_t)pt->ndim)
            for (int d = 0; d < pt->ndim; d++)
                if (t->shape[d] != (uint32_t)pt->shape[d])
                    return err_set(e, "%s: does not match this model: tensor '%s' has dimension %d of %u, expected %d",
                                   what, name, d, t->shape[d], pt->shape[d]);
        if (blob_read_floats(b, name, ps->data + pt->offset, pt->size, what, e)) return -1;
    }
    return 0;
}

int config_get(const char *config, const char *key, char *val, size_t n) {
    size_t kl = strlen(key);
    for (const char *line = config; line && *line;) {
        const char *end = strchr(line, '\n');
        size_t ll = end ? (size_t)(end - line) : strlen(line);
        if (ll > kl && !strncmp(line, key, kl) && line[kl] == '=') {
            size_t vl = ll - kl - 1;
            if (vl >= n) vl = n - 1;
            memcpy(val, line + kl + 1, vl);
            val[vl] = 0;
            return 0;
        }
        line = end ? end + 1 : NULL;
    }
    return -1;
}

size_t config_without(const char *config, const char *prefix, char *out, size_t n) {
    size_t k = 0, pl = strlen(prefix);
    for (const char *line = config; *line;) {
        const char *end = strchr(line, '\n');
        size_t ll = end ? (size_t)(end - line) + 1 : strlen(line);
        if (strncmp(line, prefix, pl) && k + ll < n) {
            memcpy(out + k, line, ll);
            k += ll;
        }
        line += ll;
    }
    if (k && out[k - 1] != '\n' && k + 1 < n) out[k++] = '\n';
    out[k] = 0;
    return k;
}

int config_get_int(const char *config, const char *key, int *val) {
    char buf[64], *endp;
    if (config_get(config, key, buf, sizeof(buf))) return -1;
    long v = strtol(buf, &endp, 10);
    if (endp == buf || *endp) return -1;
    *val = (int)v;
    return 0;
}
