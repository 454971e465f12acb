/* The face detector and alignment: its layers against plain references,
 * anchors, weighted NMS, the similarity fit, rotated crops, and the
 * converted BlazeFace finding test faces pasted into larger photos at known
 * places, sizes and angles; the converted Face Mesh on the same photos.
 * Also photo.c's softening of a change's colour. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "../src/facedetect.h"
#include "../src/facemesh.h"
#include "../src/facespace.h"
#include "../src/fileio.h"
#include "../src/image.h"
#include "../src/kernels.h"
#include "../src/layers.h"
#include "../src/rng.h"
#include "check.h"

#define PI_F 3.14159265f

static float max_abs_diff(const float *a, const float *b, size_t n) {
    float m = 0;
    for (size_t i = 0; i < n; i++) m = fmaxf(m, fabsf(a[i] - b[i]));
    return m;
}

/* TensorFlow's SAME depthwise convolution written out: explicit zero padding,
 * then a VALID convolution. */
static void dwconv_reference(float *out, const float *inp, const float *w, const float *b, int C, int H, int W, int S) {
    int OH = (H + S - 1) / S, OW = (W + S - 1) / S;
    int ph = (OH - 1) * S + 3 - H, pw = (OW - 1) * S + 3 - W;
    if (ph < 0) ph = 0;
    if (pw < 0) pw = 0;
    int top = ph / 2, left = pw / 2, PH = H + ph, PW = W + pw;
    float *pad = calloc((size_t)C * PH * PW, sizeof(float));
    for (int c = 0; c < C; c++)
        for (int i = 0; i < H; i++)
            for (int j = 0; j < W; j++) pad[((size_t)c * PH + i + top) * PW + j + left] = inp[((size_t)c * H + i) * W + j];
    for (int c = 0; c < C; c++)
        for (int i = 0; i < OH; i++)
            for (int j = 0; j < OW; j++) {
                double acc = b[c];
                for (int a = 0; a < 3; a++)
                    for (int q = 0; q < 3; q++) acc += (double)w[c * 9 + a * 3 + q] * pad[((size_t)c * PH + i * S + a) * PW + j * S + q];
                out[((size_t)c * OH + i) * OW + j] = (float)acc;
            }
    free(pad);
}

static void test_layers_of_detector(void) {
    Rng r;
    rng_seed(&r, 7);
    /* PReLU: each channel's own slope on its negatives (odd lengths reach the kernels' tails) */
    {
        enum { C = 3, HW = 37 };
        float x[C * HW], y[C * HW], alpha[C] = {0.25f, -0.5f, 1.5f}, worst = 0;
        for (int i = 0; i < C * HW; i++) x[i] = rng_normal(&r);
        prelu_forward(y, x, alpha, 1, C, HW);
        for (int i = 0; i < C * HW; i++) worst = fmaxf(worst, fabsf(y[i] - (x[i] > 0 ? x[i] : alpha[i / HW] * x[i])));
        CHECK(worst == 0, "prelu: each channel's slope (worst %g)", worst);
    }
    static const int shapes[][4] = {{3, 9, 11, 1}, {2, 64, 64, 2}, {4, 1, 7, 1}, {5, 8, 8, 2}, {2, 7, 5, 2}, {3, 6, 13, 1}};
    for (size_t t = 0; t < sizeof(shapes) / sizeof(shapes[0]); t++) {
        int C = shapes[t][0], H = shapes[t][1], W = shapes[t][2], S = shapes[t][3];
        int OH = same_out_size(H, S), OW = same_out_size(W, S);
        float *x = malloc(sizeof(float) * C * H * W), *w = malloc(sizeof(float) * C * 9), b[8];
        float *y = malloc(sizeof(float) * C * OH * OW), *ref = malloc(sizeof(float) * C * OH * OW);
        for (int i = 0; i < C * H * W; i++) x[i] = rng_normal(&r);
        for (int i = 0; i < C * 9; i++) w[i] = rng_normal(&r);
        for (int i = 0; i < C; i++) b[i] = rng_normal(&r);
        dwconv3_forward(y, x, w, b, 1, C, H, W, S);
        dwconv_reference(ref, x, w, b, C, H, W, S);
        float d = max_abs_diff(y, ref, (size_t)C * OH * OW);
        CHECK(d < 1e-5f, "dwconv3 %dx%dx%d stride %d differs from the reference by %g", C, H, W, S, d);
        free(x); free(w); free(y); free(ref);
    }
    CHECK(same_out_size(128, 2) == 64 && same_pad_before(128, 5, 2) == 1, "SAME 5x5/2 on 128: out 64, pad 1 before");
    CHECK(same_pad_before(64, 3, 2) == 0 && same_pad_before(64, 3, 1) == 1, "SAME 3x3 paddings");

    /* the row kernel against its reference (identical natively; the WASM
     * build's SIMD version is compared in tests/wasm.test.js) */
    float r0[37], r1[37], r2[37], k[9], y1[37], y2[37];
    for (int i = 0; i < 37; i++) { r0[i] = rng_normal(&r); r1[i] = rng_normal(&r); r2[i] = rng_normal(&r); }
    for (int i = 0; i < 9; i++) k[i] = rng_normal(&r);
    kernel_dw3_row(y1, r0, r1, r2, k, 0.25f, 37);
    kernel_dw3_row_ref(y2, r0, r1, r2, k, 0.25f, 37);
    CHECK(max_abs_diff(y1, y2, 37) < 1e-6f, "kernel_dw3_row matches its reference");
    float manual = 0.25f + k[1] * r0[0] + k[2] * r0[1] + k[4] * r1[0] + k[5] * r1[1] + k[7] * r2[0] + k[8] * r2[1];
    CHECK(fabsf(y2[0] - manual) < 1e-5f, "kernel_dw3_row's left edge reads zero padding");

    float m[2 * 4 * 6], mo[2 * 2 * 3];
    for (int i = 0; i < 48; i++) m[i] = rng_normal(&r);
    maxpool2_forward(mo, m, 1, 2, 4, 6);
    int ok = 1;
    for (int c = 0; c < 2; c++)
        for (int i = 0; i < 2; i++)
            for (int j = 0; j < 3; j++) {
                const float *p = m + c * 24 + 2 * i * 6 + 2 * j;
                ok &= mo[c * 6 + i * 3 + j] == fmaxf(fmaxf(p[0], p[1]), fmaxf(p[6], p[7]));
            }
    CHECK(ok, "maxpool2 takes each 2x2 block's maximum");

    float zp[2 * 5 * 6];
    float src[2 * 2 * 3] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12};
    zeropad_forward(zp, src, 1, 2, 2, 3, 1, 1, 2, 2);
    CHECK(zp[0] == 0 && zp[1 * 6 + 1] == 1 && zp[2 * 6 + 3] == 6 && zp[30 + 6 + 1] == 7 && zp[30 + 4 * 6 + 5] == 0,
          "zeropad places the image after top/left zeros");
}

