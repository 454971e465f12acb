/* Image decoding: good images round-trip; empty, truncated, non-image and
 * absurdly large ones are refused with a message and no crash. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "../src/fileio.h"
#include "../src/image.h"
#include "check.h"

static int has(const char *msg, const char *part) { return strstr(msg, part) != NULL; }

/* A PNG header (signature + IHDR) claiming w x h pixels; no pixel data. */
static size_t fake_png(uint8_t *b, uint32_t w, uint32_t h) {
    static const uint8_t sig[8] = {0x89, 'P', 'N', 'G', 0x0D, 0x0A, 0x1A, 0x0A};
    uint8_t ihdr[25] = {0, 0, 0, 13, 'I', 'H', 'D', 'R',
                        w >> 24, w >> 16, w >> 8, w, h >> 24, h >> 16, h >> 8, h, 8, 2, 0, 0, 0};
    memcpy(b, sig, 8);
    memcpy(b + 8, ihdr, 25);
    return 33;
}

/* Decodes tests/fuzz/seeds/image/NAME: 1 when refused (the message in e,
 * which names the file), 0 when decoded to a picture with pixels, -1 when
 * the seed cannot be read or decodes to nothing. */
static int decode_seed(const char *name, Err *e) {
    char path[256];
    snprintf(path, sizeof(path), "tests/fuzz/seeds/image/%s", name);
    uint8_t *buf;
    size_t len;
    Image img;
    if (file_read_all(path, 1 << 20, &buf, &len, e)) return -1;
    int rc = image_decode(buf, len, &img, path, e);
    free(buf);
    if (rc) return has(e->msg, name) ? 1 : -1;
    int ok = img.w > 0 && img.h > 0;
    image_free(&img);
    return ok ? 0 : -1;
}

/* The inputs with which fuzzing made the decoder read or write out of
 * bounds (tests/fuzz/seeds/image/crash-*): decoded or refused, cleanly
 * (under make test-asan, without a sanitizer's report). And the ones that
 * took seconds: JPEGs of a few dozen or hundred bytes claiming 14 and 27
 * megapixels, which the decoder filled with grey: refused as cut short. */
static void test_fuzz_regressions(void) {
    static const char *const crashes[] = {"crash-huffman-counts", "crash-bits-underrun", "crash-empty-idat", "oom-huge-idat"};
    Err e;
    for (size_t i = 0; i < sizeof(crashes) / sizeof(crashes[0]); i++) {
        int rc = decode_seed(crashes[i], &e);
        CHECK(rc >= 0, "%s: %s", crashes[i], rc ? e.msg : "decoded");
    }
    static const char *const slow[] = {"slow-tiny-jpeg", "slow-short-jpeg"};
    for (size_t i = 0; i < sizeof(slow) / sizeof(slow[0]); i++) {
        int rc = decode_seed(slow[i], &e);
        CHECK(rc == 1 && has(e.msg, "cannot hold a"), "%s: %s", slow[i], rc ? e.msg : "decoded");
    }
}

/* A JPEG's bytes with an EXIF segment holding orientation v (little- or
 * big-endian) put after its start marker; out must hold len + 64. */
static size_t with_orientation(const uint8_t *jpg, size_t len, int v, int big_endian, uint8_t *out) {
    uint8_t tiff_le[] = {'I', 'I', 42, 0, 8, 0, 0, 0, 1, 0, 0x12, 0x01, 3, 0, 1, 0, 0, 0, (uint8_t)v, 0, 0, 0, 0, 0, 0, 0};
    uint8_t tiff_be[] = {'M', 'M', 0, 42, 0, 0, 0, 8, 0, 1, 0x01, 0x12, 0, 3, 0, 0, 0, 1, 0, (uint8_t)v, 0, 0, 0, 0, 0, 0};
    const uint8_t *tiff = big_endian ? tiff_be : tiff_le;
    size_t tn = sizeof(tiff_le), seg = 2 + 6 + tn, n = 0;
    out[n++] = 0xFF, out[n++] = 0xD8, out[n++] = 0xFF, out[n++] = 0xE1;
    out[n++] = (uint8_t)(seg >> 8), out[n++] = (uint8_t)seg;
    memcpy(out + n, "Exif\0\0", 6), n += 6;
    memcpy(out + n, tiff, tn), n += tn;
    memcpy(out + n, jpg + 2, len - 2);
    return n + len - 2;
}

