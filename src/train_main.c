/* build/reage-train: trains the Re-Aging GAN on UTKFace.
 *
 *   reage-train [--config shipped|seed|tiny] [--OPTION VALUE ...]
 *   reage-train --resume                         continue runs/shipped
 *   reage-train --out runs/x --init-from weights/checkpoint.bin --OPTION VALUE
 *                                                a changed model, started from a run's weights
 *   reage-train --config seed --describe         layers, shapes, parameters
 *   reage-train --export-live FILE               runs/shipped's generator, not averaged, as a blob */
#include <omp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "fileio.h"
#include "sgemm.h"
#include "trainer.h"

static volatile sig_atomic_t stop_requested;
static void on_signal(int sig) { (void)sig; stop_requested = 1; }

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void usage(FILE *f) {
    fprintf(f, "usage: reage-train [--config shipped|seed|tiny] [--resume | --init-from CKPT] [--describe] [--threads N] [--OPTION VALUE ...]\n"
               "       reage-train [--out DIR] --export-live FILE\n"
               "Trains ReAge's generator, discriminator and age estimator; writes OUT/checkpoint.bin (resumable),\n"
               "OUT/reage.blob (the page's weights: the generator averaged over steps, see --ema), OUT/log.tsv and\n"
               "OUT/samples/. --config shipped (the default) is the shipped model's recipe, its schedule included.\n"
               "--resume continues OUT from its checkpoint, with its options (those marked as changeable may be given).\n"
               "--export-live writes the checkpoint's current, not averaged, generator as a blob.\n"
               "--init-from starts a new run (step 0) from another run's checkpoint: each tensor with the same name\n"
               "and shape is copied with its Adam state, the others (a part the model gained) start as initialised.\nOptions:\n");
    train_config_usage(f);
}

static int fail(const char *msg) {
    fprintf(stderr, "reage-train: %s\n", msg);
    return 1;
}

/* The faces of the sample grid: test photos spread over the age range. */
static int pick_faces(const Dataset *d, int *idx, int n) {
    int order[4096], m = d->count < 4096 ? d->count : 4096;
    for (int i = 0; i < m; i++) order[i] = i;
    for (int i = 1; i < m; i++)
        for (int j = i; j > 0 && d->age[order[j]] < d->age[order[j - 1]]; j--) {
            int tmp = order[j]; order[j] = order[j - 1]; order[j - 1] = tmp;
        }
    if (n > m) n = m;
    for (int k = 0; k < n; k++) idx[k] = order[(int)((k + 0.5) * m / n)];
    return n;
}

/* Each group's share of white photos (race 0), the largest and the most
 * unevenly spread among UTKFace's groups, before and after balancing. */
static void print_race_mix(const Dataset *d, int groups, float cap, const double *before) {
    printf("ethnicity balanced within age groups (cap %g); white share per group, before -> after:", cap);
    for (int g = 0; g < groups; g++)
        if (d->group_count[g]) printf(" %.0f->%.0f%%", 100 * before[g], 100 * dataset_race_share(d, g, 0));
    printf("\n");
}

/* Columns are only ever added at the end: a log from an older trainer, whose
 * header is a prefix of this one, gains the new columns ("nan" in old rows). */
#define LOG_HEADER "step\timages_per_s\td_loss\td_real\td_fake\tadv\tcyc\trec\tage\tdelta\ttv\test_loss\test_acc\tctv\ttone\tage_gap\tshade\td_age\n"

/* The columns a log with this first line lacks, or -1 if it is not an older
 * form of LOG_HEADER. */
static int log_missing_columns(const uint8_t *buf, size_t len) {
    size_t n = 0;
    while (n < len && buf[n] != '\n') n++;
    size_t full = strlen(LOG_HEADER) - 1;
    if (n > full || memcmp(buf, LOG_HEADER, n) || (n < full && LOG_HEADER[n] != '\t')) return -1;
    int missing = 0;
    for (size_t i = n; i < full; i++) missing += LOG_HEADER[i] == '\t';
    return missing;
}

/* A resumed run repeats the steps after its checkpoint: their old log lines
 * go. A log from an older trainer gains the columns added since. */
