#include "landmark_set.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "blob.h"
#include "fileio.h"

int landmark_set_list(LandmarkSet *s, const char *data, int limit, Err *e) {
    memset(s, 0, sizeof(*s));
    char path[1200], line[512];
    snprintf(path, sizeof(path), "%s/labels.tsv", data);
    FILE *f = fopen(path, "r");
    if (!f) return err_set(e, "%s: cannot read (is DATA a UTKFace folder?)", path);
    int cap = 1024, n = 0;
    char (*names)[64] = malloc(sizeof(*names) * cap);
    int *ages = malloc(sizeof(int) * cap), *test = malloc(sizeof(int) * cap), *race = malloc(sizeof(int) * cap);
    while (names && ages && test && race && fgets(line, sizeof(line), f)) {
        char name[128], split[16], g[8], r[8];
        int age;
        if (sscanf(line, "%127s %d %7s %7s %15s", name, &age, g, r, split) != 5 || strlen(name) >= 64) continue;
        if (n == cap) {
            cap *= 2;
            names = realloc(names, sizeof(*names) * cap);
            ages = realloc(ages, sizeof(int) * cap);
            test = realloc(test, sizeof(int) * cap);
            race = realloc(race, sizeof(int) * cap);
            if (!names || !ages || !test || !race) break;
        }
        snprintf(names[n], 64, "%s", name);
        ages[n] = age;
        race[n] = r[0] >= '0' && r[0] <= '9' ? atoi(r) : -1;
        test[n++] = !strcmp(split, "test");
    }
    fclose(f);
    if (!names || !ages || !test || !race) { free(names); free(ages); free(test); free(race); return err_set(e, "out of memory"); }
    if (n == 0) { free(names); free(ages); free(test); free(race); return err_set(e, "%s lists no photos", path); }
    int step = limit && n > limit ? n / limit : 1, m = 0;
    for (int i = 0; i < n && (!limit || m < limit); i += step) {
        memmove(names[m], names[i], 64);
        ages[m] = ages[i];
        race[m] = race[i];
        test[m++] = test[i];
    }
    s->count = m;
    s->name = names;
    s->age = ages;
    s->test = test;
    s->race = race;
    s->points = calloc((size_t)m * FACEMESH_POINTS * 3, sizeof(float));
    s->flag = calloc((size_t)m, sizeof(float));
    if (!s->points || !s->flag) { landmark_set_free(s); return err_set(e, "out of memory for %d meshes", m); }
    uint64_t h = 1469598103934665603ull;
    for (int i = 0; i < m; i++)
        for (const char *c = names[i];; c++) {
            h = (h ^ (uint8_t)*c) * 1099511628211ull;
            if (!*c) break;
        }
    s->key = h;
    return 0;
}

static void key_text(const LandmarkSet *s, char *buf, size_t n) {
    snprintf(buf, n, "count=%d\nkey=%016llx\npoints=%d\n", s->count, (unsigned long long)s->key, FACEMESH_POINTS);
}

static int read_cache(const char *path, Blob *b, uint8_t **buf, Err *e) {
    size_t len;
    if (file_read_all(path, (size_t)2 << 30, buf, &len, e)) return -1;
    if (blob_parse(b, *buf, len, LANDMARK_MAGIC, path, e)) { free(*buf); return -1; }
    return 0;
}

int landmark_set_is_current(const char *path, const LandmarkSet *s) {
    FILE *f = fopen(path, "rb");
    if (!f) return 0;
    fclose(f);
    static Blob b;
    uint8_t *buf;
    Err e;
    if (read_cache(path, &b, &buf, &e)) return 0;
    char want[128];
    key_text(s, want, sizeof(want));
    int current = !strncmp(b.config, want, strlen(want));
    free(buf);
    return current;
}

int landmark_set_save(const LandmarkSet *s, const char *path, Err *e) {
    char config[128];
    key_text(s, config, sizeof(config));
    BlobWriter w;
    blobw_begin(&w, LANDMARK_MAGIC, config);
    int shape[3] = {s->count, FACEMESH_POINTS, 3}, fshape[1] = {s->count};
    /* float16 keeps an eighth of a pixel at 200: finer than the mesh's own spread */
    blobw_floats(&w, "points", DT_F16, 3, shape, s->points);
    blobw_floats(&w, "flag", DT_F32, 1, fshape, s->flag);
    return blobw_save(&w, path, e);
}

int landmark_set_load(LandmarkSet *s, const char *data, int limit, const char *path, Err *e) {
    if (landmark_set_list(s, data, limit, e)) return -1;
    static Blob b;
    uint8_t *buf;
    if (read_cache(path, &b, &buf, e)) { landmark_set_free(s); return -1; }
    char want[128];
    key_text(s, want, sizeof(want));
    int rc = 0;
    if (strncmp(b.config, want, strlen(want)))
        rc = err_set(e, "%s: made for another list of photos than %s's: run build/reage-landmarks --data %s", path, data, data);
    else if (blob_read_floats(&b, "points", s->points, (size_t)s->count * FACEMESH_POINTS * 3, path, e) ||
             blob_read_floats(&b, "flag", s->flag, (size_t)s->count, path, e))
        rc = -1;
    free(buf);
    if (rc) landmark_set_free(s);
    return rc;
}

void landmark_set_free(LandmarkSet *s) {
    free(s->name);
    free(s->age);
    free(s->test);
    free(s->race);
    free(s->points);
    free(s->flag);
    memset(s, 0, sizeof(*s));
}
