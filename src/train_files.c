/* What a training run reads and writes: checkpoints (resumable bit for
 * bit), warm starts from another run's checkpoint, the page's blob and the
 * sample grids. */
#include <stdlib.h>
#include <string.h>
#include "blob.h"
#include "bundle.h"
#include "fileio.h"
#include "image.h"
#include "trainer.h"

/* The generator with the averaged weights (the live one without an average). */
static Generator averaged(const Trainer *t) {
    Generator g = t->gen;
    if (t->gen_avg) g.ps.data = t->gen_avg;
    return g;
}

static void write_set(BlobWriter *w, const char *prefix, const ParamSet *ps) {
    char name[64];
    int shape[1] = {(int)ps->total};
    uint32_t before[PARAM_MAX_TENSORS];
    blobw_params(w, prefix, ps, DT_F32);
    snprintf(name, sizeof(name), "%sadam_m", prefix);
    blobw_floats(w, name, DT_F32, 1, shape, ps->adam_m);
    snprintf(name, sizeof(name), "%sadam_v", prefix);
    blobw_floats(w, name, DT_F32, 1, shape, ps->adam_v);
    for (int i = 0; i < ps->count; i++) before[i] = (uint32_t)ps->t[i].adam_before;
    snprintf(name, sizeof(name), "%sadam_before", prefix);
    blobw_u32(w, name, (size_t)ps->count, before);
}

/* Each tensor's adam_before as the file has it (none in checkpoints older
 * than warm starts that carry moments: 0). */
static int read_adam_before(const Blob *b, const char *prefix, ParamSet *ps, const char *what, Err *e) {
    char name[64];
    uint32_t before[PARAM_MAX_TENSORS] = {0};
    snprintf(name, sizeof(name), "%sadam_before", prefix);
    if (blob_find(b, name) && blob_read_u32(b, name, before, (size_t)ps->count, what, e)) return -1;
    for (int i = 0; i < ps->count; i++) ps->t[i].adam_before = (int)before[i];
    return 0;
}

static int read_set(const Blob *b, const char *prefix, ParamSet *ps, const char *what, Err *e) {
    char name[64];
    if (blob_read_params(b, prefix, ps, what, e)) return -1;
    snprintf(name, sizeof(name), "%sadam_m", prefix);
    if (blob_read_floats(b, name, ps->adam_m, ps->total, what, e)) return -1;
    snprintf(name, sizeof(name), "%sadam_v", prefix);
    if (blob_read_floats(b, name, ps->adam_v, ps->total, what, e)) return -1;
    return read_adam_before(b, prefix, ps, what, e);
}

/* Whether a checkpoint holds the set (optional sets: the average, the critic). */
static int has_set(const Blob *b, const char *prefix, const ParamSet *ps) {
    char name[PARAM_NAME_MAX + 16];
    snprintf(name, sizeof(name), "%s%s", prefix, ps->t[0].name);
    return blob_find(b, name) != NULL;
}

#define MAX_CONV_PATHS (128 * CONV_PATH_WORDS)

int trainer_save_checkpoint(const Trainer *t, const char *path, Err *e) {
    char cfg[4096];
    train_config_text(&t->tc, cfg, sizeof(cfg));
    BlobWriter w;
    blobw_begin(&w, CKPT_MAGIC, cfg);
    uint32_t state[3] = {(uint32_t)t->step, (uint32_t)(t->rng.s >> 32), (uint32_t)t->rng.s};
    blobw_u32(&w, "train.state", 3, state);
    uint32_t paths[MAX_CONV_PATHS];
    size_t npaths = conv_paths_export(paths, MAX_CONV_PATHS);
    if (npaths) blobw_u32(&w, "train.conv_paths", npaths, paths);
    write_set(&w, "gen.", &t->gen.ps);
    if (t->gen_avg) {
        Generator avg = averaged(t);
        blobw_params(&w, "gen_avg.", &avg.ps, DT_F32);
    }
    write_set(&w, "disc.", &t->disc.ps);
    write_set(&w, "estimator.", &t->est.ps);
    if (t->has_critic) write_set(&w, "critic.", &t->critic.ps);
    return blobw_save(&w, path, e);
}

