/* build/reage: the filter on the command line.
 *
 *   reage --age 70 in.jpg out.png     re-age the face to 70
 *   reage --grid grid.png in.jpg      the face at every age group
 *   reage in.jpg                      list the faces and their estimated ages
 *   reage --landmarks out.png in.jpg  the 468-point face mesh drawn over the photo
 *   reage --json in.jpg               the faces and their mesh points as JSON
 *
 * Faces are found and aligned by the detector (src/facedetect.c); --box
 * places the crop by hand and --no-detect takes the centre square. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>
#include "bundle.h"
#include "facedetect.h"
#include "facemesh.h"
#include "pipeline.h"
#include "facespace.h"
#include "fileio.h"
#include "image.h"
#include "photo.h"

#define BLOB_MAX_BYTES (64u << 20)
#define PI_F 3.14159265f

static void usage(FILE *f) {
    fprintf(f, "usage: reage [options] IN [OUT]\n"
               "  --age AGE       re-age the face to AGE years and write OUT (PNG, or JPEG for .jpg)\n"
               "  --grid FILE     write the face at every age group side by side\n"
               "  --from AGE      the face's own age (default: estimated)\n"
               "  --face N        which detected face (1 is the most certain; default 1)\n"
               "  --all-faces     re-age every detected face\n"
               "  --box X,Y,SIZE[,DEG]  place the square crop by hand (centre, side, rotation), no detection\n"
               "  --no-detect     use the photo's centre square (for photos that are already a face crop)\n"
               "  --landmarks FILE draw the face mesh (468 points) of each found face over the photo\n"
               "  --json          print the faces found and their mesh points as JSON\n"
               "  --weights FILE  weight blob (default weights/reage.blob)\n"
               "  --detector FILE face detector blob (default weights/blazeface.blob)\n"
               "  --mesh FILE     face mesh blob (default weights/facemesh.blob)\n");
}

static int fail(const char *msg) {
    fprintf(stderr, "reage: %s\n", msg);
    return 1;
}

/* pipeline_reage's failures in words */
static const char *reage_failure(int rc) {
    return rc == PIPELINE_NEEDS_GENERATOR ? "the mesh did not find this face, and these weights carry no generator to re-age it"
                                          : "out of memory";
}

static int parse_age(const char *flag, const char *s, float *v) {
    char *end;
    *v = strtof(s, &end);
    if (end == s || *end || !(*v >= 0 && *v <= 120)) {
        fprintf(stderr, "reage: %s: expected an age from 0 to 120, got '%s'\n", flag, s);
        return -1;
    }
    return 0;
}

static int parse_box(const char *s, CropBox *b) {
    float deg = 0;
    int n = sscanf(s, "%f,%f,%f,%f", &b->cx, &b->cy, &b->size, &deg);
    /* finite, and within reach of any photo: a box far outside samples nothing but its edge */
    if (n < 3 || !(b->size >= 8 && b->size <= 1e6f) || !(fabsf(b->cx) <= 1e6f) || !(fabsf(b->cy) <= 1e6f) ||
        !(fabsf(deg) <= 360)) {
        fprintf(stderr, "reage: --box: expected X,Y,SIZE[,DEGREES], finite, with SIZE from 8 to 1000000 and "
                        "DEGREES from -360 to 360, got '%s'\n", s);
        return -1;
    }
    b->angle = deg * PI_F / 180.0f;
    return 0;
}

static int parse_face(const char *s, int *face) {
    char *end;
    long v = strtol(s, &end, 10);
    if (end == s || *end || v < 1 || v > FACEDET_MAX_FACES) {
        fprintf(stderr, "reage: --face: expected a face number from 1 to %d, got '%s'\n", FACEDET_MAX_FACES, s);
        return -1;
    }
    *face = (int)v;
    return 0;
}

/* The face detector and the face mesh from their blobs; 0, or -1 with the
 * message printed. */