/* Every EXIF orientation turns the stored pixels upright: a 4x2 grid of
 * coloured blocks, stored as each of the eight turns would store it. */
static void test_exif_orientation(void) {
    enum { B = 16, GW = 4, GH = 2 };
    static const uint8_t colour[GW * GH][3] = {{220, 30, 30}, {30, 220, 30}, {30, 30, 220}, {220, 220, 30},
                                               {30, 220, 220}, {220, 30, 220}, {240, 240, 240}, {20, 20, 20}};
    Image up;
    Err e;
    image_alloc(&up, GW * B, GH * B);
    for (int y = 0; y < GH * B; y++)
        for (int x = 0; x < GW * B; x++) memcpy(up.rgb + ((size_t)y * up.w + x) * 3, colour[(y / B) * GW + x / B], 3);
    char path[] = "/tmp/reage-exif-XXXXXX";
    close(mkstemp(path));
    char jpg[64];
    snprintf(jpg, sizeof(jpg), "%s.jpg", path);
    for (int v = 1; v <= 8; v++) {
        /* store the upright grid as a camera with orientation v would: the inverse turn */
        static const int inverse[9] = {0, 1, 2, 3, 4, 5, 8, 7, 6};
        Image stored = {up.w, up.h, malloc((size_t)up.w * up.h * 3), NULL};
        memcpy(stored.rgb, up.rgb, (size_t)up.w * up.h * 3);
        image_orient(&stored, inverse[v]);
        uint8_t *bytes, *tagged;
        size_t len;
        if (image_save(jpg, &stored, &e) || file_read_all(jpg, 1 << 20, &bytes, &len, &e)) { CHECK(0, "%s", e.msg); return; }
        tagged = malloc(len + 64);
        size_t n = with_orientation(bytes, len, v, v % 2, tagged);
        CHECK(jpeg_orientation(tagged, n) == v, "orientation %d is read (%s-endian)", v, v % 2 ? "big" : "little");
        Image got;
        int rc = image_decode(tagged, n, &got, "tagged.jpg", &e);
        int worst = 0;
        if (!rc && got.w == up.w && got.h == up.h)
            for (int k = 0; k < GW * GH; k++) {
                const uint8_t *px = got.rgb + ((size_t)((k / GW) * B + B / 2) * got.w + (k % GW) * B + B / 2) * 3;
                for (int c = 0; c < 3; c++) worst = abs(px[c] - colour[k][c]) > worst ? abs(px[c] - colour[k][c]) : worst;
            }
        CHECK(!rc && got.w == up.w && got.h == up.h && worst < 24, "orientation %d: decoded upright (%dx%d, worst block %d levels)",
              v, got.w, got.h, worst);
        if (!rc) image_free(&got);
        /* damaged EXIF (its directory's offset past the segment): read as no tag, the photo as stored */
        memset(tagged + 6 + 6 + 4, 0xFF, 4);
        CHECK(jpeg_orientation(tagged, n) == 1, "a damaged EXIF block reads as upright");
        free(tagged);
        free(bytes);
        image_free(&stored);
    }
    image_free(&up);
    unlink(jpg);
    unlink(path);
}

/* A transparent PNG: the engine sees its transparent pixels as white, and a
 * PNG written back keeps the transparency. */
/* The same photo saved in colour, in grey and in CMYK (Adobe's inverted
 * CMYK, as ImageMagick and Photoshop write it; tests/images/README.md): each
 * decodes to RGB, grey as R = G = B, and matches the colour one. */
