#include <math.h>
#include "image.h"
#include "bytes.h"
#include "fileio.h"
#include <stdlib.h>
#include <string.h>

#define STBI_ONLY_JPEG
#define STBI_ONLY_PNG
/* stb_image's allocations zeroed: a corrupt JPEG can make its decoder read
 * fields of its state it never set, which then held whatever the last photo
 * left there (fuzzing found a crash that came and went with the inputs
 * before it) */
#define STBI_MALLOC(size) calloc(1, (size))
#define STBI_REALLOC(p, size) realloc((p), (size))
#define STBI_FREE(p) free(p)
#define STB_IMAGE_IMPLEMENTATION
#define STB_IMAGE_WRITE_IMPLEMENTATION
#define STB_IMAGE_RESIZE_IMPLEMENTATION
#if defined(__GNUC__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-function"
#pragma GCC diagnostic ignored "-Wsign-compare"
#pragma GCC diagnostic ignored "-Wunused-parameter"
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#endif
#include "stb_image.h"
#include "stb_image_resize.h"
#include "stb_image_write.h"
#if defined(__GNUC__)
#pragma GCC diagnostic pop
#endif

int image_alloc(Image *img, int w, int h) {
    img->w = w;
    img->h = h;
    img->alpha = NULL;
    img->rgb = malloc((size_t)w * h * 3);
    return img->rgb ? 0 : -1;
}

void image_free(Image *img) {
    free(img->rgb);
    free(img->alpha);
    img->rgb = img->alpha = NULL;
    img->w = img->h = 0;
}

static uint32_t be16(const uint8_t *p) { return (uint32_t)p[0] << 8 | p[1]; }
static uint32_t be32(const uint8_t *p) { return be16(p) << 16 | be16(p + 2); }

/* Reads the size a PNG or JPEG header claims, so that a huge one gets a
 * message with its size (stb_image's own header check only says "unknown
 * type" once it gives up). Returns 0 when the header says nothing. */
static int peek_size(const uint8_t *b, size_t len, uint32_t *w, uint32_t *h) {
    static const uint8_t png[8] = {0x89, 'P', 'N', 'G', 0x0D, 0x0A, 0x1A, 0x0A};
    if (len >= 24 && !memcmp(b, png, 8) && !memcmp(b + 12, "IHDR", 4)) {
        *w = be32(b + 16);
        *h = be32(b + 20);
        return 1;
    }
    if (len >= 4 && b[0] == 0xFF && b[1] == 0xD8) {
        for (size_t i = 2; i + 9 < len;) {
            if (b[i] != 0xFF) return 0;
            uint8_t m = b[i + 1];
            if (m >= 0xC0 && m <= 0xCF && m != 0xC4 && m != 0xC8 && m != 0xCC) {
                *h = be16(b + i + 5);
                *w = be16(b + i + 7);
                return 1;
            }
            i += 2 + be16(b + i + 2);
        }
    }
    return 0;
}

int jpeg_orientation(const uint8_t *b, size_t len) {
    if (len < 4 || b[0] != 0xFF || b[1] != 0xD8) return 1;
    for (size_t i = 2; i + 4 <= len;) {
        if (b[i] != 0xFF) return 1;
        uint8_t m = b[i + 1];
        if (m == 0xD8 || (m >= 0xD0 && m <= 0xD7) || m == 0x01) { i += 2; continue; }
        if (m == 0xDA || m == 0xD9) return 1; /* the image data: no EXIF before it */
        size_t seg = be16(b + i + 2);
        if (seg < 2 || i + 2 + seg > len) return 1;
        const uint8_t *p = b + i + 4;
        size_t n = seg - 2;
        if (m == 0xE1 && n >= 14 && !memcmp(p, "Exif\0\0", 6)) {
            const uint8_t *t = p + 6;
            size_t tn = n - 6;
            int le = t[0] == 'I' && t[1] == 'I';
            if (!le && !(t[0] == 'M' && t[1] == 'M')) return 1;
#define U16(q) (le ? (uint32_t)(q)[0] | (uint32_t)(q)[1] << 8 : be16(q))
#define U32(q) (le ? U16(q) | U16((q) + 2) << 16 : be32(q))
            if (U16(t + 2) != 42) return 1;
            size_t ifd = U32(t + 4);
            if (ifd > tn || tn - ifd < 2) return 1;
            size_t count = U16(t + ifd);
            for (size_t k = 0; k < count; k++) {
                size_t at = ifd + 2 + 12 * k;
                if (at > tn || tn - at < 12) return 1;
                if (U16(t + at) == 0x0112 && U16(t + at + 2) == 3) {
                    uint32_t v = U16(t + at + 8);
                    return v >= 1 && v <= 8 ? (int)v : 1;
                }
            }
#undef U16
#undef U32
            return 1;
        }
        i += 2 + seg;
    }
    return 1;
}

