/* build/reage-prototypes: the age prototypes (src/prototypes.h), measured
 * from the train split's photos and written into a copy of a model blob.
 *
 * usage: reage-prototypes --weights IN.blob --out OUT.blob
 *          [--data DIR] [--landmarks FILE] [--strength S0,S1,...] [--colour-max C0,C1,...]
 *          [--picture OUT.png]
 * With --data, the prototypes are measured from DIR's train split (its
 * meshes from FILE, build/reage-landmarks' cache); without it, IN's own
 * prototypes are kept and only the strengths are set (measured afresh, they
 * keep IN's strengths and colour caps unless --strength or --colour-max
 * gives new ones).
 * --colour-max caps how far each target group's colour difference is
 * exaggerated (1.5 each where a blob names none). --picture draws each
 * group's texture-enhanced prototype in the face space. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "blob.h"
#include "facespace.h"
#include "fileio.h"
#include "image.h"
#include "landmark_set.h"
#include "model.h"
#include "prototypes.h"
#include "pyramid.h"

#define RACES 5
/* a group's ethnicity with fewer photos than this counts as if it had this many */
#define MIN_RACE_PHOTOS 20

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

static int measure(Prototypes *P, const ModelConfig *cfg, const char *data, const char *landmarks, Err *e) {
    LandmarkSet ls;
    if (landmark_set_load(&ls, data, 0, landmarks, e)) return -1;
    int G = cfg->groups, count[MAX_GROUPS][RACES] = {{0}};
    int *pick = malloc(sizeof(int) * ls.count), n = 0;
    if (!pick) { landmark_set_free(&ls); return err_set(e, "out of memory"); }
    for (int i = 0; i < ls.count; i++) {
        if (ls.test[i] || ls.flag[i] < LANDMARK_MIN_FLAG || ls.race[i] < 0 || ls.race[i] >= RACES) continue;
        count[age_to_group(cfg, ls.age[i])][ls.race[i]]++;
        pick[n++] = i;
    }
    fprintf(stderr, "reage-prototypes: %d train photos with a face mesh; per group (white, black, asian, indian, other):\n", n);
    for (int g = 0; g < G; g++)
        fprintf(stderr, "  %d-%d: %d %d %d %d %d\n", cfg->group_lo[g], cfg->group_hi[g], count[g][0], count[g][1], count[g][2],
                count[g][3], count[g][4]);
    ProtoSums total;
    if (proto_sums_alloc(&total, G)) { free(pick); landmark_set_free(&ls); return err_set(e, "out of memory"); }
    int done = 0, failed = 0;
    double t0 = now();
    _Pragma("omp parallel")
    {
        ProtoSums mine;
        FaceStats st;
        int ok = !proto_sums_alloc(&mine, G) && !face_stats_alloc(&st);
        _Pragma("omp for schedule(dynamic, 8)")
        for (int q = 0; q < n; q++) {
            if (!ok) continue;
            int i = pick[q], g = age_to_group(cfg, ls.age[i]);
            char path[4096];
            Err le;
            Image img;
            snprintf(path, sizeof(path), "%s/images/%s", data, ls.name[i]);
            int bad = image_load(path, &img, &le);
            if (!bad) {
                FaceLandmarks lm;
                memset(&lm, 0, sizeof(lm));
                lm.score = ls.flag[i];
                memcpy(lm.pt, ls.points + (size_t)i * FACEMESH_POINTS * 3, sizeof(lm.pt));
                Photo p = {img.rgb, img.w, img.h, 3};
                bad = face_stats_measure(&st, &p, &lm);
                image_free(&img);
            }
            int c = count[g][ls.race[i]];
            if (!bad) proto_sums_add(&mine, g, 1.0 / (c > MIN_RACE_PHOTOS ? c : MIN_RACE_PHOTOS), &st);
            _Pragma("omp critical(progress)")
            {
                failed += bad;
                if (++done % 1000 == 0 || done == n) {
                    double t = now() - t0;
                    fprintf(stderr, "measured %d/%d photos (%.0f s, ETA %.0f s)\n", done, n, t, t / done * (n - done));
                }
            }
        }
        _Pragma("omp critical(merge)")
        if (ok) proto_sums_merge(&total, &mine);
        proto_sums_free(&mine);
        face_stats_free(&st);
    }
    if (failed) fprintf(stderr, "reage-prototypes: %d photos could not be read or measured\n", failed);
    int rc = 0;
    for (int g = 0; g < G; g++)
        if (total.wsum[g] <= 0) rc = err_set(e, "%s: no train photos with a mesh in group %d-%d", data, cfg->group_lo[g], cfg->group_hi[g]);
    if (!rc) proto_sums_finish(&total, P);
    proto_sums_free(&total);
    free(pick);
    landmark_set_free(&ls);
    return rc;
}

