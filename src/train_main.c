/* build/reage-train: trains the Re-Aging GAN on UTKFace.
 *
 *   reage-train [--config tiny|default|seed] [--OPTION VALUE ...]
 *   reage-train --config default --resume        continue runs/default
 *   reage-train --gen-dec-film 1 --out runs/film --init-from weights/checkpoint.bin
 *                                                a changed model, started from a run's weights
 *   reage-train --config seed --describe         layers, shapes, parameters
 *   reage-train --export-live FILE               runs/default's generator, not averaged, as a blob */
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
    fprintf(f, "usage: reage-train [--config tiny|default|seed] [--resume | --init-from CKPT] [--describe] [--threads N] [--OPTION VALUE ...]\n"
               "       reage-train [--config C] [--out DIR] --export-live FILE\n"
               "Trains ReAge's generator, discriminator and age estimator; writes OUT/checkpoint.bin (resumable),\n"
               "OUT/reage.blob (the page's weights: the generator averaged over steps, see --ema), OUT/log.tsv and\n"
               "OUT/samples/. --export-live writes the checkpoint's current, not averaged, generator as a blob.\n"
               "--init-from starts a new run (step 0, fresh optimiser) from another run's checkpoint: each tensor\n"
               "with the same name and shape is copied, the others (a part the model gained) start as initialised;\n"
               "a generator a whole multiple narrower (--gen-width) is widened, each new channel a copy of an old\n"
               "one (Net2Net), so that the wider one starts computing what it did.\nOptions:\n");
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