int image_orient(Image *img, int orientation) {
    if (orientation <= 1 || orientation > 8) return 0;
    int w = img->w, h = img->h, swap = orientation >= 5, W = swap ? h : w, H = swap ? w : h;
    uint8_t *out = malloc((size_t)w * h * 3);
    if (!out) return -1;
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) {
            /* where display pixel (x, y) is stored */
            int sx, sy;
            switch (orientation) {
            case 2: sx = w - 1 - x, sy = y; break;
            case 3: sx = w - 1 - x, sy = h - 1 - y; break;
            case 4: sx = x, sy = h - 1 - y; break;
            case 5: sx = y, sy = x; break;
            case 6: sx = y, sy = h - 1 - x; break;
            case 7: sx = w - 1 - y, sy = h - 1 - x; break;
            default: sx = w - 1 - y, sy = x; break; /* 8 */
            }
            memcpy(out + ((size_t)y * W + x) * 3, img->rgb + ((size_t)sy * w + sx) * 3, 3);
        }
    free(img->rgb);
    img->rgb = out;
    if (img->alpha) { /* JPEGs have none; kept right all the same */
        Image a = {w, h, malloc((size_t)w * h * 3), NULL};
        if (!a.rgb) return -1;
        for (size_t i = 0; i < (size_t)w * h; i++) memset(a.rgb + i * 3, img->alpha[i], 3);
        if (image_orient(&a, orientation)) { free(a.rgb); return -1; }
        for (size_t i = 0; i < (size_t)w * h; i++) img->alpha[i] = a.rgb[i * 3];
        free(a.rgb);
    }
    img->w = W;
    img->h = H;
    return 0;
}

#define JPEG_MIN_PIXELS_PER_BYTE 512

int image_decode(const uint8_t *buf, size_t len, Image *img, const char *what, Err *e) {
    memset(img, 0, sizeof(*img));
    if (len == 0) return err_set(e, "%s: empty file", what);
    if (len > 0x7FFFFFFF) return err_set(e, "%s: file too large", what);
    int w, h, c;
    uint32_t pw, ph;
    /* read the header first, so that a huge claimed size is refused before allocating */
    if (peek_size(buf, len, &pw, &ph) && (pw > IMAGE_MAX_SIDE || ph > IMAGE_MAX_SIDE || (uint64_t)pw * ph > IMAGE_MAX_PIXELS))
        return err_set(e, "%s: image is %ux%u pixels, more than the %u megapixels (%d a side) allowed",
                       what, pw, ph, IMAGE_MAX_PIXELS >> 20, IMAGE_MAX_SIDE);
    if (!stbi_info_from_memory(buf, (int)len, &w, &h, &c))
        return err_set(e, "%s: not an image this tool can read (JPEG, PNG): %s", what, stbi_failure_reason());
    if (w <= 0 || h <= 0 || w > IMAGE_MAX_SIDE || h > IMAGE_MAX_SIDE || (uint64_t)w * h > IMAGE_MAX_PIXELS)
        return err_set(e, "%s: image is %dx%d pixels, more than the %u megapixels (%d a side) allowed",
                       what, w, h, IMAGE_MAX_PIXELS >> 20, IMAGE_MAX_SIDE);
    /* A JPEG holds at least one bit for every 8x8 block of brightness (a progressive first scan's DC
     * code; a baseline one two), so a file of fewer than w*h/512 bytes has been cut short. The decoder
     * would fill the rest with grey without complaint: 55 to 676 bytes claiming 14 to 27 megapixels took
     * up to 0.4 s to decode (half a minute under the sanitizers), and the CLI then seconds to search
     * for faces in nothing. */
    int png = len >= 4 && buf[0] == 0x89 && buf[1] == 'P' && buf[2] == 'N' && buf[3] == 'G'; /* else a JPEG: nothing else decodes */
    if (!png && (uint64_t)len * JPEG_MIN_PIXELS_PER_BYTE < (uint64_t)w * h)
        return err_set(e, "%s: corrupt or truncated image: %zu bytes cannot hold a %dx%d JPEG", what, len, w, h);
    int has_alpha = c == 2 || c == 4;
    uint8_t *px = stbi_load_from_memory(buf, (int)len, &w, &h, &c, has_alpha ? 4 : 3);
    if (!px) return err_set(e, "%s: corrupt or truncated image: %s", what, stbi_failure_reason());
    if (has_alpha) {
        /* the colour composited on white, so that the detector and the networks see a transparent
         * background as white rather than whatever colour hides under it; the alpha kept apart */
        size_t n = (size_t)w * h;
        uint8_t *rgb = malloc(n * 3), *alpha = malloc(n);
        if (!rgb || !alpha) { free(rgb); free(alpha); stbi_image_free(px); return err_set(e, "%s: out of memory", what); }
        int opaque = 1;
        for (size_t i = 0; i < n; i++) {
            unsigned a = px[i * 4 + 3];
            alpha[i] = (uint8_t)a;
            opaque &= a == 255;
            for (int k = 0; k < 3; k++) rgb[i * 3 + k] = (uint8_t)((px[i * 4 + k] * a + 255 * (255 - a) + 127) / 255);
        }
        stbi_image_free(px);
        if (opaque) { free(alpha); alpha = NULL; }
        img->w = w;
        img->h = h;
        img->rgb = rgb;
        img->alpha = alpha;
        return 0;
    }
    /* the decoder's own buffer (malloc'ed: stb_image's default allocator) becomes the image: one copy of the pixels */
    img->w = w;
    img->h = h;
    img->rgb = px;
    /* a phone's photo taken upright is often stored sideways, with an EXIF tag saying how to turn it */
    if (image_orient(img, jpeg_orientation(buf, len))) {
        image_free(img);
        return err_set(e, "%s: out of memory turning the photo upright", what);
    }
    return 0;
}

