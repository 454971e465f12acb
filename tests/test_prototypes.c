/* The image pyramid, the age prototypes (sums, blob, refusals) and the
 * transform that ages a face with them, on real photos. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "../src/blob.h"
#include "../src/change_render.h"
#include "../src/facedetect.h"
#include "../src/facemesh.h"
#include "../src/facespace.h"
#include "../src/fileio.h"
#include "../src/parallel.h"
#include "../src/image.h"
#include "../src/prototypes.h"
#include "../src/pyramid.h"
#include "../src/rng.h"
#include "../src/structured.h"
#include "check.h"
#include "gradcheck.h"

static void test_pyramid(void) {
    enum { W = 64 };
    static float g[W * W], g1[W * W / 4], band[W * W], back[W * W], amp[W * W / 4];
    Rng r;
    rng_seed(&r, 3);
    for (int i = 0; i < W * W; i++) g[i] = 7.0f;
    pyr_reduce(g, W, W, g1);
    float worst = 0;
    for (int i = 0; i < W * W / 4; i++) worst = fmaxf(worst, fabsf(g1[i] - 7.0f));
    CHECK(worst < 1e-5f, "reducing a flat plane keeps it flat (off by %g)", worst);
    for (int i = 0; i < W * W; i++) g[i] = 100 * rng_uniform(&r);
    pyr_reduce(g, W, W, g1);
    pyr_band(g, g1, W, W, band);
    pyr_resize(g1, W / 2, W / 2, back, W, W);
    worst = 0;
    for (int i = 0; i < W * W; i++) worst = fmaxf(worst, fabsf(band[i] + back[i] - g[i]));
    CHECK(worst < 1e-4f, "a band and the coarser level brought up restore the image (off by %g)", worst);
    /* a ramp is reduced onto the coarse grid's own centres: no half-pixel shift */
    for (int y = 0; y < W; y++)
        for (int x = 0; x < W; x++) g[y * W + x] = (float)x;
    pyr_reduce(g, W, W, g1);
    worst = 0;
    for (int y = 2; y < W / 2 - 2; y++)
        for (int x = 2; x < W / 2 - 2; x++) worst = fmaxf(worst, fabsf(g1[y * W / 2 + x] - (2 * x + 0.5f)));
    CHECK(worst < 1e-4f, "a reduced ramp sits on the coarse pixels' centres (off by %g)", worst);
    /* a checkerboard of +-a is all finest detail: its local amplitude is a */
    for (int y = 0; y < W; y++)
        for (int x = 0; x < W; x++) band[y * W + x] = (x + y) % 2 ? 5.0f : -5.0f;
    pyr_amplitude(band, W, W, amp);
    CHECK(fabsf(amp[10 * W / 2 + 10] - 5.0f) < 1e-4f, "a +-5 checkerboard's amplitude is 5 (%g)", amp[10 * W / 2 + 10]);
}

static void fill_stats(FaceStats *s, float shape, float colour, float detail) {
    for (int k = 0; k < FACEMESH_POINTS; k++) s->shape[k][0] = s->shape[k][1] = shape;
    for (int i = 0; i < 3 * PROTO_COLOUR_SIDE * PROTO_COLOUR_SIDE; i++) s->colour[i] = colour;
    for (int i = 0; i < PROTO_COLOUR_SIDE * PROTO_COLOUR_SIDE; i++) s->cover[i] = 1;
    for (int k = 0; k < PROTO_BANDS; k++) {
        int b = proto_band_side(k), a = proto_amp_side(k);
        for (int y = 0; y < b; y++)
            for (int x = 0; x < b; x++) s->band[k][y * b + x] = (x + y) % 2 ? detail : -detail;
        for (int i = 0; i < a * a; i++) s->amp[k][i] = fabsf(detail);
    }
}