static int load_face_models(const char *detector, const char *mesh, FaceDetector *fd, FaceMesh *fm) {
    const char *path[2] = {detector, mesh};
    for (int k = 0; k < 2; k++) {
        Err e;
        uint8_t *buf;
        size_t len;
        if (file_read_all(path[k], BLOB_MAX_BYTES, &buf, &len, &e)) { fail(e.msg); return -1; }
        int rc = k ? facemesh_load(fm, buf, len, path[k], &e) : facedet_load(fd, buf, len, path[k], &e);
        free(buf);
        if (rc) { fail(e.msg); return -1; }
    }
    return 0;
}

/* The crop boxes to work on: detected faces, confirmed and aligned by the
 * face mesh, or the one box the user gave. Returns how many, or -1
 * (message printed). */
static int find_faces(FaceDetector *fd, FaceMesh *fm, const char *in, const Photo *p, int detect, CropBox *boxes) {
    if (!detect) return 1;
    FaceDet d[FACEDET_MAX_FACES];
    int n = facedet_photo(fd, p, d, FACEDET_MAX_FACES);
    n = facemesh_confirm(fm, p, d, n, boxes, NULL);
    if (n == 0) {
        fprintf(stderr, "reage: no face found in %s; place the crop with --box X,Y,SIZE, or use --no-detect "
                        "if the photo is already a face crop\n", in);
        return -1;
    }
    return n;
}

/* A dot of radius r in colour rgb at (x, y). */
static void dot(Image *img, float x, float y, int r, const uint8_t *rgb) {
    for (int dy = -r; dy <= r; dy++)
        for (int dx = -r; dx <= r; dx++) {
            int px = (int)lroundf(x) + dx, py = (int)lroundf(y) + dy;
            if (dx * dx + dy * dy > r * r || px < 0 || py < 0 || px >= img->w || py >= img->h) continue;
            memcpy(img->rgb + ((size_t)py * img->w + px) * 3, rgb, 3);
        }
}

/* --landmarks and --json: every face found (or the one chosen), its mesh. */
static int landmarks_main(const char *detector, const char *mesh, const char *in, const char *draw, int json, int face) {
    Err e;
    Image img;
    if (image_load(in, &img, &e)) return fail(e.msg);
    Photo p = {img.rgb, img.w, img.h, 3};
    static FaceDetector fd;
    static FaceMesh fm;
    if (load_face_models(detector, mesh, &fd, &fm)) return 1;
    FaceDet d[FACEDET_MAX_FACES];
    int n = facedet_photo(&fd, &p, d, FACEDET_MAX_FACES);
    if (face > n && n > 0) {
        fprintf(stderr, "reage: --face %d: %s has %d face%s\n", face, in, n, n == 1 ? "" : "s");
        return 1;
    }
    static FaceLandmarks lm[FACEDET_MAX_FACES];
    if (json) printf("{\"width\": %d, \"height\": %d, \"faces\": [", img.w, img.h);
    for (int i = 0; i < n; i++) {
        if (face && i != face - 1) continue;
        facemesh_photo(&fm, &p, facemesh_roi(&d[i]), &lm[i]);
        if (json) {
            printf("%s\n {\"detection\": %.4f, \"mesh\": %.4f, \"roi\": [%.2f, %.2f, %.2f, %.5f], \"points\": [",
                   i && !face ? "," : "", d[i].score, lm[i].score, lm[i].roi.cx, lm[i].roi.cy, lm[i].roi.size, lm[i].roi.angle);
            for (int k = 0; k < FACEMESH_POINTS; k++)
                printf("%s[%.3f, %.3f, %.3f]", k ? ", " : "", lm[i].pt[k][0], lm[i].pt[k][1], lm[i].pt[k][2]);
            printf("]}");
        } else if (!draw) {
            printf("face %d: detection %.2f, mesh %.2f\n", i + 1, d[i].score, lm[i].score);
        }
    }
    if (json) printf("\n]}\n");
    if (draw) {
        static const uint8_t green[3] = {40, 230, 90};
        for (int i = 0; i < n; i++) {
            if (face && i != face - 1) continue;
            /* MediaPipe's canonical triangles, then the points */
            for (int t = 0; t < FACESPACE_TRIANGLES; t++)
                for (int k = 0; k < 3; k++) {
                    const float *a = lm[i].pt[FACESPACE_TRIS[t][k]], *b = lm[i].pt[FACESPACE_TRIS[t][(k + 1) % 3]];
                    image_draw_line(&img, a[0], a[1], b[0], b[1], green, 0.45f);
                }
            int r = (int)(lm[i].roi.size / 400) > 1 ? (int)(lm[i].roi.size / 400) : 1;
            for (int k = 0; k < FACEMESH_POINTS; k++) dot(&img, lm[i].pt[k][0] - 0.5f, lm[i].pt[k][1] - 0.5f, r, green);
        }
        if (image_save(draw, &img, &e)) return fail(e.msg);
        fprintf(stderr, "wrote %s: %d face%s\n", draw, face ? 1 : n, face || n == 1 ? "" : "s");
    }
    facedet_free(&fd);
    facemesh_free(&fm);
    image_free(&img);
    if (n == 0) return fail("no face found");
    return 0;
}

