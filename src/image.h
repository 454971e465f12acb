/* Images in and out: decoding with limits, resizing, and conversion to the
 * networks' float CHW layout in [-1, 1]. */
#ifndef REAGE_IMAGE_H
#define REAGE_IMAGE_H
#include <stddef.h>
#include <stdint.h>
#include "errors.h"

/* Photos beyond this are refused before any pixel is decoded. */
#define IMAGE_MAX_SIDE 16384
#define IMAGE_MAX_PIXELS (64u * 1024u * 1024u)
#define IMAGE_MAX_FILE_BYTES (256u * 1024u * 1024u)

typedef struct {
    int w, h;          /* RGB, 3 bytes a pixel, rows top to bottom */
    uint8_t *rgb;
    /* a PNG's transparency, one byte a pixel (NULL when opaque); rgb then
     * holds the photo composited on white, as the engine is to see it */
    uint8_t *alpha;
} Image;

/* Decodes a JPEG or PNG into RGB, turned upright as a JPEG's EXIF
 * orientation tag says. */
int image_decode(const uint8_t *buf, size_t len, Image *img, const char *what, Err *e);
/* A JPEG's EXIF orientation (1-8: how the stored pixels are to be turned
 * or mirrored for display), 1 when it has none or is not a JPEG. */
int jpeg_orientation(const uint8_t *buf, size_t len);
/* Turns the image as orientation says (EXIF's eight values); -1 when out of memory. */
int image_orient(Image *img, int orientation);
int image_load(const char *path, Image *img, Err *e);
/* PNG (with the image's transparency, if it has one), or JPEG when the
 * path ends in .jpg/.jpeg (on white); written atomically. */
int image_save(const char *path, const Image *img, Err *e);
int image_alloc(Image *img, int w, int h);
void image_free(Image *img);
/* Area-aware resampling (stb_image_resize) into a w x h image. */
int image_resize(const Image *src, int w, int h, Image *dst);
/* rgb (w*h*3 bytes) <-> float planes [3, h, w] in [-1, 1] */
void rgb_to_chw(const uint8_t *rgb, int w, int h, float *chw);
void chw_to_rgb(const float *chw, int w, int h, uint8_t *rgb);
/* A line from (x0, y0) to (x1, y1) in pixels, blended at opacity alpha (pictures of meshes). */
void image_draw_line(Image *img, float x0, float y0, float x1, float y1, const uint8_t rgb[3], float alpha);
#endif
