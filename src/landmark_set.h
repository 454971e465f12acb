/* The face meshes of a UTKFace folder's photos, computed once by
 * build/reage-landmarks and cached in a blob keyed by the folder's file
 * list (labels.tsv's names, in its order). */
#ifndef REAGE_LANDMARK_SET_H
#define REAGE_LANDMARK_SET_H
#include <stdint.h>
#include "errors.h"
#include "facemesh.h"

#define LANDMARK_MAGIC "REAGELMK"
/* A photo whose mesh flag is below this holds no face the mesh recognises. */
#define LANDMARK_MIN_FLAG 0.5f

typedef struct {
    int count;
    char (*name)[64];
    int *age, *test;        /* labels.tsv's age, and 1 for the test split */
    int *race;              /* labels.tsv's race (0-4), -1 where unknown */
    float *points;          /* [count, FACEMESH_POINTS, 3]: x, y, z in the photo's pixels */
    float *flag;            /* [count]: the mesh's face flag, 0 where the photo could not be read */
    uint64_t key;           /* FNV-1a over the names */
} LandmarkSet;

/* The photos labels.tsv lists (both splits; at most limit, spread evenly,
 * 0: all), with room for their points. */
int landmark_set_list(LandmarkSet *s, const char *data, int limit, Err *e);
/* Whether path holds the points of exactly s's photos. */
int landmark_set_is_current(const char *path, const LandmarkSet *s);
int landmark_set_save(const LandmarkSet *s, const char *path, Err *e);
/* Lists data's photos (as landmark_set_list) and reads their points from path, which must be current. */
int landmark_set_load(LandmarkSet *s, const char *data, int limit, const char *path, Err *e);
void landmark_set_free(LandmarkSet *s);
#endif
