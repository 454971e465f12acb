/* The weight blob: round trip, and each kind of damage refused with its own
 * message; float16 conversion; atomic writes. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "../src/blob.h"
#include "../src/bundle.h"
#include "../src/calibration.h"
#include "../src/fileio.h"
#include "check.h"

ModelConfig test_config(void);

static int has(const char *msg, const char *part) { return strstr(msg, part) != NULL; }

static void test_f16(void) {
    CHECK(f32_to_f16(1.0f) == 0x3C00 && f32_to_f16(-2.0f) == 0xC000, "f16 of 1 and -2");
    CHECK(f32_to_f16(65504.0f) == 0x7BFF && f32_to_f16(1e6f) == 0x7C00, "f16 max and overflow to inf");
    CHECK(f16_to_f32(0x0001) == ldexpf(1.0f, -24), "smallest f16 subnormal");
    CHECK(f32_to_f16(1.0f + ldexpf(1.0f, -11)) == 0x3C00, "ties round to even");
    int bad = 0;
    for (int i = 0; i < 0x7C00; i++) bad += f32_to_f16(f16_to_f32((uint16_t)i)) != i;
    CHECK(bad == 0, "every finite f16 survives a round trip (%d did not)", bad);
}

static uint8_t *make_blob(size_t *len, Generator *g, Estimator *m) {
    ModelConfig c = test_config();
    gen_build(g, &c);
    est_build(m, &c);
    params_alloc(&g->ps, 0);
    params_alloc(&m->ps, 0);
    Rng r;
    rng_seed(&r, 3);
    params_init(&g->ps, &r);
    params_init(&m->ps, &r);
    /* distinctive running statistics, which must survive in float32 */
    const ParamTensor *rv = params_find(&m->ps, "est.bn1.running_var");
    m->ps.data[rv->offset] = 123456.789f;
    char path[] = "/tmp/reage-blob-XXXXXX";
    int fd = mkstemp(path);
    close(fd);
    Err e;
    CHECK(bundle_save(path, g, m, "trained_steps:7", &e) == 0, "blob saves: %s", e.msg);
    uint8_t *buf;
    CHECK(file_read_all(path, 1 << 28, &buf, len, &e) == 0, "blob reads back");
    CHECK(access(path, F_OK) == 0, "blob written");
    char tmp[64];
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    CHECK(access(tmp, F_OK) != 0, "no temporary file left behind");
    remove(path);
    return buf;
}

static void test_round_trip_and_damage(void) {
    Generator g;
    Estimator m;
    size_t len;
    uint8_t *buf = make_blob(&len, &g, &m);
    ModelConfig c = test_config();
    Bundle b;
    Err e;
    CHECK(bundle_load(&b, buf, len, &c, "blob", &e) == 0, "blob loads: %s", e.msg);
    double worst = 0;
    for (size_t i = 0; i < g.ps.total; i++)
        worst = fmax(worst, fabs(b.gen.ps.data[i] - g.ps.data[i]) / fmax(fabs(g.ps.data[i]), 1e-4));
    CHECK(worst < 1e-3, "generator weights survive float16 (worst relative error %g)", worst);
    const ParamTensor *rv = params_find(&m.ps, "est.bn1.running_var");
    CHECK(b.est.ps.data[rv->offset] == 123456.789f, "running statistics stay float32");
    CHECK(!strcmp(b.info, "trained_steps:7"), "info text travels (%s)", b.info);
    CHECK(b.cfg.groups == 3 && b.cfg.res == c.res, "config read from the header");
    bundle_free(&b);

    uint8_t *bad = malloc(len);
    /* truncated anywhere */
    size_t cuts[] = {0, 4, 10, 30, len / 2, len - 5, len - 1};
    for (size_t k = 0; k < sizeof(cuts) / sizeof(cuts[0]); k++) {
        memcpy(bad, buf, len);
        int rc = bundle_load(&b, bad, cuts[k], NULL, "blob", &e);
        CHECK(rc != 0 && has(e.msg, "truncated"), "cut at %zu refused as truncated: %s", cuts[k], e.msg);
    }
    memcpy(bad, buf, len);
    bad[0] = 'X';
    CHECK(bundle_load(&b, bad, len, NULL, "blob", &e) != 0 && has(e.msg, "bad magic"), "wrong magic: %s", e.msg);
    memcpy(bad, buf, len);
    bad[8] = 2;
    CHECK(bundle_load(&b, bad, len, NULL, "blob", &e) != 0 && has(e.msg, "version 2"), "wrong version: %s", e.msg);
    memcpy(bad, buf, len);
    bad[len / 2] ^= 0x40;
    CHECK(bundle_load(&b, bad, len, NULL, "blob", &e) != 0 && has(e.msg, "checksum"), "flipped bit: %s", e.msg);
    ModelConfig other = c;
    other.gen_res_ch = 8;
    CHECK(bundle_load(&b, buf, len, &other, "blob", &e) != 0 && has(e.msg, "does not match") && has(e.msg, "gen_res_ch"),
          "mismatched config: %s", e.msg);
    /* a checkpoint is not a blob */
    memcpy(bad, buf, len);
    memcpy(bad, CKPT_MAGIC, 8);
    CHECK(bundle_load(&b, bad, len, NULL, "blob", &e) != 0 && has(e.msg, "bad magic"), "checkpoint magic refused");
    free(bad);
    free(buf);
    params_free(&g.ps);
    params_free(&m.ps);
}

