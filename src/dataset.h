/* The UTKFace training data: labels.tsv, decoded faces resized once to the
 * training resolution and kept in memory, and balanced, augmented batches. */
#ifndef REAGE_DATASET_H
#define REAGE_DATASET_H
#include <stdint.h>
#include "errors.h"
#include "model.h"
#include "rng.h"

typedef struct {
    int res, count;
    uint8_t *pixels;     /* count x [res*res*3] RGB */
    int *age, *group;
    char (*name)[64];
    int *by_group[MAX_GROUPS];
    int group_count[MAX_GROUPS];
    int skipped;         /* unreadable images left out */
} Dataset;

/* Loads the photos of one split ("train" or "test"); at most max_images
 * (0: all), spread evenly over the listing. Unreadable images are skipped
 * with a warning on stderr; a missing folder, a malformed labels.tsv or a
 * split without a single readable image is an error. */
int dataset_load(Dataset *d, const char *dir, const char *split, const ModelConfig *cfg,
                 int max_images, Err *e);
void dataset_free(Dataset *d);
/* Fills x [B,3,res,res] and groups [B]: each sample's group is drawn
 * uniformly among the groups that have photos, then a photo of it, flipped
 * at random and shifted by up to max_shift pixels. */
void dataset_batch(const Dataset *d, Rng *rng, int B, int max_shift, float *x, int *groups);
/* Photo i as a [3,res,res] float tensor, without augmentation. */
void dataset_image(const Dataset *d, int i, float *chw);
#endif
