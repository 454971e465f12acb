/* build/reage-render: the evaluation's images. For every photo of the test
 * split, re-ages it to every age group with the shipped pipeline (the
 * engine's age estimate as the source age, the whole aligned crop as the face
 * box), and streams records to stdout for tools/eval/judge.mjs:
 *
 *   header line: {"count":N,"groups":G,"side":S,"ages":[[lo,hi],...],
 *                 "calibration":[conditioning age per group centre] or null}\n
 *   per photo:   int32 index, int32 true age, int32 gender, int32 race,
 *                float32 estimated age, G float32: the engine's own estimate
 *                of each output (where the judge disagrees, it is fooled),
 *                then G+1 images of SxSx3 bytes (the input, then each group)
 *
 * The pipeline is the shipped one: the age prototypes' transform where the
 * blob carries prototypes (src/pipeline.h: on the face mesh found in the
 * crop), with the change net's own change on top where the blob carries one,
 * else the generator; --method gan, prototypes (without the change net) or
 * structured (with it) picks one to compare.
 *
 * usage: reage-render --weights BLOB --data DIR [--limit N] [--grid OUT.png] [--method M] */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "bundle.h"
#include "facemesh.h"
#include "pipeline.h"
#include "structured.h"
#include "fileio.h"
#include "image.h"
#include "photo.h"

#define SIDE 200
#define GRID_FACES 8

typedef struct { char name[64]; int age, gender, race; } Row;

static int read_test_rows(const char *dir, Row **rows, int *n, Err *e) {
    char path[4096];
    snprintf(path, sizeof(path), "%s/labels.tsv", dir);
    uint8_t *buf;
    size_t len;
    if (file_read_all(path, 64u << 20, &buf, &len, e)) return -1;
    char *text = realloc(buf, len + 1);
    text[len] = 0;
    int cap = 1024, count = 0;
    Row *r = malloc(sizeof(Row) * cap);
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
        char name[256], gender[8], race[8], split[16];
        int age;
        if (sscanf(line, "%255s %d %7s %7s %15s", name, &age, gender, race, split) != 5 || strcmp(split, "test")) continue;
        if (count == cap) r = realloc(r, sizeof(Row) * (cap *= 2));
        snprintf(r[count].name, sizeof(r[count].name), "%.63s", name);
        r[count].age = age;
        r[count].gender = gender[0] == '?' ? -1 : atoi(gender);
        r[count].race = race[0] == '?' ? -1 : atoi(race);
        count++;
    }
    free(text);
    *rows = r;
    *n = count;
    return count ? 0 : err_set(e, "%s: no test photos", path);
}

/* Eight faces varied in age, sex and ethnicity: age brackets in turn, sexes
 * alternating, ethnicities cycling, relaxing the last two when none fits. */
static void pick_grid(const Row *rows, int n, int *pick) {
    static const int lo[GRID_FACES] = {3, 12, 22, 30, 40, 50, 62, 75}, hi[GRID_FACES] = {8, 17, 28, 38, 48, 58, 70, 95};
    for (int k = 0; k < GRID_FACES; k++) {
        pick[k] = -1;
        for (int relax = 0; relax < 3 && pick[k] < 0; relax++)
            for (int i = 0; i < n && pick[k] < 0; i++) {
                const Row *r = &rows[i];
                int used = 0;
                for (int j = 0; j < k; j++) used |= pick[j] == i;
                if (used || r->age < lo[k] || r->age > hi[k]) continue;
                if (relax < 2 && r->gender != k % 2) continue;
                if (relax < 1 && r->race != k % 5) continue;
                pick[k] = i;
            }
    }
}