static void test_prototype_sums(void) {
    ProtoSums sums;
    FaceStats a, b;
    Prototypes P;
    if (proto_sums_alloc(&sums, 2) || face_stats_alloc(&a) || face_stats_alloc(&b) || proto_alloc(&P, 2)) {
        CHECK(0, "out of memory");
        return;
    }
    /* group 0: two faces weighted 3:1; group 1: detail of opposite phase, which averages away */
    fill_stats(&a, 0.2f, 100, 4);
    fill_stats(&b, 0.6f, 200, -4);
    proto_sums_add(&sums, 0, 3, &a);
    proto_sums_add(&sums, 0, 1, &b);
    proto_sums_add(&sums, 1, 1, &a);
    proto_sums_add(&sums, 1, 1, &b);
    /* a face whose photo did not reach pixel 5 (padding): it counts everywhere else, not there */
    FaceStats pad;
    if (face_stats_alloc(&pad)) return;
    fill_stats(&pad, 0.3f, 0, 4);
    pad.cover[5] = 0;
    proto_sums_add(&sums, 0, 4, &pad);
    proto_sums_finish(&sums, &P);
    CHECK(fabsf(P.colour[5] - 125) < 1e-3f && fabsf(P.colour[6] - 62.5f) < 1e-3f,
          "padding counts nowhere in the colour: %g (125) where it was, %g (62.5) elsewhere", P.colour[5], P.colour[6]);
    face_stats_free(&pad);
    CHECK(fabsf(P.shape[0] - 0.3f) < 1e-5f, "weighted means: shape %g (0.3)", P.shape[0]);
    int b0 = proto_band_side(0);
    float t0 = P.tex[0][20 * b0 + 20], t1 = P.tex[0][(size_t)b0 * b0 + 20 * b0 + 20];
    /* group 0's mean detail is +-2 where its faces hold +-4: enhanced back to 4 */
    CHECK(fabsf(fabsf(t0) - 4) < 0.2f, "the texture-enhanced band restores the faces' amplitude: %g (4)", t0);
    CHECK(fabsf(t1) < 1e-3f, "detail that cancels out is not invented: %g", t1);
    proto_free(&P);
    face_stats_free(&a);
    face_stats_free(&b);
    proto_sums_free(&sums);
}

