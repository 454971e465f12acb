/* build/reage-calibrate: fits a blob's age calibration (calibration.h) on
 * the train split with the blob's own age estimator, and writes a copy of
 * the blob that carries it (the weights themselves are copied bit for bit).
 *
 * For each face of a sample balanced over the groups, re-aged as the page
 * does (the generator's change from the face's estimated age, added to the
 * face), at conditioning ages on a grid across the group centres: the
 * estimator's mean reading of those outputs, per target group from inputs of
 * the other groups; the calibration puts each group's centre where that
 * reading equals it. The source age goes through the calibration too (at
 * target == source the change is nil), so the fit is repeated with the
 * previous pass's map.
 *
 * Why not where outputs read as real photos of the group do: the estimator
 * reads real photos shrunk toward the middle (the shipped one reads the
 * train split's 0-9 at 9 and its 60+ at 56) while the generator, trained
 * against its copy, makes outputs that read further out, so that target
 * would pull every group toward 30. The tool prints both readings.
 *
 * usage: reage-calibrate --weights IN --data DIR --out OUT
 *                        [--faces N] [--steps S] [--passes P] */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "bundle.h"
#include "calibration.h"
#include "dataset.h"
#include "fileio.h"

static int usage(const char *msg) {
    fprintf(stderr, "reage-calibrate: %s\nusage: reage-calibrate --weights IN --data DIR --out OUT "
                    "[--faces N per group, 30] [--steps S between centres, 4] [--passes P, 2]\n", msg);
    return 2;
}

static int positive(const char *flag, const char *v, int max, int *out) {
    char *end;
    long n = strtol(v, &end, 10);
    if (end == v || *end || n < 1 || n > max) {
        fprintf(stderr, "reage-calibrate: %s '%s': expected a whole number 1..%d\n", flag, v, max);
        return -1;
    }
    *out = (int)n;
    return 0;
}