static int read_checkpoint(const char *path, uint8_t **buf, Blob **blob, Err *e) {
    size_t len;
    *blob = NULL;
    if (file_read_all(path, (size_t)4 << 30, buf, &len, e)) return -1;
    *blob = malloc(sizeof(Blob));
    if (!*blob) { free(*buf); return err_set(e, "%s: out of memory", path); }
    if (blob_parse(*blob, *buf, len, CKPT_MAGIC, path, e)) { free(*buf); free(*blob); return -1; }
    return 0;
}

/* Options of earlier versions, with the value that left them unused: a
 * checkpoint that names one at that value loads, one that used it cannot
 * go on (weights/HISTORY.md tells what each did). */
static const char *const retired[][2] = {
    {"gen_dec_film", "0"}, {"gen_refine", "0"}, {"age_map_off_at", "0"}, {"tv_edge", "0"},
    {"critic_blur", "0"}, {"critic_adv_eps", "0"}, {"age_core", "0"}, {"widen_noise", "0.05"},
};

static int check_retired(const char *key, const char *val, const char *what, Err *e) {
    for (size_t i = 0; i < sizeof(retired) / sizeof(retired[0]); i++) {
        if (strcmp(key, retired[i][0])) continue;
        if (strtod(val, NULL) == strtod(retired[i][1], NULL)) return 1;
        char flag[64];
        return err_set(e, "%s: trained with %s %s, an option this version of ReAge no longer has", what,
                       train_option_flag(flag, sizeof(flag), key), val);
    }
    return 0;
}

/* The options stored in a checkpoint's header, "key=value" lines. */
static int parse_train_config(const char *text, TrainConfig *tc, const char *what, Err *e) {
    memset(tc, 0, sizeof(*tc));
    for (const char *line = text; *line;) {
        const char *eq = strchr(line, '='), *nl = strchr(line, '\n');
        if (!eq || !nl || eq > nl) return err_set(e, "%s: malformed configuration", what);
        char key[64], val[1100];
        snprintf(key, sizeof(key), "%.*s", (int)(eq - line), line);
        snprintf(val, sizeof(val), "%.*s", (int)(nl - eq - 1), eq + 1);
        int old = check_retired(key, val, what, e);
        if (old < 0 || (!old && train_config_set(tc, key, val, e))) return -1;
        line = nl + 1;
    }
    return 0;
}

int checkpoint_read_config(const char *path, TrainConfig *tc, Err *e) {
    uint8_t *buf;
    Blob *blob;
    if (read_checkpoint(path, &buf, &blob, e)) return -1;
    int rc = parse_train_config(blob->config, tc, path, e);
    free(buf);
    free(blob);
    return rc;
}

int trainer_load_checkpoint(Trainer *t, const char *path, Err *e) {
    uint8_t *buf;
    Blob *blob;
    if (read_checkpoint(path, &buf, &blob, e)) return -1;
    uint32_t state[3];
    TrainConfig file;
    int rc = -1;
    if (parse_train_config(blob->config, &file, path, e)) goto done;
    if (model_config_match(&file.model, &t->tc.model, path, e)) goto done;
    if (file.model.disc_width != t->tc.model.disc_width || file.model.disc_pair != t->tc.model.disc_pair) {
        err_set(e, "%s: does not match this model: the discriminator differs", path);
        goto done;
    }
    if (blob_read_u32(blob, "train.state", state, 3, path, e) || read_set(blob, "gen.", &t->gen.ps, path, e) ||
        read_set(blob, "disc.", &t->disc.ps, path, e) || read_set(blob, "estimator.", &t->est.ps, path, e))
        goto done;
    if (t->has_critic) {
        if (has_set(blob, "critic.", &t->critic.ps)) {
            if (read_set(blob, "critic.", &t->critic.ps, path, e)) goto done;
        } else {
            if (trainer_start_critic(t, e)) goto done;
        }
    }
    if (t->gen_avg) {
        /* a checkpoint without an average (older, or trained without) starts it at its weights */
        Generator avg = averaged(t);
        if (!has_set(blob, "gen_avg.", &avg.ps)) memcpy(t->gen_avg, t->gen.ps.data, sizeof(float) * t->gen.ps.total);
        else if (blob_read_params(blob, "gen_avg.", &avg.ps, path, e)) goto done;
    }
    t->step = (int)state[0];
    t->rng.s = ((uint64_t)state[1] << 32) | state[2];
    /* absent in older checkpoints and in builds with one path: measured anew */
    const BlobTensor *paths = blob_find(blob, "train.conv_paths");
    if (paths && paths->dtype == DT_U32 && paths->count <= MAX_CONV_PATHS) {
        uint32_t p[MAX_CONV_PATHS];
        memcpy(p, paths->data, paths->count * 4);
        conv_paths_import(p, paths->count);
    }
    rc = 0;
done:
    free(buf);
    free(blob);
    return rc;
}