static void test_grey_and_cmyk(void) {
    Image rgb, grey, cmyk;
    Err e;
    int ok = image_load("tests/images/sample-rgb.jpg", &rgb, &e) == 0;
    CHECK(ok, "colour JPEG: %s", e.msg);
    if (!ok) return;
    if (image_load("tests/images/sample-grey.jpg", &grey, &e) == 0) {
        size_t n = (size_t)rgb.w * rgb.h, coloured = 0;
        double dl = 0;
        CHECK(grey.w == rgb.w && grey.h == rgb.h, "grey JPEG is %dx%d", grey.w, grey.h);
        for (size_t i = 0; grey.w == rgb.w && grey.h == rgb.h && i < n; i++) {
            const uint8_t *g = grey.rgb + 3 * i, *c = rgb.rgb + 3 * i;
            coloured += g[0] != g[1] || g[1] != g[2];
            dl += fabs(g[0] - (0.299 * c[0] + 0.587 * c[1] + 0.114 * c[2]));
        }
        CHECK(coloured == 0, "a grey JPEG decodes to R = G = B (%zu pixels otherwise)", coloured);
        CHECK(dl / n < 2, "its brightness is the colour photo's (mean difference %.2f levels)", dl / n);
        image_free(&grey);
    } else {
        CHECK(0, "grey JPEG refused: %s", e.msg);
    }
    if (image_load("tests/images/sample-cmyk.jpg", &cmyk, &e) == 0) {
        size_t n = (size_t)rgb.w * rgb.h * 3;
        double d = 0;
        CHECK(cmyk.w == rgb.w && cmyk.h == rgb.h, "CMYK JPEG is %dx%d", cmyk.w, cmyk.h);
        for (size_t i = 0; cmyk.w == rgb.w && cmyk.h == rgb.h && i < n; i++) d += abs(cmyk.rgb[i] - rgb.rgb[i]);
        CHECK(d / n < 3, "a CMYK JPEG decodes to the colour photo's RGB (mean difference %.2f levels)", d / n);
        image_free(&cmyk);
    } else {
        CHECK(0, "CMYK JPEG refused: %s", e.msg);
    }
    image_free(&rgb);
}

static void test_transparency(void) {
    Image img, back, again;
    Err e;
    image_alloc(&img, 8, 4);
    img.alpha = malloc(32);
    for (int i = 0; i < 32; i++) {
        img.rgb[i * 3] = 200, img.rgb[i * 3 + 1] = 10, img.rgb[i * 3 + 2] = 10;
        img.alpha[i] = (uint8_t)(i % 8 < 2 ? 0 : i % 8 < 4 ? 128 : 255);
    }
    char path[] = "/tmp/reage-alpha-XXXXXX";
    close(mkstemp(path));
    char png[64], png2[64];
    snprintf(png, sizeof(png), "%s.png", path);
    snprintf(png2, sizeof(png2), "%s-2.png", path);
    int rc = image_save(png, &img, &e) || image_load(png, &back, &e);
    CHECK(!rc && back.alpha, "a transparent PNG loads with its transparency: %s", rc ? e.msg : "");
    if (rc || !back.alpha) return;
    CHECK(back.alpha[0] == 0 && back.alpha[2] == 128 && back.alpha[4] == 255, "alpha read: %d %d %d", back.alpha[0], back.alpha[2],
          back.alpha[4]);
    const uint8_t *clear = back.rgb, *half = back.rgb + 2 * 3, *solid = back.rgb + 4 * 3;
    CHECK(clear[0] == 255 && clear[1] == 255 && clear[2] == 255, "a transparent pixel reads as white (%d %d %d)", clear[0], clear[1], clear[2]);
    CHECK(abs(half[0] - 228) <= 1 && abs(half[1] - 132) <= 1 && solid[0] == 200 && solid[1] == 10,
          "half-transparent pixels are composited on white (%d %d), opaque ones kept (%d %d)", half[0], half[1], solid[0], solid[1]);
    CHECK(image_save(png2, &back, &e) == 0 && image_load(png2, &again, &e) == 0 && again.alpha && again.alpha[0] == 0 &&
              again.alpha[2] == 128 && again.alpha[31] == 255,
          "written back as PNG, the transparency stays");
    image_free(&again);
    /* an alpha channel that is opaque throughout is no transparency */
    memset(img.alpha, 255, 32);
    CHECK(image_save(png, &img, &e) == 0 && image_load(png, &again, &e) == 0 && again.alpha == NULL, "an opaque alpha channel is dropped");
    image_free(&again);
    image_free(&back);
    image_free(&img);
    unlink(png);
    unlink(png2);
    unlink(path);
}

