#include "dataset.h"
#include "fileio.h"
#include "image.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define LABELS_MAX_BYTES (64u << 20)
#define RACES 5 /* UTKFace: white, black, Asian, Indian, others */

typedef struct { char name[64]; int age, race; } Row;

/* Parses labels.tsv: header "file age gender race split", tab separated. */
static int read_labels(const char *dir, const char *split, Row **rows, int *n, Err *e) {
    char path[4096];
    snprintf(path, sizeof(path), "%s/labels.tsv", dir);
    uint8_t *buf;
    size_t len;
    if (file_read_all(path, LABELS_MAX_BYTES, &buf, &len, e)) return -1;
    int cap = 1024, count = 0, line_no = 0;
    Row *r = malloc(sizeof(Row) * cap);
    char *text = realloc(buf, len + 1);
    if (!r || !text) { free(r); free(text ? text : (char *)buf); return err_set(e, "%s: out of memory", path); }
    text[len] = 0;
    for (char *line = text, *next; line && *line; line = next) {
        next = strchr(line, '\n');
        if (next) *next++ = 0;
        line_no++;
        size_t ll = strlen(line);
        if (ll && line[ll - 1] == '\r') line[--ll] = 0;
        if (!ll) continue;
        if (line_no == 1) {
            if (strncmp(line, "file\tage", 8)) { free(r); free(text); return err_set(e, "%s: expected the header 'file<TAB>age<TAB>gender<TAB>race<TAB>split'", path); }
            continue;
        }
        char *f[5];
        int k = 0;
        for (char *p = line; k < 5; k++) {
            f[k] = p;
            char *tab = strchr(p, '\t');
            if (!tab) { k++; break; }
            *tab = 0;
            p = tab + 1;
        }
        char *end;
        long age = k == 5 ? strtol(f[1], &end, 10) : -1;
        if (k != 5 || end == f[1] || age < 0 || age > 200 || strlen(f[0]) >= 64) {
            free(r); free(text);
            return err_set(e, "%s: line %d is malformed", path, line_no);
        }
        if (strcmp(f[4], split)) continue;
        if (count == cap) {
            Row *nr = realloc(r, sizeof(Row) * (cap *= 2));
            if (!nr) { free(r); free(text); return err_set(e, "%s: out of memory", path); }
            r = nr;
        }
        snprintf(r[count].name, sizeof(r[count].name), "%s", f[0]);
        r[count].age = (int)age;
        long race = strtol(f[3], &end, 10);
        r[count].race = end != f[3] && !*end && race >= 0 && race < RACES ? (int)race : -1; /* a few rows say "?" */
        count++;
    }
    free(text);
    *rows = r;
    *n = count;
    return 0;
}

int dataset_load(Dataset *d, const char *dir, const char *split, const ModelConfig *cfg,
                 int max_images, Err *e) {
    memset(d, 0, sizeof(*d));
    struct stat st;
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode))
        return err_set(e, "%s: data folder not found (point --data or DATA at the UTKFace folder with labels.tsv and images/)", dir);
    Row *rows;
    int n;
    if (read_labels(dir, split, &rows, &n, e)) return -1;
    if (n == 0) { free(rows); return err_set(e, "%s/labels.tsv: no photos in the '%s' split", dir, split); }
    int take = max_images > 0 && max_images < n ? max_images : n;
    int R = cfg->res;
    size_t px = (size_t)R * R * 3;
    d->res = R;
    d->pixels = malloc(px * take);
    d->age = malloc(sizeof(int) * take);
    d->group = malloc(sizeof(int) * take);
    d->race = malloc(sizeof(int) * take);
    d->name = malloc(sizeof(*d->name) * take);
    char *ok = calloc(take, 1);
    if (!d->pixels || !d->age || !d->group || !d->race || !d->name || !ok) {
        free(rows); free(ok); dataset_free(d);
        return err_set(e, "out of memory for %d images", take);
    }
    #pragma omp parallel for schedule(dynamic, 16)
    for (int i = 0; i < take; i++) {
        const Row *row = &rows[(long)i * n / take];
        char path[4096];
        snprintf(path, sizeof(path), "%s/images/%s", dir, row->name);
        Image img, small;
        Err ie;
        if (image_load(path, &img, &ie)) {
            #pragma omp critical
            fprintf(stderr, "warning: skipping %s\n", ie.msg);
            continue;
        }
        if (image_resize(&img, R, R, &small) == 0) {
            memcpy(d->pixels + px * i, small.rgb, px);
            ok[i] = 1;
            image_free(&small);
        }
        image_free(&img);
    }
    /* compact, keeping the listing's order */
    for (int i = 0; i < take; i++) {
        if (!ok[i]) { d->skipped++; continue; }
        const Row *row = &rows[(long)i * n / take];
        int j = d->count++;
        if (j != i) memcpy(d->pixels + px * j, d->pixels + px * i, px);
        d->age[j] = row->age;
        d->race[j] = row->race;
        d->group[j] = age_to_group(cfg, row->age);
        snprintf(d->name[j], sizeof(d->name[j]), "%s", row->name);
    }
    free(rows);
    free(ok);
    if (d->count == 0) {
        dataset_free(d);
        return err_set(e, "%s: none of the %d '%s' images could be read", dir, take, split);
    }
    for (int g = 0; g < cfg->groups; g++) {
        d->by_group[g] = malloc(sizeof(int) * d->count);
        if (!d->by_group[g]) { dataset_free(d); return err_set(e, "out of memory"); }
    }
    for (int i = 0; i < d->count; i++) {
        int g = d->group[i];
        d->by_group[g][d->group_count[g]++] = i;
    }
    return 0;
}