/* Whether the file's tensor prefix+name has pt's shape. */
static int same_shape(const Blob *b, const char *prefix, const ParamTensor *pt) {
    char name[PARAM_NAME_MAX + 16];
    snprintf(name, sizeof(name), "%s%s", prefix, pt->name);
    const BlobTensor *bt = blob_find(b, name);
    int same = bt && bt->ndim == (uint32_t)pt->ndim && bt->count == pt->size;
    for (int d = 0; same && d < pt->ndim; d++) same = bt->shape[d] == (uint32_t)pt->shape[d];
    return same;
}

/* Copies the file's tensors prefix+name into ps where name and shape
 * match; appends the names of the others to fresh. Returns how many came. */
static int warm_set(const Blob *b, const char *prefix, ParamSet *ps, char *fresh, size_t n, const char *what, Err *e) {
    int copied = 0;
    char name[PARAM_NAME_MAX + 16];
    for (int i = 0; i < ps->count; i++) {
        const ParamTensor *pt = &ps->t[i];
        snprintf(name, sizeof(name), "%s%s", prefix, pt->name);
        if (!same_shape(b, prefix, pt)) {
            size_t k = strlen(fresh);
            snprintf(fresh + k, n - k, "%s%s", k ? ", " : "", name);
            continue;
        }
        if (blob_read_floats(b, name, ps->data + pt->offset, pt->size, what, e)) return -1;
        copied++;
    }
    return copied;
}

/* Adam's moments for the tensors of ps that the file holds in the same
 * shape, from its flat moment arrays laid out as src (the set built from
 * the file's own configuration), with the steps that built them: those
 * tensors go on at the pace they had, where fresh moments would move every
 * weight by the full learning rate at once. The others keep fresh moments. */
static int carry_moments(const Blob *b, const char *prefix, ParamSet *ps, ParamSet *src, uint32_t file_step,
                         const char *what, Err *e) {
    char mname[64], vname[64];
    snprintf(mname, sizeof(mname), "%sadam_m", prefix);
    snprintf(vname, sizeof(vname), "%sadam_v", prefix);
    const BlobTensor *m = blob_find(b, mname), *v = blob_find(b, vname);
    if (!m || !v || m->dtype != DT_F32 || v->dtype != DT_F32 || m->count != src->total || v->count != src->total)
        return err_set(e, "%s: does not match its own configuration: '%s' or '%s' is missing or the wrong size", what,
                       mname, vname);
    if (read_adam_before(b, prefix, src, what, e)) return -1;
    for (int i = 0; i < ps->count; i++) {
        ParamTensor *pt = &ps->t[i];
        const ParamTensor *q = params_find(src, pt->name);
        if (!q || q->size != pt->size || !same_shape(b, prefix, pt)) continue;
        memcpy(ps->adam_m + pt->offset, m->data + 4 * q->offset, 4 * pt->size);
        memcpy(ps->adam_v + pt->offset, v->data + 4 * q->offset, 4 * pt->size);
        pt->adam_before = (int)file_step + q->adam_before;
    }
    return 0;
}