static void test_calibrated_blob(void) {
    Generator g;
    Estimator m;
    size_t len, clen, len2;
    uint8_t *buf = make_blob(&len, &g, &m);
    Blob *blob = malloc(sizeof(Blob)), *blob2 = malloc(sizeof(Blob));
    Bundle plain, cal;
    Err e;
    ModelConfig c = test_config();
    CHECK(blob_parse(blob, buf, len, BLOB_MAGIC, "blob", &e) == 0 && bundle_load(&plain, buf, len, &c, "blob", &e) == 0,
          "the plain blob loads: %s", e.msg);
    CHECK(!plain.calibrated, "a blob without the key is not calibrated");
    const float calib[3] = {12, 30, 59.5f};
    uint8_t *cbuf = calibration_apply(blob, &c, calib, &clen);
    CHECK(cbuf && bundle_load(&cal, cbuf, clen, &c, "calibrated", &e) == 0, "the calibrated copy loads: %s", e.msg);
    CHECK(cal.calibrated && !memcmp(cal.calib, calib, sizeof(calib)), "and carries the calibration");
    CHECK(!memcmp(cal.gen.ps.data, plain.gen.ps.data, sizeof(float) * plain.gen.ps.total) &&
          !memcmp(cal.est.ps.data, plain.est.ps.data, sizeof(float) * plain.est.ps.total) && !strcmp(cal.info, plain.info),
          "with the same weights and info");
    float w[MAX_GROUPS], w0[MAX_GROUPS];
    bundle_age_weights(&cal, 9.5f, w);
    bundle_age_weights(&plain, 9.5f, w0);
    CHECK(fabsf(w[0] - 0.9f) < 1e-5f && fabsf(w[1] - 0.1f) < 1e-5f && w0[0] == 1.0f,
          "age 9.5 conditions as 12 calibrated (%g %g), as itself plain", w[0], w[1]);
    /* calibrating again replaces the line */
    const float again[3] = {10, 34.5f, 50};
    CHECK(blob_parse(blob2, cbuf, clen, BLOB_MAGIC, "calibrated", &e) == 0, "calibrated copy parses");
    uint8_t *buf2 = calibration_apply(blob2, &c, again, &len2);
    CHECK(blob_parse(blob2, buf2, len2, BLOB_MAGIC, "again", &e) == 0, "recalibrated copy parses");
    const char *first = strstr(blob2->config, CALIBRATION_KEY);
    CHECK(first && !strstr(first + 1, CALIBRATION_KEY) && strstr(first, "=10.00,34.50,50.00\n"),
          "one calibration line, the newer: %s", blob2->config);
    bundle_free(&cal);
    free(buf2);

    /* a damaged calibration is refused by name */
    char config[sizeof(blob->config) + 64];
    snprintf(config, sizeof(config), "%sage_calibration=12,40,30\n", blob->config);
    uint8_t *bad = blob_with_config(blob, config, &len2);
    CHECK(bundle_load(&cal, bad, len2, NULL, "odd.blob", &e) != 0 && has(e.msg, "odd.blob") &&
          has(e.msg, "bad age calibration") && has(e.msg, "decreases"), "a decreasing calibration: %s", e.msg);
    free(bad);
    bundle_free(&plain);
    free(cbuf);
    free(buf);
    free(blob);
    free(blob2);
    params_free(&g.ps);
    params_free(&m.ps);
}

