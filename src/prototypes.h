/* Age prototypes and the transform that ages a face with them (Rowland &
 * Perrett 1995; Tiddeman, Burt & Perrett 2001).
 *
 * A prototype is what the faces of one age group have in common, measured in
 * the face space (facespace.h), where every face's landmarks sit at the mean
 * shape so that pixels of different faces correspond:
 *   - its mean shape: the 468 mesh points in crop fractions;
 *   - its mean colour, low-pass (the pyramid's level PROTO_BANDS, 32 px);
 *   - for each of PROTO_BANDS octaves of brightness detail (the finest at
 *     the face space's 256-px pixel), the mean local amplitude of the detail,
 *     and the texture-enhanced mean band: the group's mean detail rescaled to
 *     that amplitude, which brings back the lines that plain averaging
 *     washes out.
 * Each group's faces are weighted so that every ethnicity counts alike: the
 * data's oldest group is mostly white, and an unbalanced prototype would turn
 * every face paler as it aged.
 *
 * The transform takes a face from its own age to a target by the difference
 * of the two ages' prototypes (ages between group centres interpolate): the
 * mesh moves by the shape difference and the photo is warped at its own
 * resolution; the low-pass colour difference is added; each octave of the
 * photo's own detail is scaled by the amplitude ratio (lines deepen where old
 * faces have them, skin smooths where children's is smooth), and where the
 * photo lacks the detail to scale, the texture-enhanced band difference
 * supplies it. The hair and the face's border get the colour change through a
 * soft mask. No pixel is painted free: every change is a prototype's. */
#ifndef REAGE_PROTOTYPES_H
#define REAGE_PROTOTYPES_H
#include "blob.h"
#include "errors.h"
#include "facemesh.h"
#include "facespace.h"
#include "model.h"
#include "photo.h"

#define PROTO_SIDE 256
#define PROTO_BANDS 3
#define PROTO_COLOUR_SIDE (PROTO_SIDE >> PROTO_BANDS)
#define PROTO_STRENGTH_KEY "proto_strength"
#define PROTO_COLOUR_MAX_KEY "proto_colour_max"
/* the colour's exaggeration where a blob names none */
#define PROTO_COLOUR_MAX_DEFAULT 1.5f

typedef struct Prototypes {
    int groups;
    float *shape;                 /* [G][468][2] mean mesh, crop fractions */
    float *colour;                /* [G][3][32][32] mean low-pass colour, 0..255 */
    float *amp[PROTO_BANDS];      /* [G][(S>>(k+1))^2] mean local amplitude of band k */
    float *tex[PROTO_BANDS];      /* [G][(S>>k)^2] texture-enhanced mean of band k */
    /* how far past the plain prototype difference each target group is taken
     * (1: the difference; more exaggerates it, as Burt & Perrett found older
     * faces need) */
    float strength[MAX_GROUPS];
    /* how far the low-pass colour's difference may be exaggerated for each
     * target group: past about 1.5 the averages' shading turns to blotches,
     * and where the shape and the detail already reach a group's age, any
     * exaggeration of the colour only makes the outputs easier to tell from
     * real faces of that group */
    float colour_max[MAX_GROUPS];
    float *mem;
} Prototypes;

/* Floats in each of band k's planes and amplitude planes, per group. */
static inline int proto_band_side(int k) { return PROTO_SIDE >> k; }
static inline int proto_amp_side(int k) { return PROTO_SIDE >> (k + 1); }

int proto_alloc(Prototypes *P, int groups);
void proto_free(Prototypes *P);
/* The prototypes a blob carries (tensors proto.*), checked against its
 * groups; returns 1 when the blob has none, 0 when loaded, -1 on error. */
int proto_load(Prototypes *P, const Blob *b, int groups, const char *what, Err *e);
void proto_write(BlobWriter *w, const Prototypes *P);
/* The strengths and colour caps a blob's config names into P (the defaults
 * stay for those it does not name); errors name `what`. */
int proto_read_config(Prototypes *P, const char *config, const char *what, Err *e);
/* "1.2,1.5,..." into P->strength or P->colour_max, one value per group. */
int proto_parse_strength(Prototypes *P, const char *text, Err *e);
int proto_parse_colour_max(Prototypes *P, const char *text, Err *e);
void proto_strength_text(const Prototypes *P, char *buf, size_t n);
void proto_colour_max_text(const Prototypes *P, char *buf, size_t n);

/* ---- building ---- */

/* One face's measurements in the face space at PROTO_SIDE. */
typedef struct {
    float shape[FACEMESH_POINTS][2];
    float colour[3 * PROTO_COLOUR_SIDE * PROTO_COLOUR_SIDE];   /* the mean over the photo's own pixels */
    float cover[PROTO_COLOUR_SIDE * PROTO_COLOUR_SIDE];         /* the share of those: not padding */
    float *band[PROTO_BANDS], *amp[PROTO_BANDS];
    float *mem;
} FaceStats;
int face_stats_alloc(FaceStats *s);
void face_stats_free(FaceStats *s);
/* Measures the face whose mesh is l; -1 when out of memory. */
int face_stats_measure(FaceStats *s, const Photo *p, const FaceLandmarks *l);

