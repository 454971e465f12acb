/* Re-aging a face inside a full-resolution photo: the crop box is sampled
 * down to the generator's resolution, the generator's change (aged minus
 * reconstructed at the source age) has its colour smoothed, is upsampled
 * back to the crop's size, added to the photo's own pixels and feathered
 * into the surroundings. */
#ifndef REAGE_PHOTO_H
#define REAGE_PHOTO_H
#include <stdint.h>
#include "bundle.h"

typedef struct {
    uint8_t *px;       /* rows of w pixels, `channels` bytes each (3 RGB, 4 RGBA) */
    int w, h, channels;
} Photo;

/* A square in photo pixels: centre, side, and rotation in radians
 * (clockwise on screen, where y points down; 0 for an upright box). */
typedef struct { float cx, cy, size, angle; } CropBox;

/* The box the page and the CLI start from: the whole image when it is a
 * square, else a centred square of the shorter side. */
CropBox crop_default(int w, int h);
/* Samples the box into face [3,res,res] in [-1,1] (bilinear, averaging
 * several taps a pixel when the box is much larger than res; outside the
 * photo the edge repeats). */
void photo_crop(const Photo *p, CropBox box, int res, float *face);
/* The same with at most max_taps x max_taps taps a pixel (photo_crop: 8),
 * for the face detector, which needs less care against aliasing. */
void photo_sample(const Photo *p, CropBox box, int res, int max_taps, float *face);
float photo_estimate_age(Bundle *b, const Photo *p, CropBox box);
/* Smooths the colour of a change [3,res,res] (each channel minus the mean of
 * the three) with a Gaussian of sigma 2 pixels and keeps its brightness (the
 * mean) as it is. The generator's outputs far from the input's age carry a
 * grain of red, green and blue dots; ageing itself shows in brightness
 * (lines, grey hair) and in colour only over larger areas, and the eye
 * resolves colour more coarsely than brightness (as JPEG's halved chroma
 * relies on). scratch: 4*res*res floats. */
void soften_change_colour(float *change, int res, float *scratch);
/* A face taken younger loses the photo's fine brightness detail (pores,
 * lines, stubble) in proportion to the years taken off, all of it from
 * DETAIL_FADE_YEARS on. The generator works at its crop's resolution and
 * cannot reach detail finer than its pixel (at 128 of a 200-pixel photo,
 * about half of what tells a 60-year-old's skin from a 25-year-old's); left
 * alone, that detail stays on a face taken to 0-9, which the judge then
 * reads about 2 years older. Returns the gain photo_apply_change adds the detail
 * back with: 0 (kept) for a face kept or taken older, down to -1 (gone). */
#define DETAIL_FADE_YEARS 30.0f
float photo_detail_gain(float source_age, float target_age);
/* Adds a change [3,R,R] (0..255 units, box coordinates) to the photo in the
 * box, faded out over its outer 8 %, together with detail_gain times the
 * photo's brightness detail: each pixel's brightness less that of face
 * [3,R,R] (the box's crop, [-1,1]) sampled back at the pixel. */
void photo_apply_change(Photo *p, CropBox box, int R, const float *change, const float *face, float detail_gain);
/* Re-ages the face in the box from source_age to target_age (years), in
 * place. At target == source the photo is unchanged. */
void photo_reage(Bundle *b, Photo *p, CropBox box, float source_age, float target_age);
#endif