static FaceDet det(float score, float x0, float y0, float side, float kx) {
    FaceDet d;
    memset(&d, 0, sizeof(d));
    d.score = score;
    d.x0 = x0;
    d.y0 = y0;
    d.x1 = x0 + side;
    d.y1 = y0 + side;
    for (int k = 0; k < KP_COUNT; k++) { d.kp[k][0] = kx; d.kp[k][1] = kx; }
    return d;
}

static void test_nms(void) {
    /* two overlapping boxes merge into their score-weighted mean; a distant
     * one stays; the merged score is the best one's */
    FaceDet d[3] = {det(0.6f, 10, 10, 100, 30), det(0.9f, 500, 500, 50, 0), det(0.8f, 20, 10, 100, 60)};
    int n = facedet_nms(d, 3, 0.3f);
    CHECK(n == 2, "NMS keeps 2 of 3 boxes, got %d", n);
    CHECK(d[0].score == 0.9f && d[0].x0 == 500, "the best box comes first");
    float wx = (0.8f * 20 + 0.6f * 10) / 1.4f, wk = (0.8f * 60 + 0.6f * 30) / 1.4f;
    CHECK(fabsf(d[1].x0 - wx) < 1e-4f && fabsf(d[1].kp[3][0] - wk) < 1e-4f && d[1].score == 0.8f,
          "overlapping boxes average by score: x0 %g (want %g), keypoint %g (want %g)", d[1].x0, wx, d[1].kp[3][0], wk);
    FaceDet e[2] = {det(0.7f, 0, 0, 100, 0), det(0.6f, 60, 0, 100, 0)};  /* IoU 40/160 = 0.25 */
    CHECK(facedet_nms(e, 2, 0.3f) == 2, "boxes overlapping by IoU 0.25 both stay at threshold 0.3");
}

static void template_through(CropBox b, float kp[KP_COUNT][2]) {
    float c = cosf(b.angle), s = sinf(b.angle);
    for (int k = 0; k < KP_COUNT; k++) {
        float u = (FACE_TEMPLATE[k][0] - 0.5f) * b.size, v = (FACE_TEMPLATE[k][1] - 0.5f) * b.size;
        kp[k][0] = b.cx + c * u - s * v;
        kp[k][1] = b.cy + s * u + c * v;
    }
}

static void test_alignment_math(void) {
    CropBox truth[] = {{100, 80, 60, 0.0f}, {640.5f, 300, 412, 0.5f}, {50, 900, 33, -1.2f}, {10, 10, 2000, 3.0f}};
    for (size_t i = 0; i < sizeof(truth) / sizeof(truth[0]); i++) {
        FaceDet f;
        memset(&f, 0, sizeof(f));
        template_through(truth[i], f.kp);
        CropBox b = facedet_crop(&f);
        float da = fabsf(remainderf(b.angle - truth[i].angle, 2 * PI_F));
        CHECK(fabsf(b.cx - truth[i].cx) < 1e-3f * truth[i].size && fabsf(b.cy - truth[i].cy) < 1e-3f * truth[i].size &&
              fabsf(b.size / truth[i].size - 1) < 1e-4f && da < 1e-4f,
              "the similarity fit recovers box %zu: got %g,%g %g %g", i, b.cx, b.cy, b.size, b.angle);
    }
    /* template sanity: eyes level and apart, the mouth below the nose, the
     * right eye (the person's) on the image's left */
    CHECK(FACE_TEMPLATE[KP_RIGHT_EYE][0] < FACE_TEMPLATE[KP_LEFT_EYE][0] &&
          fabsf(FACE_TEMPLATE[KP_RIGHT_EYE][1] - FACE_TEMPLATE[KP_LEFT_EYE][1]) < 0.03f &&
          FACE_TEMPLATE[KP_NOSE][1] < FACE_TEMPLATE[KP_MOUTH][1], "the template is a face");

    /* a rotated crop samples where the rotation says: a photo whose red is
     * x and green is y, cropped by a box turned a quarter turn clockwise */
    int W = 64, H = 64;
    uint8_t *px = malloc((size_t)W * H * 3);
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) {
            px[(y * W + x) * 3] = (uint8_t)(x * 4);
            px[(y * W + x) * 3 + 1] = (uint8_t)(y * 4);
            px[(y * W + x) * 3 + 2] = 0;
        }
    Photo p = {px, W, H, 3};
    CropBox b = {32, 32, 32, PI_F / 2};
    float face[3 * 8 * 8];
    photo_crop(&p, b, 8, face);
    /* crop pixel (row 0, col 7): box offset u = +14, v = -14 -> photo x = 32 + 14 = 46, y = 32 + 14 = 46 */
    float red = (face[0 * 64 + 0 * 8 + 7] + 1) * 127.5f, green = (face[1 * 64 + 0 * 8 + 7] + 1) * 127.5f;
    CHECK(fabsf(red - 4 * 45.5f) < 3 && fabsf(green - 4 * 45.5f) < 3,
          "a quarter-turned crop's top-right pixel comes from the photo's lower right (red %g green %g)", red, green);
    free(px);
}