int main(int argc, char **argv) {
    const char *in = NULL, *data = NULL, *out = NULL;
    int per_group = 30, steps = 4, passes = 2;
    for (int i = 1; i < argc; i++) {
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(argv[i], "--weights") && v) in = argv[++i];
        else if (!strcmp(argv[i], "--data") && v) data = argv[++i];
        else if (!strcmp(argv[i], "--out") && v) out = argv[++i];
        else if (!strcmp(argv[i], "--faces") && v) { if (positive("--faces", argv[++i], 1000, &per_group)) return 2; }
        else if (!strcmp(argv[i], "--steps") && v) { if (positive("--steps", argv[++i], 50, &steps)) return 2; }
        else if (!strcmp(argv[i], "--passes") && v) { if (positive("--passes", argv[++i], 5, &passes)) return 2; }
        else {
            char msg[128];
            snprintf(msg, sizeof(msg), "unknown or incomplete option '%.80s'", argv[i]);
            return usage(msg);
        }
    }
    if (!in || !data || !out) return usage("--weights, --data and --out are required");

    Err e = {0};
    uint8_t *buf;
    size_t len;
    Bundle b;
    Blob *blob = malloc(sizeof(Blob));
    if (!blob || file_read_all(in, 256u << 20, &buf, &len, &e) || bundle_load(&b, buf, len, NULL, in, &e) ||
        blob_parse(blob, buf, len, BLOB_MAGIC, in, &e)) {
        fprintf(stderr, "reage-calibrate: %s\n", blob ? e.msg : "out of memory");
        return 1;
    }
    const ModelConfig *c = &b.cfg;
    int G = c->groups, R = c->res;
    Dataset d;
    /* enough photos that the sparsest group still offers per_group of them */
    if (dataset_load(&d, data, "train", c, per_group * G * 8, &e)) {
        fprintf(stderr, "reage-calibrate: %s\n", e.msg);
        return 1;
    }

    /* the estimator's reading of real photos, per group (shown, not fitted to) */
    size_t n = (size_t)3 * R * R;
    float *x = malloc(sizeof(float) * n), *y = malloc(sizeof(float) * n), *same = malloc(sizeof(float) * n);
    float real[MAX_GROUPS] = {0}, want[MAX_GROUPS], *est = malloc(sizeof(float) * d.count);
    for (int i = 0; i < d.count; i++) {
        dataset_image(&d, i, x);
        est[i] = bundle_estimate_age(&b, x);
    }
    for (int g = 0; g < G; g++) {
        if (!d.group_count[g]) {
            fprintf(stderr, "reage-calibrate: %s: no train photos of group %d-%d\n", data, c->group_lo[g], c->group_hi[g]);
            return 1;
        }
        for (int k = 0; k < d.group_count[g]; k++) real[g] += est[d.by_group[g][k]] / d.group_count[g];
        want[g] = group_center(c, g);
    }

    /* the sample: per_group photos of each group, spread over its listing */
    int *pick = malloc(sizeof(int) * G * per_group), np = 0;
    for (int g = 0; g < G; g++) {
        int m = d.group_count[g] < per_group ? d.group_count[g] : per_group;
        for (int k = 0; k < m; k++) pick[np++] = d.by_group[g][(long)k * d.group_count[g] / m];
    }
    int K = (G - 1) * steps + 1;
    float *cond = malloc(sizeof(float) * K), *r = malloc(sizeof(float) * (size_t)np * K);
    float *reading = malloc(sizeof(float) * (size_t)G * K), gw[MAX_GROUPS], calib[MAX_GROUPS];
    for (int k = 0; k < K; k++) {
        int g = k / steps, s = k % steps;
        cond[k] = g + 1 < G ? group_center(c, g) + (float)s / steps * (group_center(c, g + 1) - group_center(c, g))
                            : group_center(c, G - 1);
    }
    for (int g = 0; g < G; g++) calib[g] = group_center(c, g);
    fprintf(stderr, "reage-calibrate: %d photos' readings, %d re-aged %d ways a pass\n", d.count, np, K);
    for (int pass = 0; pass < passes; pass++) {
        memcpy(b.calib, calib, sizeof(calib));
        b.calibrated = pass > 0;
        for (int i = 0; i < np; i++) {
            dataset_image(&d, pick[i], x);
            bundle_age_weights(&b, est[pick[i]], gw);
            bundle_reage(&b, x, gw, same);
            for (int k = 0; k < K; k++) {
                age_to_groupw(c, cond[k], gw);
                bundle_reage(&b, x, gw, y);
                for (size_t j = 0; j < n; j++) y[j] = fminf(fmaxf(x[j] + y[j] - same[j], -1.0f), 1.0f);
                r[(size_t)i * K + k] = bundle_estimate_age(&b, y);
            }
        }
        for (int g = 0; g < G; g++)
            for (int k = 0; k < K; k++) {
                double sum = 0;
                int cnt = 0;
                for (int i = 0; i < np; i++)
                    if (d.group[pick[i]] != g) { sum += r[(size_t)i * K + k]; cnt++; }
                reading[(size_t)g * K + k] = cnt ? (float)(sum / cnt) : cond[k];
            }
        calibration_fit(c, K, cond, reading, want, calib);
        fprintf(stderr, "pass %d:\n  group   real photos read   outputs at its centre read   conditioning\n", pass + 1);
        for (int g = 0; g < G; g++) {
            char label[16];
            if (c->group_hi[g] >= 120) snprintf(label, sizeof(label), "%d+", c->group_lo[g]);
            else snprintf(label, sizeof(label), "%d-%d", c->group_lo[g], c->group_hi[g]);
            fprintf(stderr, "  %-6s  %16.1f   %26.1f   %5.1f -> %5.1f\n", label, real[g],
                    reading[(size_t)g * K + g * steps], group_center(c, g), calib[g]);
        }
    }

    size_t outlen;
    uint8_t *calibrated = calibration_apply(blob, c, calib, &outlen);
    if (!calibrated) err_set(&e, "%s: out of memory", out);
    if (!calibrated || file_write_atomic(out, calibrated, outlen, &e)) {
        fprintf(stderr, "reage-calibrate: %s\n", e.msg);
        return 1;
    }
    char line[512];
    calibration_line(c, calib, line, sizeof(line));
    printf("wrote %s with %s", out, line);
    return 0;
}