static int log_keep_until(const char *path, int step, Err *e) {
    uint8_t *buf, *out;
    size_t len, kept = 0;
    FILE *probe = fopen(path, "rb");
    if (!probe) return 0; /* no log yet */
    fclose(probe);
    if (file_read_all(path, (size_t)1 << 30, &buf, &len, e)) return -1;
    int missing = log_missing_columns(buf, len), upgrade = missing > 0;
    size_t lines = 0;
    for (size_t i = 0; i < len; i++) lines += buf[i] == '\n';
    if (!(out = malloc(len + (lines + 1) * 4 * (missing > 0 ? missing : 0) + sizeof(LOG_HEADER))))
        { free(buf); return err_set(e, "%s: out of memory", path); }
    for (size_t i = 0; i < len;) {
        size_t j = i;
        while (j < len && buf[j] != '\n') j++;
        int nl = j < len;
        long line_step = 0;
        size_t d = i;
        while (d < j && buf[d] >= '0' && buf[d] <= '9' && line_step < 1000000000) line_step = line_step * 10 + (buf[d++] - '0');
        if (upgrade && i == 0) {
            memcpy(out, LOG_HEADER, strlen(LOG_HEADER));
            kept = strlen(LOG_HEADER);
        } else if (d == i || line_step <= step) { /* a step the checkpoint holds */
            memcpy(out + kept, buf + i, j - i);
            kept += j - i;
            for (int k = 0; upgrade && k < missing; k++) { memcpy(out + kept, "\tnan", 4); kept += 4; }
            if (nl) out[kept++] = '\n';
        }
        i = j + nl;
    }
    int rc = kept == len && !memcmp(out, buf, len) ? 0 : file_write_atomic(path, out, kept, e);
    free(buf);
    free(out);
    return rc;
}

/* The command line: a named configuration, then options over it. */
typedef struct {
    const char *config, *export_live, *init_from;
    int resume, describe, threads, nset;
    char keys[64][64];
    const char *vals[64];
} Args;

/* Returns -1 to go on, else the exit code (help, a bad argument). */
static int parse_args(int argc, char **argv, Args *a) {
    memset(a, 0, sizeof(*a));
    a->config = "shipped";
    for (int i = 1; i < argc; i++) {
        const char *s = argv[i];
        if (!strcmp(s, "--help") || !strcmp(s, "-h")) { usage(stdout); return 0; }
        if (!strcmp(s, "--resume")) { a->resume = 1; continue; }
        if (!strcmp(s, "--describe")) { a->describe = 1; continue; }
        const char *value = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(s, "--config") || !strcmp(s, "--init-from") || !strcmp(s, "--export-live") || !strcmp(s, "--threads")) {
            if (!value) { fprintf(stderr, "reage-train: %s: expected a value\n", s); return 2; }
            i++;
            if (!strcmp(s, "--config")) a->config = value;
            else if (!strcmp(s, "--init-from")) a->init_from = value;
            else if (!strcmp(s, "--export-live")) a->export_live = value, a->resume = 1;
            else {
                char *end;
                if ((a->threads = (int)strtol(value, &end, 10)) < 1 || *end)
                    return fail("--threads: expected a positive whole number");
            }
            continue;
        }
        if (strncmp(s, "--", 2) || !value || a->nset == 64) {
            fprintf(stderr, "reage-train: unexpected argument '%s'\n", s);
            usage(stderr);
            return 2;
        }
        snprintf(a->keys[a->nset], sizeof(a->keys[a->nset]), "%s", s + 2);
        for (char *p = a->keys[a->nset]; *p; p++) if (*p == '-') *p = '_';
        a->vals[a->nset++] = argv[++i];
    }
    if (a->init_from && (a->resume || a->describe))
        return fail("--init-from starts a new run: not with --resume, --export-live or --describe");
    return -1;
}

/* The run's options: the named configuration with the command line's over
 * it, or, resuming, the checkpoint's with those a resumed run may change.
 * Returns -1 to go on, else the exit code. */
static int resolve_config(const Args *a, TrainConfig *tc) {
    Err e;
    if (train_config_named(tc, a->config, &e)) return fail(e.msg);
    for (int k = 0; k < a->nset; k++)
        if (train_config_set(tc, a->keys[k], a->vals[k], &e)) {
            fprintf(stderr, "reage-train: %s\n", e.msg);
            usage(stderr);
            return 2;
        }
    if (a->resume) {
        char ckpt[1200], flag[80];
        snprintf(ckpt, sizeof(ckpt), "%s/checkpoint.bin", tc->out);
        TrainConfig saved;
        if (checkpoint_read_config(ckpt, &saved, &e)) return fail(e.msg);
        for (int k = 0; k < a->nset; k++) {
            if (!train_option_resumable(a->keys[k])) {
                fprintf(stderr, "reage-train: %s cannot change: %s's checkpoint fixes it\n",
                        train_option_flag(flag, sizeof(flag), a->keys[k]), tc->out);
                return 2;
            }
            train_config_set(&saved, a->keys[k], a->vals[k], &e);
        }
        snprintf(saved.out, sizeof(saved.out), "%s", tc->out); /* where this run's files are */
        *tc = saved;
    }
    if (train_config_finish(tc, &e)) return fail(e.msg);
    return -1;
}

