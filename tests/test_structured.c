/* The structured change: the change net's gradients, the face-space bands
 * and masks it is trained with, its field as a FaceChange, and its blob. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "../src/blob.h"
#include "../src/bundle.h"
#include "../src/fileio.h"
#include "../src/facespace.h"
#include "../src/structured.h"
#include "check.h"
#include "gradcheck.h"

static ChangeNet cn;
static ChangeNetActs ca;
static float *CX, *CR, GS[2 * 3], GT[2 * 3];
static size_t NF;

static double change_loss(void *ctx) {
    (void)ctx;
    change_net_forward(&cn, &ca, CX, GS, GT);
    return dot(ca.field, CR, NF);
}

static void test_change_net(void) {
    Err e;
    ChangeNetConfig cfg = {64, 3, 4};
    CHECK(change_net_build(&cn, &cfg, &e) == 0, "a small change net builds");
    if (params_alloc(&cn.ps, 1)) { CHECK(0, "out of memory"); return; }
    Rng r;
    rng_seed(&r, 5);
    params_init(&cn.ps, &r);
    int B = 2, S = 64, s = change_field_side(S);
    NF = (size_t)B * CHANGE_FIELDS * s * s;
    float *scratch = calloc(change_net_scratch_floats(&cn, B), sizeof(float));
    CX = malloc(sizeof(float) * B * 3 * S * S);
    CR = malloc(sizeof(float) * NF);
    fill_uniform(CX, (size_t)B * 3 * S * S, -1, 1, 7);
    fill_uniform(CR, NF, -1, 1, 8);
    float gs[6] = {1, 0, 0, 0, 0.3f, 0.7f}, gt[6] = {0, 0, 1, 1, 0, 0};
    memcpy(GS, gs, sizeof(gs));
    memcpy(GT, gt, sizeof(gt));
    if (change_net_acts_alloc(&cn, &ca, B, 1, scratch)) { CHECK(0, "out of memory"); return; }
    /* untrained, the net changes nothing: its last layer starts at zero */
    change_net_forward(&cn, &ca, CX, GS, GT);
    float most = 0;
    for (size_t i = 0; i < NF; i++) most = fmaxf(most, fabsf(ca.field[i]));
    CHECK(most == 0, "an untrained change net's field is zero (largest %g)", most);
    /* with its last layer set, every tensor's gradient against finite differences */
    const ParamTensor *ow = params_find(&cn.ps, "out.w"), *ob = params_find(&cn.ps, "out.b");
    fill_uniform(cn.ps.data + ow->offset, ow->size, -0.3f, 0.3f, 9);
    fill_uniform(cn.ps.data + ob->offset, ob->size, -0.3f, 0.3f, 10);
    params_zero_grad(&cn.ps);
    change_loss(NULL);
    memcpy(ca.dfield, CR, sizeof(float) * NF);
    change_net_backward(&cn, &ca);
    double worst = 0;
    const char *worst_name = "";
    for (int i = 0; i < cn.ps.count; i++) {
        ParamTensor *t = &cn.ps.t[i];
        double err = gradcheck(change_loss, NULL, cn.ps.data + t->offset, cn.ps.grad + t->offset, t->size, 12, 1e-3f);
        if (err > worst) worst = err, worst_name = t->name;
    }
    CHECK(worst < 5e-2, "change net: worst parameter gradient error %.3g (%s)", worst, worst_name);
    /* the ages reach the field: another target, another field */
    change_net_forward(&cn, &ca, CX, GS, GT);
    float *before = malloc(sizeof(float) * NF);
    memcpy(before, ca.field, sizeof(float) * NF);
    float other[6] = {1, 0, 0, 1, 0, 0};
    change_net_forward(&cn, &ca, CX, GS, other);
    double moved = 0;
    for (size_t i = 0; i < NF / 2; i++) moved += fabsf(ca.field[i] - before[i]);
    CHECK(moved > 1e-3, "the target age changes the field (by %.3g)", moved);
    free(before);
    change_net_acts_free(&ca);
    params_free(&cn.ps);
    free(scratch);
    free(CX);
    free(CR);
}

static double energy(const float *p, int S) {
    double s = 0;
    /* away from the edges, which repeat */
    for (int i = 8; i < S - 8; i++)
        for (int j = 8; j < S - 8; j++) s += (double)p[(size_t)i * S + j] * p[(size_t)i * S + j];
    return s;
}

