/* build/reage: the filter on the command line.
 *
 *   reage --age 70 in.jpg out.png     re-age the face to 70
 *   reage --grid grid.png in.jpg      the face at every age group
 *   reage in.jpg                      print the estimated age */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "bundle.h"
#include "fileio.h"
#include "image.h"
#include "photo.h"

#define BLOB_MAX_BYTES (64u << 20)

static void usage(FILE *f) {
    fprintf(f, "usage: reage [--weights FILE] [--from AGE] [--age AGE] [--grid OUT.png] IN [OUT]\n"
               "  --age AGE      re-age the face to AGE years and write OUT (PNG, or JPEG for .jpg)\n"
               "  --grid FILE    write the face at every age group side by side\n"
               "  --from AGE     the photo's own age (default: estimated)\n"
               "  --weights FILE weight blob (default weights/reage.blob)\n"
               "The face should fill a square crop, eyes level; a non-square photo is cropped to its centre.\n");
}

static int fail(const char *msg) {
    fprintf(stderr, "reage: %s\n", msg);
    return 1;
}

static int parse_age(const char *flag, const char *s, float *v) {
    char *end;
    *v = strtof(s, &end);
    if (end == s || *end || !(*v >= 0 && *v <= 120)) {
        fprintf(stderr, "reage: %s: expected an age from 0 to 120, got '%s'\n", flag, s);
        return -1;
    }
    return 0;
}

int main(int argc, char **argv) {
    const char *weights = "weights/reage.blob", *grid = NULL, *in = NULL, *out = NULL;
    float target = -1, source = -1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) { usage(stdout); return 0; }
        int has_value = i + 1 < argc;
        if (!strcmp(a, "--weights") && has_value) weights = argv[++i];
        else if (!strcmp(a, "--grid") && has_value) grid = argv[++i];
        else if (!strcmp(a, "--age") && has_value) { if (parse_age("--age", argv[++i], &target)) return 2; }
        else if (!strcmp(a, "--from") && has_value) { if (parse_age("--from", argv[++i], &source)) return 2; }
        else if (a[0] == '-' && a[1]) { fprintf(stderr, "reage: unknown or incomplete option '%s'\n", a); usage(stderr); return 2; }
        else if (!in) in = a;
        else if (!out) out = a;
        else { fprintf(stderr, "reage: unexpected argument '%s'\n", a); usage(stderr); return 2; }
    }
    if (!in) { usage(stderr); return 2; }
    if (target >= 0 && !out) return fail("--age needs an output file: reage --age 70 in.jpg out.png");
    if (target < 0 && out) return fail("an output file needs --age");
    memory_keep_freed();
    Err e;
    uint8_t *buf;
    size_t len;
    if (file_read_all(weights, BLOB_MAX_BYTES, &buf, &len, &e)) return fail(e.msg);
    Bundle b;
    if (bundle_load(&b, buf, len, NULL, weights, &e)) return fail(e.msg);
    free(buf);
    if (b.info[0]) fprintf(stderr, "weights %s (%s)\n", weights, b.info);
    Image img;
    if (image_load(in, &img, &e)) return fail(e.msg);
    Photo p = {img.rgb, img.w, img.h, 3};
    CropBox box = crop_default(img.w, img.h);
    float estimated = photo_estimate_age(&b, &p, box);
    printf("estimated age: %.0f\n", estimated);
    if (source < 0) source = estimated;
    if (grid) {
        int R = b.cfg.res, G = b.cfg.groups;
        Image g;
        if (image_alloc(&g, R * (G + 1), R)) return fail("out of memory");
        float *face = malloc(sizeof(float) * 3 * R * R), *y = malloc(sizeof(float) * 3 * R * R), gw[MAX_GROUPS];
        uint8_t *tile = malloc((size_t)3 * R * R);
        photo_crop(&p, box, R, face);
        for (int col = 0; col <= G; col++) {
            if (col == 0) memcpy(y, face, sizeof(float) * 3 * R * R);
            else {
                memset(gw, 0, sizeof(gw));
                gw[col - 1] = 1;
                bundle_reage(&b, face, gw, y);
            }
            chw_to_rgb(y, R, R, tile);
            for (int r = 0; r < R; r++) memcpy(g.rgb + ((size_t)r * g.w + (size_t)col * R) * 3, tile + (size_t)r * R * 3, (size_t)R * 3);
        }
        if (image_save(grid, &g, &e)) return fail(e.msg);
        printf("wrote %s: input, then ages", grid);
        for (int k = 0; k < G; k++) printf(" %d-%d", b.cfg.group_lo[k], b.cfg.group_hi[k] >= 120 ? 120 : b.cfg.group_hi[k]);
        printf("\n");
        free(face); free(y); free(tile);
        image_free(&g);
    }
    if (target >= 0) {
        photo_reage(&b, &p, box, source, target);
        if (image_save(out, &img, &e)) return fail(e.msg);
        printf("wrote %s: %.0f -> %.0f years\n", out, source, target);
    }
    image_free(&img);
    bundle_free(&b);
    return 0;
}
