/* reage-tflite: converts MediaPipe's BlazeFace short-range detector
 * (face_detection_short_range.tflite from npm's @mediapipe/face_detection)
 * and Face Mesh landmark network (face_landmark.tflite, inside npm's
 * @mediapipe/face_mesh) into ReAge's blob format, so that the engine runs
 * them natively and in the browser without MediaPipe's runtime. Which one a
 * file is, its input says (128x128: the detector, 192x192: the mesh).
 *
 *   reage-tflite [--source TEXT] MODEL.tflite OUT.blob   convert
 *   reage-tflite --list MODEL.tflite                     print the operator list
 *
 * The .tflite file is a FlatBuffer (schema: tensorflow/lite/schema/
 * schema.fbs). Only what a float model needs is read: tensors (shape, type,
 * buffer, name), operators (code, inputs, outputs, options) and buffers.
 * Every offset is bounds-checked, so a damaged file is refused with a message
 * rather than read out of bounds. The converter then walks the operator list
 * against the layer list that src/facedetect.c implements and refuses any
 * model that differs. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../src/blob.h"
#include "../src/facedetect.h"
#include "../src/facemesh.h"
#include "../src/fileio.h"

/* ---- a bounds-checked FlatBuffer reader ---- */

typedef struct {
    const uint8_t *buf;
    size_t len;
    const char *path;
    int bad;  /* set on the first out-of-bounds access */
} Fb;