/* Pastes a face crop into a background photo so that the crop's square
 * lands on box (bilinear; the background elsewhere). */
static void paste(uint8_t *bg, int W, int H, int ch, const Image *face, CropBox box) {
    float c = cosf(box.angle), s = sinf(box.angle), half = box.size * 0.5f, k = face->w / box.size;
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) {
            float dx = x + 0.5f - box.cx, dy = y + 0.5f - box.cy;
            float u = (c * dx + s * dy + half) * k - 0.5f, v = (-s * dx + c * dy + half) * k - 0.5f;
            if (u < 0 || v < 0 || u > face->w - 1 || v > face->h - 1) continue;
            int u0 = (int)u, v0 = (int)v, u1 = u0 + 1 < face->w ? u0 + 1 : u0, v1 = v0 + 1 < face->h ? v0 + 1 : v0;
            float fu = u - u0, fv = v - v0;
            for (int q = 0; q < 3; q++) {
                const uint8_t *f = face->rgb;
                float val = (f[(v0 * face->w + u0) * 3 + q] * (1 - fu) + f[(v0 * face->w + u1) * 3 + q] * fu) * (1 - fv) +
                            (f[(v1 * face->w + u0) * 3 + q] * (1 - fu) + f[(v1 * face->w + u1) * 3 + q] * fu) * fv;
                bg[((size_t)y * W + x) * ch + q] = (uint8_t)(val + 0.5f);
            }
        }
}

static void background(uint8_t *bg, int W, int H, int ch, Rng *r) {
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++)
            for (int q = 0; q < ch; q++) {
                float v = q == 3 ? 255 : 60 + 100.0f * x / W + 40.0f * y / H + 30 * q + 12 * rng_uniform(r);
                bg[((size_t)y * W + x) * ch + q] = (uint8_t)fminf(v, 255);
            }
}

/* The committed detector and mesh, loaded once for the tests that need them. */
static int load_detector(FaceDetector *fd) {
    uint8_t *buf;
    size_t len;
    Err e;
    int rc = file_read_all("weights/blazeface.blob", 1 << 24, &buf, &len, &e);
    if (!rc) {
        rc = facedet_load(fd, buf, len, "weights/blazeface.blob", &e);
        free(buf);
    }
    CHECK(rc == 0, "the converted detector loads%s%s", rc ? ": " : "", rc ? e.msg : "");
    return rc;
}

static int load_mesh(FaceMesh *fm) {
    uint8_t *buf;
    size_t len;
    Err e;
    int rc = file_read_all("weights/facemesh.blob", 1 << 24, &buf, &len, &e);
    if (!rc) {
        rc = facemesh_load(fm, buf, len, "weights/facemesh.blob", &e);
        free(buf);
    }
    CHECK(rc == 0, "the converted face mesh loads%s%s", rc ? ": " : "", rc ? e.msg : "");
    return rc;
}