static void test_atomic_write(void) {
    char path[] = "/tmp/reage-atomic-XXXXXX";
    int fd = mkstemp(path);
    CHECK(write(fd, "old", 3) == 3, "seed file");
    close(fd);
    Err e;
    char bad[128];
    snprintf(bad, sizeof(bad), "/nonexistent-dir/x.blob");
    CHECK(file_write_atomic(bad, "new", 3, &e) != 0 && has(e.msg, "/nonexistent-dir/x.blob"),
          "a failed write names the file: %s", e.msg);
    CHECK(file_write_atomic(path, "newer", 5, &e) == 0, "atomic write");
    uint8_t *buf;
    size_t len;
    file_read_all(path, 100, &buf, &len, &e);
    CHECK(len == 5 && !memcmp(buf, "newer", 5), "the new content replaced the old");
    free(buf);
    CHECK(file_read_all(path, 2, &buf, &len, &e) != 0 && has(e.msg, "more than"), "size limit on reads: %s", e.msg);
    CHECK(file_read_all("/nonexistent-file", 2, &buf, &len, &e) != 0 && has(e.msg, "/nonexistent-file"),
          "missing file named: %s", e.msg);
    remove(path);
}

/* Raw blob bytes: header, config, the tensors' records as given (already
 * laid out), and a checksum that matches, so that only the structure is wrong. */
static uint8_t *raw_blob(uint32_t ntensors, const uint8_t *records, size_t rlen, size_t *len) {
    const char *config = "res=8\n";
    uint32_t v = BLOB_VERSION, clen = (uint32_t)strlen(config);
    *len = 8 + 4 + 4 + clen + 4 + rlen + 4;
    uint8_t *b = malloc(*len), *p = b;
    memcpy(p, BLOB_MAGIC, 8), p += 8;
    memcpy(p, &v, 4), p += 4;
    memcpy(p, &clen, 4), p += 4;
    memcpy(p, config, clen), p += clen;
    memcpy(p, &ntensors, 4), p += 4;
    memcpy(p, records, rlen), p += rlen;
    uint32_t crc = crc32_bytes(b, *len - 4, 0);
    memcpy(p, &crc, 4);
    return b;
}

/* A tensor's record: name, dtype, dims, then `data` bytes of zeros. */
static size_t record(uint8_t *out, const char *name, uint32_t dtype, uint32_t ndim, const uint32_t *dims, size_t data) {
    uint32_t nl = (uint32_t)strlen(name);
    size_t n = 0;
    memcpy(out + n, &nl, 4), n += 4;
    memcpy(out + n, name, nl), n += nl;
    memcpy(out + n, &dtype, 4), n += 4;
    memcpy(out + n, &ndim, 4), n += 4;
    memcpy(out + n, dims, 4 * ndim), n += 4 * ndim;
    memset(out + n, 0, data), n += data;
    return n;
}

/* Malformed structures under a valid checksum: each refused with a message
 * that names the file, never a crash or a read past the buffer. */