static void test_change_bands(void) {
    int S = 64;
    size_t n = (size_t)S * S;
    float *x = malloc(sizeof(float) * 3 * n), *bands = malloc(sizeof(float) * CHANGE_BANDS * n), *work = malloc(sizeof(float) * 2 * n);
    for (size_t i = 0; i < 3 * n; i++) x[i] = 0.25f;
    change_bands(x, S, bands, work);
    float most = 0;
    for (size_t i = 0; i < CHANGE_BANDS * n; i++) most = fmaxf(most, fabsf(bands[i]));
    CHECK(most < 1e-6f, "a flat face has no detail in any band (largest %g)", most);
    /* stripes two pixels apart are the finest octave's; stripes sixteen apart a coarser one's */
    double e[2][CHANGE_BANDS];
    for (int k = 0; k < 2; k++) {
        for (int i = 0; i < S; i++)
            for (int j = 0; j < S; j++)
                for (int c = 0; c < 3; c++)
                    x[c * n + (size_t)i * S + j] = k ? 0.5f * sinf(6.2831853f * j / 16) : (j % 2 ? 0.5f : -0.5f);
        change_bands(x, S, bands, work);
        for (int b = 0; b < CHANGE_BANDS; b++) e[k][b] = energy(bands + b * n, S);
    }
    CHECK(e[0][0] > 10 * e[0][1] && e[0][0] > 10 * e[0][2], "one-pixel stripes fall in the finest band (%.3g %.3g %.3g)", e[0][0],
          e[0][1], e[0][2]);
    CHECK(e[1][2] > e[1][0] && e[1][1] > e[1][0], "sixteen-pixel waves fall in the coarser bands (%.3g %.3g %.3g)", e[1][0], e[1][1],
          e[1][2]);
    free(x);
    free(bands);
    free(work);
}

static void test_change_masks(void) {
    int S = 128;
    size_t n = (size_t)S * S;
    float *m = malloc(sizeof(float) * CHANGE_FIELDS * n);
    change_masks(S, m);
    int ok = 1;
    for (size_t i = 0; i < CHANGE_FIELDS * n; i++) ok &= m[i] >= 0 && m[i] <= 1;
    CHECK(ok, "the masks lie in [0, 1]");
    /* the face's centre (crop fractions 0.5, 0.55) and the face space's corner */
    float span = 1 + 2 * (float)FACESPACE_MARGIN;
    int ci = (int)((0.55f + (float)FACESPACE_MARGIN) / span * S), cj = (int)((0.5f + (float)FACESPACE_MARGIN) / span * S);
    int centre = 1, corner = 1;
    for (int f = 0; f < CHANGE_FIELDS; f++) {
        centre &= m[f * n + (size_t)ci * S + cj] > 0.99f;
        corner &= m[f * n] < 0.01f;
    }
    CHECK(centre && corner, "every field may change the face's centre, none the face space's corner");
    CHECK(m[CHANGE_GAIN * n + (size_t)(S / 20) * S + S / 2] < 0.01f && m[CHANGE_COLOUR * n + (size_t)(S / 5) * S + S / 2] > 0.5f,
          "above the forehead the colour changes (the hair) and the detail does not");
    free(m);
}

static void test_change_to_face_change(void) {
    int S = 256, s = change_field_side(S);
    size_t ns = (size_t)s * s;
    float *field = calloc(CHANGE_FIELDS * ns, sizeof(float));
    FaceChange c;
    if (face_change_alloc(&c)) { CHECK(0, "out of memory"); return; }
    change_to_face_change(field, S, &c);
    int none = 1;
    for (int k = 0; k < FACEMESH_POINTS; k++) none &= c.shape[k][0] == 0 && c.shape[k][1] == 0;
    for (size_t i = 0; i < sizeof(c.colour) / sizeof(c.colour[0]); i++) none &= c.colour[i] == 0;
    for (int k = 0; k < PROTO_BANDS; k++)
        for (int i = 0; i < proto_amp_side(k) * proto_amp_side(k); i++) none &= c.gain[k][i] == 1 && c.target_amp[k][i] == 0;
    CHECK(none, "an empty field is no change: the mesh still, no colour, every gain 1");
    for (size_t i = 0; i < ns; i++) {
        field[CHANGE_DX * ns + i] = 2;
        field[CHANGE_COLOUR * ns + i] = 0.1f;
        field[CHANGE_GAIN * ns + i] = 0.2f;
    }
    change_to_face_change(field, S, &c);
    float want = -2 * (1 + 2 * (float)FACESPACE_MARGIN) / S;
    CHECK(fabsf(c.shape[200][0] - want) < 1e-6f && c.shape[200][1] == 0,
          "sampling 2 pixels to the right moves the mesh left by 2 face-space pixels (%g, want %g)", c.shape[200][0], want);
    CHECK(fabsf(c.colour[5] - 12.75f) < 1e-4f && c.colour[PROTO_COLOUR_SIDE * PROTO_COLOUR_SIDE + 5] == 0,
          "colour 0.1 adds 12.75 levels of red, none of green (%g)", c.colour[5]);
    CHECK(fabsf(c.gain[0][77] - expf(0.2f)) < 1e-5f && c.gain[1][77] == 1, "a log gain of 0.2 scales the finest band by e^0.2");
    face_change_free(&c);
    free(field);
}