static void test_detector_on_photos(void) {
    Err e;
    static FaceDetector fd;
    static FaceMesh fm;
    static FaceLandmarks lm;
    if (load_detector(&fd) || load_mesh(&fm)) return;
    Rng r;
    rng_seed(&r, 11);
    /* no face: a smooth noisy background; the mesh does not see a face in it either */
    {
        int W = 320, H = 240;
        uint8_t *bg = malloc((size_t)W * H * 3);
        background(bg, W, H, 3, &r);
        Photo p = {bg, W, H, 3};
        FaceDet d[4];
        CHECK(facedet_photo(&fd, &p, d, 4) == 0, "no face is found in a faceless background");
        facemesh_photo(&fm, &p, (CropBox){160, 120, 150, 0}, &lm);
        CHECK(lm.score < 0.1f, "the mesh's face flag on a faceless square: %.3f", lm.score);
        free(bg);
    }
    const char *data = getenv("REAGE_TEST_DATA");
    if (!data) data = "../shared/data/utkface-part1";
    /* test-split faces of varied age, sex and ethnicity */
    static const char *faces[] = {
        "2_0_0_20161219162259070.jpg.chip.jpg", "29_1_1_20170103183648691.jpg.chip.jpg",
        "36_0_2_20170104165035320.jpg.chip.jpg", "45_1_3_20170104235059987.jpg.chip.jpg",
        "61_1_2_20170105174916768.jpg.chip.jpg", "80_1_0_20170109142913604.jpg.chip.jpg",
    };
    /* where each face goes: photo size, box (centre, side, angle), channels */
    static const struct { int W, H, ch; CropBox box; const char *what; } layouts[] = {
        {200, 200, 3, {100, 100, 200, 0}, "the crop itself"},
        {800, 600, 4, {610, 170, 110, 0}, "small and off-centre"},
        {500, 500, 3, {260, 240, 230, 25 * PI_F / 180}, "tilted 25 degrees"},
        {640, 480, 4, {190, 300, 260, -15 * PI_F / 180}, "off-centre, tilted -15 degrees"},
        {1000, 750, 3, {200, 560, 100, 10 * PI_F / 180}, "a tenth of the photo, in a corner"},
    };
    int tried = 0, found = 0, aligned = 0, eyes_ok = 0, meshed = 0, mesh_eyes_ok = 0, mesh_aligned = 0;
    double angle_err[2] = {0, 0}, centre_err[2] = {0, 0}, size_err[2] = {0, 0}; /* keypoints, mesh */
    for (size_t f = 0; f < sizeof(faces) / sizeof(faces[0]); f++) {
        char path[1024];
        snprintf(path, sizeof(path), "%s/images/%s", data, faces[f]);
        Image img;
        if (image_load(path, &img, &e)) continue;
        for (size_t l = 0; l < sizeof(layouts) / sizeof(layouts[0]); l++) {
            int W = layouts[l].W, H = layouts[l].H, ch = layouts[l].ch;
            CropBox t = layouts[l].box;
            uint8_t *bg = malloc((size_t)W * H * ch);
            background(bg, W, H, ch, &r);
            paste(bg, W, H, ch, &img, t);
            Photo p = {bg, W, H, ch};
            FaceDet d[4];
            int n = facedet_photo(&fd, &p, d, 4);
            tried++;
            if (n < 1) {
                fprintf(stderr, "  no face in %s (%s)\n", faces[f], layouts[l].what);
                free(bg);
                continue;
            }
            found++;
            CropBox b = facedet_crop(&d[0]);
            float dc = hypotf(b.cx - t.cx, b.cy - t.cy) / t.size, ds = b.size / t.size;
            float da = fabsf(remainderf(b.angle - t.angle, 2 * PI_F)) * 180 / PI_F;
            if (dc < 0.1f && ds > 0.85f && ds < 1.18f && da < 8) aligned++;
            else fprintf(stderr, "  %s (%s): centre off by %.2f sides, size x%.2f, angle off %.1f deg\n", faces[f],
                         layouts[l].what, dc, ds, da);
            float want[KP_COUNT][2];
            template_through(t, want);
            float de = fmaxf(hypotf(d[0].kp[KP_RIGHT_EYE][0] - want[KP_RIGHT_EYE][0], d[0].kp[KP_RIGHT_EYE][1] - want[KP_RIGHT_EYE][1]),
                             hypotf(d[0].kp[KP_LEFT_EYE][0] - want[KP_LEFT_EYE][0], d[0].kp[KP_LEFT_EYE][1] - want[KP_LEFT_EYE][1]));
            if (de < 0.1f * t.size) eyes_ok++;
            /* the mesh on the detection: a face, its eyes (the mean of each eye's two corners) where the truth has them */
            facemesh_photo(&fm, &p, facemesh_roi(&d[0]), &lm);
            meshed += lm.score > 0.9f;
            static const int corners[2][2] = {{33, 133}, {263, 362}}; /* the person's right eye, then left */
            float dm = 0;
            for (int k = 0; k < 2; k++) {
                float ex = 0.5f * (lm.pt[corners[k][0]][0] + lm.pt[corners[k][1]][0]);
                float ey = 0.5f * (lm.pt[corners[k][0]][1] + lm.pt[corners[k][1]][1]);
                dm = fmaxf(dm, hypotf(ex - want[k][0], ey - want[k][1]));
            }
            if (dm < 0.06f * t.size) mesh_eyes_ok++;
            /* the crop from the mesh against the one from the keypoints */
            CropBox mc;
            FaceDet one = d[0];
            if (facemesh_confirm(&fm, &p, &one, 1, &mc, NULL) == 1) {
                float mdc = hypotf(mc.cx - t.cx, mc.cy - t.cy) / t.size, mds = mc.size / t.size;
                float mda = fabsf(remainderf(mc.angle - t.angle, 2 * PI_F)) * 180 / PI_F;
                if (mdc < 0.1f && mds > 0.85f && mds < 1.18f && mda < 8) mesh_aligned++;
                angle_err[0] += da; angle_err[1] += mda;
                centre_err[0] += dc; centre_err[1] += mdc;
                size_err[0] += fabsf(logf(ds)); size_err[1] += fabsf(logf(mds));
            }
            else fprintf(stderr, "  %s (%s): mesh eyes off by %.3f sides (face flag %.2f)\n", faces[f], layouts[l].what,
                         dm / t.size, lm.score);
            free(bg);
        }
        image_free(&img);
    }
    CHECK(tried == 30, "the six test faces load (%d of 30 cases ran)", tried);
    CHECK(found == tried, "a face is found in every pasted photo: %d of %d", found, tried);
    CHECK(aligned >= tried - 1, "the aligned crop matches the pasted square (centre within 0.1 side, size within 15%%, "
                                "angle within 8 degrees) in %d of %d", aligned, tried);
    CHECK(eyes_ok >= tried - 1, "both eye keypoints within 0.1 side of the truth in %d of %d", eyes_ok, tried);
    CHECK(meshed == found, "the mesh's face flag is above 0.9 on every detected face: %d of %d", meshed, found);
    fprintf(stderr, "  crops, keypoints -> mesh: angle off %.2f -> %.2f degrees, centre %.3f -> %.3f sides, log size %.3f -> %.3f\n",
            angle_err[0] / found, angle_err[1] / found, centre_err[0] / found, centre_err[1] / found, size_err[0] / found,
            size_err[1] / found);
    CHECK(mesh_aligned >= aligned, "the crop from the mesh matches the pasted square in %d of %d (from the keypoints: %d)",
          mesh_aligned, found, aligned);
    CHECK(angle_err[1] < angle_err[0] && centre_err[1] <= centre_err[0] * 1.1 && size_err[1] <= size_err[0] * 1.1,
          "the crop from the mesh is no worse than from the keypoints: mean angle off %.2f (keypoints %.2f) degrees, "
          "centre %.3f (%.3f) sides, size %.3f (%.3f)", angle_err[1] / found, angle_err[0] / found, centre_err[1] / found,
          centre_err[0] / found, size_err[1] / found, size_err[0] / found);
    CHECK(mesh_eyes_ok == found, "the mesh's eyes within 0.06 side of the truth on every face: %d of %d", mesh_eyes_ok, found);
    facedet_free(&fd);
    facemesh_free(&fm);
}

/* The change's brightness stays as it was (to float rounding); its colour is
 * what a 17x17 binomial (four 5x5 passes) makes of it, checked against that
 * kernel written out in full where no edge is near. */