static void test_prototype_blob(void) {
    Prototypes P, Q;
    Err e;
    if (proto_alloc(&P, 3)) return;
    Rng r;
    rng_seed(&r, 9);
    for (size_t i = 0; i < (size_t)(P.tex[PROTO_BANDS - 1] - P.mem) + (size_t)3 * proto_band_side(PROTO_BANDS - 1) * proto_band_side(PROTO_BANDS - 1); i++)
        P.mem[i] = 50 * rng_uniform(&r);
    P.strength[2] = 1.5f;
    P.colour_max[1] = 1.0f;
    char strength[128], colour_max[128], config[400];
    proto_strength_text(&P, strength, sizeof(strength));
    proto_colour_max_text(&P, colour_max, sizeof(colour_max));
    snprintf(config, sizeof(config), "%s=%s\n%s=%s\n", PROTO_STRENGTH_KEY, strength, PROTO_COLOUR_MAX_KEY, colour_max);
    BlobWriter w;
    blobw_begin(&w, BLOB_MAGIC, config);
    proto_write(&w, &P);
    size_t len;
    uint8_t *buf = blobw_finish(&w, &len);
    static Blob b;
    int rc = blob_parse(&b, buf, len, BLOB_MAGIC, "t.blob", &e) || proto_load(&Q, &b, 3, "t.blob", &e);
    CHECK(rc == 0, "prototypes load back: %s", rc ? e.msg : "");
    if (!rc) {
        float worst = 0;
        for (int i = 0; i < 3 * FACEMESH_POINTS * 2; i++) worst = fmaxf(worst, fabsf(Q.shape[i] - P.shape[i]));
        CHECK(worst == 0, "the mean shapes are kept exactly");
        CHECK(fabsf(Q.tex[1][77] - P.tex[1][77]) <= 50.0f / 254 && fabsf(Q.amp[1][77] - P.amp[1][77]) < 0.05f && Q.strength[2] == 1.5f,
              "bands within half an int8 step, amplitudes within float16, strength kept");
        CHECK(Q.colour_max[0] == PROTO_COLOUR_MAX_DEFAULT && Q.colour_max[1] == 1.0f && Q.colour_max[2] == PROTO_COLOUR_MAX_DEFAULT,
              "the colour's caps kept: %g %g %g", Q.colour_max[0], Q.colour_max[1], Q.colour_max[2]);
        proto_free(&Q);
    }
    free(buf);
    /* a blob that names no caps gets the default for every group */
    blobw_begin(&w, BLOB_MAGIC, "proto_strength=1,2,2\n");
    proto_write(&w, &P);
    buf = blobw_finish(&w, &len);
    rc = blob_parse(&b, buf, len, BLOB_MAGIC, "t.blob", &e) || proto_load(&Q, &b, 3, "t.blob", &e);
    CHECK(rc == 0, "prototypes without caps load: %s", rc ? e.msg : "");
    if (!rc) {
        CHECK(Q.colour_max[1] == PROTO_COLOUR_MAX_DEFAULT, "no caps named: the default (%g)", Q.colour_max[1]);
        proto_free(&Q);
    }
    CHECK(proto_load(&Q, &b, 4, "t.blob", &e) < 0 && strstr(e.msg, "t.blob"), "prototypes for other groups are refused: %s", e.msg);
    free(buf);
    /* a value no mean of photos can have, under a valid checksum */
    P.colour[10] = NAN;
    blobw_begin(&w, BLOB_MAGIC, config);
    proto_write(&w, &P);
    buf = blobw_finish(&w, &len);
    /* stored as int8, the colour's NaN becomes a scale the parser refuses */
    rc = blob_parse(&b, buf, len, BLOB_MAGIC, "t.blob", &e);
    CHECK(rc != 0 && strstr(e.msg, "'proto.colour' has a bad scale"), "a NaN in the prototypes is refused: %s", e.msg);
    free(buf);
    P.colour[10] = 1;
    P.amp[0][10] = NAN;
    blobw_begin(&w, BLOB_MAGIC, config);
    proto_write(&w, &P);
    buf = blobw_finish(&w, &len);
    rc = blob_parse(&b, buf, len, BLOB_MAGIC, "t.blob", &e);
    CHECK(rc == 0 && proto_load(&Q, &b, 3, "t.blob", &e) < 0 && strstr(e.msg, "impossible"), "a NaN in the amplitudes is refused: %s", e.msg);
    P.amp[0][10] = 1;
    free(buf);
    blobw_begin(&w, BLOB_MAGIC, "proto_strength=1,2\n");
    proto_write(&w, &P);
    buf = blobw_finish(&w, &len);
    rc = blob_parse(&b, buf, len, BLOB_MAGIC, "t.blob", &e);
    CHECK(rc == 0 && proto_load(&Q, &b, 3, "t.blob", &e) < 0 && strstr(e.msg, "strength"), "a short strength list is refused: %s", e.msg);
    free(buf);
    blobw_begin(&w, BLOB_MAGIC, "proto_strength=1,2,2\nproto_colour_max=1,1.5,x\n");
    proto_write(&w, &P);
    buf = blobw_finish(&w, &len);
    rc = blob_parse(&b, buf, len, BLOB_MAGIC, "t.blob", &e);
    CHECK(rc == 0 && proto_load(&Q, &b, 3, "t.blob", &e) < 0 && strstr(e.msg, "t.blob") && strstr(e.msg, "colour exaggeration"),
          "a bad colour cap is refused, naming the file: %s", e.msg);
    free(buf);
    blobw_begin(&w, BLOB_MAGIC, "");
    int shape[3] = {3, FACEMESH_POINTS, 2};
    blobw_floats(&w, "proto.shape", DT_F32, 3, shape, P.shape);
    buf = blobw_finish(&w, &len);
    rc = blob_parse(&b, buf, len, BLOB_MAGIC, "t.blob", &e);
    CHECK(rc == 0 && proto_load(&Q, &b, 3, "t.blob", &e) < 0, "prototypes missing a part are refused: %s", e.msg);
    free(buf);
    CHECK(proto_parse_strength(&P, "1,1,nan", &e) < 0 && proto_parse_strength(&P, "1,1,9", &e) < 0 &&
              proto_parse_strength(&P, "1,1,1,1", &e) < 0 && proto_parse_strength(&P, "0.5,1,2", &e) == 0,
          "strength lists are checked");
    CHECK(proto_parse_colour_max(&P, "1,1", &e) < 0 && proto_parse_colour_max(&P, "-1,1,1", &e) < 0 &&
              proto_parse_colour_max(&P, "1,1.5,1", &e) == 0 && P.colour_max[1] == 1.5f,
          "colour cap lists are checked");
    proto_free(&P);
}

/* The change's parts scale with the strengths: the shape by the strength, the
 * colour by the strength up to the target group's cap, blended between groups
 * as the ages are. */
