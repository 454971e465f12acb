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

void test_blob(void) {
    test_f16();
    test_round_trip_and_damage();
    test_calibrated_blob();
    test_atomic_write();
}