/* Each group's prototype face: its low-pass colour and texture-enhanced bands summed back up. */
static int picture(const Prototypes *P, const char *path, Err *e) {
    const int S = PROTO_SIDE;
    Image img;
    if (image_alloc(&img, S * P->groups, S)) return err_set(e, "out of memory");
    float *plane = malloc(sizeof(float) * S * S * 2), *up = plane + S * S;
    for (int g = 0; g < P->groups && plane; g++) {
        float bright[S * S];
        memset(bright, 0, sizeof(bright));
        for (int k = 0; k < PROTO_BANDS; k++) {
            int b = proto_band_side(k);
            pyr_resize(P->tex[k] + (size_t)g * b * b, b, b, up, S, S);
            for (int i = 0; i < S * S; i++) bright[i] += up[i];
        }
        for (int c = 0; c < 3; c++) {
            pyr_resize(P->colour + ((size_t)g * 3 + c) * PROTO_COLOUR_SIDE * PROTO_COLOUR_SIDE, PROTO_COLOUR_SIDE,
                       PROTO_COLOUR_SIDE, plane, S, S);
            for (int y = 0; y < S; y++)
                for (int x = 0; x < S; x++) {
                    float v = plane[y * S + x] + bright[y * S + x];
                    img.rgb[((size_t)y * img.w + g * S + x) * 3 + c] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v + 0.5f);
                }
        }
    }
    free(plane);
    int rc = image_save(path, &img, e);
    image_free(&img);
    return rc;
}

int main(int argc, char **argv) {
    const char *in = "weights/reage.blob", *out = NULL, *data = NULL, *landmarks = "runs/landmarks/utkface.blob";
    const char *strength = NULL, *colour_max = NULL, *pic = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        const char **dst = !strcmp(a, "--weights") ? &in : !strcmp(a, "--out") ? &out : !strcmp(a, "--data") ? &data
                         : !strcmp(a, "--landmarks") ? &landmarks : !strcmp(a, "--strength") ? &strength
                         : !strcmp(a, "--colour-max") ? &colour_max : !strcmp(a, "--picture") ? &pic : NULL;
        if (!dst) { fprintf(stderr, "reage-prototypes: unknown option %s (see the comment at the top of tools/prototypes.c)\n", a); return 2; }
        if (!v) { fprintf(stderr, "reage-prototypes: %s needs a value\n", a); return 2; }
        *dst = v;
        i++;
    }
    if (!out) { fprintf(stderr, "reage-prototypes: --out is required\n"); return 2; }
    memory_keep_freed();
    Err e;
    uint8_t *buf;
    size_t len;
    Blob *blob = malloc(sizeof(Blob));
    ModelConfig cfg;
    Prototypes P;
    if (!blob || file_read_all(in, 256u << 20, &buf, &len, &e) || blob_parse(blob, buf, len, BLOB_MAGIC, in, &e) ||
        model_config_parse(&cfg, blob->config, &e)) {
        fprintf(stderr, "reage-prototypes: %s\n", blob ? e.msg : "out of memory");
        return 1;
    }
    if (data) {
        /* measured afresh, the prototypes keep the strengths and caps the blob had */
        if (proto_alloc(&P, cfg.groups) || proto_read_config(&P, blob->config, in, &e) ||
            measure(&P, &cfg, data, landmarks, &e)) {
            fprintf(stderr, "reage-prototypes: %s\n", e.msg);
            return 1;
        }
    } else {
        int rc = proto_load(&P, blob, cfg.groups, in, &e);
        if (rc) {
            fprintf(stderr, "reage-prototypes: %s\n", rc > 0 ? "the blob carries no prototypes: measure them with --data" : e.msg);
            return 1;
        }
    }
    if ((strength && proto_parse_strength(&P, strength, &e)) || (colour_max && proto_parse_colour_max(&P, colour_max, &e))) {
        fprintf(stderr, "reage-prototypes: %s\n", e.msg);
        return 1;
    }
    /* the config without its old strengths, then the new ones */
    char config[4096], other[4096], text[256], colour_text[256];
    config_without(blob->config, PROTO_STRENGTH_KEY "=", other, sizeof(other));
    size_t k = config_without(other, PROTO_COLOUR_MAX_KEY "=", config, sizeof(config) - 600);
    proto_strength_text(&P, text, sizeof(text));
    proto_colour_max_text(&P, colour_text, sizeof(colour_text));
    snprintf(config + k, sizeof(config) - k, "%s=%s\n%s=%s\n", PROTO_STRENGTH_KEY, text, PROTO_COLOUR_MAX_KEY, colour_text);
    BlobWriter w;
    blobw_begin(&w, BLOB_MAGIC, config);
    for (uint32_t i = 0; i < blob->ntensors; i++)
        if (!blob_tensor_starts(&blob->t[i], "proto.")) blobw_copy(&w, &blob->t[i]);
    size_t before = w.out.len;
    proto_write(&w, &P);
    size_t proto_bytes = w.out.len - before;
    if (blobw_save(&w, out, &e) || (pic && picture(&P, pic, &e))) { fprintf(stderr, "reage-prototypes: %s\n", e.msg); return 1; }
    fprintf(stderr, "reage-prototypes: wrote %s (prototypes %.2f MB, strength %s, colour at most %s)\n", out,
            proto_bytes / 1e6, text, colour_text);
    proto_free(&P);
    free(buf);
    free(blob);
    return 0;
}
