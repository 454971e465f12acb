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
    int *race;           /* labels.tsv's race column; -1 where it is not 0-4 */
    char (*name)[64];
    int *by_group[MAX_GROUPS];
    int group_count[MAX_GROUPS];
    float *pick_cdf[MAX_GROUPS]; /* cumulative draw weights in by_group's order; NULL: uniform */
    int skipped;         /* unreadable images left out */
} Dataset;

/* Loads the photos of one split ("train" or "test"); at most max_images
 * (0: all), spread evenly over the listing. Unreadable images are skipped
 * with a warning on stderr; a missing folder, a malformed labels.tsv or a
 * split without a single readable image is an error. */
int dataset_load(Dataset *d, const char *dir, const char *split, const ModelConfig *cfg,
                 int max_images, Err *e);
void dataset_free(Dataset *d);
/* The age groups differ in ethnic mix (UTKFace's 0-9 is 36 % white, its 60+
 * 80 %), which the networks would otherwise learn as age: skin tone. This
 * weighs each photo's draws within its group by p(race) / p(race | group),
 * so that every group's draws approach the whole split's mix, capped at cap
 * so that a rare cell (twelve photos) is not repeated without end. Photos
 * without a race keep weight 1; cap <= 0 restores uniform draws. */
int dataset_balance_race(Dataset *d, float cap, Err *e);
/* The expected share of group g's draws that are of this race (0 for an empty group). */
double dataset_race_share(const Dataset *d, int g, int race);
/* One photo of group g (it must have photos), drawn as batches draw it. */
int dataset_pick(const Dataset *d, Rng *rng, int g);
/* Fills x [B,3,res,res] and groups [B]: each sample's group is drawn
 * uniformly among the groups that have photos, then a photo of it (uniformly,
 * or as dataset_balance_race weighs them), flipped at random and shifted by
 * up to max_shift pixels. */
void dataset_batch(const Dataset *d, Rng *rng, int B, int max_shift, float *x, int *groups);
/* Photo i as a [3,res,res] float tensor, without augmentation. */
void dataset_image(const Dataset *d, int i, float *chw);
#endif