int image_load(const char *path, Image *img, Err *e) {
    uint8_t *buf;
    size_t len;
    memset(img, 0, sizeof(*img));
    if (file_read_all(path, IMAGE_MAX_FILE_BYTES, &buf, &len, e)) return -1;
    int rc = image_decode(buf, len, img, path, e);
    free(buf);
    return rc;
}

static void mem_write(void *ctx, void *data, int size) { bytes_append(ctx, data, (size_t)size); }

static int ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), k = strlen(suffix);
    if (n < k) return 0;
    for (size_t i = 0; i < k; i++) {
        char a = s[n - k + i], b = suffix[i];
        if (a >= 'A' && a <= 'Z') a += 32;
        if (a != b) return 0;
    }
    return 1;
}

int image_save(const char *path, const Image *img, Err *e) {
    Bytes m = {0};
    int ok, jpeg = ends_with(path, ".jpg") || ends_with(path, ".jpeg");
    if (!jpeg && img->alpha) {
        /* the transparency back beside the (re-aged) colour */
        size_t n = (size_t)img->w * img->h;
        uint8_t *rgba = malloc(n * 4);
        if (!rgba) return err_set(e, "%s: out of memory", path);
        for (size_t i = 0; i < n; i++) memcpy(rgba + i * 4, img->rgb + i * 3, 3), rgba[i * 4 + 3] = img->alpha[i];
        ok = stbi_write_png_to_func(mem_write, &m, img->w, img->h, 4, rgba, img->w * 4);
        free(rgba);
    } else {
        /* a JPEG of a transparent photo: its colour is already on white */
        ok = jpeg ? stbi_write_jpg_to_func(mem_write, &m, img->w, img->h, 3, img->rgb, 95)
                  : stbi_write_png_to_func(mem_write, &m, img->w, img->h, 3, img->rgb, img->w * 3);
    }
    if (!ok || m.failed) { free(m.buf); return err_set(e, "%s: could not encode the image", path); }
    int rc = file_write_atomic(path, m.buf, m.len, e);
    free(m.buf);
    return rc;
}

int image_resize(const Image *src, int w, int h, Image *dst) {
    if (image_alloc(dst, w, h)) return -1;
    if (!stbir_resize_uint8(src->rgb, src->w, src->h, 0, dst->rgb, w, h, 0, 3)) { image_free(dst); return -1; }
    return 0;
}

void rgb_to_chw(const uint8_t *rgb, int w, int h, float *chw) {
    size_t n = (size_t)w * h;
    for (size_t i = 0; i < n; i++)
        for (int c = 0; c < 3; c++) chw[c * n + i] = rgb[i * 3 + c] * (2.0f / 255.0f) - 1.0f;
}

void chw_to_rgb(const float *chw, int w, int h, uint8_t *rgb) {
    size_t n = (size_t)w * h;
    for (size_t i = 0; i < n; i++)
        for (int c = 0; c < 3; c++) {
            float v = (chw[c * n + i] + 1.0f) * 127.5f + 0.5f;
            rgb[i * 3 + c] = v <= 0 ? 0 : v >= 255 ? 255 : (uint8_t)v;
        }
}

void image_draw_line(Image *img, float x0, float y0, float x1, float y1, const uint8_t rgb[3], float alpha) {
    float len = hypotf(x1 - x0, y1 - y0);
    int steps = (int)ceilf(len * 2) + 1;
    for (int i = 0; i <= steps; i++) {
        float t = (float)i / steps;
        int x = (int)lroundf(x0 + (x1 - x0) * t - 0.5f), y = (int)lroundf(y0 + (y1 - y0) * t - 0.5f);
        if (x < 0 || y < 0 || x >= img->w || y >= img->h) continue;
        uint8_t *p = img->rgb + ((size_t)y * img->w + x) * 3;
        for (int c = 0; c < 3; c++) p[c] = (uint8_t)(p[c] + (rgb[c] - p[c]) * alpha + 0.5f);
    }
}