static uint32_t fb_u32(Fb *f, size_t at) {
    if (at + 4 > f->len) { f->bad = 1; return 0; }
    const uint8_t *p = f->buf + at;
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static uint16_t fb_u16(Fb *f, size_t at) {
    if (at + 2 > f->len) { f->bad = 1; return 0; }
    return (uint16_t)(f->buf[at] | f->buf[at + 1] << 8);
}
static uint8_t fb_u8(Fb *f, size_t at) {
    if (at >= f->len) { f->bad = 1; return 0; }
    return f->buf[at];
}

/* Offset of field `slot` of the table at `table`, or 0 when absent. */
static size_t fb_field(Fb *f, size_t table, int slot) {
    if (!table) return 0;
    size_t vt = table - (size_t)(int32_t)fb_u32(f, table);
    if (vt >= f->len) { f->bad = 1; return 0; }
    uint16_t vt_len = fb_u16(f, vt);
    if (4 + 2 * (size_t)slot + 2 > vt_len) return 0;
    uint16_t off = fb_u16(f, vt + 4 + 2 * (size_t)slot);
    return off ? table + off : 0;
}
/* Follows a uoffset field to the table, vector or string it points at. */
static size_t fb_ref(Fb *f, size_t table, int slot) {
    size_t at = fb_field(f, table, slot);
    if (!at) return 0;
    size_t to = at + fb_u32(f, at);
    if (to >= f->len) { f->bad = 1; return 0; }
    return to;
}
static uint32_t fb_scalar_u32(Fb *f, size_t table, int slot, uint32_t dflt) {
    size_t at = fb_field(f, table, slot);
    return at ? fb_u32(f, at) : dflt;
}
static uint8_t fb_scalar_u8(Fb *f, size_t table, int slot, uint8_t dflt) {
    size_t at = fb_field(f, table, slot);
    return at ? fb_u8(f, at) : dflt;
}
static uint32_t fb_vec_len(Fb *f, size_t vec) {
    if (!vec) return 0;
    uint32_t n = fb_u32(f, vec);
    if (vec + 4 + (size_t)n > f->len) { f->bad = 1; return 0; }
    return n;
}
/* Element i of a vector of tables. */
static size_t fb_vec_table(Fb *f, size_t vec, uint32_t i) {
    size_t at = vec + 4 + 4 * (size_t)i;
    size_t to = at + fb_u32(f, at);
    if (to >= f->len) { f->bad = 1; return 0; }
    return to;
}
static int32_t fb_vec_i32(Fb *f, size_t vec, uint32_t i) {
    return (int32_t)fb_u32(f, vec + 4 + 4 * (size_t)i);
}

/* ---- the parts of the TFLite schema we use ---- */

enum { OP_ADD = 0, OP_CONCATENATION = 2, OP_CONV_2D = 3, OP_DEPTHWISE_CONV_2D = 4,
       OP_DEQUANTIZE = 6, OP_MAX_POOL_2D = 17, OP_RELU = 19, OP_RESHAPE = 22, OP_PAD = 34, OP_PRELU = 54 };
enum { TT_FLOAT32 = 0, TT_FLOAT16 = 1, TT_INT32 = 2 };
enum { PAD_SAME = 0, PAD_VALID = 1 };
enum { ACT_NONE = 0, ACT_RELU = 1 };

#define MAX_TENSORS 512
#define MAX_OPS 256

typedef struct {
    char name[128];
    int type, ndim, shape[4];
    const uint8_t *data;  /* NULL for activations */
    size_t data_len;
} TfTensor;

typedef struct {
    int code;
    int nin, in[4], nout, out[2];
    int padding, stride_w, stride_h, filter_w, filter_h, act, depth_mult, axis;
} TfOp;

typedef struct {
    int ntensors, nops, input, noutputs, outputs[4];
    TfTensor t[MAX_TENSORS];
    TfOp op[MAX_OPS];
} TfModel;

static const char *op_name(int code) {
    switch (code) {
    case OP_ADD: return "ADD";
    case OP_CONCATENATION: return "CONCATENATION";
    case OP_CONV_2D: return "CONV_2D";
    case OP_DEPTHWISE_CONV_2D: return "DEPTHWISE_CONV_2D";
    case OP_DEQUANTIZE: return "DEQUANTIZE";
    case OP_MAX_POOL_2D: return "MAX_POOL_2D";
    case OP_RELU: return "RELU";
    case OP_RESHAPE: return "RESHAPE";
    case OP_PAD: return "PAD";
    case OP_PRELU: return "PRELU";
    default: return "?";
    }
}

static int tflite_parse(TfModel *m, const uint8_t *buf, size_t len, const char *path, Err *e) {
    Fb fb = {buf, len, path, 0}, *f = &fb;
    memset(m, 0, sizeof(*m));
    if (len < 8 || memcmp(buf + 4, "TFL3", 4) != 0)
        return err_set(e, "%s: not a TFLite model (no TFL3 identifier)", path);
    size_t model = fb_u32(f, 0);
    size_t codes = fb_ref(f, model, 1), subgraphs = fb_ref(f, model, 2), buffers = fb_ref(f, model, 4);
    uint32_t ncodes = fb_vec_len(f, codes), nbuffers = fb_vec_len(f, buffers), nsub = fb_vec_len(f, subgraphs);
    if (f->bad) return err_set(e, "%s: damaged or truncated TFLite file (an offset points outside it)", path);
    if (nsub != 1)
        return err_set(e, "%s: expected one subgraph", path);
    size_t sg = fb_vec_table(f, subgraphs, 0);
    size_t tensors = fb_ref(f, sg, 0), inputs = fb_ref(f, sg, 1), outputs = fb_ref(f, sg, 2),
           ops = fb_ref(f, sg, 3);
    uint32_t nt = fb_vec_len(f, tensors), nops = fb_vec_len(f, ops);
    if (f->bad) return err_set(e, "%s: damaged or truncated TFLite file (an offset points outside it)", path);
    if (nt > MAX_TENSORS || nops > MAX_OPS)
        return err_set(e, "%s: %u tensors and %u operators is more than a face detector has", path, nt, nops);
    if (fb_vec_len(f, inputs) != 1 || fb_vec_len(f, outputs) > 4)
        return err_set(e, "%s: expected one input and at most four outputs", path);
    m->ntensors = (int)nt;
    m->nops = (int)nops;
    m->input = fb_vec_i32(f, inputs, 0);
    m->noutputs = (int)fb_vec_len(f, outputs);
    for (int i = 0; i < m->noutputs; i++) m->outputs[i] = fb_vec_i32(f, outputs, (uint32_t)i);
    if (m->input < 0 || m->input >= (int)nt) return err_set(e, "%s: the input is tensor %d of %u", path, m->input, nt);
    for (int i = 0; i < m->noutputs; i++)
        if (m->outputs[i] < 0 || m->outputs[i] >= (int)nt)
            return err_set(e, "%s: output %d is tensor %d of %u", path, i, m->outputs[i], nt);

    for (uint32_t i = 0; i < nt; i++) {
        TfTensor *t = &m->t[i];
        size_t tt = fb_vec_table(f, tensors, i);
        size_t shape = fb_ref(f, tt, 0), name = fb_ref(f, tt, 3);
        uint32_t nd = fb_vec_len(f, shape);
        if (nd > 4) return err_set(e, "%s: tensor %u has %u dimensions", path, i, nd);
        t->ndim = (int)nd;
        for (uint32_t d = 0; d < nd; d++) t->shape[d] = fb_vec_i32(f, shape, d);
        t->type = fb_scalar_u8(f, tt, 1, 0);
        uint32_t nlen = fb_vec_len(f, name);
        if (nlen >= sizeof(t->name)) nlen = sizeof(t->name) - 1;
        if (name) memcpy(t->name, buf + name + 4, nlen);
        uint32_t bi = fb_scalar_u32(f, tt, 2, 0);
        if (bi && bi < nbuffers) {
            size_t b = fb_vec_table(f, buffers, bi), data = fb_ref(f, b, 0);
            uint32_t dlen = fb_vec_len(f, data);
            if (dlen) { t->data = buf + data + 4; t->data_len = dlen; }
        }
    }
    for (uint32_t i = 0; i < nops; i++) {
        TfOp *o = &m->op[i];
        size_t ot = fb_vec_table(f, ops, i);
        uint32_t ci = fb_scalar_u32(f, ot, 0, 0);
        if (ci >= ncodes) return err_set(e, "%s: operator %u has no operator code", path, i);
        size_t code = fb_vec_table(f, codes, ci);
        int deprecated = (int8_t)fb_scalar_u8(f, code, 0, 0);
        int builtin = (int)fb_scalar_u32(f, code, 3, 0);
        o->code = builtin > deprecated ? builtin : deprecated;
        size_t oin = fb_ref(f, ot, 1), oout = fb_ref(f, ot, 2);
        uint32_t ni = fb_vec_len(f, oin), no = fb_vec_len(f, oout);
        if (ni > 4 || no > 2) return err_set(e, "%s: operator %u has %u inputs, %u outputs", path, i, ni, no);
        o->nin = (int)ni;
        o->nout = (int)no;
        for (uint32_t k = 0; k < ni; k++) o->in[k] = fb_vec_i32(f, oin, k);
        for (uint32_t k = 0; k < no; k++) o->out[k] = fb_vec_i32(f, oout, k);
        for (int k = 0; k < o->nin; k++)
            if (o->in[k] < -1 || o->in[k] >= (int)nt) return err_set(e, "%s: operator %u reads tensor %d", path, i, o->in[k]);
        for (int k = 0; k < o->nout; k++)
            if (o->out[k] < 0 || o->out[k] >= (int)nt) return err_set(e, "%s: operator %u writes tensor %d", path, i, o->out[k]);
        size_t opt = fb_ref(f, ot, 4);
        o->stride_w = o->stride_h = 1;
        switch (o->code) {
        case OP_CONV_2D:
            o->padding = fb_scalar_u8(f, opt, 0, 0);
            o->stride_w = (int)fb_scalar_u32(f, opt, 1, 1);
            o->stride_h = (int)fb_scalar_u32(f, opt, 2, 1);
            o->act = fb_scalar_u8(f, opt, 3, 0);
            break;
        case OP_DEPTHWISE_CONV_2D:
            o->padding = fb_scalar_u8(f, opt, 0, 0);
            o->stride_w = (int)fb_scalar_u32(f, opt, 1, 1);
            o->stride_h = (int)fb_scalar_u32(f, opt, 2, 1);
            o->depth_mult = (int)fb_scalar_u32(f, opt, 3, 1);
            o->act = fb_scalar_u8(f, opt, 4, 0);
            break;
        case OP_MAX_POOL_2D:
            o->padding = fb_scalar_u8(f, opt, 0, 0);
            o->stride_w = (int)fb_scalar_u32(f, opt, 1, 1);
            o->stride_h = (int)fb_scalar_u32(f, opt, 2, 1);
            o->filter_w = (int)fb_scalar_u32(f, opt, 3, 1);
            o->filter_h = (int)fb_scalar_u32(f, opt, 4, 1);
            o->act = fb_scalar_u8(f, opt, 5, 0);
            break;
        case OP_ADD:
            o->act = fb_scalar_u8(f, opt, 0, 0);
            break;
        case OP_CONCATENATION:
            o->axis = (int)fb_scalar_u32(f, opt, 0, 0);
            o->act = fb_scalar_u8(f, opt, 1, 0);
            break;
        default: break;
        }
    }
    if (f->bad) return err_set(e, "%s: damaged or truncated TFLite file (an offset points outside it)", path);
    return 0;
}

static void print_shape(const TfTensor *t) {
    printf("[");
    for (int d = 0; d < t->ndim; d++) printf(d ? ",%d" : "%d", t->shape[d]);
    printf("]");
}

static void tflite_list(const TfModel *m) {
    printf("input %d %s ", m->input, m->t[m->input].name);
    print_shape(&m->t[m->input]);
    printf("\n");
    for (int i = 0; i < m->nops; i++) {
        const TfOp *o = &m->op[i];
        printf("%3d %-18s", i, op_name(o->code));
        for (int k = 0; k < o->nin; k++) {
            if (o->in[k] < 0) continue;
            const TfTensor *t = &m->t[o->in[k]];
            printf(" %s%s", t->data ? "w" : "", t->name);
            print_shape(t);
        }
        printf(" ->");
        for (int k = 0; k < o->nout; k++) {
            printf(" %s", m->t[o->out[k]].name);
            print_shape(&m->t[o->out[k]]);
        }
        printf(" pad=%d s=%d act=%d\n", o->padding, o->stride_w, o->act);
    }
    for (int i = 0; i < m->noutputs; i++) printf("output %s\n", m->t[m->outputs[i]].name);
}

/* The tensor whose data feeds an operator input, looking through the
 * DEQUANTIZE ops that widen the model's float16 weights. */
static const TfTensor *weight_of(const TfModel *m, int t) {
    if (t < 0) return NULL; /* an optional input left out */
    for (int i = 0; i < m->nops; i++)
        if (m->op[i].code == OP_DEQUANTIZE && m->op[i].nin >= 1 && m->op[i].nout >= 1 && m->op[i].out[0] == t)
            return m->op[i].in[0] < 0 ? NULL : &m->t[m->op[i].in[0]];
    return &m->t[t];
}

static int read_weights(const TfTensor *t, float *dst, size_t n, const char *path, Err *e) {
    if (!t) return err_set(e, "%s: an operator lacks its weights", path);
    size_t width = t->type == TT_FLOAT32 ? 4 : t->type == TT_FLOAT16 ? 2 : 0;
    if (!width || !t->data || t->data_len != n * width)
        return err_set(e, "%s: tensor %s has no float data of %zu values", path, t->name, n);
    for (size_t i = 0; i < n; i++) {
        const uint8_t *b = t->data + i * width;
        if (width == 2) dst[i] = f16_to_f32((uint16_t)(b[0] | b[1] << 8));
        else {
            uint32_t u = (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
            memcpy(&dst[i], &u, 4);
        }
    }
    return 0;
}

/* Walks the convolutions in graph order against the detector's parameter
 * list (weight, bias pairs in the same order), checking every shape and
 * option, and copies the weights, OHWI -> OIHW. */
static int convert(const TfModel *m, FaceDetector *fd, const char *path, Err *e) {
    const TfTensor *in = &m->t[m->input];
    if (in->ndim != 4 || in->shape[1] != FACEDET_RES || in->shape[2] != FACEDET_RES || in->shape[3] != 3 || in->type != TT_FLOAT32)
        return err_set(e, "%s: input is not a 128x128 RGB float image", path);
    int pi = 0, nconv = 0, npool = 0;
    float *tmp = malloc(sizeof(float) * 96 * 96 * 25);
    if (!tmp) return err_set(e, "out of memory");
    for (int i = 0; i < m->nops; i++) {
        const TfOp *o = &m->op[i];
        if (o->code == OP_MAX_POOL_2D) {
            if (o->stride_w != 2 || o->filter_w != 2 || o->filter_h != 2) { free(tmp); return err_set(e, "%s: operator %d: unexpected pooling", path, i); }
            npool++;
        }
        if (o->code == OP_PAD) {
            if (o->nin != 2 || o->nout != 1 || o->in[0] < 0 || o->in[1] < 0) { free(tmp); return err_set(e, "%s: operator %d: malformed padding", path, i); }
            const TfTensor *pads = &m->t[o->in[1]], *a = &m->t[o->in[0]], *b = &m->t[o->out[0]];
            int32_t v[8];
            if (pads->type != TT_INT32 || !pads->data || pads->data_len != sizeof(v)) { free(tmp); return err_set(e, "%s: operator %d: unexpected padding", path, i); }
            memcpy(v, pads->data, sizeof(v));
            if (v[0] || v[1] || v[2] || v[3] || v[4] || v[5] || v[6] || v[7] != b->shape[3] - a->shape[3]) {
                free(tmp);
                return err_set(e, "%s: operator %d pads more than the channels' tail", path, i);
            }
        }
        if (o->code != OP_CONV_2D && o->code != OP_DEPTHWISE_CONV_2D) continue;
        if (pi + 1 >= fd->ps.count) { free(tmp); return err_set(e, "%s: more convolutions than BlazeFace has", path); }
        const ParamTensor *pw = &fd->ps.t[pi], *pb = &fd->ps.t[pi + 1];
        if (o->nin != 3 || o->in[0] < 0) { free(tmp); return err_set(e, "%s: operator %d is not a convolution with weights and bias", path, i); }
        const TfTensor *w = weight_of(m, o->in[1]), *b = weight_of(m, o->in[2]);
        if (!w || !b) { free(tmp); return err_set(e, "%s: operator %d lacks its weights", path, i); }
        int dw = o->code == OP_DEPTHWISE_CONV_2D;
        /* what the engine runs: the stem 5x5 stride 2 "SAME", depthwise 3x3
         * "SAME" at the block's stride, everything else 1x1 (where padding
         * makes no difference) */
        int block = (nconv - 1) / 2, want_stride = nconv == 0 ? 2 : dw ? BLAZE_BLOCKS[block].stride : 1;
        int padded = nconv == 0 || dw;
        if (dw != (pw->ndim == 3) || o->stride_w != want_stride || o->stride_h != want_stride ||
            (padded && o->padding != PAD_SAME) ||
            o->act != ACT_NONE || (dw && o->depth_mult != 1)) {
            free(tmp);
            return err_set(e, "%s: operator %d (%s) is not the %s that BlazeFace has there", path, i, op_name(o->code), pw->name);
        }
        int O = dw ? w->shape[3] : w->shape[0], KH = w->shape[1], KW = w->shape[2], I = dw ? 1 : w->shape[3];
        int ok = w->ndim == 4 && (dw ? pw->shape[0] == O && pw->shape[1] == KH && pw->shape[2] == KW
                                     : pw->shape[0] == O && pw->shape[1] == I && pw->shape[2] == KH && pw->shape[3] == KW) &&
                 b->ndim == 1 && b->shape[0] == O && pb->shape[0] == O;
        if (!ok) { free(tmp); return err_set(e, "%s: %s has an unexpected shape for %s", path, w->name, pw->name); }
        float *dst = fd->ps.data + pw->offset;
        if (read_weights(w, tmp, pw->size, path, e) || read_weights(b, fd->ps.data + pb->offset, pb->size, path, e)) {
            free(tmp);
            return -1;
        }
        for (int oc = 0; oc < O; oc++)
            for (int y = 0; y < KH; y++)
                for (int x = 0; x < KW; x++)
                    for (int ic = 0; ic < I; ic++)
                        dst[((size_t)(oc * I + ic) * KH + y) * KW + x] =
                            dw ? tmp[((size_t)y * KW + x) * O + oc] : tmp[(((size_t)oc * KH + y) * KW + x) * I + ic];
        pi += 2;
        nconv++;
    }
    free(tmp);
    int want_pools = 0;
    for (int i = 0; i < FACEDET_BLOCKS; i++) want_pools += BLAZE_BLOCKS[i].stride == 2;
    if (pi != fd->ps.count || npool != want_pools)
        return err_set(e, "%s: %d convolutions and %d poolings, not BlazeFace short-range's %d and %d", path, nconv,
                       npool, fd->ps.count / 2, want_pools);
    return 0;
}

/* ---- the Face Mesh landmark network ---- */

/* The operator writing the tensor of this name, or -1. */
static int producer(const TfModel *m, const char *name) {
    for (int i = 0; i < m->nops; i++)
        if (m->op[i].code != OP_DEQUANTIZE && m->op[i].nout >= 1 && !strcmp(m->t[m->op[i].out[0]].name, name)) return i;
    return -1;
}

/* The name of the tensor an operator reads first ("" when it reads none). */
static const char *first_input(const TfModel *m, int op) {
    return op >= 0 && m->op[op].nin >= 1 && m->op[op].in[0] >= 0 ? m->t[m->op[op].in[0]].name : "";
}

typedef struct {
    const TfModel *m;
    FaceMesh *fm;
    float *tmp;
    int used;       /* operators accounted for */
    const char *path;
    Err *e;
} MeshCheck;

/* layer_n, an operator of this code reading `from`, with its options as
 * given (stride, padding; kernel size k), and its weights copied into the
 * mesh's tensors (conv and depthwise: OHWI -> OIHW; PReLU: [1,1,C] -> [C]). */
static int take_layer(MeshCheck *c, const char *layer, int n, int code, const char *from, int stride, int padding, char *out_name) {
    const TfModel *m = c->m;
    snprintf(out_name, 64, "%s_%d", layer, n);
    int i = producer(m, out_name);
    if (i < 0) return err_set(c->e, "%s: no operator writes %s", c->path, out_name);
    const TfOp *o = &m->op[i];
    if (o->code != code || strcmp(first_input(m, i), from) || o->act != ACT_NONE ||
        (code != OP_PRELU && (o->stride_w != stride || o->stride_h != stride || o->padding != padding)) ||
        (code == OP_DEPTHWISE_CONV_2D && o->depth_mult != 1) || o->nin != (code == OP_PRELU ? 2 : 3))
        return err_set(c->e, "%s: %s is not the %s from %s that Face Mesh has there", c->path, out_name, op_name(code), from);
    char name[PARAM_NAME_MAX];
    for (int part = 0; part < (code == OP_PRELU ? 1 : 2); part++) {
        snprintf(name, sizeof(name), "%s.%s", out_name, code == OP_PRELU ? "alpha" : part ? "b" : "w");
        const ParamTensor *pt = params_find(&c->fm->ps, name);
        const TfTensor *w = weight_of(m, o->in[1 + part]);
        if (!pt || !w) return err_set(c->e, "%s: %s lacks its weights", c->path, out_name);
        size_t count = 1;
        for (int d = 0; d < w->ndim; d++) count *= (size_t)w->shape[d];
        if (count != pt->size || (part == 0 && pt->ndim == 4 && (w->ndim != 4 || w->shape[0] != pt->shape[0] ||
                                                                 w->shape[1] != pt->shape[2] || w->shape[3] != pt->shape[1])))
            return err_set(c->e, "%s: %s has an unexpected shape for %s", c->path, w->name, name);
        if (read_weights(w, c->tmp, pt->size, c->path, c->e)) return -1;
        float *dst = c->fm->ps.data + pt->offset;
        if (pt->ndim == 4) { /* OHWI -> OIHW */
            int O = pt->shape[0], I = pt->shape[1], K = pt->shape[2];
            for (int oc = 0; oc < O; oc++)
                for (int y = 0; y < K; y++)
                    for (int x = 0; x < K; x++)
                        for (int ic = 0; ic < I; ic++)
                            dst[((size_t)(oc * I + ic) * K + y) * K + x] = c->tmp[(((size_t)oc * K + y) * K + x) * I + ic];
        } else if (pt->ndim == 3) { /* depthwise [1,3,3,C] -> [C,3,3] */
            int C = pt->shape[0];
            for (int ch = 0; ch < C; ch++)
                for (int t = 0; t < 9; t++) dst[(size_t)ch * 9 + t] = c->tmp[(size_t)t * C + ch];
        } else {
            memcpy(dst, c->tmp, sizeof(float) * pt->size);
        }
    }
    c->used++;
    return 0;
}

/* A block reading `from`; writes the name of its output into out. The
 * shortcut is `from` itself, or its 2x2 max pool, zero-extended in channels
 * by a PAD where the block widens. */
static int take_block(MeshCheck *c, const MeshBlock *k, const char *from, char *out) {
    char dw[64], pw[64];
    if (take_layer(c, "depthwise_conv2d", k->dw, OP_DEPTHWISE_CONV_2D, from, k->stride, PAD_SAME, dw) ||
        take_layer(c, "conv2d", k->pw, OP_CONV_2D, dw, 1, PAD_VALID, pw))
        return -1;
    const TfModel *m = c->m;
    snprintf(out, 64, "p_re_lu_%d", k->prelu);
    int pr = producer(m, out), add = pr >= 0 && m->op[pr].in[0] >= 0 ? producer(m, first_input(m, pr)) : -1;
    int ok = add >= 0 && m->op[add].code == OP_ADD && m->op[add].nin == 2 && m->op[add].in[0] >= 0 && m->op[add].in[1] >= 0 &&
             m->op[add].act == ACT_NONE;
    if (ok) {
        const char *a = m->t[m->op[add].in[0]].name, *b = m->t[m->op[add].in[1]].name, *shortcut = !strcmp(a, pw) ? b : a;
        ok = !strcmp(a, pw) || !strcmp(b, pw);
        int via = producer(m, shortcut);
        if (ok && k->cout > k->cin) { /* the channels' zero tail */
            ok = via >= 0 && m->op[via].code == OP_PAD;
            shortcut = first_input(m, via);
            via = producer(m, shortcut);
            c->used++;
        }
        if (ok && k->stride == 2) {
            const TfOp *o = via >= 0 ? &m->op[via] : NULL;
            ok = o && o->code == OP_MAX_POOL_2D && o->stride_w == 2 && o->filter_w == 2 && o->filter_h == 2 && o->padding == PAD_VALID;
            shortcut = first_input(m, via);
            c->used++;
        }
        ok = ok && !strcmp(shortcut, from);
    }
    if (!ok) return err_set(c->e, "%s: %s is not the residual sum of %s and %s that Face Mesh has there", c->path, out, pw, from);
    c->used++; /* the ADD */
    char checked[64];
    return take_layer(c, "p_re_lu", k->prelu, OP_PRELU, first_input(m, pr), 0, 0, checked);
}

static int take_head(MeshCheck *c, const MeshHead *h, const char *from) {
    char a[64], sq[64], sqp[64], b[64], last[64];
    if (take_block(c, &h->first, from, a) || take_layer(c, "conv2d", h->squeeze, OP_CONV_2D, a, 1, PAD_VALID, sq) ||
        take_layer(c, "p_re_lu", h->squeeze_prelu, OP_PRELU, sq, 0, 0, sqp) || take_block(c, &h->second, sqp, b) ||
        take_layer(c, "conv2d", h->last, OP_CONV_2D, b, 3, PAD_VALID, last))
        return -1;
    for (int i = 0; i < c->m->noutputs; i++)
        if (!strcmp(c->m->t[c->m->outputs[i]].name, last)) return 0;
    return err_set(c->e, "%s: %s is not one of the model's outputs", c->path, last);
}

/* Walks Face Mesh's graph from the input, layer by layer as the engine
 * runs it (facemesh.c), checking every operator's kind, wiring and options,
 * and refuses a model with any operator the walk does not account for. */
static int convert_mesh(const TfModel *m, FaceMesh *fm, const char *path, Err *e) {
    const TfTensor *in = &m->t[m->input];
    if (in->ndim != 4 || in->shape[1] != FACEMESH_RES || in->shape[2] != FACEMESH_RES || in->shape[3] != 3 ||
        in->type != TT_FLOAT32 || m->noutputs != 2)
        return err_set(e, "%s: not a 192x192 RGB model with two outputs", path);
    MeshCheck c = {m, fm, malloc(sizeof(float) * 1404 * 32 * 9), 0, path, e};
    if (!c.tmp) return err_set(e, "out of memory");
    char stem[64], from[64], trunk_end[64], flag_from[64];
    int rc = take_layer(&c, "conv2d", 1, OP_CONV_2D, in->name, 2, PAD_SAME, stem) ||
             take_layer(&c, "p_re_lu", 1, OP_PRELU, stem, 0, 0, from);
    for (int i = 0; !rc && i < FACEMESH_TRUNK; i++) {
        char next[64];
        rc = take_block(&c, &MESH_TRUNK[i], from, next);
        snprintf(from, sizeof(from), "%s", next);
        if (i + 1 == 14) snprintf(flag_from, sizeof(flag_from), "%s", from);
    }
    snprintf(trunk_end, sizeof(trunk_end), "%s", from);
    rc = rc || take_head(&c, &MESH_LANDMARKS, trunk_end) || take_head(&c, &MESH_FACE_FLAG, flag_from);
    free(c.tmp);
    if (rc) return -1;
    int ops = 0;
    for (int i = 0; i < m->nops; i++) ops += m->op[i].code != OP_DEQUANTIZE;
    if (ops != c.used) return err_set(e, "%s: %d operators, of which Face Mesh's layers account for %d", path, ops, c.used);
    return 0;
}

int main(int argc, char **argv) {
    Err e = {{0}};
    const char *source = "face_detection_short_range.tflite";
    int list = 0, a = 1;
    for (; a < argc && argv[a][0] == '-' && argv[a][1] == '-'; a++) {
        if (strcmp(argv[a], "--list") == 0) list = 1;
        else if (strcmp(argv[a], "--source") == 0 && a + 1 < argc) source = argv[++a];
        else { fprintf(stderr, "reage-tflite: unknown option %s\n", argv[a]); return 2; }
    }
    if (argc - a != (list ? 1 : 2)) {
        fprintf(stderr, "usage: reage-tflite [--source TEXT] MODEL.tflite OUT.blob\n"
                        "       reage-tflite --list MODEL.tflite\n");
        return 2;
    }
    const char *in = argv[a];
    uint8_t *buf;
    size_t len;
    if (file_read_all(in, 64u << 20, &buf, &len, &e)) { fprintf(stderr, "reage-tflite: %s\n", e.msg); return 1; }
    static TfModel m;
    if (tflite_parse(&m, buf, len, in, &e)) { fprintf(stderr, "reage-tflite: %s\n", e.msg); return 1; }
    if (list) { tflite_list(&m); return 0; }
    if (m.t[m.input].ndim == 4 && m.t[m.input].shape[1] == FACEMESH_RES) {
        static FaceMesh fm;
        facemesh_build(&fm);
        if (params_alloc(&fm.ps, 0) || convert_mesh(&m, &fm, in, &e)) { fprintf(stderr, "reage-tflite: %s\n", e.msg); return 1; }
        char config[512];
        snprintf(config, sizeof(config), "model=face-mesh\nres=%d\npoints=%d\nsource=%s\nlicense=Apache-2.0\n",
                 FACEMESH_RES, FACEMESH_POINTS, source);
        BlobWriter w;
        blobw_begin(&w, FACEMESH_MAGIC, config);
        /* int8 per output channel for the large kernels (half the download; the mesh moves
         * by hundredths of a pixel, docs/performance.md), float16 as in the .tflite for the rest */
        blobw_params(&w, "", &fm.ps, DT_Q8);
        if (blobw_save(&w, argv[a + 1], &e)) { fprintf(stderr, "reage-tflite: %s\n", e.msg); return 1; }
        printf("reage-tflite: %s -> %s (%zu weights)\n", in, argv[a + 1], fm.ps.total);
        free(buf);
        return 0;
    }
    static FaceDetector fd;
    facedet_build(&fd);
    if (params_alloc(&fd.ps, 0) || convert(&m, &fd, in, &e)) { fprintf(stderr, "reage-tflite: %s\n", e.msg); return 1; }
    char config[512];
    snprintf(config, sizeof(config), "model=blazeface-short-range\nres=%d\nsource=%s\nlicense=Apache-2.0\n",
             FACEDET_RES, source);
    BlobWriter w;
    blobw_begin(&w, FACEDET_MAGIC, config);
    /* as the mesh: int8 for the large kernels, float16 as in the .tflite for the rest */
    blobw_params(&w, "", &fd.ps, DT_Q8);
    if (blobw_save(&w, argv[a + 1], &e)) { fprintf(stderr, "reage-tflite: %s\n", e.msg); return 1; }
    printf("reage-tflite: %s -> %s (%zu weights)\n", in, argv[a + 1], fd.ps.total);
    free(buf);
    return 0;
}