static void test_prototype_strengths(void) {
    ModelConfig cfg;
    Prototypes P;
    FaceChange c;
    Err e;
    memset(&cfg, 0, sizeof(cfg));
    if (parse_groups(&cfg, "0-12,13-44,45+", &e) || proto_alloc(&P, 3)) { CHECK(0, "set up"); return; }
    if (face_change_alloc(&c)) { proto_free(&P); CHECK(0, "set up"); return; }
    Rng r;
    rng_seed(&r, 4);
    for (size_t i = 0; i < (size_t)(P.amp[0] - P.mem); i++) P.mem[i] = 100 * rng_uniform(&r);
    const int N = 3 * PROTO_COLOUR_SIDE * PROTO_COLOUR_SIDE, at = 1234, pt = 100;
    float c0 = group_center(&cfg, 0), c1 = group_center(&cfg, 1), c2 = group_center(&cfg, 2);
    float dc = P.colour[2 * N + at] - P.colour[at], ds = P.shape[2 * FACEMESH_POINTS * 2 + 2 * pt] - P.shape[2 * pt];
    for (int g = 0; g < 3; g++) P.strength[g] = 2.0f;
    proto_change(&P, &cfg, c0, c2, &c);
    CHECK(fabsf(c.colour[at] - 1.5f * dc) < 1e-3f && fabsf(c.shape[pt][0] - 2 * ds) < 1e-5f,
          "by default the colour at most 1.5 times the difference (%g, want %g), the shape at the strength", c.colour[at], 1.5f * dc);
    P.colour_max[2] = 1.0f;
    proto_change(&P, &cfg, c0, c2, &c);
    CHECK(fabsf(c.colour[at] - dc) < 1e-3f && fabsf(c.shape[pt][0] - 2 * ds) < 1e-5f,
          "capped at 1 for the target, the plain colour difference (%g, want %g), the shape as before", c.colour[at], dc);
    P.strength[2] = 0.5f;
    proto_change(&P, &cfg, c0, c2, &c);
    CHECK(fabsf(c.colour[at] - 0.5f * dc) < 1e-3f, "a strength under the cap is the colour's (%g, want %g)", c.colour[at], 0.5f * dc);
    /* halfway between the centres of groups 1 and 2, from group 0: each target group's weight of the change at
     * its own colour exaggeration, blended */
    P.strength[2] = 2.0f;
    float mid = 0.5f * (c1 + c2);
    proto_change(&P, &cfg, c0, mid, &c);
    float want = 1.25f * (0.5f * P.colour[N + at] + 0.5f * P.colour[2 * N + at] - P.colour[at]);
    CHECK(fabsf(c.colour[at] - want) < 1e-3f, "between groups the colour's exaggeration blends: %g, want %g", c.colour[at], want);
    proto_change(&P, &cfg, mid, mid, &c);
    CHECK(c.colour[at] == 0 && c.shape[pt][0] == 0, "no change at the face's own age");
    face_change_free(&c);
    proto_free(&P);
}

/* ---- the transform on real photos ---- */

static const char *data_dir(void) {
    const char *d = getenv("REAGE_TEST_DATA");
    return d ? d : "../shared/data/utkface-part1";
}

static int mesh_of(FaceDetector *fd, FaceMesh *fm, const Photo *p, FaceLandmarks *lm) {
    facemesh_in_crop(fd, fm, p, lm);
    return lm->score >= FACEMESH_MIN_FLAG ? 0 : -1;
}

/* Prototypes of three groups from a few train photos each (the shipped ones
 * take thousands; a handful is enough to check the transform's properties). */
