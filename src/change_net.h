/* The change network: a small convolutional net that reads a face in the
 * face space, already taken to the target age by the prototypes, and
 * predicts the part of the change that is this person's own, as a
 * structured field (change_render.h): a displacement, a colour added and
 * gains on the face's own detail bands, at an eighth of the face space's
 * side. It never outputs pixels, so it cannot paint grain.
 *
 * Input: the face [B,3,S,S] in [-1,1] and two sets of soft age-group
 * weights [B,G] (the photo's own age and the target), given to the net as
 * constant planes. Its last layer starts at zero: an untrained net leaves
 * the prototypes' result as it is. */
#ifndef REAGE_CHANGE_NET_H
#define REAGE_CHANGE_NET_H
#include "change_render.h"
#include "model.h"

#define CHANGE_NET_LEVELS 4   /* encoder levels: 1/2, 1/4, 1/8, 1/16 of the face space */

typedef struct {
    int side;                 /* S, the face space's side it reads */
    int groups;
    int width;                /* channels of the first level */
} ChangeNetConfig;

typedef struct {
    ChangeNetConfig cfg;
    ParamSet ps;
    size_t enc_w[CHANGE_NET_LEVELS], mid_w, dec_w, out_w, out_b;
} ChangeNet;

typedef struct {
    int B;
    ActsMemory mem;
    float *scratch;
    float *in0;                          /* face and age planes [B,3+2G,S,S] */
    ConvBlock enc[CHANGE_NET_LEVELS], mid, dec;
    float *up, *cat, *dup, *dcat;
    ConvShape out_s;
    float *field, *dfield;               /* [B,CHANGE_FIELDS,S/8,S/8] */
} ChangeNetActs;

/* What one unit of the last layer's output means in each field: 4 pixels
 * of the face space's displacement, a twentieth of the colour range, a
 * gain of e^0.3 on a band. The net and its regularisers work in these units. */
extern const float CHANGE_UNIT[CHANGE_FIELDS];

/* The field's side for a face space of side S. */
static inline int change_field_side(int S) { return S / 8; }

int change_net_build(ChangeNet *n, const ChangeNetConfig *cfg, Err *e);
int change_net_acts_alloc(const ChangeNet *n, ChangeNetActs *a, int B, int training, float *scratch);
void change_net_acts_free(ChangeNetActs *a);
size_t change_net_scratch_floats(const ChangeNet *n, int B);
/* a->field from the face x and the two ages' group weights. */
void change_net_forward(const ChangeNet *n, ChangeNetActs *a, const float *x, const float *gw_src, const float *gw_tgt);
/* From the field's gradient a->dfield (which it rescales in place): adds the parameters' gradients into
 * n->ps.grad (the face and ages are data). */
void change_net_backward(ChangeNet *n, ChangeNetActs *a);
double change_net_flops(const ChangeNet *n);
/* "change_side=256\nchange_width=32\n" and back. */
void change_net_config_text(const ChangeNetConfig *cfg, char *buf, size_t n);
int change_net_config_parse(ChangeNetConfig *cfg, const char *text, int groups, Err *e);
#endif
