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
 * With --prototypes, the same fit for the age prototypes' map
 * (PROTO_CALIBRATION_KEY): the photos at their own resolution, their meshes
 * found as the pipeline finds them (--mesh), re-aged by the prototypes from
 * the face's mapped age to each prototype age of the grid; the map never
 * takes an age up (below).
 *
 * Why not where outputs read as real photos of the group do: the estimator
 * reads real photos shrunk toward the middle (the shipped one reads the
 * train split's 0-9 at 9 and its 60+ at 56) while the generator, trained
 * against its copy, makes outputs that read further out, so that target
 * would pull every group toward 30. The tool prints both readings.
 *
 * usage: reage-calibrate --weights IN --data DIR --out OUT
 *                        [--faces N] [--steps S] [--passes P]
 *                        [--prototypes [--mesh FACEMESH.blob]] */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "bundle.h"
#include "calibration.h"
#include "dataset.h"
#include "fileio.h"
#include "image.h"
#include "pipeline.h"
#include "prototypes.h"

static int usage(const char *msg) {
    fprintf(stderr, "reage-calibrate: %s\nusage: reage-calibrate --weights IN --data DIR --out OUT "
                    "[--faces N per group, 30] [--steps S between centres, 4] [--passes P, 2] "
                    "[--prototypes [--mesh FACEMESH.blob]]\n", msg);
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

/* The generator's outputs: r[i*K + k], the reading of photo pick[i] re-aged
 * with conditioning cond[k], from its estimated age through calib (NULL on
 * the first pass). */
static void read_generator(Bundle *b, const Dataset *d, const int *pick, int np, const float *est, const float *cond, int K,
                           const float *calib, float *r) {
    int R = b->cfg.res;
    size_t n = (size_t)3 * R * R;
    float *x = malloc(sizeof(float) * n), *y = malloc(sizeof(float) * n), *same = malloc(sizeof(float) * n), gw[MAX_GROUPS];
    if (calib) memcpy(b->calib, calib, sizeof(b->calib));
    b->calibrated = calib != NULL;
    for (int i = 0; i < np; i++) {
        dataset_image(d, pick[i], x);
        bundle_age_weights(b, est[pick[i]], gw);
        bundle_reage(b, x, gw, same);
        for (int k = 0; k < K; k++) {
            age_to_groupw(&b->cfg, cond[k], gw);
            bundle_reage(b, x, gw, y);
            for (size_t j = 0; j < n; j++) y[j] = fminf(fmaxf(x[j] + y[j] - same[j], -1.0f), 1.0f);
            r[(size_t)i * K + k] = bundle_estimate_age(b, y);
        }
    }
    free(x), free(y), free(same);
}

/* The sample's photos at their own resolution with their meshes, for the
 * prototypes' fit; a photo the mesh does not find is dropped from pick. */
typedef struct {
    Image img;
    FaceLandmarks lm;
    float est;
} MeshedPhoto;

static int load_meshed(Bundle *b, const Dataset *d, const char *data, const char *mesh_path, int *pick, int *np,
                       MeshedPhoto *mp, Err *e) {
    static FaceMesh fm;
    uint8_t *buf;
    size_t len;
    if (file_read_all(mesh_path, 64u << 20, &buf, &len, e) || facemesh_load(&fm, buf, len, mesh_path, e)) return -1;
    free(buf);
    int kept = 0;
    for (int i = 0; i < *np; i++) {
        char path[4200];
        snprintf(path, sizeof(path), "%s/images/%s", data, d->name[pick[i]]);
        MeshedPhoto *m = &mp[kept];
        if (image_load(path, &m->img, e)) return -1;
        Photo p = {m->img.rgb, m->img.w, m->img.h, 3};
        CropBox box = crop_default(p.w, p.h);
        if (!pipeline_mesh(&fm, &p, box, &m->lm)) { image_free(&m->img); continue; }
        m->est = photo_estimate_age(b, &p, box);
        pick[kept++] = pick[i];
    }
    fprintf(stderr, "reage-calibrate: the mesh found %d of %d faces\n", kept, *np);
    *np = kept;
    return kept ? 0 : err_set(e, "%s: the face mesh found none of the sample's faces", data);
}

/* The prototypes' outputs: r[i*K + k], the reading of photo i taken from its
 * estimated age (through calib, NULL on the first pass) to prototype age cond[k]. */
static int read_prototypes(Bundle *b, const MeshedPhoto *mp, int np, const float *cond, int K, const float *calib, float *r) {
    Prototypes *P = b->proto;
    P->age_mapped = 0;
    size_t most = 0;
    for (int i = 0; i < np; i++) most = most > (size_t)mp[i].img.w * mp[i].img.h * 3 ? most : (size_t)mp[i].img.w * mp[i].img.h * 3;
    uint8_t *px = malloc(most);
    if (!px) return -1;
    for (int i = 0; i < np; i++) {
        const MeshedPhoto *m = &mp[i];
        float source = calibration_map(&b->cfg, calib, m->est);
        Photo q = {px, m->img.w, m->img.h, 3};
        CropBox box = crop_default(q.w, q.h);
        for (int k = 0; k < K; k++) {
            memcpy(px, m->img.rgb, (size_t)q.w * q.h * 3);
            if (proto_reage(P, &b->cfg, &q, &m->lm, source, cond[k])) { free(px); return -1; }
            r[(size_t)i * K + k] = photo_estimate_age(b, &q, box);
        }
        if ((i + 1) % 20 == 0 || i + 1 == np) fprintf(stderr, "\r  %d/%d faces", i + 1, np);
    }
    fprintf(stderr, "\n");
    free(px);
    return 0;
}

int main(int argc, char **argv) {
    const char *in = NULL, *data = NULL, *out = NULL, *mesh = "weights/facemesh.blob";
    int per_group = 30, steps = 4, passes = 2, protos = 0;
    for (int i = 1; i < argc; i++) {
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(argv[i], "--weights") && v) in = argv[++i];
        else if (!strcmp(argv[i], "--data") && v) data = argv[++i];
        else if (!strcmp(argv[i], "--out") && v) out = argv[++i];
        else if (!strcmp(argv[i], "--mesh") && v) mesh = argv[++i];
        else if (!strcmp(argv[i], "--prototypes")) protos = 1;
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
    if (protos && !b.proto) { fprintf(stderr, "reage-calibrate: %s carries no age prototypes\n", in); return 1; }
    if (!protos && !b.has_generator) { fprintf(stderr, "reage-calibrate: %s carries no generator\n", in); return 1; }
    const ModelConfig *c = &b.cfg;
    int G = c->groups, R = c->res;
    Dataset d;
    /* enough photos that the sparsest group still offers per_group of them */
    if (dataset_load(&d, data, "train", c, per_group * G * 8, &e)) {
        fprintf(stderr, "reage-calibrate: %s\n", e.msg);
        return 1;
    }

    /* the estimator's reading of real photos, per group (shown, not fitted to) */
    float *x = malloc(sizeof(float) * 3 * R * R);
    float real[MAX_GROUPS] = {0}, want[MAX_GROUPS], *est = malloc(sizeof(float) * d.count);
    for (int i = 0; i < d.count; i++) {
        dataset_image(&d, i, x);
        est[i] = bundle_estimate_age(&b, x);
    }
    free(x);
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
    MeshedPhoto *mp = protos ? calloc((size_t)np, sizeof(MeshedPhoto)) : NULL;
    if (protos && (!mp || load_meshed(&b, &d, data, mesh, pick, &np, mp, &e))) {
        fprintf(stderr, "reage-calibrate: %s\n", mp ? e.msg : "out of memory");
        return 1;
    }
    int K = (G - 1) * steps + 1;
    float *cond = malloc(sizeof(float) * K), *r = malloc(sizeof(float) * (size_t)np * K);
    float *reading = malloc(sizeof(float) * (size_t)G * K), calib[MAX_GROUPS];
    for (int k = 0; k < K; k++) {
        int g = k / steps, s = k % steps;
        cond[k] = g + 1 < G ? group_center(c, g) + (float)s / steps * (group_center(c, g + 1) - group_center(c, g))
                            : group_center(c, G - 1);
    }
    for (int g = 0; g < G; g++) calib[g] = group_center(c, g);
    fprintf(stderr, "reage-calibrate: %d photos' readings, %d re-aged %d ways a pass by the %s\n", d.count, np, K,
            protos ? "prototypes" : "generator");
    for (int pass = 0; pass < passes; pass++) {
        const float *prev = pass ? calib : NULL;
        if (protos ? read_prototypes(&b, mp, np, cond, K, prev, r) : (read_generator(&b, &d, pick, np, est, cond, K, prev, r), 0)) {
            fprintf(stderr, "reage-calibrate: out of memory\n");
            return 1;
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
        /* The prototypes' map only takes ages down. Exaggerated to age well,
         * the prototypes of the young groups read old; past 30 the outputs
         * read young to the estimator, but so do real faces of those groups
         * (it reads the train split's 45-59 at 44), and raising the face's
         * own age with the target's would shrink the change to 60+ (fitted
         * freely, 45-59's centre went to 61.5 and faces taken to 60+ were
         * judged younger than without a map). */
        if (protos)
            for (int g = 0; g < G; g++) calib[g] = fminf(calib[g], group_center(c, g));
        fprintf(stderr, "pass %d:\n  group   real photos read   outputs at its centre read   %s\n", pass + 1,
                protos ? "prototype age" : "conditioning");
        for (int g = 0; g < G; g++) {
            char label[16];
            if (c->group_hi[g] >= 120) snprintf(label, sizeof(label), "%d+", c->group_lo[g]);
            else snprintf(label, sizeof(label), "%d-%d", c->group_lo[g], c->group_hi[g]);
            fprintf(stderr, "  %-6s  %16.1f   %26.1f   %5.1f -> %5.1f\n", label, real[g],
                    reading[(size_t)g * K + g * steps], group_center(c, g), calib[g]);
        }
    }

    const char *key = protos ? PROTO_CALIBRATION_KEY : CALIBRATION_KEY;
    size_t outlen;
    uint8_t *calibrated = calibration_apply(blob, c, key, calib, &outlen);
    if (!calibrated) err_set(&e, "%s: out of memory", out);
    if (!calibrated || file_write_atomic(out, calibrated, outlen, &e)) {
        fprintf(stderr, "reage-calibrate: %s\n", e.msg);
        return 1;
    }
    char line[512];
    calibration_line(c, key, calib, line, sizeof(line));
    printf("wrote %s with %s", out, line);
    return 0;
}