void dataset_free(Dataset *d) {
    free(d->pixels); free(d->age); free(d->group); free(d->race); free(d->name);
    for (int g = 0; g < MAX_GROUPS; g++) { free(d->by_group[g]); free(d->pick_cdf[g]); }
    memset(d, 0, sizeof(*d));
}

int dataset_balance_race(Dataset *d, float cap, Err *e) {
    for (int g = 0; g < MAX_GROUPS; g++) { free(d->pick_cdf[g]); d->pick_cdf[g] = NULL; }
    if (cap <= 0) return 0;
    double all[RACES] = {0}, in_group[MAX_GROUPS][RACES] = {{0}};
    for (int i = 0; i < d->count; i++)
        if (d->race[i] >= 0) { all[d->race[i]] += 1.0 / d->count; in_group[d->group[i]][d->race[i]] += 1.0; }
    for (int g = 0; g < MAX_GROUPS; g++) {
        int n = d->group_count[g];
        if (!n) continue;
        if (!(d->pick_cdf[g] = malloc(sizeof(float) * n))) return err_set(e, "out of memory");
        double sum = 0;
        for (int k = 0; k < n; k++) {
            int r = d->race[d->by_group[g][k]];
            double w = r < 0 ? 1.0 : all[r] / (in_group[g][r] / n);
            sum += w < cap ? w : cap;
            d->pick_cdf[g][k] = (float)sum;
        }
    }
    return 0;
}

double dataset_race_share(const Dataset *d, int g, int race) {
    int n = d->group_count[g];
    const float *cdf = d->pick_cdf[g];
    double share = 0;
    for (int k = 0; k < n; k++)
        if (d->race[d->by_group[g][k]] == race) share += cdf ? cdf[k] - (k ? cdf[k - 1] : 0) : 1;
    return !n ? 0 : share / (cdf ? cdf[n - 1] : n);
}

/* The first photo whose cumulative weight exceeds a uniform draw. */
int dataset_pick(const Dataset *d, Rng *rng, int g) {
    const float *cdf = d->pick_cdf[g];
    int n = d->group_count[g];
    if (!cdf) return d->by_group[g][rng_int(rng, n)];
    float u = rng_uniform(rng) * cdf[n - 1];
    int lo = 0, hi = n - 1;
    while (lo < hi) {
        int mid = (lo + hi) / 2;
        if (cdf[mid] > u) hi = mid; else lo = mid + 1;
    }
    return d->by_group[g][lo];
}

void dataset_image(const Dataset *d, int i, float *chw) {
    rgb_to_chw(d->pixels + (size_t)d->res * d->res * 3 * i, d->res, d->res, chw);
}

void dataset_batch(const Dataset *d, Rng *rng, int B, int max_shift, float *x, int *groups) {
    int R = d->res, nonempty[MAX_GROUPS], ng = 0;
    for (int g = 0; g < MAX_GROUPS; g++) if (d->group_count[g]) nonempty[ng++] = g;
    size_t n = (size_t)R * R;
    for (int b = 0; b < B; b++) {
        int g = nonempty[rng_int(rng, ng)];
        int i = dataset_pick(d, rng, g);
        int flip = rng_int(rng, 2);
        int dx = max_shift ? rng_int(rng, 2 * max_shift + 1) - max_shift : 0;
        int dy = max_shift ? rng_int(rng, 2 * max_shift + 1) - max_shift : 0;
        const uint8_t *src = d->pixels + n * 3 * i;
        float *dst = x + (size_t)b * 3 * n;
        for (int yy = 0; yy < R; yy++) {
            int sy = yy + dy;
            sy = sy < 0 ? 0 : sy >= R ? R - 1 : sy; /* shifts repeat the edge */
            for (int xx = 0; xx < R; xx++) {
                int sx = (flip ? R - 1 - xx : xx) + dx;
                sx = sx < 0 ? 0 : sx >= R ? R - 1 : sx;
                const uint8_t *p = src + ((size_t)sy * R + sx) * 3;
                for (int c = 0; c < 3; c++) dst[c * n + (size_t)yy * R + xx] = p[c] * (2.0f / 255.0f) - 1.0f;
            }
        }
        groups[b] = g;
    }
}