int main(int argc, char **argv) {
    memory_keep_freed();
    conv_paths_measure();
    const char *config = "default";
    int resume = 0, describe = 0, threads = 0;
    const char *export_live = NULL, *init_from = NULL;
    Err e;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) { usage(stdout); return 0; }
        if (!strcmp(argv[i], "--config") && i + 1 < argc) config = argv[++i];
    }
    TrainConfig tc;
    if (train_config_named(&tc, config, &e)) return fail(e.msg);
    char keys[64][64];
    const char *vals[64];
    int nset = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--config")) { i++; continue; }
        if (!strcmp(a, "--resume")) { resume = 1; continue; }
        if (!strcmp(a, "--describe")) { describe = 1; continue; }
        if (!strcmp(a, "--init-from")) {
            if (i + 1 >= argc) return fail("--init-from: expected a checkpoint file");
            init_from = argv[++i];
            continue;
        }
        if (!strcmp(a, "--export-live")) {
            if (i + 1 >= argc) return fail("--export-live: expected a file name");
            export_live = argv[++i];
            resume = 1;
            continue;
        }
        if (!strcmp(a, "--threads")) {
            char *end;
            if (i + 1 >= argc || (threads = (int)strtol(argv[i + 1], &end, 10)) < 1 || *end)
                return fail("--threads: expected a positive whole number");
            i++;
            continue;
        }
        if (strncmp(a, "--", 2) || i + 1 >= argc || nset == 64) {
            fprintf(stderr, "reage-train: unexpected argument '%s'\n", a);
            usage(stderr);
            return 2;
        }
        snprintf(keys[nset], sizeof(keys[nset]), "%s", a + 2);
        for (char *p = keys[nset]; *p; p++) if (*p == '-') *p = '_';
        vals[nset++] = argv[++i];
    }
    for (int k = 0; k < nset; k++)
        if (train_config_set(&tc, keys[k], vals[k], &e)) { fprintf(stderr, "reage-train: %s\n", e.msg); usage(stderr); return 2; }
    char ckpt[1200], blob[1200], logp[1200], samples[1200];
    if (init_from && (resume || describe || export_live))
        return fail("--init-from starts a new run: not with --resume, --export-live or --describe");
    /* the checkpoint fixes the model: a resumed run and an export take its options */
    if (resume || export_live) {
        snprintf(ckpt, sizeof(ckpt), "%s/checkpoint.bin", tc.out);
        TrainConfig saved;
        if (checkpoint_read_config(ckpt, &saved, &e)) return fail(e.msg);
        for (int k = 0; k < nset; k++) {
            if (!train_option_resumable(keys[k])) {
                char flag[80];
                fprintf(stderr, "reage-train: %s cannot change: %s's checkpoint fixes it\n",
                        train_option_flag(flag, sizeof(flag), keys[k]), tc.out);
                return 2;
            }
            train_config_set(&saved, keys[k], vals[k], &e);
        }
        snprintf(saved.out, sizeof(saved.out), "%s", tc.out); /* where this run's files are */
        tc = saved;
    }
    if (train_config_finish(&tc, &e)) return fail(e.msg);
    if (threads) omp_set_num_threads(threads);

    Trainer t;
    if (export_live) {
        snprintf(ckpt, sizeof(ckpt), "%s/checkpoint.bin", tc.out);
        if (trainer_init(&t, &tc, &e) || trainer_load_checkpoint(&t, ckpt, &e) || trainer_export_live_blob(&t, export_live, &e))
            return fail(e.msg);
        printf("wrote %s: the generator of %s at step %d, not averaged\n", export_live, ckpt, t.step);
        trainer_free(&t);
        return 0;
    }
    if (describe) {
        if (trainer_init(&t, &tc, &e)) return fail(e.msg);
        printf("config %s: %dx%d, %d age groups (%s), batch %d\n", config, tc.model.res, tc.model.res,
               tc.model.groups, tc.groups, tc.batch);
        gen_describe(&t.gen, stdout);
        disc_describe(&t.disc, stdout);
        est_describe(&t.est, stdout);
        trainer_free(&t);
        return 0;
    }
    Dataset train, test;
    printf("loading the train split from %s ...\n", tc.data);
    fflush(stdout);
    if (dataset_load(&train, tc.data, "train", &tc.model, tc.max_images, &e)) return fail(e.msg);
    printf("%d training photos (%d skipped); per group:", train.count, train.skipped);
    for (int g = 0; g < tc.model.groups; g++) printf(" %d", train.group_count[g]);
    printf("\n");
    double white_before[MAX_GROUPS];
    for (int g = 0; g < tc.model.groups; g++) white_before[g] = dataset_race_share(&train, g, 0);
    if (dataset_balance_race(&train, tc.balance_race, &e)) return fail(e.msg);
    if (tc.balance_race > 0) print_race_mix(&train, tc.model.groups, tc.balance_race, white_before);
    int faces[8], nfaces = 0;
    if (tc.sample_every > 0) {
        if (dataset_load(&test, tc.data, "test", &tc.model, 200, &e)) return fail(e.msg);
        nfaces = pick_faces(&test, faces, 6);
    }
    if (dir_ensure(tc.out, &e)) return fail(e.msg);
    snprintf(ckpt, sizeof(ckpt), "%s/checkpoint.bin", tc.out);
    snprintf(blob, sizeof(blob), "%s/reage.blob", tc.out);
    snprintf(logp, sizeof(logp), "%s/log.tsv", tc.out);
    snprintf(samples, sizeof(samples), "%s/samples", tc.out);
    if (tc.sample_every > 0 && dir_ensure(samples, &e)) return fail(e.msg);
    if (trainer_init(&t, &tc, &e)) return fail(e.msg);
    if (resume) {
        if (trainer_load_checkpoint(&t, ckpt, &e)) return fail(e.msg);
        printf("resumed %s at step %d\n", ckpt, t.step);
    }
    if (init_from) {
        char fresh[2048];
        if (trainer_warm_start(&t, init_from, fresh, sizeof(fresh), &e)) return fail(e.msg);
        printf("started from %s's weights; new: %s\n", init_from, fresh[0] ? fresh : "none");
    }
    if (resume && log_keep_until(logp, t.step, &e)) return fail(e.msg);
    FILE *log = fopen(logp, resume ? "a" : "w");
    if (!log) return fail("cannot open the training log for writing");
    if (!resume || ftell(log) == 0) fprintf(log, "%s", LOG_HEADER);
    printf("training %s to step %d: batch %d at %dx%d, %d threads, sgemm %s\n", config, tc.steps, tc.batch,
           tc.model.res, tc.model.res, omp_get_max_threads(), sgemm_backend());
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    double t0 = now_s(), last = t0;
    int first = t.step, last_step = t.step;
    Losses avg = {0};
    int navg = 0;
    while (t.step < tc.steps && !stop_requested) {
        Losses l = trainer_step(&t, &train);
        float *a = &avg.d_loss, *b = &l.d_loss;
        for (size_t k = 0; k < sizeof(Losses) / sizeof(float); k++) a[k] += b[k];
        navg++;
        if (t.step % tc.log_every == 0 || t.step == tc.steps) {
            double now = now_s(), ips = (t.step - last_step) * tc.batch / (now - last);
            for (size_t k = 0; k < sizeof(Losses) / sizeof(float); k++) a[k] /= navg;
            double eta = (tc.steps - t.step) * (now - t0) / (t.step - first);
            printf("step %6d/%d | %5.1f img/s | D %.3f (real %.3f fake %.3f) | adv %.3f cyc %.4f rec %.4f age %.3f delta %.4f"
                   " tv %.4f ctv %.4f tone %.4f shade %.4f gap %.1fy | D reads age %.2f | est %.3f acc %.2f | ETA %dh%02dm\n",
                   t.step, tc.steps, ips, avg.d_loss, avg.d_real, avg.d_fake, avg.adv, avg.cyc, avg.rec, avg.age,
                   avg.delta, avg.tv, avg.ctv, avg.tone, avg.shade, avg.age_gap, avg.d_age, avg.est_loss, avg.est_acc, (int)(eta / 3600), (int)(eta / 60) % 60);
            fprintf(log, "%d\t%.2f\t%.5f\t%.5f\t%.5f\t%.5f\t%.5f\t%.5f\t%.5f\t%.5f\t%.5f\t%.5f\t%.4f\t%.5f\t%.5f\t%.3f\t%.5f\t%.3f\n", t.step,
                    ips, avg.d_loss, avg.d_real, avg.d_fake, avg.adv, avg.cyc, avg.rec, avg.age, avg.delta, avg.tv,
                    avg.est_loss, avg.est_acc, avg.ctv, avg.tone, avg.age_gap, avg.shade, avg.d_age);
            fflush(stdout);
            fflush(log);
            memset(&avg, 0, sizeof(avg));
            navg = 0;
            last = now;
            last_step = t.step;
        }
        if (tc.sample_every > 0 && (t.step % tc.sample_every == 0 || t.step == tc.steps)) {
            char path[1300];
            snprintf(path, sizeof(path), "%s/step_%06d.png", samples, t.step);
            if (trainer_sample_grid(&t, &test, faces, nfaces, path, &e)) fprintf(stderr, "warning: %s\n", e.msg);
        }
        if (tc.ckpt_every > 0 && t.step % tc.ckpt_every == 0) {
            if (trainer_save_checkpoint(&t, ckpt, &e) || trainer_export_blob(&t, blob, &e)) return fail(e.msg);
        }
    }
    if (trainer_save_checkpoint(&t, ckpt, &e) || trainer_export_blob(&t, blob, &e)) return fail(e.msg);
    printf("%s at step %d: wrote %s and %s\n", stop_requested ? "stopped" : "done", t.step, ckpt, blob);
    fclose(log);
    trainer_free(&t);
    dataset_free(&train);
    if (nfaces) dataset_free(&test);
    return 0;
}