static void test_malformed_structures(void) {
    static Blob blob;
    static uint8_t rec[16384];
    Err e;
    size_t len, n;
    uint8_t *b;
    uint32_t dims[5] = {2, 3, 4, 5, 6};
    struct { const char *what, *want; uint32_t ntensors, dtype, ndim, name_pad; uint32_t d0; size_t data; } cases[] = {
        {"a count of tensors past the records", "truncated at tensor 1", 2, DT_F32, 1, 0, 2, 8},
        {"more tensors than any model has", "too many tensors", 5000, DT_F32, 1, 0, 2, 8},
        {"an unknown element type", "tensor 0 is stored in a scheme this build does not know (9)", 1, 9, 1, 0, 2, 8},
        {"an empty int8 tensor", "malformed tensor 0 (empty int8)", 1, DT_Q8, 1, 0, 0, 0},
        {"five dimensions", "malformed tensor 0", 1, DT_F32, 5, 0, 2, 8 * 720},
        {"dimensions whose product is absurd", "too large", 1, DT_F32, 4, 0, 65536, 8},
        {"data shorter than its shape", "truncated in tensor", 1, DT_F32, 2, 0, 2, 8},
        {"a name longer than any", "truncated at tensor 0", 1, DT_F32, 1, 250, 2, 8},
    };
    for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
        char name[300];
        memset(name, 'x', sizeof(name));
        snprintf(name, 16, "gen.w");
        if (cases[k].name_pad) name[5] = 'x', name[cases[k].name_pad] = 0;
        dims[0] = cases[k].d0;
        if (cases[k].d0 == 65536) dims[1] = dims[2] = dims[3] = 65536;
        else dims[1] = 3, dims[2] = 4, dims[3] = 5;
        n = record(rec, name, cases[k].dtype, cases[k].ndim, dims, cases[k].data);
        b = raw_blob(cases[k].ntensors, rec, n, &len);
        int rc = blob_parse(&blob, b, len, BLOB_MAGIC, "crafted.blob", &e);
        CHECK(rc != 0 && has(e.msg, "crafted.blob") && has(e.msg, cases[k].want), "%s: %s", cases[k].what, rc ? e.msg : "accepted");
        free(b);
    }
    /* well formed, but not the model its config describes: a network's tensor with the wrong shape, or missing */
    uint8_t *buf;
    if (file_read_all("weights/reage.blob", 1 << 26, &buf, &len, &e)) { CHECK(0, "%s", e.msg); return; }
    if (blob_parse(&blob, buf, len, BLOB_MAGIC, "reage.blob", &e)) { CHECK(0, "%s", e.msg); free(buf); return; }
    for (int mode = 0; mode < 2; mode++) {
        BlobWriter w;
        blobw_begin(&w, BLOB_MAGIC, blob.config);
        char victim[64] = "";
        for (uint32_t i = 0; i < blob.ntensors; i++) {
            const BlobTensor *t = &blob.t[i];
            if (!victim[0] && t->name_len > 4 && !memcmp(t->name, "gen.", 4)) {
                snprintf(victim, sizeof(victim), "%.*s", (int)t->name_len, t->name);
                if (mode == 0) { /* the same name, one element short */
                    int shape[1] = {(int)t->count - 1};
                    float *zeros = calloc(t->count, sizeof(float));
                    blobw_floats(&w, victim, DT_F16, 1, shape, zeros);
                    free(zeros);
                }
                continue;
            }
            blobw_copy(&w, t);
        }
        size_t blen;
        uint8_t *bad = blobw_finish(&w, &blen);
        static Bundle bundle;
        int rc = bundle_load(&bundle, bad, blen, NULL, "crafted.blob", &e);
        CHECK(rc != 0 && has(e.msg, "crafted.blob") && has(e.msg, victim), "%s %s: %s", mode ? "a missing" : "a misshapen", victim,
              rc ? e.msg : "accepted");
        if (!rc) bundle_free(&bundle);
        free(bad);
    }
    free(buf);
}

/* A config less some keys' lines, with room left for the caller's own. */
static void test_config_without(void) {
    char out[64];
    size_t k = config_without("res=128\nchange_side=64\ngroups=6\nchange_width=4", "change_", out, sizeof(out));
    CHECK(!strcmp(out, "res=128\ngroups=6\n") && k == strlen(out), "config_without drops the prefixed lines and ends a line: '%s'", out);
    int side;
    CHECK(config_get_int(out, "change_side", &side) != 0, "the dropped key is gone");
    k = config_without("res=128\ngroups=6\n", "res=", out, 8);
    CHECK(!strcmp(out, ""), "a line that does not fit is left out, not cut: '%s'", out);
    k = config_without("", "x", out, sizeof(out));
    CHECK(k == 0 && out[0] == 0, "an empty config stays empty");
}