/* A blob with a change net: loads and gives the same field; refusals. */
static void test_change_blob(void) {
    Err e;
    ChangeNet net;
    ChangeNetConfig cfg = {64, 3, 4};
    change_net_build(&net, &cfg, &e);
    params_alloc(&net.ps, 0);
    Rng r;
    rng_seed(&r, 3);
    params_init(&net.ps, &r);
    const ParamTensor *ob = params_find(&net.ps, "out.b");
    fill_uniform(net.ps.data + ob->offset, ob->size, -0.5f, 0.5f, 4);
    char text[256];
    change_net_config_text(&cfg, text, sizeof(text));
    const char *bad_texts[2] = {text, "change_side=64\n"};
    for (int k = 0; k < 2; k++) {
        BlobWriter w;
        blobw_begin(&w, BLOB_MAGIC, bad_texts[k]);
        blobw_params(&w, "change.", &net.ps, DT_F16);
        size_t len;
        uint8_t *buf = blobw_finish(&w, &len);
        Blob *b = malloc(sizeof(Blob));
        ChangeModel m;
        int rc = blob_parse(b, buf, len, BLOB_MAGIC, "test.blob", &e);
        if (!rc) rc = change_model_load(&m, b, 3, "test.blob", &e);
        if (k == 0) {
            CHECK(rc == 0, "a blob with a change net loads%s%s", rc ? ": " : "", rc ? e.msg : "");
            if (!rc) {
                float x[3 * 64 * 64] = {0}, gs[3] = {1, 0, 0}, gt[3] = {0, 0, 1};
                change_net_forward(&m.net, &m.acts, x, gs, gt);
                int s = change_field_side(64);
                float most = 0;
                for (int i = 0; i < CHANGE_FIELDS * s * s; i++) {
                    int f = i / (s * s);
                    most = fmaxf(most, fabsf(m.acts.field[i] - f16_to_f32(f32_to_f16(net.ps.data[ob->offset + f])) * CHANGE_UNIT[f]));
                }
                CHECK(most < 1e-5f, "its field is the saved net's (off by %g)", most);
                change_model_free(&m);
            }
        } else {
            CHECK(rc < 0 && strstr(e.msg, "test.blob") && strstr(e.msg, "change_width"), "a change net without its width is refused: %s",
                  e.msg);
        }
        free(b);
        free(buf);
    }
    BlobWriter w;
    blobw_begin(&w, BLOB_MAGIC, "res=128\n");
    size_t len;
    uint8_t *buf = blobw_finish(&w, &len);
    Blob *b = malloc(sizeof(Blob));
    ChangeModel m;
    CHECK(!blob_parse(b, buf, len, BLOB_MAGIC, "plain.blob", &e) && change_model_load(&m, b, 3, "plain.blob", &e) == 1,
          "a blob without a change net says so");
    free(b);
    free(buf);
    params_free(&net.ps);
}

/* The shipped blob with a change net added loads with it; with the net but
 * without the prototypes it refines, it is refused by name. */
static void test_change_bundle(void) {
    Err e;
    uint8_t *buf;
    size_t len;
    Blob *b = malloc(sizeof(Blob));
    if (file_read_all("weights/reage.blob", 64u << 20, &buf, &len, &e) || blob_parse(b, buf, len, BLOB_MAGIC, "weights/reage.blob", &e)) {
        CHECK(0, "the shipped blob reads: %s", e.msg);
        free(b);
        return;
    }
    ModelConfig mc;
    model_config_parse(&mc, b->config, &e);
    ChangeNet net;
    ChangeNetConfig cfg = {64, mc.groups, 4};
    change_net_build(&net, &cfg, &e);
    params_alloc(&net.ps, 0);
    char config[4096 + 128], text[128];
    change_net_config_text(&cfg, text, sizeof(text));
    snprintf(config, sizeof(config), "%s%s", b->config, text);
    for (int keep = 1; keep >= 0; keep--) {
        BlobWriter w;
        blobw_begin(&w, BLOB_MAGIC, config);
        for (uint32_t i = 0; i < b->ntensors; i++)
            if (keep || !blob_tensor_starts(&b->t[i], "proto.")) blobw_copy(&w, &b->t[i]);
        blobw_params(&w, "change.", &net.ps, DT_F16);
        size_t n;
        uint8_t *bytes = blobw_finish(&w, &n);
        Bundle bd;
        int rc = bundle_load(&bd, bytes, n, NULL, "with-net.blob", &e);
        if (keep) {
            CHECK(rc == 0 && bd.change && bd.proto, "a blob with prototypes and a change net loads both%s%s", rc ? ": " : "", rc ? e.msg : "");
            if (!rc) bundle_free(&bd);
        } else {
            CHECK(rc != 0 && strstr(e.msg, "with-net.blob") && strstr(e.msg, "without the prototypes"),
                  "a change net without prototypes is refused: %s", rc ? e.msg : "loaded");
            if (!rc) bundle_free(&bd);
        }
        free(bytes);
    }
    params_free(&net.ps);
    free(buf);
    free(b);
}

void test_structured(void) {
    test_change_bundle();
    test_change_net();
    test_change_bands();
    test_change_masks();
    test_change_to_face_change();
    test_change_blob();
}