static int export_live_blob(const TrainConfig *tc, const char *path) {
    Err e;
    Trainer t;
    char ckpt[1200];
    snprintf(ckpt, sizeof(ckpt), "%s/checkpoint.bin", tc->out);
    if (trainer_init(&t, tc, &e) || trainer_load_checkpoint(&t, ckpt, &e) || trainer_export_live_blob(&t, path, &e))
        return fail(e.msg);
    printf("wrote %s: the generator of %s at step %d, not averaged\n", path, ckpt, t.step);
    trainer_free(&t);
    return 0;
}

static int describe(const TrainConfig *tc, const char *config) {
    Err e;
    Trainer t;
    if (trainer_init(&t, tc, &e)) return fail(e.msg);
    printf("config %s: %dx%d, %d age groups (%s), batch %d\n", config, tc->model.res, tc->model.res,
           tc->model.groups, tc->groups, tc->batch);
    gen_describe(&t.gen, stdout);
    disc_describe(&t.disc, stdout);
    est_describe(&t.est, stdout);
    if (tc->schedule[0]) {
        printf("Schedule (options that change as the run goes):\n");
        TrainConfig later = *tc;
        char done[512];
        for (int step = 0; step <= tc->steps; step++)
            if (train_schedule_apply(&later, step, done, sizeof(done), &e) > 0) printf("  after step %6d: %s\n", step, done);
    }
    trainer_free(&t);
    return 0;
}

/* A run's state: its data, trainer, files and sample faces. */
typedef struct {
    Dataset train, test;
    Trainer t;
    char ckpt[1200], blob[1200], log_path[1200], samples[1200];
    FILE *log;
    int faces[8], nfaces;
} Run;

static int load_data(Run *r, const TrainConfig *tc, Err *e) {
    printf("loading the train split from %s ...\n", tc->data);
    fflush(stdout);
    if (dataset_load(&r->train, tc->data, "train", &tc->model, tc->max_images, e)) return -1;
    printf("%d training photos (%d skipped); per group:", r->train.count, r->train.skipped);
    for (int g = 0; g < tc->model.groups; g++) printf(" %d", r->train.group_count[g]);
    printf("\n");
    double white_before[MAX_GROUPS];
    for (int g = 0; g < tc->model.groups; g++) white_before[g] = dataset_race_share(&r->train, g, 0);
    if (dataset_balance_race(&r->train, tc->balance_race, e)) return -1;
    if (tc->balance_race > 0) print_race_mix(&r->train, tc->model.groups, tc->balance_race, white_before);
    if (tc->sample_every > 0) {
        if (dataset_load(&r->test, tc->data, "test", &tc->model, 200, e)) return -1;
        r->nfaces = pick_faces(&r->test, r->faces, 6);
    }
    return 0;
}

/* The trainer, started afresh, from the run's checkpoint or from another
 * run's weights, and the run's folder and log. */
static int open_run(Run *r, const TrainConfig *tc, const Args *a, Err *e) {
    if (dir_ensure(tc->out, e)) return -1;
    snprintf(r->ckpt, sizeof(r->ckpt), "%s/checkpoint.bin", tc->out);
    snprintf(r->blob, sizeof(r->blob), "%s/reage.blob", tc->out);
    snprintf(r->log_path, sizeof(r->log_path), "%s/log.tsv", tc->out);
    snprintf(r->samples, sizeof(r->samples), "%s/samples", tc->out);
    if (tc->sample_every > 0 && dir_ensure(r->samples, e)) return -1;
    if (trainer_init(&r->t, tc, e)) return -1;
    if (a->resume) {
        if (trainer_load_checkpoint(&r->t, r->ckpt, e)) return -1;
        printf("resumed %s at step %d\n", r->ckpt, r->t.step);
    }
    if (a->init_from) {
        char fresh[2048];
        if (trainer_warm_start(&r->t, a->init_from, fresh, sizeof(fresh), e)) return -1;
        printf("started from %s's weights; new: %s\n", a->init_from, fresh[0] ? fresh : "none");
    }
    if (a->resume && log_keep_until(r->log_path, r->t.step, e)) return -1;
    if (!(r->log = fopen(r->log_path, a->resume ? "a" : "w"))) return err_set(e, "%s: cannot open for writing", r->log_path);
    if (!a->resume || ftell(r->log) == 0) fprintf(r->log, "%s", LOG_HEADER);
    return 0;
}

