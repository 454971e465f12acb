/* reage-landmarks: the face mesh of every photo of a UTKFace folder, once.
 *
 *   reage-landmarks [--data DIR] [--out FILE] [--limit N]
 *   reage-landmarks --face-space SRC.c [--data DIR] [--out FILE] --geometry FILE.binarypb
 *
 * Runs the detector and the face mesh (src/facemesh.c) over every photo that
 * labels.tsv lists (both splits), and caches the 468 points of each in FILE
 * (default runs/landmarks/NAME.blob, NAME the folder's), with the folder's
 * file list as its key: run again on the same folder it reports the cache
 * up to date and does nothing. A photo in which the detector finds no face
 * is meshed on the square the alignment implies (UTKFace's crops are
 * aligned); one in which the mesh does not confirm a face (its flag below
 * 0.5) is listed and marked, and users of the cache skip it. Prints a
 * progress line with an ETA.
 *
 * --face-space writes the face space's tables as C (src/facespace_mean.c):
 * the mean shape of the train split's meshes in crop fractions, after a
 * generalised Procrustes alignment, and MediaPipe's canonical triangles,
 * read from the geometry metadata in @mediapipe/face_mesh's packed assets
 * (tools/packed_asset.mjs copies it out). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "facedetect.h"
#include "facemesh.h"
#include "fileio.h"
#include "image.h"
#include "landmark_set.h"
#include "facespace.h"

static int fail(const char *msg) {
    fprintf(stderr, "reage-landmarks: %s\n", msg);
    return 1;
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int load_model(const char *path, int mesh, FaceDetector *fd, FaceMesh *fm, Err *e) {
    uint8_t *buf;
    size_t len;
    if (file_read_all(path, 64u << 20, &buf, &len, e)) return -1;
    int rc = mesh ? facemesh_load(fm, buf, len, path, e) : facedet_load(fd, buf, len, path, e);
    free(buf);
    return rc;
}

/* ---- the face space's tables ---- */

static int varint(const uint8_t *b, size_t n, size_t *at, uint64_t *v) {
    *v = 0;
    for (int s = 0; s < 64 && *at < n; s += 7) {
        uint8_t c = b[(*at)++];
        *v |= (uint64_t)(c & 0x7f) << s;
        if (c < 0x80) return 0;
    }
    return -1;
}

/* The triangle indices of MediaPipe's canonical face mesh: field 1 of the
 * metadata (a Mesh3d), whose field 4 lists them as varints. */
static int read_triangles(const char *path, unsigned short tris[FACESPACE_TRIANGLES][3], Err *e) {
    uint8_t *buf;
    size_t len, at = 0, n = 0;
    if (file_read_all(path, 1u << 20, &buf, &len, e)) return -1;
    uint64_t key, mlen;
    int rc = 0;
    if (varint(buf, len, &at, &key) || key != (1 << 3 | 2) || varint(buf, len, &at, &mlen) || at + mlen > len) {
        rc = err_set(e, "%s: not MediaPipe's geometry metadata (no canonical mesh first)", path);
    } else {
        size_t end = at + mlen;
        while (!rc && at < end) {
            uint64_t v;
            if (varint(buf, end, &at, &key)) { rc = err_set(e, "%s: damaged", path); break; }
            int field = (int)(key >> 3), type = (int)(key & 7);
            if (type == 0) {
                if (varint(buf, end, &at, &v)) { rc = err_set(e, "%s: damaged", path); break; }
                if (field == 4) {
                    if (n >= 3 * FACESPACE_TRIANGLES || v >= FACEMESH_POINTS) { rc = err_set(e, "%s: more triangles or vertices than expected", path); break; }
                    tris[n / 3][n % 3] = (unsigned short)v;
                    n++;
                }
            } else if (type == 5) at += 4;
            else if (type == 1) at += 8;
            else if (type == 2) { if (varint(buf, end, &at, &v)) { rc = err_set(e, "%s: damaged", path); break; } at += v; }
            else rc = err_set(e, "%s: damaged", path);
        }
        if (!rc && n != 3 * FACESPACE_TRIANGLES) rc = err_set(e, "%s: %zu triangle indices, not %d", path, n, 3 * FACESPACE_TRIANGLES);
    }
    free(buf);
    return rc;
}

/* Fits shape a onto b by a similarity (least squares over all points), in place. */
static void align_onto(double (*a)[2], const double (*b)[2]) {
    double ma[2] = {0, 0}, mb[2] = {0, 0};
    for (int k = 0; k < FACEMESH_POINTS; k++)
        for (int c = 0; c < 2; c++) ma[c] += a[k][c] / FACEMESH_POINTS, mb[c] += b[k][c] / FACEMESH_POINTS;
    double aa = 0, dot = 0, cross = 0;
    for (int k = 0; k < FACEMESH_POINTS; k++) {
        double ax = a[k][0] - ma[0], ay = a[k][1] - ma[1], bx = b[k][0] - mb[0], by = b[k][1] - mb[1];
        aa += ax * ax + ay * ay;
        dot += ax * bx + ay * by;
        cross += ax * by - ay * bx;
    }
    double s = dot / aa, r = cross / aa;
    for (int k = 0; k < FACEMESH_POINTS; k++) {
        double ax = a[k][0] - ma[0], ay = a[k][1] - ma[1];
        a[k][0] = s * ax - r * ay + mb[0];
        a[k][1] = r * ax + s * ay + mb[1];
    }
}