static void test_soften_change_colour(void) {
    enum { R = 40 };
    size_t n = (size_t)R * R;
    float *ch = malloc(sizeof(float) * 3 * n), *orig = malloc(sizeof(float) * 3 * n), *scratch = malloc(sizeof(float) * 4 * n);
    Rng rng;
    rng_seed(&rng, 11);
    for (size_t i = 0; i < 3 * n; i++) orig[i] = 40.0f * (rng_uniform(&rng) - 0.5f);
    memcpy(ch, orig, sizeof(float) * 3 * n);
    soften_change_colour(ch, R, scratch);
    float worst_bright = 0, worst_ref = 0;
    double var_before = 0, var_after = 0;
    for (size_t i = 0; i < n; i++) {
        float b0 = (orig[i] + orig[n + i] + orig[2 * n + i]) / 3, b1 = (ch[i] + ch[n + i] + ch[2 * n + i]) / 3;
        worst_bright = fmaxf(worst_bright, fabsf(b0 - b1));
        for (int c = 0; c < 3; c++) {
            var_before += (orig[c * n + i] - b0) * (orig[c * n + i] - b0);
            var_after += (ch[c * n + i] - b1) * (ch[c * n + i] - b1);
        }
    }
    double binom[17];
    for (int k = 0; k <= 16; k++) { binom[k] = 1; for (int j = 0; j < k; j++) binom[k] = binom[k] * (16 - j) / (j + 1); }
    for (int c = 0; c < 3; c++)
        for (int y = 8; y < R - 8; y++)
            for (int x = 8; x < R - 8; x++) {
                double acc = 0;
                for (int u = 0; u <= 16; u++)
                    for (int v = 0; v <= 16; v++) {
                        size_t j = (size_t)(y + u - 8) * R + (x + v - 8);
                        double b = (orig[j] + orig[n + j] + orig[2 * n + j]) / 3.0;
                        acc += binom[u] * binom[v] / 4294967296.0 * (orig[c * n + j] - b);
                    }
                size_t i = (size_t)y * R + x;
                double b = (orig[i] + orig[n + i] + orig[2 * n + i]) / 3.0;
                worst_ref = fmaxf(worst_ref, (float)fabs(ch[c * n + i] - (b + acc)));
            }
    CHECK(worst_bright < 1e-4f, "each pixel's brightness (mean of R, G, B) is kept (off by %g)", worst_bright);
    CHECK(worst_ref < 1e-3f, "colour as a 17x17 binomial would make it, away from the edges (off by %g)", worst_ref);
    CHECK(var_after < 0.05 * var_before, "random colour loses most of its variance: %.0f -> %.0f", var_before, var_after);
    /* sharp grey lines (wrinkles) and an even tint are left exactly as they were */
    for (size_t i = 0; i < n; i++) {
        float grey = (i / R) % 3 == 0 ? -30.0f : 5.0f;
        orig[i] = grey + 8.0f;
        orig[n + i] = grey;
        orig[2 * n + i] = grey - 8.0f;
    }
    memcpy(ch, orig, sizeof(float) * 3 * n);
    soften_change_colour(ch, R, scratch);
    CHECK(max_abs_diff(ch, orig, 3 * n) < 1e-4f, "grey lines under a warm tint come through unchanged (off by %g)",
          max_abs_diff(ch, orig, 3 * n));
    free(ch);
    free(orig);
    free(scratch);
}

/* A face taken younger fades the photo's brightness detail finer than the
 * crop: with no change from the generator and the gain at -1 the box's
 * inside becomes the crop brought back up (its brightness, to rounding),
 * at -0.5 keeps half of that detail, and at 0 is left alone; colour
 * differences between channels are kept. The crop brought back up is
 * written out here for an axis-aligned box of 4 photo pixels a crop pixel. */
static void test_detail_fade(void) {
    CHECK(photo_detail_gain(30, 30) == 0 && photo_detail_gain(30, 70) == 0, "a face kept or taken older keeps its detail");
    CHECK(fabsf(photo_detail_gain(40, 25) + 15 / DETAIL_FADE_YEARS) < 1e-6f && photo_detail_gain(70, 5) == -1,
          "15 years younger fades %g of it, 65 years all of it", -photo_detail_gain(40, 25));
    enum { W = 48, R = 8, SIDE = 32 };
    uint8_t *orig = malloc((size_t)W * W * 3), *px = malloc((size_t)W * W * 3);
    Rng rng;
    rng_seed(&rng, 5);
    for (int i = 0; i < W * W; i++) {
        float base = 60 + 120 * rng_uniform(&rng);
        orig[i * 3] = (uint8_t)(base + 20);
        orig[i * 3 + 1] = (uint8_t)base;
        orig[i * 3 + 2] = (uint8_t)(base - 20);
    }
    Photo p = {px, W, W, 3};
    CropBox box = {24, 24, SIDE, 0.0f}; /* photo pixels 8..39 */
    float face[3 * R * R], change[3 * R * R];
    memset(change, 0, sizeof(change));
    memcpy(px, orig, (size_t)W * W * 3);
    photo_crop(&p, box, R, face);
    photo_apply_change(&p, box, R, change, face, 0.0f);
    CHECK(memcmp(px, orig, (size_t)W * W * 3) == 0, "no change and gain 0 leave the photo as it was");
    const float gains[] = {-1.0f, -0.5f};
    for (int g = 0; g < 2; g++) {
        memcpy(px, orig, (size_t)W * W * 3);
        photo_apply_change(&p, box, R, change, face, gains[g]);
        float worst = 0, worst_colour = 0, moved = 0;
        /* well inside the box (past the 8 % feather): photo pixel x sits at crop u = (x + 0.5 - 8) / 4 - 0.5 */
        for (int y = 12; y < 36; y++)
            for (int x = 12; x < 36; x++) {
                float u = (x + 0.5f - 8) / 4 - 0.5f, v = (y + 0.5f - 8) / 4 - 0.5f;
                int u0 = (int)floorf(u), v0 = (int)floorf(v);
                float fu = u - u0, fv = v - v0, coarse = 0, before = 0, after = 0;
                for (int c = 0; c < 3; c++) {
                    const float *f = face + c * R * R;
                    float up = (f[v0 * R + u0] * (1 - fu) + f[v0 * R + u0 + 1] * fu) * (1 - fv) +
                               (f[(v0 + 1) * R + u0] * (1 - fu) + f[(v0 + 1) * R + u0 + 1] * fu) * fv;
                    coarse += (up + 1) * 127.5f / 3;
                    before += orig[(y * W + x) * 3 + c] / 3.0f;
                    after += px[(y * W + x) * 3 + c] / 3.0f;
                }
                float want = coarse + (1 + gains[g]) * (before - coarse);
                worst = fmaxf(worst, fabsf(after - want));
                moved = fmaxf(moved, fabsf(after - before));
                int i = (y * W + x) * 3;
                worst_colour = fmaxf(worst_colour, fabsf((float)(px[i] - px[i + 1]) - (orig[i] - orig[i + 1])));
            }
        CHECK(worst <= 1.0f && moved > 20, "gain %g: the detail finer than the crop scaled by %g (off by %g levels of a %g change)",
              gains[g], 1 + gains[g], worst, moved);
        CHECK(worst_colour <= 1.0f, "gain %g: the channels' differences kept (off by %g)", gains[g], worst_colour);
    }
    free(orig);
    free(px);
}