static void log_losses(Run *r, const Losses *avg, double ips, double eta) {
    const Trainer *t = &r->t;
    printf("step %6d/%d | %5.1f img/s | D %.3f (real %.3f fake %.3f) | adv %.3f cyc %.4f rec %.4f age %.3f delta %.4f"
           " tv %.4f ctv %.4f tone %.4f shade %.4f gap %.1fy | D reads age %.2f | est %.3f acc %.2f | ETA %dh%02dm\n",
           t->step, t->tc.steps, ips, avg->d_loss, avg->d_real, avg->d_fake, avg->adv, avg->cyc, avg->rec, avg->age,
           avg->delta, avg->tv, avg->ctv, avg->tone, avg->shade, avg->age_gap, avg->d_age, avg->est_loss, avg->est_acc,
           (int)(eta / 3600), (int)(eta / 60) % 60);
    fprintf(r->log, "%d\t%.2f\t%.5f\t%.5f\t%.5f\t%.5f\t%.5f\t%.5f\t%.5f\t%.5f\t%.5f\t%.5f\t%.4f\t%.5f\t%.5f\t%.3f\t%.5f\t%.3f\n",
            t->step, ips, avg->d_loss, avg->d_real, avg->d_fake, avg->adv, avg->cyc, avg->rec, avg->age, avg->delta,
            avg->tv, avg->est_loss, avg->est_acc, avg->ctv, avg->tone, avg->age_gap, avg->shade, avg->d_age);
    fflush(stdout);
    fflush(r->log);
}

/* Steps until --steps or a signal, logging, sampling and checkpointing as
 * the options say; the checkpoint and blob are written once more at the end. */
static int train(Run *r, Err *e) {
    Trainer *t = &r->t;
    const TrainConfig *tc = &t->tc;
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    double t0 = now_s(), last = t0;
    int first = t->step, last_step = t->step, navg = 0;
    Losses avg = {0};
    while (t->step < tc->steps && !stop_requested) {
        char changed[512];
        if (trainer_follow_schedule(t, &r->train, changed, sizeof(changed), e) < 0) return -1;
        if (changed[0]) printf("after step %d, as scheduled: %s\n", t->step, changed);
        Losses l = trainer_step(t, &r->train);
        float *sum = &avg.d_loss, *b = &l.d_loss;
        for (size_t k = 0; k < sizeof(Losses) / sizeof(float); k++) sum[k] += b[k];
        navg++;
        if (t->step % tc->log_every == 0 || t->step == tc->steps) {
            double now = now_s();
            for (size_t k = 0; k < sizeof(Losses) / sizeof(float); k++) sum[k] /= navg;
            log_losses(r, &avg, (t->step - last_step) * tc->batch / (now - last),
                       (tc->steps - t->step) * (now - t0) / (t->step - first));
            memset(&avg, 0, sizeof(avg));
            navg = 0;
            last = now;
            last_step = t->step;
        }
        if (tc->sample_every > 0 && (t->step % tc->sample_every == 0 || t->step == tc->steps)) {
            char path[1300];
            snprintf(path, sizeof(path), "%s/step_%06d.png", r->samples, t->step);
            Err w;
            if (trainer_sample_grid(t, &r->test, r->faces, r->nfaces, path, &w)) fprintf(stderr, "warning: %s\n", w.msg);
        }
        if (tc->ckpt_every > 0 && t->step % tc->ckpt_every == 0 &&
            (trainer_save_checkpoint(t, r->ckpt, e) || trainer_export_blob(t, r->blob, e)))
            return -1;
    }
    if (trainer_save_checkpoint(t, r->ckpt, e) || trainer_export_blob(t, r->blob, e)) return -1;
    printf("%s at step %d: wrote %s and %s\n", stop_requested ? "stopped" : "done", t->step, r->ckpt, r->blob);
    return 0;
}

int main(int argc, char **argv) {
    memory_keep_freed();
    conv_paths_measure();
    Args a;
    TrainConfig tc;
    int rc;
    if ((rc = parse_args(argc, argv, &a)) >= 0 || (rc = resolve_config(&a, &tc)) >= 0) return rc;
    if (a.threads) omp_set_num_threads(a.threads);
    if (a.export_live) return export_live_blob(&tc, a.export_live);
    if (a.describe) return describe(&tc, a.config);
    static Run r;
    Err e;
    if (load_data(&r, &tc, &e) || open_run(&r, &tc, &a, &e)) return fail(e.msg);
    printf("training %s to step %d: batch %d at %dx%d, %d threads, sgemm %s\n", tc.out, tc.steps, tc.batch,
           tc.model.res, tc.model.res, omp_get_max_threads(), sgemm_backend());
    rc = train(&r, &e);
    fclose(r.log);
    trainer_free(&r.t);
    dataset_free(&r.train);
    if (r.nfaces) dataset_free(&r.test);
    return rc ? fail(e.msg) : 0;
}