void test_images(void) {
    test_fuzz_regressions();
    test_exif_orientation();
    test_transparency();
    test_grey_and_cmyk();
    Image img, back;
    Err e;
    image_alloc(&img, 7, 5);
    for (int i = 0; i < 7 * 5 * 3; i++) img.rgb[i] = (uint8_t)(i * 37);
    char path[] = "/tmp/reage-img-XXXXXX";
    close(mkstemp(path));
    char png[64];
    snprintf(png, sizeof(png), "%s.png", path);
    CHECK(image_save(png, &img, &e) == 0, "png saves: %s", e.msg);
    CHECK(image_load(png, &back, &e) == 0 && back.w == 7 && back.h == 5 && !memcmp(back.rgb, img.rgb, 105),
          "png round trip is exact");
    image_free(&back);

    uint8_t *buf;
    size_t len;
    file_read_all(png, 1 << 20, &buf, &len, &e);
    CHECK(image_decode(buf, 0, &back, "empty.jpg", &e) != 0 && has(e.msg, "empty"), "empty: %s", e.msg);
    CHECK(image_decode(buf, len / 2, &back, "half.png", &e) != 0 && has(e.msg, "half.png"), "truncated png: %s", e.msg);
    free(buf);
    const char *text = "this is a text file renamed to .jpg\n";
    CHECK(image_decode((const uint8_t *)text, strlen(text), &back, "notes.jpg", &e) != 0 && has(e.msg, "not an image"),
          "text: %s", e.msg);
    uint8_t hdr[64];
    size_t n = fake_png(hdr, 100000, 100000);
    CHECK(image_decode(hdr, n, &back, "huge.png", &e) != 0 && has(e.msg, "100000x100000"), "huge header: %s", e.msg);
    n = fake_png(hdr, 8000, 9000);
    CHECK(image_decode(hdr, n, &back, "big.png", &e) != 0 && has(e.msg, "8000x9000"), "oversize area refused: %s", e.msg);

    /* a real photo from the data set, whole and cut short */
    const char *data = getenv("REAGE_TEST_DATA");
    char jpg[4096];
    snprintf(jpg, sizeof(jpg), "%s/images/1_0_0_20161219140623097.jpg.chip.jpg", data ? data : "../shared/data/utkface-part1");
    if (file_read_all(jpg, 1 << 24, &buf, &len, &e) == 0) {
        CHECK(image_decode(buf, len, &back, "face.jpg", &e) == 0 && back.w == 200 && back.h == 200, "a UTKFace photo decodes");
        image_free(&back);
        CHECK(image_decode(buf, len / 3, &back, "cut.jpg", &e) != 0 && has(e.msg, "corrupt"), "truncated jpeg: %s", e.msg);
        free(buf);
    } else {
        CHECK(0, "test photo missing: %s", e.msg);
    }

    /* float conversion round trip */
    float *chw = malloc(sizeof(float) * 105);
    uint8_t *rgb = malloc(105);
    rgb_to_chw(img.rgb, 7, 5, chw);
    chw_to_rgb(chw, 7, 5, rgb);
    CHECK(!memcmp(rgb, img.rgb, 105) && chw[0] == -1.0f, "rgb <-> [-1,1] planes round trip");
    free(chw);
    free(rgb);
    image_free(&img);
    remove(png);
    remove(path);
}