/* Whether canonical point (u, v) lies inside the mean mesh (one of its triangles). */
static int inside_mesh(double u, double v) {
    for (int t = 0; t < FACESPACE_TRIANGLES; t++) {
        const float *a = FACESPACE_MEAN[FACESPACE_TRIS[t][0]], *b = FACESPACE_MEAN[FACESPACE_TRIS[t][1]],
                    *c = FACESPACE_MEAN[FACESPACE_TRIS[t][2]];
        double d1 = (u - b[0]) * (a[1] - b[1]) - (a[0] - b[0]) * (v - b[1]);
        double d2 = (u - c[0]) * (b[1] - c[1]) - (b[0] - c[0]) * (v - c[1]);
        double d3 = (u - a[0]) * (c[1] - a[1]) - (c[0] - a[0]) * (v - a[1]);
        if (!((d1 < 0 || d2 < 0 || d3 < 0) && (d1 > 0 || d2 > 0 || d3 > 0))) return 1;
    }
    return 0;
}

/* The face space on a test face pasted tilted into a larger photo: the
 * warp passes through the mesh's points and its two directions invert each
 * other; a photo warped into the face space and back is the photo inside
 * the mesh; landmarks moved by known offsets move the pixels there and
 * leave the far background where it was. */
/* The photo's resampler: the cubic keeps pixels at their centres, follows a
 * ramp exactly between them, and keeps most of a one-pixel stripe pattern
 * half a pixel off, where the bilinear sample flattens it to grey. */
static void test_cubic_sampler(void) {
    enum { W = 8, H = 6 };
    uint8_t px[W * H * 4];
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++)
            for (int c = 0; c < 4; c++) px[(y * W + x) * 4 + c] = (uint8_t)((x * 37 + y * 91 + c * 53) % 256);
    double out[3], err = 0;
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) {
            pixels_sample_rgb_cubic(px, W, H, 4, x, y, out);
            for (int c = 0; c < 3; c++) err = fmax(err, fabs(out[c] - px[(y * W + x) * 4 + c]));
        }
    CHECK(err < 1e-9, "cubic: each pixel centre gives the pixel (off by %g)", err);
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++)
            for (int c = 0; c < 3; c++) px[(y * W + x) * 3 + c] = (uint8_t)(10 + 20 * x + 7 * y + c);
    err = 0;
    for (double y = 1; y <= H - 2; y += 0.37)
        for (double x = 1; x <= W - 2; x += 0.29) {
            pixels_sample_rgb_cubic(px, W, H, 3, x, y, out);
            for (int c = 0; c < 3; c++) err = fmax(err, fabs(out[c] - (10 + 20 * x + 7 * y + c)));
        }
    CHECK(err < 1e-9, "cubic: a ramp is followed exactly between pixel centres (off by %g)", err);
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++)
            for (int c = 0; c < 3; c++) px[(y * W + x) * 3 + c] = (x & 1) ? 200 : 100;
    double lin[3], cub[3];
    pixels_sample_rgb(px, W, H, 3, 3.25, 2, lin);
    pixels_sample_rgb_cubic(px, W, H, 3, 3.25, 2, cub);
    /* a quarter pixel past a 200 towards a 100: bilinear 175; the cubic keeps nearer the pixel */
    CHECK(fabs(lin[0] - 175) < 1e-9 && cub[0] > 180 && cub[0] < 200, "stripes a quarter pixel off: bilinear %.1f, cubic %.1f",
          lin[0], cub[0]);
}