int trainer_warm_start(Trainer *t, const char *path, char *fresh, size_t n, Err *e) {
    uint8_t *buf;
    Blob *blob;
    fresh[0] = 0;
    if (read_checkpoint(path, &buf, &blob, e)) return -1;
    TrainConfig file;
    int rc = -1, got;
    if (parse_train_config(blob->config, &file, path, e)) goto done;
    got = warm_set(blob, "gen.", &t->gen.ps, fresh, n, path, e);
    if (got == 0) err_set(e, "%s: its generator shares no tensor with this one", path);
    if (got <= 0 || warm_set(blob, "disc.", &t->disc.ps, fresh, n, path, e) < 0 ||
        warm_set(blob, "estimator.", &t->est.ps, fresh, n, path, e) < 0)
        goto done;
    /* the file's own layouts, to find each tensor's moments in its flat arrays */
    Generator file_gen;
    Discriminator file_disc;
    Estimator file_est;
    uint32_t state[3];
    gen_build(&file_gen, &file.model);
    disc_build(&file_disc, &file.model);
    est_build(&file_est, &file.model);
    if (blob_read_u32(blob, "train.state", state, 3, path, e) ||
        carry_moments(blob, "gen.", &t->gen.ps, &file_gen.ps, state[0], path, e) ||
        carry_moments(blob, "disc.", &t->disc.ps, &file_disc.ps, state[0], path, e) ||
        carry_moments(blob, "estimator.", &t->est.ps, &file_est.ps, state[0], path, e))
        goto done;
    if (t->has_critic) {
        if (has_set(blob, "critic.", &t->critic.ps)) {
            if (warm_set(blob, "critic.", &t->critic.ps, fresh, n, path, e) < 0 ||
                carry_moments(blob, "critic.", &t->critic.ps, &file_est.ps, state[0], path, e))
                goto done;
        } else {
            if (trainer_start_critic(t, e)) goto done;
        }
    }
    if (t->gen_avg) {
        /* The average starts where the checkpoint's was, not at its current
         * weights: those are noisier (its blob is the average), and the new
         * run's blob would spend its first thousand steps getting back. Parts
         * the model gained start at their initial weights. */
        memcpy(t->gen_avg, t->gen.ps.data, sizeof(float) * t->gen.ps.total);
        Generator avg = averaged(t);
        if (has_set(blob, "gen_avg.", &avg.ps)) {
            char unused[2048] = "";
            if (warm_set(blob, "gen_avg.", &avg.ps, unused, sizeof(unused), path, e) < 0) goto done;
        }
    }
    rc = 0;
done:
    free(buf);
    free(blob);
    return rc;
}

static int export_generator(const Trainer *t, const Generator *g, const char *path, Err *e) {
    char info[64];
    snprintf(info, sizeof(info), "trained_steps:%d", t->step);
    return bundle_save(path, g, &t->est, info, e);
}

int trainer_export_blob(const Trainer *t, const char *path, Err *e) {
    Generator g = averaged(t);
    return export_generator(t, &g, path, e);
}

int trainer_export_live_blob(const Trainer *t, const char *path, Err *e) { return export_generator(t, &t->gen, path, e); }

int trainer_sample_grid(Trainer *t, const Dataset *faces, const int *idx, int n, const char *path, Err *e) {
    const ModelConfig *c = &t->tc.model;
    int R = c->res, G = c->groups, B = t->tc.batch;
    Image grid;
    if (image_alloc(&grid, R * (G + 1), R * n)) return err_set(e, "%s: out of memory", path);
    size_t per = (size_t)3 * R * R;
    uint8_t *tile = malloc(per);
    /* one face across all groups, a batch of up to B outputs at a time */
    float *x = t->x, *gw = t->gw_tgt;
    Generator g = averaged(t);
    for (int f = 0; f < n; f++) {
        dataset_image(faces, idx[f], x);
        for (int g0 = 0; g0 <= G; g0 += B) {
            int cnt = G + 1 - g0 < B ? G + 1 - g0 : B;
            memset(gw, 0, sizeof(float) * B * G);
            for (int k = 0; k < B; k++) {
                if (k) memcpy(x + per * k, x, sizeof(float) * per);
                int g = g0 + k - 1; /* column 0 is the input itself */
                if (g >= 0 && g < G) gw[k * G + g] = 1.0f;
            }
            gen_forward(&g, &t->g_aux, x, gw);
            for (int k = 0; k < cnt; k++) {
                int col = g0 + k;
                chw_to_rgb(col == 0 ? x : t->g_aux.y + per * k, R, R, tile);
                for (int yy = 0; yy < R; yy++)
                    memcpy(grid.rgb + (((size_t)f * R + yy) * grid.w + (size_t)col * R) * 3, tile + (size_t)yy * R * 3, (size_t)R * 3);
            }
        }
    }
    free(tile);
    int rc = image_save(path, &grid, e);
    image_free(&grid);
    return rc;
}