static int small_prototypes(FaceDetector *fd, FaceMesh *fm, ModelConfig *cfg, Prototypes *P) {
    Err e;
    memset(cfg, 0, sizeof(*cfg));
    if (parse_groups(cfg, "0-12,13-44,45+", &e)) return -1;
    char path[1200], line[512];
    snprintf(path, sizeof(path), "%s/labels.tsv", data_dir());
    FILE *f = fopen(path, "r");
    if (!f) { CHECK(0, "%s is readable", path); return -1; }
    ProtoSums sums;
    FaceStats st;
    if (proto_sums_alloc(&sums, 3) || face_stats_alloc(&st) || proto_alloc(P, 3)) { fclose(f); return -1; }
    int have[3] = {0, 0, 0};
    static FaceLandmarks lm;
    while (fgets(line, sizeof(line), f) && (have[0] < 8 || have[1] < 8 || have[2] < 8)) {
        char name[256], split[16], gs[8], rs[8];
        int age;
        if (sscanf(line, "%255s %d %7s %7s %15s", name, &age, gs, rs, split) != 5 || strcmp(split, "train")) continue;
        int g = age_to_group(cfg, age);
        if (have[g] >= 8 || (g == 2 && age < 60)) continue;
        Image img;
        snprintf(path, sizeof(path), "%s/images/%s", data_dir(), name);
        if (image_load(path, &img, &e)) continue;
        Photo p = {img.rgb, img.w, img.h, 3};
        if (!mesh_of(fd, fm, &p, &lm) && !face_stats_measure(&st, &p, &lm)) {
            proto_sums_add(&sums, g, 1, &st);
            have[g]++;
        }
        image_free(&img);
    }
    fclose(f);
    CHECK(have[0] == 8 && have[1] == 8 && have[2] == 8, "eight train faces a group (%d %d %d)", have[0], have[1], have[2]);
    proto_sums_finish(&sums, P);
    proto_sums_free(&sums);
    face_stats_free(&st);
    return have[0] == 8 && have[1] == 8 && have[2] == 8 ? 0 : -1;
}

/* Mean absolute brightness detail (pixel less its 3x3 mean) over a square. */
static double fine_detail(const Photo *p, int x0, int y0, int side) {
    double s = 0;
    for (int y = y0; y < y0 + side; y++)
        for (int x = x0; x < x0 + side; x++) {
            double c = 0, m = 0;
            for (int k = 0; k < 3; k++) c += p->px[((size_t)y * p->w + x) * 3 + k];
            for (int dy = -1; dy <= 1; dy++)
                for (int dx = -1; dx <= 1; dx++)
                    for (int k = 0; k < 3; k++) m += p->px[((size_t)(y + dy) * p->w + x + dx) * 3 + k];
            s += fabs(c / 3 - m / 27);
        }
    return s / ((double)side * side);
}

static int load_models(FaceDetector *fd, FaceMesh *fm) {
    const char *path[2] = {"weights/blazeface.blob", "weights/facemesh.blob"};
    for (int k = 0; k < 2; k++) {
        uint8_t *buf;
        size_t len;
        Err e;
        int rc = file_read_all(path[k], 1 << 24, &buf, &len, &e);
        if (!rc) rc = k ? facemesh_load(fm, buf, len, path[k], &e) : facedet_load(fd, buf, len, path[k], &e);
        if (!rc) free(buf);
        CHECK(rc == 0, "%s loads%s%s", path[k], rc ? ": " : "", rc ? e.msg : "");
        if (rc) return -1;
    }
    return 0;
}

/* The structured path on a face: a change net that changes nothing leaves
 * the prototypes' result to the byte; one that adds red reddens the face's
 * centre over the prototypes' and leaves the far canvas alone. */
static void check_change_reage(const Prototypes *P, const ModelConfig *cfg, const FaceLandmarks *lm, const uint8_t *canvas, int W,
                               int H, int cx, int cy) {
    Err e;
    ChangeNet net;
    ChangeNetConfig nc = {256, cfg->groups, 4};
    change_net_build(&net, &nc, &e);
    params_alloc(&net.ps, 0);
    Rng r;
    rng_seed(&r, 1);
    params_init(&net.ps, &r);
    char text[256];
    change_net_config_text(&nc, text, sizeof(text));
    size_t bytes = (size_t)W * H * 3;
    uint8_t *proto = malloc(bytes), *mine = malloc(bytes);
    memcpy(proto, canvas, bytes);
    Photo pp = {proto, W, H, 3}, pm = {mine, W, H, 3};
    proto_reage(P, cfg, &pp, lm, 29, 75);
    for (int k = 0; k < 2; k++) {
        if (k) net.ps.data[params_find(&net.ps, "out.b")->offset + CHANGE_COLOUR] = 1; /* a tenth of the range of red */
        BlobWriter w;
        blobw_begin(&w, BLOB_MAGIC, text);
        blobw_params(&w, "change.", &net.ps, DT_F16);
        size_t len;
        uint8_t *buf = blobw_finish(&w, &len);
        Blob *b = malloc(sizeof(Blob));
        ChangeModel m;
        if (blob_parse(b, buf, len, BLOB_MAGIC, "net", &e) || change_model_load(&m, b, cfg->groups, "net", &e)) {
            CHECK(0, "the change net loads: %s", e.msg);
        } else {
            memcpy(mine, canvas, bytes);
            CHECK(change_reage(&m, P, cfg, &pm, lm, 29, 75) == 0, "the structured path re-ages the face");
            if (k == 0) {
                CHECK(!memcmp(mine, proto, bytes), "a change net that changes nothing leaves the prototypes' result to the byte");
            } else {
                double red = 0, green = 0;
                size_t far = 0;
                for (int y = 0; y < H; y++)
                    for (int x = 0; x < W; x++) {
                        size_t i = ((size_t)y * W + x) * 3;
                        if (abs(x - cx) < 30 && abs(y - cy) < 30) red += mine[i] - proto[i], green += mine[i + 1] - proto[i + 1];
                        if ((abs(x - cx) > 190 || abs(y - cy) > 190) && memcmp(mine + i, proto + i, 3)) far++;
                    }
                red /= 3600, green /= 3600;
                CHECK(red > 8 && red < 14 && fabs(green) < 1.5 && far == 0,
                      "a net adding red reddens the face's centre by %.1f levels (green %.1f), nothing far from it (%zu)", red, green, far);
            }
            change_model_free(&m);
        }
        free(b);
        free(buf);
    }
    free(proto);
    free(mine);
    params_free(&net.ps);
}