static void test_face_space(void) {
    Err e;
    static FaceDetector fd;
    static FaceMesh fm;
    static FaceLandmarks lm, moved;
    if (load_detector(&fd) || load_mesh(&fm)) return;
    const char *data = getenv("REAGE_TEST_DATA");
    char path[1024];
    snprintf(path, sizeof(path), "%s/images/45_1_3_20170104235059987.jpg.chip.jpg", data ? data : "../shared/data/utkface-part1");
    Image img;
    if (image_load(path, &img, &e)) { CHECK(0, "the test face loads: %s", e.msg); return; }
    int W = 500, H = 500;
    Rng r;
    rng_seed(&r, 5);
    uint8_t *bg = malloc((size_t)W * H * 3), *back = malloc((size_t)W * H * 3);
    background(bg, W, H, 3, &r);
    paste(bg, W, H, 3, &img, (CropBox){250, 240, 240, 18 * PI_F / 180});
    Photo p = {bg, W, H, 3};
    FaceDet d[4];
    CHECK(facedet_photo(&fd, &p, d, 4) >= 1, "the pasted face is found");
    facemesh_photo(&fm, &p, facemesh_roi(&d[0]), &lm);
    FaceWarp w;
    CHECK(facewarp_fit(&w, &lm) == 0, "the warp fits");
    CropBox box = facespace_crop(&lm);
    CHECK(fabsf(box.angle * 180 / PI_F - 18) < 4 && fabsf(box.size / 240 - 1) < 0.1f && hypotf(box.cx - 250, box.cy - 240) < 12,
          "the crop from the mesh: centre %.0f,%.0f, side %.0f, %.1f degrees (pasted: 250,240, 240, 18)", box.cx, box.cy,
          box.size, box.angle * 180 / PI_F);
    /* through the points, and each way the other's inverse */
    double worst_pass = 0, worst_inv = 0;
    for (int k = 0; k < FACEMESH_POINTS; k++) {
        double x, y;
        facewarp_to_photo(&w, FACESPACE_MEAN[k][0], FACESPACE_MEAN[k][1], &x, &y);
        worst_pass = fmax(worst_pass, hypot(x - lm.pt[k][0], y - lm.pt[k][1]));
    }
    for (int i = 0; i < 400; i++) {
        double u0 = rng_uniform(&r), v0 = rng_uniform(&r), x, y, u, v;
        (void)0;
        facewarp_to_photo(&w, u0, v0, &x, &y);
        facewarp_to_space(&w, x, y, &u, &v);
        worst_inv = fmax(worst_inv, hypot(u - u0, v - v0) * box.size);
    }
    /* the forward spline's Jacobian (Newton's steps on the way back) against central differences */
    double worst_jac = 0, scale_jac = 0;
    for (int i = 0; i < 200; i++) {
        double u0 = rng_uniform(&r) * 1.2 - 0.1, v0 = rng_uniform(&r) * 1.2 - 0.1, x, y, J[4], h = 1e-6, xa, ya, xb, yb;
        facewarp_to_photo_jacobian(&w, u0, v0, &x, &y, J);
        double x0, y0;
        facewarp_to_photo(&w, u0, v0, &x0, &y0);
        worst_jac = fmax(worst_jac, hypot(x - x0, y - y0));
        for (int d = 0; d < 2; d++) {
            facewarp_to_photo(&w, u0 + (d == 0) * h, v0 + (d == 1) * h, &xa, &ya);
            facewarp_to_photo(&w, u0 - (d == 0) * h, v0 - (d == 1) * h, &xb, &yb);
            worst_jac = fmax(worst_jac, fmax(fabs(J[d] - (xa - xb) / (2 * h)), fabs(J[2 + d] - (ya - yb) / (2 * h))) / box.size);
            scale_jac = fmax(scale_jac, fabs(J[d]) / box.size);
        }
    }
    CHECK(worst_jac < 1e-5 && scale_jac > 0.5, "the Jacobian matches central differences (worst %.3g of the side per unit; largest %.3g)",
          worst_jac, scale_jac);
    CHECK(worst_pass < 2, "the warp passes within 2 px of every mesh point (worst %.3g px)", worst_pass);
    CHECK(worst_inv < 0.01, "the way back inverts the way there (worst %.3g px)", worst_inv);
    /* a round trip at twice the face's resolution */
    int S = 3 * (int)box.size; /* twice the face's resolution over the crop and its margins */
    uint8_t *space = malloc((size_t)S * S * 3);
    facewarp_photo_to_space(&w, &p, S, space);
    memcpy(back, bg, (size_t)W * H * 3);
    memset(back, 0, (size_t)W * H * 3);
    Photo pb = {back, W, H, 3};
    facewarp_space_to_photo(&w, space, S, &pb);
    double sum = 0, worst = 0;
    int n = 0;
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) {
            double u, v;
            facewarp_to_space(&w, x + 0.5, y + 0.5, &u, &v);
            if (!inside_mesh(u, v)) continue;
            for (int c = 0; c < 3; c++) {
                double dd = fabs((double)back[((size_t)y * W + x) * 3 + c] - bg[((size_t)y * W + x) * 3 + c]);
                sum += dd;
                worst = fmax(worst, dd);
            }
            n++;
        }
    CHECK(n > 10000 && sum / (3.0 * n) < 1.0, "photo -> face space -> photo inside the mesh: mean %.2f grey levels "
          "over %d pixels (worst %.0f)", sum / (3.0 * (n ? n : 1)), n, worst);
    /* the left eye moved by (3, -2) pixels */
    static const int eye[] = {263, 249, 390, 373, 374, 380, 381, 382, 362, 398, 384, 385, 386, 387, 388, 466};
    moved = lm;
    for (size_t i = 0; i < sizeof(eye) / sizeof(eye[0]); i++) moved.pt[eye[i]][0] += 3, moved.pt[eye[i]][1] -= 2;
    FaceWarp w2;
    CHECK(facewarp_fit(&w2, &moved) == 0, "the moved warp fits");
    double x1, y1, x2, y2;
    facewarp_to_photo(&w, FACESPACE_MEAN[374][0], FACESPACE_MEAN[374][1], &x1, &y1);
    facewarp_to_photo(&w2, FACESPACE_MEAN[374][0], FACESPACE_MEAN[374][1], &x2, &y2);
    CHECK(fabs(x2 - x1 - 3) < 0.3 && fabs(y2 - y1 + 2) < 0.3, "the moved eye's point moves by (%.2f, %.2f), not (3, -2)",
          x2 - x1, y2 - y1);
    /* the face space put back through the moved warp, against the round trip above (in `back`): the eye's
     * pixels move, the face's far side barely, and the photo beyond the face space not at all */
    uint8_t *moved_back = malloc((size_t)W * H * 3);
    memcpy(moved_back, bg, (size_t)W * H * 3);
    Photo pm = {moved_back, W, H, 3};
    facewarp_space_to_photo(&w2, space, S, &pm);
    memcpy(back, bg, (size_t)W * H * 3);
    facewarp_space_to_photo(&w, space, S, &pb);
    double at_eye = 0, far_sum = 0;
    long changed_outside = 0, far_n = 0;
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) {
            double u, v;
            facewarp_to_space(&w, x + 0.5, y + 0.5, &u, &v);
            int diff = 0;
            for (int c = 0; c < 3; c++) diff += abs(moved_back[((size_t)y * W + x) * 3 + c] - back[((size_t)y * W + x) * 3 + c]);
            if (u < -0.3 || u > 1.3 || v < -0.3 || v > 1.3) {
                for (int c = 0; c < 3; c++) changed_outside += moved_back[((size_t)y * W + x) * 3 + c] != bg[((size_t)y * W + x) * 3 + c];
            } else if (hypot(x + 0.5 - x1, y + 0.5 - y1) > 0.6 * box.size) {
                far_sum += diff / 3.0;
                far_n++;
            }
            if (hypot(x + 0.5 - x1, y + 0.5 - y1) < 4) at_eye += diff;
        }
    CHECK(at_eye > 100, "the pixels at the moved eye change (by %.0f levels in all)", at_eye);
    CHECK(far_n > 1000 && far_sum / far_n < 0.5, "0.6 sides from the eye and beyond they change by %.2f levels on average",
          far_sum / (far_n ? far_n : 1));
    CHECK(changed_outside == 0, "no photo pixel beyond the face space changes (%ld did)", changed_outside);
    free(moved_back);
    facewarp_free(&w);
    facewarp_free(&w2);
    free(space); free(bg); free(back);
    image_free(&img);
    facedet_free(&fd);
    facemesh_free(&fm);
}