/* Weighted sums per group, merged and turned into prototypes at the end. */
typedef struct {
    int groups;
    double wsum[MAX_GROUPS];
    double *sum;                  /* every group's sums, laid out as Prototypes' planes */
    size_t per_group;
} ProtoSums;
int proto_sums_alloc(ProtoSums *s, int groups);
void proto_sums_free(ProtoSums *s);
void proto_sums_add(ProtoSums *s, int group, double weight, const FaceStats *f);
void proto_sums_merge(ProtoSums *into, const ProtoSums *from);
/* Means, then each band's texture-enhanced mean; P allocated by the caller. */
void proto_sums_finish(const ProtoSums *s, Prototypes *P);

/* ---- the transform ---- */

/* The change from one age to another as prototypes give it (the structured
 * change a generator may refine): the mesh's displacement, the low-pass
 * colour change, and per band a gain on the photo's own detail, the target's
 * amplitude, and the detail to add where the photo has too little. */
typedef struct {
    float shape[FACEMESH_POINTS][2];                  /* crop fractions */
    float colour[3 * PROTO_COLOUR_SIDE * PROTO_COLOUR_SIDE];
    float *gain[PROTO_BANDS], *target_amp[PROTO_BANDS], *inject[PROTO_BANDS];
    float *mem;
} FaceChange;
int face_change_alloc(FaceChange *c);
void face_change_free(FaceChange *c);
/* The prototypes' change from source_age to target_age (years). */
void proto_change(const Prototypes *P, const ModelConfig *cfg, float source_age, float target_age, FaceChange *c);
/* Applies a change to the face whose mesh is l, in place, at the photo's own
 * resolution. 0, or -1 when out of memory (the photo is then unchanged). */
int face_change_apply(const FaceChange *c, Photo *p, const FaceLandmarks *l);

/* face_change_apply in steps (src/face_change.c), for one face taking many
 * changes. A face's setup: its warp, its photo in the face space of side S
 * (about the photo's resolution), where the map folds, and the photo region
 * the change covers (empty when x1 <= x0) with the grid its maps are
 * computed on, a 1/grid_div of the face apart (FACE_GRID_DIV for the full
 * result; coarser for a preview). On a grid of FACE_GRID_LIVE or coarser
 * (a live frame's) the face space stays at PROTO_SIDE whatever the face's
 * size, so that a frame's time does not double with a face past ~190 pixels
 * (at 640x480 its output is 0.27 grey levels from the larger space's). */
#define FACE_GRID_DIV 96
#define FACE_GRID_LIVE 16
typedef struct {
    FaceWarp w;
    FaceLandmarks l;
    int S, extra;
    uint8_t *space;
    float *fold;
    int fold_side;
    int x0, y0, x1, y1, step, GW, GH;
} FaceSetup;
int face_setup(FaceSetup *s, const Photo *p, const FaceLandmarks *l, int grid_div);
void face_setup_free(FaceSetup *s);
/* One change made ready to draw: its maps on the setup's grid (where each
 * pixel comes from, the colour change, the detail's weight) and its detail
 * change in the face space. */
typedef struct {
    double *map;
    float *detail;
} FacePlan;
int face_plan_alloc(FacePlan *f, const FaceSetup *s);
void face_plan_free(FacePlan *f);
int face_plan(FacePlan *f, const FaceSetup *s, const FaceChange *c);
/* face_change_apply on a grid of a grid_div-th of the face (coarser: faster). */
int face_change_apply_grid(const FaceChange *c, Photo *p, const FaceLandmarks *l, int grid_div);
/* out = a + t (b - a), field by field: a change between two planned ones. */
void face_plan_mix(FacePlan *out, const FaceSetup *s, const FacePlan *a, const FacePlan *b, float t);
/* Draws the changed face into p over the setup's region, reading the
 * unchanged pixels from src, whose pixel (0, 0) is p's (ox, oy). */
void face_plan_render(const FaceSetup *s, const FacePlan *f, const Photo *src, int ox, int oy, Photo *p);
/* The transform's masks over a face space of side S, [S][S] each: where the
 * detail changes (the face inside its outline), where the colour does (into
 * the hair and the face's border), and where the reshaping reaches. */
void face_space_masks(int S, float *detail, float *colour, float *shape);
/* Both: re-ages the face from source_age to target_age in place. */
int proto_reage(const Prototypes *P, const ModelConfig *cfg, Photo *p, const FaceLandmarks *l, float source_age,
                float target_age);
/* The same on a grid of a grid_div-th of the face (face_change_apply_grid). */
int proto_reage_grid(const Prototypes *P, const ModelConfig *cfg, Photo *p, const FaceLandmarks *l, float source_age,
                     float target_age, int grid_div);
#endif