static void test_prototype_transform(void) {
    static FaceDetector fd;
    static FaceMesh fm;
    static FaceLandmarks lm, lm2;
    ModelConfig cfg;
    Prototypes P;
    Err e;
    if (load_models(&fd, &fm) || small_prototypes(&fd, &fm, &cfg, &P)) return;
    char path[1200];
    snprintf(path, sizeof(path), "%s/images/29_1_1_20170103183648691.jpg.chip.jpg", data_dir());
    Image img;
    if (image_load(path, &img, &e)) { CHECK(0, "%s", e.msg); proto_free(&P); return; }
    /* the face on a wider canvas of flat grey, so that the untouched surroundings can be checked */
    int W = 400, H = 360, ox = 100, oy = 80;
    size_t bytes = (size_t)W * H * 3;
    uint8_t *canvas = malloc(bytes), *out = malloc(bytes);
    memset(canvas, 128, bytes);
    for (int y = 0; y < img.h; y++) memcpy(canvas + ((size_t)(y + oy) * W + ox) * 3, img.rgb + (size_t)y * img.w * 3, (size_t)img.w * 3);
    Photo p = {canvas, W, H, 3}, q = {out, W, H, 3};
    FaceDet d[4];
    int found = facedet_photo(&fd, &p, d, 4);
    CHECK(found >= 1, "the face is found on the canvas");
    if (found < 1) goto done;
    facemesh_photo(&fm, &p, facemesh_roi(&d[0]), &lm);
    memcpy(out, canvas, bytes);
    CHECK(proto_reage(&P, &cfg, &q, &lm, 29, 29) == 0 && !memcmp(out, canvas, bytes),
          "taken to its own age, the photo is unchanged to the byte");
    memcpy(out, canvas, bytes);
    proto_reage(&P, &cfg, &q, &lm, 29, 75);
    size_t changed = 0, far = 0;
    double face_change = 0;
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) {
            size_t i = ((size_t)y * W + x) * 3;
            int diff = abs(out[i] - canvas[i]) + abs(out[i + 1] - canvas[i + 1]) + abs(out[i + 2] - canvas[i + 2]);
            changed += diff > 0;
            /* more than a face-space margin from the crop (side about 190 around the face's centre) */
            if (diff && (abs(x - (ox + 100)) > 190 || abs(y - (oy + 100)) > 190)) far++;
            if (abs(x - (ox + 100)) < 40 && abs(y - (oy + 100)) < 40) face_change += diff / 3.0;
        }
    CHECK(changed > 5000 && far == 0, "ageing changes the face (%zu pixels) and nothing far from it (%zu)", changed, far);
    CHECK(face_change / 6400 > 2, "the face's centre changes by %.1f levels", face_change / 6400);
    /* lines deepen going old, skin smooths going young (the cheeks and the forehead) */
    double before = fine_detail(&p, ox + 60, oy + 60, 80), older = fine_detail(&q, ox + 60, oy + 60, 80);
    memcpy(out, canvas, bytes);
    proto_reage(&P, &cfg, &q, &lm, 29, 4);
    double younger = fine_detail(&q, ox + 60, oy + 60, 80);
    CHECK(older > before * 1.05 && younger < before * 0.99, "fine detail: %.2f as it is, %.2f at 75, %.2f at 4", before, older,
          younger);
    /* at the photo's own resolution: twice the pixels, the same change (compared back at the first size) */
    {
        Image big, small, src = {W, H, canvas, NULL};
        image_resize(&src, 2 * W, 2 * H, &big);
        Photo pb = {big.rgb, big.w, big.h, 3};
        if (facedet_photo(&fd, &pb, d, 4) >= 1) {
            facemesh_photo(&fm, &pb, facemesh_roi(&d[0]), &lm2);
            proto_reage(&P, &cfg, &pb, &lm2, 29, 75);
            image_resize(&big, W, H, &small);
            memcpy(out, canvas, bytes);
            proto_reage(&P, &cfg, &q, &lm, 29, 75);
            double diff = 0;
            for (int y = oy + 40; y < oy + 160; y++)
                for (int x = ox + 40; x < ox + 160; x++)
                    for (int k = 0; k < 3; k++) diff += abs(small.rgb[((size_t)y * W + x) * 3 + k] - out[((size_t)y * W + x) * 3 + k]);
            diff /= 120.0 * 120 * 3;
            CHECK(diff < 4, "the change at twice the resolution matches the change at one (mean %.2f levels apart)", diff);
            image_free(&small);
        } else {
            CHECK(0, "the face is found at twice the size");
        }
        image_free(&big);
    }
    /* in steps: a coarser grid's plans at the face's own age and at two neighbouring groups' centres, mixed
     * between them (the slider's preview) */
    {
        FaceSetup st;
        FacePlan a = {0}, b = {0}, mix = {0};
        FaceChange c;
        CHECK(face_setup(&st, &p, &lm, 32) == 0 && face_change_alloc(&c) == 0, "a coarse setup");
        CHECK(face_plan_alloc(&a, &st) == 0 && face_plan_alloc(&b, &st) == 0 && face_plan_alloc(&mix, &st) == 0, "plans");
        proto_change(&P, &cfg, 29, 29, &c);
        face_plan(&a, &st, &c);
        face_plan_mix(&mix, &st, &a, &a, 0.3f);
        memcpy(out, canvas, bytes);
        face_plan_render(&st, &mix, &p, 0, 0, &q);
        CHECK(!memcmp(out, canvas, bytes), "planned at the face's own age, nothing changes");
        float lo = group_center(&cfg, cfg.groups - 2), hi = group_center(&cfg, cfg.groups - 1);
        proto_change(&P, &cfg, 29, lo, &c);
        face_plan(&a, &st, &c);
        proto_change(&P, &cfg, 29, hi, &c);
        face_plan(&b, &st, &c);
        double gap[3] = {0};
        float ts[3] = {0, 0.5f, 1};
        for (int k = 1; k < 3; k++) {
            memcpy(out, canvas, bytes);
            face_plan_mix(&mix, &st, &a, &b, ts[k]);
            face_plan_render(&st, &mix, &p, 0, 0, &q);
            uint8_t *full = malloc(bytes);
            memcpy(full, canvas, bytes);
            Photo pf = {full, W, H, 3};
            proto_reage(&P, &cfg, &pf, &lm, 29, lo + ts[k] * (hi - lo));
            for (int y = oy + 20; y < oy + 180; y++)
                for (int x = ox + 20; x < ox + 180; x++)
                    for (int ch = 0; ch < 3; ch++) gap[k] += abs(out[((size_t)y * W + x) * 3 + ch] - full[((size_t)y * W + x) * 3 + ch]);
            gap[k] /= 160.0 * 160 * 3;
            free(full);
        }
        CHECK(gap[2] < 2.5 && gap[1] < 3, "the coarse plan at %.0f within %.2f levels of the full change, the mix halfway from %.0f within %.2f",
              hi, gap[2], lo, gap[1]);
        face_plan_free(&a), face_plan_free(&b), face_plan_free(&mix);
        face_change_free(&c);
        face_setup_free(&st);
    }
    check_change_reage(&P, &cfg, &lm, canvas, W, H, ox + 100, oy + 100);
    {
        /* the same bytes on one thread and on two */
        uint8_t *one = malloc(bytes), *two = malloc(bytes);
        memcpy(one, canvas, bytes), memcpy(two, canvas, bytes);
        Photo p1 = {one, W, H, 3}, p2 = {two, W, H, 3};
        parallel_set_threads(1);
        int r1 = proto_reage(&P, &cfg, &p1, &lm, 29, 71);
        parallel_set_threads(2);
        int r2 = proto_reage(&P, &cfg, &p2, &lm, 29, 71);
        parallel_set_threads(0);
        CHECK(r1 == 0 && r2 == 0 && memcmp(one, two, bytes) == 0 && memcmp(one, canvas, bytes) != 0,
              "re-aged alike on one thread and on two");
        free(one), free(two);
    }