/* A sharp face before a blurred crowd of face-like blobs (a pale oval with
 * two dark eyes and a mouth): whatever the detector makes of the crowd, the
 * face the mesh confirms first is the real one. */
static void test_face_before_crowd(void) {
    Err e;
    static FaceDetector fd;
    static FaceMesh fm;
    if (load_detector(&fd) || load_mesh(&fm)) return;
    const char *data = getenv("REAGE_TEST_DATA");
    char path[1024];
    snprintf(path, sizeof(path), "%s/images/29_1_1_20170103183648691.jpg.chip.jpg", data ? data : "../shared/data/utkface-part1");
    Image img;
    if (image_load(path, &img, &e)) { CHECK(0, "the test face loads: %s", e.msg); return; }
    int W = 800, H = 600, crowded = 0, faces_in_crowd = 0, first_is_face = 0;
    uint8_t *bg = malloc((size_t)W * H * 3), *tmp = malloc((size_t)W * H * 3);
    for (int trial = 0; trial < 3; trial++) {
        Rng r;
        rng_seed(&r, 40 + trial);
        background(bg, W, H, 3, &r);
        for (int b = 0; b < 60; b++) {
            float cx = W * rng_uniform(&r), cy = H * 0.35f + H * 0.65f * rng_uniform(&r), rw = 18 + 16 * rng_uniform(&r), rh = rw * 1.3f;
            float tone = 150 + 80 * rng_uniform(&r);
            for (int y = (int)(cy - rh); y < cy + rh; y++)
                for (int x = (int)(cx - rw); x < cx + rw; x++) {
                    if (x < 0 || y < 0 || x >= W || y >= H) continue;
                    float u = (x - cx) / rw, v = (y - cy) / rh;
                    if (u * u + v * v > 1) continue;
                    int dark = hypotf(u + 0.38f, v + 0.2f) < 0.16f || hypotf(u - 0.38f, v + 0.2f) < 0.16f ||
                               (fabsf(v - 0.45f) < 0.07f && fabsf(u) < 0.35f);
                    for (int c = 0; c < 3; c++) bg[((size_t)y * W + x) * 3 + c] = (uint8_t)(dark ? 50 : tone - 25 * c);
                }
        }
        /* the crowd out of focus: three box blurs of radius 3 */
        for (int pass = 0; pass < 3; pass++)
            for (int dir = 0; dir < 2; dir++) {
                memcpy(tmp, bg, (size_t)W * H * 3);
                for (int y = 0; y < H; y++)
                    for (int x = 0; x < W; x++)
                        for (int c = 0; c < 3; c++) {
                            int sum = 0, cnt = 0;
                            for (int k = -3; k <= 3; k++) {
                                int xx = dir ? x : x + k, yy = dir ? y + k : y;
                                if (xx < 0 || yy < 0 || xx >= W || yy >= H) continue;
                                sum += tmp[((size_t)yy * W + xx) * 3 + c];
                                cnt++;
                            }
                            bg[((size_t)y * W + x) * 3 + c] = (uint8_t)(sum / cnt);
                        }
            }
        CropBox t = {300 + 150 * trial, 200, 170, (trial - 1) * 10 * PI_F / 180};
        paste(bg, W, H, 3, &img, t);
        Photo p = {bg, W, H, 3};
        FaceDet d[FACEDET_MAX_FACES];
        CropBox crops[FACEDET_MAX_FACES];
        int n = facedet_photo(&fd, &p, d, FACEDET_MAX_FACES);
        crowded += n - 1;
        int k = facemesh_confirm(&fm, &p, d, n, crops, NULL);
        faces_in_crowd += k - 1;
        first_is_face += k >= 1 && hypotf(crops[0].cx - t.cx, crops[0].cy - t.cy) < 0.1f * t.size;
        fprintf(stderr, "  crowd %d: %d detections, %d confirmed by the mesh\n", trial, n, k);
    }
    CHECK(first_is_face == 3, "the sharp face is the first the mesh confirms before a blurred crowd, in %d of 3", first_is_face);
    CHECK(crowded >= 3 && 2 * faces_in_crowd < crowded,
          "the detector takes %d patches of the crowd for faces; the mesh confirms %d of them", crowded, faces_in_crowd);
    free(bg); free(tmp);
    image_free(&img);
    facedet_free(&fd);
    facemesh_free(&fm);
}

void test_facedetect(void) {
    test_soften_change_colour();
    test_detail_fade();
    test_layers_of_detector();
    test_nms();
    test_alignment_math();
    test_detector_on_photos();
    test_cubic_sampler();
    test_face_space();
    test_face_before_crowd();
}