/* int8 storage (DT_Q8): each value within half a step of its slice's scale,
 * zero slices exact, the largest of each slice exact; blobw_params keeps
 * small and float32 tensors as they were; a bad scale is refused. */
static void test_q8(void) {
    enum { ROWS = 3, PER = 3000 };
    static float x[ROWS * PER], y[ROWS * PER];
    for (int i = 0; i < PER; i++) {
        x[i] = 0.5f * sinf(i * 0.7f);
        x[PER + i] = 0;
        x[2 * PER + i] = i == 17 ? -100.0f : 0.01f * cosf(i * 0.3f); /* one outlier sets the step */
    }
    ParamSet ps = {0};
    int big[2] = {4, 1000}, small[1] = {10}, stat[1] = {3000};
    params_add(&ps, "big", 2, big, 1, INIT_NORMAL, 1.0f);
    params_add(&ps, "small", 1, small, 1, INIT_NORMAL, 1.0f);
    params_add(&ps, "stat", 1, stat, 0, INIT_ONE, 0);
    params_alloc(&ps, 0);
    Rng r;
    rng_seed(&r, 5);
    params_init(&ps, &r);
    BlobWriter w;
    blobw_begin(&w, BLOB_MAGIC, "k=v\n");
    int shape[2] = {ROWS, PER};
    blobw_floats(&w, "q", DT_Q8, 2, shape, x);
    blobw_params(&w, "p.", &ps, DT_Q8);
    size_t len;
    uint8_t *buf = blobw_finish(&w, &len);
    static Blob b;
    Err e;
    CHECK(buf && blob_parse(&b, buf, len, BLOB_MAGIC, "q8", &e) == 0, "a blob with int8 tensors parses: %s", e.msg);
    const BlobTensor *q = blob_find(&b, "q");
    CHECK(q && q->dtype == DT_Q8 && blob_tensor_bytes(q->dtype, q->ndim, q->shape, q->count) == ROWS * 4 + ROWS * PER,
          "one float32 scale a row and a byte a value");
    CHECK(blob_read_floats(&b, "q", y, ROWS * PER, "q8", &e) == 0, "reads back: %s", e.msg);
    int worse = 0, zero = 1;
    for (int row = 0; row < ROWS; row++) {
        float m = 0;
        for (int i = 0; i < PER; i++) m = fmaxf(m, fabsf(x[row * PER + i]));
        for (int i = 0; i < PER; i++) worse += fabsf(y[row * PER + i] - x[row * PER + i]) > m / 127 * 0.5001f;
    }
    for (int i = 0; i < PER; i++) zero &= y[PER + i] == 0;
    CHECK(worse == 0, "every value within half its row's step (%d are not)", worse);
    CHECK(zero, "a row of zeros stays zeros");
    CHECK(y[2 * PER + 17] == -100.0f && fabsf(y[2 * PER + 1] - 0.01f * cosf(0.3f)) <= 100.0f / 254,
          "the outlier is exact; its row's other values within its step");
    const BlobTensor *pb = blob_find(&b, "p.big"), *psm = blob_find(&b, "p.small"), *pst = blob_find(&b, "p.stat");
    CHECK(pb && pb->dtype == DT_Q8 && psm && psm->dtype == DT_F16 && pst && pst->dtype == DT_F32,
          "blobw_params: int8 for large trainable tensors, float16 for small ones, float32 for statistics");
    /* a scale that is not a finite non-negative number */
    uint8_t *bad = malloc(len);
    memcpy(bad, buf, len);
    size_t at = (size_t)(q->data - buf);
    float nan = NAN;
    memcpy(bad + at + 4, &nan, 4);
    uint32_t crc = crc32_bytes(bad, len - 4, 0);
    memcpy(bad + len - 4, &crc, 4);
    CHECK(blob_parse(&b, bad, len, BLOB_MAGIC, "q8", &e) != 0 && has(e.msg, "tensor 'q' has a bad scale"), "a NaN scale is refused: %s",
          e.msg);
    free(bad);
    free(buf);
    params_free(&ps);
}

void test_blob(void) {
    test_q8();
    test_config_without();
    test_malformed_structures();
    test_f16();
    test_round_trip_and_damage();
    test_calibrated_blob();
    test_atomic_write();
}