int main(int argc, char **argv) {
    const char *weights = "weights/reage.blob", *detector = "weights/blazeface.blob", *grid = NULL, *in = NULL, *out = NULL;
    const char *mesh = "weights/facemesh.blob", *landmarks = NULL;
    int json = 0;
    float target = -1, source = -1;
    int face = 1, all_faces = 0, detect = 1, face_given = 0;
    CropBox manual = {0, 0, 0, 0};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) { usage(stdout); return 0; }
        int has_value = i + 1 < argc;
        if (!strcmp(a, "--weights") && has_value) weights = argv[++i];
        else if (!strcmp(a, "--grid") && has_value) grid = argv[++i];
        else if (!strcmp(a, "--age") && has_value) { if (parse_age("--age", argv[++i], &target)) return 2; }
        else if (!strcmp(a, "--from") && has_value) { if (parse_age("--from", argv[++i], &source)) return 2; }
        else if (!strcmp(a, "--detector") && has_value) detector = argv[++i];
        else if (!strcmp(a, "--mesh") && has_value) mesh = argv[++i];
        else if (!strcmp(a, "--landmarks") && has_value) landmarks = argv[++i];
        else if (!strcmp(a, "--json")) json = 1;
        else if (!strcmp(a, "--face") && has_value) { if (parse_face(argv[++i], &face)) return 2; face_given = 1; }
        else if (!strcmp(a, "--all-faces")) all_faces = 1;
        else if (!strcmp(a, "--no-detect")) detect = 0;
        else if (!strcmp(a, "--box") && has_value) { if (parse_box(argv[++i], &manual)) return 2; detect = 0; }
        else if (a[0] == '-' && a[1]) { fprintf(stderr, "reage: unknown or incomplete option '%s'\n", a); usage(stderr); return 2; }
        else if (!in) in = a;
        else if (!out) out = a;
        else { fprintf(stderr, "reage: unexpected argument '%s'\n", a); usage(stderr); return 2; }
    }
    if (!in) { usage(stderr); return 2; }
    if (landmarks || json) {
        if (target >= 0 || grid || out || all_faces || !detect)
            return fail("--landmarks and --json show the faces found: not with --age, --grid, --all-faces, --box or --no-detect");
        return landmarks_main(detector, mesh, in, landmarks, json, face_given ? face : 0);
    }
    if (target >= 0 && !out) return fail("--age needs an output file: reage --age 70 in.jpg out.png");
    if (target < 0 && out) return fail("an output file needs --age");
    if (all_faces && face_given) return fail("--face and --all-faces exclude each other");
    if (!detect && (all_faces || face_given)) return fail("--face and --all-faces choose among detected faces; not with --box or --no-detect");
    memory_keep_freed();
    Err e;
    uint8_t *buf;
    size_t len;
    if (file_read_all(weights, BLOB_MAX_BYTES, &buf, &len, &e)) return fail(e.msg);
    Bundle b;
    if (bundle_load(&b, buf, len, NULL, weights, &e)) return fail(e.msg);
    free(buf);
    if (b.info[0]) fprintf(stderr, "weights %s (%s)\n", weights, b.info);
    Image img;
    if (image_load(in, &img, &e)) return fail(e.msg);
    Photo p = {img.rgb, img.w, img.h, 3};
    CropBox boxes[FACEDET_MAX_FACES];
    boxes[0] = manual.size > 0 ? manual : crop_default(img.w, img.h);
    /* the detector finds the faces; the mesh confirms them and, where the blob carries age prototypes, guides them */
    static FaceDetector fd;
    static FaceMesh fm;
    if (load_face_models(detector, mesh, &fd, &fm)) return 1;
    int nfaces = find_faces(&fd, &fm, in, &p, detect, boxes);
    if (nfaces < 0) return 1;
    if (face > nfaces) {
        fprintf(stderr, "reage: --face %d: %s has %d face%s\n", face, in, nfaces, nfaces == 1 ? "" : "s");
        return 1;
    }
    int first = all_faces ? 0 : face - 1, last = all_faces ? nfaces - 1 : face - 1;
    float ages[FACEDET_MAX_FACES];
    for (int i = 0; i < nfaces; i++) {
        ages[i] = photo_estimate_age(&b, &p, boxes[i]);
        if (detect)
            printf("face %d: centre %.0f,%.0f, side %.0f, rotated %.1f degrees, estimated age %.0f%s\n", i + 1,
                   boxes[i].cx, boxes[i].cy, boxes[i].size, boxes[i].angle * 180 / PI_F, ages[i],
                   i >= first && i <= last ? "" : " (not chosen)");
        else
            printf("estimated age: %.0f\n", ages[i]);
    }
    /* --from overrides every chosen face's own estimate */
    float from = source >= 0 ? source : ages[first];
    CropBox box = boxes[first];
    if (grid) {
        /* the face's box at each group's centre age, through the shipped pipeline */
        int R = 200, G = b.cfg.groups;
        Image g;
        if (image_alloc(&g, R * (G + 1), R)) return fail("out of memory");
        float *face = malloc(sizeof(float) * 3 * R * R);
        uint8_t *tile = malloc((size_t)3 * R * R), *copy = malloc((size_t)img.w * img.h * 3);
        if (!face || !tile || !copy) return fail("out of memory");
        for (int col = 0; col <= G; col++) {
            memcpy(copy, img.rgb, (size_t)img.w * img.h * 3);
            Photo q = {copy, img.w, img.h, 3};
            int rc = col > 0 ? pipeline_reage(&b, &fm, &q, box, from, group_center(&b.cfg, col - 1)) : 0;
            if (rc < 0) return fail(reage_failure(rc));
            photo_crop(&q, box, R, face);
            chw_to_rgb(face, R, R, tile);
            for (int r = 0; r < R; r++) memcpy(g.rgb + ((size_t)r * g.w + (size_t)col * R) * 3, tile + (size_t)r * R * 3, (size_t)R * 3);
        }
        if (image_save(grid, &g, &e)) return fail(e.msg);
        printf("wrote %s: input, then ages", grid);
        for (int k = 0; k < G; k++) printf(" %d-%d", b.cfg.group_lo[k], b.cfg.group_hi[k] >= 120 ? 120 : b.cfg.group_hi[k]);
        printf("\n");
        free(face); free(tile); free(copy);
        image_free(&g);
    }
    if (target >= 0) {
        for (int i = first; i <= last; i++) {
            int rc = pipeline_reage(&b, &fm, &p, boxes[i], source >= 0 ? source : ages[i], target);
            if (rc < 0) return fail(reage_failure(rc));
        }
        if (image_save(out, &img, &e)) return fail(e.msg);
        if (first == last) printf("wrote %s: %.0f -> %.0f years\n", out, from, target);
        else printf("wrote %s: %d faces -> %.0f years\n", out, last - first + 1, target);
    }
    image_free(&img);
    bundle_free(&b);
    facedet_free(&fd);
    facemesh_free(&fm);
    return 0;
}