done:
    free(canvas);
    free(out);
    image_free(&img);
    proto_free(&P);
}

/* ---- the structured change's renderer ---- */

typedef struct {
    ChangeShape sh;
    float *field, *up, *x, *bands, *mid, *y, *r;
} RenderCase;

static double render_loss(void *ctx) {
    RenderCase *c = ctx;
    change_upsample_forward(c->up, c->field, c->sh);
    change_render_forward(c->y, c->mid, c->x, c->bands, c->up, c->sh);
    return dot(c->y, c->r, (size_t)c->sh.B * 3 * c->sh.S * c->sh.S);
}

static void test_change_render(void) {
    ChangeShape sh = {2, 16, 4};
    size_t n = (size_t)sh.S * sh.S, nf = (size_t)sh.B * CHANGE_FIELDS * sh.s * sh.s;
    RenderCase c = {sh, calloc(nf, 4), calloc((size_t)sh.B * CHANGE_FIELDS * n, 4), calloc(sh.B * 3 * n, 4),
                    calloc((size_t)sh.B * CHANGE_BANDS * n, 4), calloc(sh.B * 3 * n, 4), calloc(sh.B * 3 * n, 4), calloc(sh.B * 3 * n, 4)};
    float *dup = calloc((size_t)sh.B * CHANGE_FIELDS * n, 4), *dfield = calloc(nf, 4), *scratch = calloc(3 * n, 4);
    fill_uniform(c.x, sh.B * 3 * n, -1, 1, 1);
    fill_uniform(c.bands, (size_t)sh.B * CHANGE_BANDS * n, -0.2f, 0.2f, 2);
    fill_uniform(c.r, sh.B * 3 * n, -1, 1, 3);
    /* no change: the face itself, to the bit */
    render_loss(&c);
    CHECK(!memcmp(c.y, c.x, sizeof(float) * sh.B * 3 * n), "an empty change renders the face unchanged");
    /* a displacement of one pixel to the right everywhere: the face shifted (away from the edge) */
    for (int b = 0; b < sh.B; b++)
        for (int k = 0; k < sh.s * sh.s; k++) c.field[((size_t)b * CHANGE_FIELDS + CHANGE_DX) * sh.s * sh.s + k] = 1;
    render_loss(&c);
    float worst = 0;
    for (int i = 0; i < sh.S; i++)
        for (int j = 0; j + 1 < sh.S; j++) worst = fmaxf(worst, fabsf(c.y[i * sh.S + j] - c.x[i * sh.S + j + 1]));
    CHECK(worst < 1e-6f, "a displacement of one pixel samples the next pixel (off by %g)", worst);
    /* every field against finite differences */
    Rng r;
    rng_seed(&r, 11);
    for (size_t i = 0; i < nf; i++) {
        int f = (int)(i / (sh.s * sh.s)) % CHANGE_FIELDS;
        c.field[i] = f < CHANGE_COLOUR ? 3 * (rng_uniform(&r) - 0.5f) + 0.37f : f < CHANGE_GAIN ? 0.2f * (rng_uniform(&r) - 0.5f)
                                                                                               : rng_uniform(&r) - 0.5f;
    }
    render_loss(&c);
    change_render_backward(dup, c.r, c.mid, c.bands, c.up, scratch, sh);
    change_upsample_backward(dfield, dup, sh);
    double err = gradcheck(render_loss, &c, c.field, dfield, nf, 200, 1e-3f);
    CHECK(err < 2e-2, "the change's renderer against finite differences: relative error %.2e", err);
    free(c.field); free(c.up); free(c.x); free(c.bands); free(c.mid); free(c.y); free(c.r);
    free(dup); free(dfield); free(scratch);
}

void test_prototypes(void) {
    test_change_render();
    test_pyramid();
    test_prototype_sums();
    test_prototype_blob();
    test_prototype_strengths();
    test_prototype_transform();
}