/* The mean shape drawn in its crop (with the face space's margin), side px. */
static int draw_mean(const char *path, int side, Err *e) {
    Image img;
    if (image_alloc(&img, side, side)) return err_set(e, "out of memory");
    memset(img.rgb, 255, (size_t)side * side * 3);
    static const uint8_t ink[3] = {40, 90, 160}, frame[3] = {200, 60, 60};
    float m = (float)FACESPACE_MARGIN, k = side / (1 + 2 * m);
    for (int t = 0; t < FACESPACE_TRIANGLES; t++)
        for (int j = 0; j < 3; j++) {
            const float *a = FACESPACE_MEAN[FACESPACE_TRIS[t][j]], *b = FACESPACE_MEAN[FACESPACE_TRIS[t][(j + 1) % 3]];
            image_draw_line(&img, (a[0] + m) * k, (a[1] + m) * k, (b[0] + m) * k, (b[1] + m) * k, ink, 0.8f);
        }
    /* the crop's square */
    float lo = m * k, hi = (1 + m) * k;
    image_draw_line(&img, lo, lo, hi, lo, frame, 1); image_draw_line(&img, hi, lo, hi, hi, frame, 1);
    image_draw_line(&img, hi, hi, lo, hi, frame, 1); image_draw_line(&img, lo, hi, lo, lo, frame, 1);
    int rc = image_save(path, &img, e);
    image_free(&img);
    if (!rc) printf("wrote %s\n", path);
    return rc;
}

static int write_face_space(const LandmarkSet *set, const char *data, const char *geometry, const char *path, Err *e) {
    static unsigned short tris[FACESPACE_TRIANGLES][3];
    if (read_triangles(geometry, tris, e)) return -1;
    /* the train split's confirmed faces, in fractions of their crops */
    int used = 0;
    static double plain[FACEMESH_POINTS][2], mean[FACEMESH_POINTS][2], next[FACEMESH_POINTS][2], shape[FACEMESH_POINTS][2];
    for (int pass = 0; pass < 4; pass++) {
        memset(next, 0, sizeof(next));
        used = 0;
        for (int i = 0; i < set->count; i++) {
            if (set->test[i] || !(set->flag[i] >= LANDMARK_MIN_FLAG)) continue;
            for (int k = 0; k < FACEMESH_POINTS; k++)
                for (int c = 0; c < 2; c++) shape[k][c] = set->points[((size_t)i * FACEMESH_POINTS + k) * 3 + c] / 200.0;
            if (pass) align_onto(shape, (const double (*)[2])mean);
            for (int k = 0; k < FACEMESH_POINTS; k++) for (int c = 0; c < 2; c++) next[k][c] += shape[k][c];
            used++;
        }
        if (!used) return err_set(e, "%s: no train-split photo with a face", data);
        for (int k = 0; k < FACEMESH_POINTS; k++) for (int c = 0; c < 2; c++) mean[k][c] = next[k][c] / used;
        if (!pass) memcpy(plain, mean, sizeof(mean));
        else align_onto(mean, (const double (*)[2])plain); /* keep the crop's frame */
    }
    /* the C text, written whole and renamed into place */
    size_t cap = 64u << 10, n = 0;
    char *out = malloc(cap);
    if (!out) return err_set(e, "out of memory");
    n += snprintf(out + n, cap - n, "/* Generated by build/reage-landmarks --face-space from the train split of %s\n"
                  " * (%d photos with a face) and MediaPipe's canonical face mesh. Do not edit. */\n"
                  "#include \"facespace.h\"\n\nconst float FACESPACE_MEAN[FACEMESH_POINTS][2] = {\n", data, used);
    for (int k = 0; k < FACEMESH_POINTS; k++)
        n += snprintf(out + n, cap - n, "%s{%.5ff, %.5ff},%s", k % 4 ? " " : "    ", mean[k][0], mean[k][1], k % 4 == 3 ? "\n" : "");
    n += snprintf(out + n, cap - n, "%s};\n\nconst unsigned short FACESPACE_TRIS[FACESPACE_TRIANGLES][3] = {\n", FACEMESH_POINTS % 4 ? "\n" : "");
    for (int t = 0; t < FACESPACE_TRIANGLES; t++)
        n += snprintf(out + n, cap - n, "%s{%d, %d, %d},%s", t % 6 ? " " : "    ", tris[t][0], tris[t][1], tris[t][2], t % 6 == 5 ? "\n" : "");
    n += snprintf(out + n, cap - n, "%s};\n", FACESPACE_TRIANGLES % 6 ? "\n" : "");
    int rc = n >= cap ? err_set(e, "the tables outgrew their buffer") : file_write_atomic(path, out, n, e);
    free(out);
    if (!rc) printf("wrote %s: the mean of %d faces, %d triangles\n", path, used, FACESPACE_TRIANGLES);
    return rc;
}