int main(int argc, char **argv) {
    const char *weights = "weights/reage.blob", *data = "../shared/data/utkface-part1", *grid = NULL, *method = NULL;
    int limit = 0;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--weights")) weights = argv[i + 1];
        else if (!strcmp(argv[i], "--data")) data = argv[i + 1];
        else if (!strcmp(argv[i], "--grid")) grid = argv[i + 1];
        else if (!strcmp(argv[i], "--limit")) limit = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--method")) method = argv[i + 1];
        else { fprintf(stderr, "reage-render: unknown option %s\n", argv[i]); return 2; }
    }
    memory_keep_freed();
    Err e;
    uint8_t *buf;
    size_t len;
    Bundle b;
    Row *rows;
    int n;
    if (file_read_all(weights, 64u << 20, &buf, &len, &e) || bundle_load(&b, buf, len, NULL, weights, &e) ||
        read_test_rows(data, &rows, &n, &e)) {
        fprintf(stderr, "reage-render: %s\n", e.msg);
        return 1;
    }
    free(buf);
    if (method && strcmp(method, "gan") && strcmp(method, "prototypes") && strcmp(method, "structured")) {
        fprintf(stderr, "reage-render: --method is gan, prototypes or structured\n");
        return 2;
    }
    if (method && !strcmp(method, "structured") && !b.change) { fprintf(stderr, "reage-render: %s carries no change net\n", weights); return 1; }
    if (method && !strcmp(method, "prototypes") && b.change) {
        change_model_free(b.change);
        free(b.change);
        b.change = NULL;
    }
    int use_proto = method ? strcmp(method, "gan") != 0 : b.proto != NULL;
    if (use_proto && !b.proto) { fprintf(stderr, "reage-render: %s carries no age prototypes\n", weights); return 1; }
    static FaceMesh fm;
    if (use_proto) {
        if (file_read_all("weights/facemesh.blob", 64u << 20, &buf, &len, &e) || facemesh_load(&fm, buf, len, "weights/facemesh.blob", &e)) {
            fprintf(stderr, "reage-render: %s\n", e.msg);
            return 1;
        }
        free(buf);
    }
    int no_mesh = 0;
    int G = b.cfg.groups, count = limit > 0 && limit < n ? limit : n;
    int pick[GRID_FACES];
    pick_grid(rows, n, pick);
    Image sheet = {0};
    if (grid && image_alloc(&sheet, SIDE * (G + 1), SIDE * GRID_FACES)) return 1;
    printf("{\"count\":%d,\"groups\":%d,\"side\":%d,\"ages\":[", count, G, SIDE);
    for (int g = 0; g < G; g++) printf("%s[%d,%d]", g ? "," : "", b.cfg.group_lo[g], b.cfg.group_hi[g]);
    printf("],\"calibration\":");
    if (!b.calibrated) printf("null");
    for (int g = 0; b.calibrated && g < G; g++) printf("%s%.2f", g ? "," : "[", b.calib[g]);
    printf("%s}\n", b.calibrated ? "]" : "");
    size_t px = (size_t)SIDE * SIDE * 3;
    uint8_t *rec = malloc(px * (G + 1));
    float own[MAX_GROUPS];
    /* a --limit takes photos spread evenly over the split, not its first ones */
    char *chosen = calloc(n, 1);
    for (int k = 0; k < count; k++) chosen[(long)k * n / count] = 1;
    for (int i = 0; i < n; i++) {
        int in_grid = -1;
        for (int k = 0; k < GRID_FACES; k++) if (pick[k] == i) in_grid = k;
        if (!chosen[i] && (in_grid < 0 || !grid)) continue;
        char path[4096];
        snprintf(path, sizeof(path), "%s/images/%s", data, rows[i].name);
        Image img, face;
        if (image_load(path, &img, &e)) { fprintf(stderr, "reage-render: skipping %s\n", e.msg); continue; }
        if (img.w != SIDE || img.h != SIDE) { image_resize(&img, SIDE, SIDE, &face); image_free(&img); img = face; }
        Photo p = {img.rgb, SIDE, SIDE, 3};
        CropBox box = crop_default(SIDE, SIDE);
        float est = photo_estimate_age(&b, &p, box);
        memcpy(rec, img.rgb, px);
        for (int g = 0; g < G; g++) {
            uint8_t *out = rec + px * (g + 1);
            memcpy(out, img.rgb, px);
            Photo q = {out, SIDE, SIDE, 3};
            if (!use_proto) photo_reage(&b, &q, box, est, group_center(&b.cfg, g));
            else no_mesh += pipeline_reage(&b, &fm, &q, box, est, group_center(&b.cfg, g)) == REAGED_BY_GENERATOR && g == 0;
            own[g] = photo_estimate_age(&b, &q, box);
        }
        if (in_grid >= 0 && grid)
            for (int col = 0; col <= G; col++)
                for (int y = 0; y < SIDE; y++)
                    memcpy(sheet.rgb + (((size_t)in_grid * SIDE + y) * sheet.w + (size_t)col * SIDE) * 3,
                           rec + px * col + (size_t)y * SIDE * 3, (size_t)SIDE * 3);
        if (chosen[i]) {
            int32_t head[4] = {i, rows[i].age, rows[i].gender, rows[i].race};
            fwrite(head, 4, 4, stdout);
            fwrite(&est, 4, 1, stdout);
            fwrite(own, 4, G, stdout);
            fwrite(rec, 1, px * (G + 1), stdout);
        }
        image_free(&img);
    }
    fflush(stdout);
    if (no_mesh) fprintf(stderr, "reage-render: the face mesh found no face in %d photos (re-aged by the generator)\n", no_mesh);
    if (grid && image_save(grid, &sheet, &e)) { fprintf(stderr, "reage-render: %s\n", e.msg); return 1; }
    free(rec);
    free(chosen);
    free(rows);
    bundle_free(&b);
    return 0;
}
