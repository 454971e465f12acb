/* The model's configuration: sizes, age groups, and their text form in the
 * headers of blobs and checkpoints. */
#include <stdlib.h>
#include <string.h>
#include "blob.h"
#include "model.h"

void model_config_text(const ModelConfig *c, char *buf, size_t n) {
    int k = snprintf(buf, n,
                     "res=%d\ngroups=%d\ngen_width=%d\ngen_res_ch=%d\ngen_nres=%d\n"
                     "gen_code=%d\ngen_hidden=%d\nest_width=%d\ndisc_width=%d\ndisc_pair=%d\n",
                     c->res, c->groups, c->gen_width, c->gen_res_ch, c->gen_nres,
                     c->gen_code, c->gen_hidden, c->est_width, c->disc_width, c->disc_pair);
    if (c->est_blur) k += snprintf(buf + k, n - k, "est_blur=1\n");
    k += snprintf(buf + k, n - k, "group_ages=");
    for (int g = 0; g < c->groups; g++)
        k += snprintf(buf + k, n - k, "%s%d-%d", g ? "," : "", c->group_lo[g], c->group_hi[g]);
    snprintf(buf + k, n - k, "\n");
}

int parse_groups(ModelConfig *cfg, const char *spec, Err *e) {
    int g = 0;
    const char *p = spec;
    while (*p) {
        if (g >= MAX_GROUPS) return err_set(e, "age groups '%s': more than %d groups", spec, MAX_GROUPS);
        char *end;
        long lo = strtol(p, &end, 10), hi;
        if (end == p) return err_set(e, "age groups '%s': expected a number at '%s'", spec, p);
        p = end;
        if (*p == '+') { hi = 200; p++; }
        else if (*p == '-') {
            hi = strtol(p + 1, &end, 10);
            if (end == p + 1) return err_set(e, "age groups '%s': expected a number after '-'", spec);
            p = end;
        } else return err_set(e, "age groups '%s': expected 'lo-hi' or 'lo+'", spec);
        if (lo < 0 || hi < lo || hi > 200) return err_set(e, "age groups '%s': bad range %ld-%ld", spec, lo, hi);
        if (g > 0 && lo != cfg->group_hi[g - 1] + 1)
            return err_set(e, "age groups '%s': group %d must start at %d", spec, g + 1, cfg->group_hi[g - 1] + 1);
        cfg->group_lo[g] = (int)lo;
        cfg->group_hi[g] = (int)hi;
        g++;
        if (*p == ',') p++;
        else if (*p) return err_set(e, "age groups '%s': unexpected '%c'", spec, *p);
    }
    if (g < 2) return err_set(e, "age groups '%s': need at least 2 groups", spec);
    cfg->groups = g;
    return 0;
}

int model_config_validate(const ModelConfig *c, Err *e) {
    if (c->res < 16 || c->res > 1024 || c->res % 8)
        return err_set(e, "resolution %d: must be a multiple of 8 between 16 and 1024", c->res);
    if (c->groups < 2 || c->groups > MAX_GROUPS) return err_set(e, "groups %d: must be 2..%d", c->groups, MAX_GROUPS);
    if (c->gen_width < 1 || c->gen_width > 256 || c->gen_res_ch < 1 || c->gen_res_ch > 1024)
        return err_set(e, "generator widths %d/%d out of range", c->gen_width, c->gen_res_ch);
    if (c->gen_nres < 0 || c->gen_nres > MAX_RES_BLOCKS) return err_set(e, "gen_nres %d: must be 0..%d", c->gen_nres, MAX_RES_BLOCKS);
    if (c->gen_code < 1 || c->gen_hidden < 1 || c->est_width < 1 || c->disc_width < 1)
        return err_set(e, "network widths must be positive");
    if (c->est_width > 256 || c->disc_width > 256 || c->gen_code > 1024 || c->gen_hidden > 4096)
        return err_set(e, "network widths out of range");
    return 0;
}

int model_config_parse(ModelConfig *c, const char *text, Err *e) {
    memset(c, 0, sizeof(*c));
    struct { const char *k; int *v; } fields[] = {
        {"res", &c->res}, {"gen_width", &c->gen_width}, {"gen_res_ch", &c->gen_res_ch},
        {"gen_nres", &c->gen_nres}, {"gen_code", &c->gen_code}, {"gen_hidden", &c->gen_hidden},
        {"est_width", &c->est_width}, {"disc_width", &c->disc_width}, {"disc_pair", &c->disc_pair},
    };
    for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++)
        if (config_get_int(text, fields[i].k, fields[i].v))
            return err_set(e, "model config lacks '%s'", fields[i].k);
    /* absent in blobs written before the estimator looked through a blur */
    if (config_get_int(text, "est_blur", &c->est_blur)) c->est_blur = 0;
    /* generator parts this version no longer has: a file that used one is refused by name */
    static const char *const retired[] = {"gen_dec_film", "gen_refine"};
    for (size_t i = 0; i < sizeof(retired) / sizeof(retired[0]); i++) {
        int v;
        if (!config_get_int(text, retired[i], &v) && v != 0)
            return err_set(e, "its generator uses %s=%d, which this version of ReAge no longer has", retired[i], v);
    }
    char groups[512];
    if (config_get(text, "group_ages", groups, sizeof(groups))) return err_set(e, "model config lacks 'group_ages'");
    /* "lo-hi,...": the last group is stored with hi 200, which parse_groups reads back */
    if (parse_groups(c, groups, e)) return -1;
    return model_config_validate(c, e);
}

int model_config_match(const ModelConfig *f, const ModelConfig *m, const char *what, Err *e) {
#define CHECK(field) \
    if (f->field != m->field) \
        return err_set(e, "%s: does not match this model: %s is %d in the file, %d in the model", what, #field, f->field, m->field)
    CHECK(res); CHECK(groups); CHECK(gen_width); CHECK(gen_res_ch); CHECK(gen_nres);
    CHECK(gen_code); CHECK(gen_hidden); CHECK(est_width);
#undef CHECK
    for (int g = 0; g < m->groups; g++)
        if (f->group_lo[g] != m->group_lo[g] || f->group_hi[g] != m->group_hi[g])
            return err_set(e, "%s: does not match this model: age group %d differs", what, g + 1);
    return 0;
}

int age_to_group(const ModelConfig *c, int age) {
    for (int g = 0; g < c->groups; g++) if (age <= c->group_hi[g]) return g;
    return c->groups - 1;
}

float group_center(const ModelConfig *c, int g) {
    int hi = c->group_hi[g];
    /* an open-ended last group ("60+") is centred ten years in */
    if (g == c->groups - 1 && hi >= 120) hi = c->group_lo[g] + 19;
    return 0.5f * (c->group_lo[g] + hi);
}

void age_to_groupw(const ModelConfig *c, float age, float *w) {
    memset(w, 0, sizeof(float) * c->groups);
    if (age <= group_center(c, 0)) { w[0] = 1.0f; return; }
    for (int g = 0; g + 1 < c->groups; g++) {
        float a = group_center(c, g), b = group_center(c, g + 1);
        if (age <= b) {
            float t = (age - a) / (b - a);
            w[g] = 1.0f - t;
            w[g + 1] = t;
            return;
        }
    }
    w[c->groups - 1] = 1.0f;
}