int main(int argc, char **argv) {
    const char *data = "../shared/data/utkface-part1", *out = NULL, *det = "weights/blazeface.blob",
               *mesh = "weights/facemesh.blob", *face_space = NULL, *geometry = NULL;
    int limit = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            printf("usage: reage-landmarks [--data DIR] [--out FILE] [--limit N] [--detector FILE] [--mesh FILE]\n"
                   "       reage-landmarks --face-space SRC.c --geometry FILE.binarypb [--data DIR] [--out FILE]\n"
                   "       reage-landmarks --draw-mean FILE.png    the face space's mean shape and triangles\n");
            return 0;
        }
        if (!v) { fprintf(stderr, "reage-landmarks: %s: expected a value\n", a); return 2; }
        if (!strcmp(a, "--data")) data = v;
        else if (!strcmp(a, "--out")) out = v;
        else if (!strcmp(a, "--detector")) det = v;
        else if (!strcmp(a, "--mesh")) mesh = v;
        else if (!strcmp(a, "--face-space")) face_space = v;
        else if (!strcmp(a, "--geometry")) geometry = v;
        else if (!strcmp(a, "--draw-mean")) { Err de; return draw_mean(v, 480, &de) ? fail(de.msg) : 0; }
        else if (!strcmp(a, "--limit")) {
            char *end;
            long n = strtol(v, &end, 10);
            if (*end || end == v || n < 1 || n > 10000000) { fprintf(stderr, "reage-landmarks: --limit: expected a positive number, got '%s'\n", v); return 2; }
            limit = (int)n;
        } else { fprintf(stderr, "reage-landmarks: unknown option %s\n", a); return 2; }
        i++;
    }
    Err e;
    LandmarkSet set;
    if (landmark_set_list(&set, data, limit, &e)) return fail(e.msg);
    char def[1200];
    if (!out) {
        const char *base = strrchr(data, '/');
        char name[256];
        snprintf(name, sizeof(name), "%s", base && base[1] ? base + 1 : base ? "data" : data);
        if (dir_ensure("runs", &e) || dir_ensure("runs/landmarks", &e)) return fail(e.msg);
        snprintf(def, sizeof(def), "runs/landmarks/%s%s.blob", name, limit ? "-sample" : "");
        out = def;
    }
    if (face_space) {
        if (!geometry) return fail("--face-space needs --geometry FILE (MediaPipe's geometry_pipeline_metadata_landmarks.binarypb)");
        landmark_set_free(&set);
        if (landmark_set_load(&set, data, limit, out, &e) || write_face_space(&set, data, geometry, face_space, &e)) return fail(e.msg);
        landmark_set_free(&set);
        return 0;
    }
    if (landmark_set_is_current(out, &set)) {
        printf("%s is up to date: %d photos of %s\n", out, set.count, data);
        landmark_set_free(&set);
        return 0;
    }
    static FaceDetector fd;
    static FaceMesh fm;
    if (load_model(det, 0, &fd, &fm, &e) || load_model(mesh, 1, &fd, &fm, &e)) return fail(e.msg);
    double t0 = now_s();
    int undetected = 0;
    for (int i = 0; i < set.count; i++) {
        char path[1400];
        snprintf(path, sizeof(path), "%s/images/%s", data, set.name[i]);
        Image img;
        static FaceLandmarks lm;
        if (image_load(path, &img, &e)) {
            fprintf(stderr, "warning: %s\n", e.msg);
            set.flag[i] = 0;
            continue;
        }
        Photo p = {img.rgb, img.w, img.h, 3};
        undetected += !facemesh_in_crop(&fd, &fm, &p, &lm);
        set.flag[i] = lm.score;
        for (int k = 0; k < FACEMESH_POINTS; k++)
            for (int c = 0; c < 3; c++) set.points[((size_t)i * FACEMESH_POINTS + k) * 3 + c] = lm.pt[k][c];
        image_free(&img);
        if ((i + 1) % 500 == 0 || i + 1 == set.count) {
            double t = now_s() - t0, eta = t / (i + 1) * (set.count - i - 1);
            fprintf(stderr, "meshed %d/%d photos (%.0f s, %.1f ms each, ETA %.0f s)\n", i + 1, set.count, t,
                    1000 * t / (i + 1), eta);
        }
    }
    if (landmark_set_save(&set, out, &e)) return fail(e.msg);
    int failed = 0;
    for (int i = 0; i < set.count; i++)
        if (!(set.flag[i] >= LANDMARK_MIN_FLAG)) {
            if (!failed++) printf("no face (the mesh's flag under %.1f):\n", LANDMARK_MIN_FLAG);
            printf("  %s (%.2f)\n", set.name[i], set.flag[i]);
        }
    printf("wrote %s: %d photos, %d without a face (skipped by its users), %d meshed without a detection\n", out,
           set.count, failed, undetected);
    landmark_set_free(&set);
    facedet_free(&fd);
    facemesh_free(&fm);
    return 0;
}
