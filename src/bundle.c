#include "bundle.h"
#include "calibration.h"
#include "prototypes.h"
#include "structured.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef __EMSCRIPTEN__ /* the browser build has no file system */
int bundle_save(const char *path, const Generator *g, const Estimator *m, const char *info, Err *e) {
    char cfg[2048];
    model_config_text(&g->cfg, cfg, sizeof(cfg));
    if (info && *info) {
        size_t k = strlen(cfg);
        snprintf(cfg + k, sizeof(cfg) - k, "info=%s\n", info);
    }
    BlobWriter w;
    blobw_begin(&w, BLOB_MAGIC, cfg);
    blobw_params(&w, "gen.", &g->ps, DT_F16);
    blobw_params(&w, "", &m->ps, DT_F16); /* estimator tensors are already named est.* */
    return blobw_save(&w, path, e);
}
#endif

/* Puts the file's name and the part at fault before a parser's message. */
static void blame(Err *e, const char *what, const char *part) {
    char msg[sizeof(e->msg)];
    snprintf(msg, sizeof(msg), "%.100s: %s: %.360s", what, part, e->msg);
    err_set(e, "%s", msg);
}

int bundle_load(Bundle *b, const uint8_t *buf, size_t len, const ModelConfig *expect,
                const char *what, Err *e) {
    memset(b, 0, sizeof(*b));
    Blob *blob = malloc(sizeof(Blob));
    if (!blob) return err_set(e, "%s: out of memory", what);
    int rc = -1;
    if (blob_parse(blob, buf, len, BLOB_MAGIC, what, e)) goto done;
    if (model_config_parse(&b->cfg, blob->config, e)) {
        blame(e, what, "bad model config");
        goto done;
    }
    if (expect && model_config_match(&b->cfg, expect, what, e)) goto done;
    config_get(blob->config, "info", b->info, sizeof(b->info));
    char calib[512];
    if (!config_get(blob->config, CALIBRATION_KEY, calib, sizeof(calib))) {
        if (calibration_parse(&b->cfg, calib, b->calib, e)) {
            blame(e, what, "bad age calibration");
            goto done;
        }
        b->calibrated = 1;
    }
    gen_build(&b->gen, &b->cfg);
    est_build(&b->est, &b->cfg);
    if (params_alloc(&b->gen.ps, 0) || params_alloc(&b->est.ps, 0)) { err_set(e, "%s: out of memory", what); goto done; }
    /* the generator may come later only where the prototypes re-age every face the mesh finds */
    b->has_generator = blob_has_prefix(blob, "gen.") || !blob_find(blob, "proto.shape");
    if ((b->has_generator && blob_read_params(blob, "gen.", &b->gen.ps, what, e)) || blob_read_params(blob, "", &b->est.ps, what, e))
        goto done;
    Prototypes P;
    int pr = proto_load(&P, blob, b->cfg.groups, what, e);
    if (pr < 0) goto done;
    if (pr == 0) {
        if (!(b->proto = malloc(sizeof(P)))) { proto_free(&P); err_set(e, "%s: out of memory", what); goto done; }
        *b->proto = P;
    }
    ChangeModel cm;
    int cr = change_model_load(&cm, blob, b->cfg.groups, what, e);
    if (cr < 0) goto done;
    if (cr == 0) {
        if (!b->proto) { change_model_free(&cm); err_set(e, "%s: a change net without the prototypes it refines", what); goto done; }
        if (!(b->change = malloc(sizeof(cm)))) { change_model_free(&cm); err_set(e, "%s: out of memory", what); goto done; }
        *b->change = cm;
    }
    size_t s1 = gen_scratch_floats(&b->gen, 1), s2 = est_scratch_floats(&b->est, 1);
    b->scratch = calloc(s1 > s2 ? s1 : s2, sizeof(float));
    if (!b->scratch || gen_acts_alloc(&b->gen, &b->ga, 1, 0, b->scratch) ||
        est_acts_alloc(&b->est, &b->ea, 1, 0, b->scratch)) {
        err_set(e, "%s: out of memory", what);
        goto done;
    }
    rc = 0;
done:
    free(blob);
    if (rc) bundle_free(b);
    return rc;
}

int bundle_load_generator(Bundle *b, const uint8_t *buf, size_t len, const char *what, Err *e) {
    Blob *blob = malloc(sizeof(Blob));
    if (!blob) return err_set(e, "%s: out of memory", what);
    ModelConfig cfg;
    int rc = -1;
    if (blob_parse(blob, buf, len, BLOB_MAGIC, what, e)) goto done;
    if (model_config_parse(&cfg, blob->config, e)) {
        blame(e, what, "bad model config");
        goto done;
    }
    if (model_config_match(&cfg, &b->cfg, what, e)) goto done;
    if (!blob_has_prefix(blob, "gen.")) {
        err_set(e, "%s: carries no generator", what);
        goto done;
    }
    /* read into a copy, so that a blob that fails half way leaves the bundle as it was */
    ParamSet ps = b->gen.ps;
    if (params_alloc(&ps, 0)) {
        err_set(e, "%s: out of memory", what);
        goto done;
    }
    if (blob_read_params(blob, "gen.", &ps, what, e)) {
        params_free(&ps);
        goto done;
    }
    memcpy(b->gen.ps.data, ps.data, sizeof(float) * ps.total);
    params_free(&ps);
    b->has_generator = 1;
    rc = 0;
done:
    free(blob);
    return rc;
}

void bundle_free(Bundle *b) {
    gen_acts_free(&b->ga);
    est_acts_free(&b->ea);
    params_free(&b->gen.ps);
    params_free(&b->est.ps);
    free(b->scratch);
    b->scratch = NULL;
    if (b->proto) proto_free(b->proto);
    free(b->proto);
    b->proto = NULL;
    if (b->change) change_model_free(b->change);
    free(b->change);
    b->change = NULL;
}

float bundle_estimate_age(Bundle *b, const float *face) {
    return est_age_years(&b->est, est_forward(&b->est, &b->ea, face, 0));
}

void bundle_age_weights(const Bundle *b, float age, float *groupw) {
    age_to_groupw(&b->cfg, calibration_map(&b->cfg, b->calibrated ? b->calib : NULL, age), groupw);
}

void bundle_reage(Bundle *b, const float *face, const float *groupw, float *out) {
    gen_forward(&b->gen, &b->ga, face, groupw);
    size_t n = (size_t)3 * b->cfg.res * b->cfg.res;
    for (size_t i = 0; i < n; i++) out[i] = b->ga.y[i] < -1.0f ? -1.0f : b->ga.y[i] > 1.0f ? 1.0f : b->ga.y[i];
}
