/* reage-template: measures where UTKFace's aligned crops put the face's
 * keypoints, the template that src/facedetect.c aligns new faces to.
 *
 *   reage-template [DATA [DETECTOR.blob [LIMIT]]]
 *
 * Runs the detector on train-split photos (every k-th, up to LIMIT), keeps
 * the best face of each, and prints the mean keypoints as fractions of the
 * crop side (with their spread), ready to paste as FACE_TEMPLATE. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "facedetect.h"
#include "fileio.h"
#include "image.h"

int main(int argc, char **argv) {
    const char *dir = argc > 1 ? argv[1] : "../shared/data/utkface-part1";
    const char *det = argc > 2 ? argv[2] : "weights/blazeface.blob";
    int limit = argc > 3 ? atoi(argv[3]) : 1000;
    Err e = {{0}};
    uint8_t *buf;
    size_t len;
    static FaceDetector fd;
    if (file_read_all(det, 16u << 20, &buf, &len, &e) || facedet_load(&fd, buf, len, det, &e)) {
        fprintf(stderr, "reage-template: %s\n", e.msg);
        return 1;
    }
    char path[1024], line[512];
    snprintf(path, sizeof(path), "%s/labels.tsv", dir);
    FILE *f = fopen(path, "r");
    if (!f) { fprintf(stderr, "reage-template: cannot read %s\n", path); return 1; }
    static char names[20000][128];
    int n = 0;
    while (fgets(line, sizeof(line), f) && n < 20000) {
        char name[128], split[16], g[8], r[8];
        int age;
        if (sscanf(line, "%127s %d %7s %7s %15s", name, &age, g, r, split) == 5 && !strcmp(split, "train"))
            strcpy(names[n++], name);
    }
    fclose(f);
    int step = n > limit ? n / limit : 1, used = 0, missed = 0;
    double sum[KP_COUNT][2] = {{0}}, sq[KP_COUNT][2] = {{0}};
    for (int i = 0; i < n && used + missed < limit; i += step) {
        Image img;
        snprintf(path, sizeof(path), "%s/images/%s", dir, names[i]);
        if (image_load(path, &img, &e)) { fprintf(stderr, "reage-template: %s\n", e.msg); return 1; }
        Photo p = {img.rgb, img.w, img.h, 3};
        FaceDet d[4];
        if (facedet_photo(&fd, &p, d, 4) < 1) { missed++; image_free(&img); continue; }
        for (int k = 0; k < KP_COUNT; k++)
            for (int c = 0; c < 2; c++) {
                double v = d[0].kp[k][c] / (c ? img.h : img.w);
                sum[k][c] += v;
                sq[k][c] += v * v;
            }
        used++;
        image_free(&img);
    }
    printf("%d faces measured, %d without a detection\n", used, missed);
    static const char *KP[] = {"right eye", "left eye", "nose", "mouth", "right ear", "left ear"};
    for (int k = 0; k < KP_COUNT; k++) {
        double mx = sum[k][0] / used, my = sum[k][1] / used;
        printf("    {%.4ff, %.4ff},  /* %-9s  sd %.3f %.3f */\n", mx, my, KP[k],
               sqrt(fmax(sq[k][0] / used - mx * mx, 0)), sqrt(fmax(sq[k][1] / used - my * my, 0)));
    }
    facedet_free(&fd);
    free(buf);
    return 0;
}
