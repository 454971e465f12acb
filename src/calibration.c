#include "calibration.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

float calibration_map(const ModelConfig *c, const float *calib, float age) {
    if (!calib) return age;
    int G = c->groups;
    if (age <= group_center(c, 0)) return calib[0];
    for (int g = 0; g + 1 < G; g++) {
        float a = group_center(c, g), b = group_center(c, g + 1);
        if (age <= b) return calib[g] + (age - a) / (b - a) * (calib[g + 1] - calib[g]);
    }
    return calib[G - 1];
}

int calibration_parse(const ModelConfig *c, const char *value, float *calib, Err *e) {
    int G = c->groups;
    float lo = group_center(c, 0), hi = group_center(c, G - 1);
    const char *p = value;
    for (int g = 0; g < G; g++) {
        char *end;
        float v = strtof(p, &end);
        if (end == p) return err_set(e, "%s '%.60s': expected %d numbers, one per age group", CALIBRATION_KEY, value, G);
        if (!isfinite(v) || v < lo || v > hi)
            return err_set(e, "%s: %g is outside the group centres %g..%g", CALIBRATION_KEY, v, lo, hi);
        if (g && v < calib[g - 1])
            return err_set(e, "%s: decreases from %g to %g (an older age must not map younger)", CALIBRATION_KEY,
                           calib[g - 1], v);
        calib[g] = v;
        p = end;
        if (g + 1 < G && *p++ != ',')
            return err_set(e, "%s '%.60s': expected %d numbers, one per age group", CALIBRATION_KEY, value, G);
    }
    if (*p) return err_set(e, "%s '%.60s': more than %d numbers", CALIBRATION_KEY, value, G);
    return 0;
}

void calibration_line(const ModelConfig *c, const float *calib, char *buf, size_t n) {
    int k = snprintf(buf, n, "%s=", CALIBRATION_KEY);
    for (int g = 0; g < c->groups && k > 0 && (size_t)k < n; g++)
        k += snprintf(buf + k, n - k, "%s%.2f", g ? "," : "", calib[g]);
    if (k > 0 && (size_t)k < n) snprintf(buf + k, n - k, "\n");
}

void calibration_fit(const ModelConfig *c, int K, const float *cond, const float *reading, const float *want,
                     float *calib) {
    for (int g = 0; g < c->groups; g++) {
        const float *r = reading + (size_t)g * K;
        float prev = r[0], at = cond[0];
        if (want[g] > prev)
            for (int k = 1; k < K; k++) {
                float cur = fmaxf(r[k], prev);
                if (cur >= want[g]) {
                    at = cur > prev ? cond[k - 1] + (want[g] - prev) / (cur - prev) * (cond[k] - cond[k - 1]) : cond[k];
                    break;
                }
                at = cond[k];
                prev = cur;
            }
        calib[g] = g && at < calib[g - 1] ? calib[g - 1] : at;
    }
}

uint8_t *calibration_apply(const Blob *blob, const ModelConfig *c, const float *calib, size_t *len) {
    char config[sizeof(blob->config) + 512];
    size_t k = 0, kl = strlen(CALIBRATION_KEY);
    for (const char *p = blob->config; *p;) {
        const char *end = strchr(p, '\n');
        size_t n = end ? (size_t)(end - p + 1) : strlen(p);
        if (!(n > kl && !strncmp(p, CALIBRATION_KEY, kl) && p[kl] == '=')) {
            memcpy(config + k, p, n);
            k += n;
        }
        p += n;
    }
    if (k && config[k - 1] != '\n') config[k++] = '\n';
    calibration_line(c, calib, config + k, sizeof(config) - k);
    return blob_with_config(blob, config, len);
}
