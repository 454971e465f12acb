/* The shipped model: the age estimator, the age prototypes and the generator
 * (for faces the mesh does not find), as the page and the CLI load them from
 * a weight blob, with one inference context each. The page's blob may leave
 * the generator out and load it from a second blob when a face needs it. */
#ifndef REAGE_BUNDLE_H
#define REAGE_BUNDLE_H
#include "blob.h"
#include "model.h"

typedef struct {
    ModelConfig cfg;
    Generator gen;
    Estimator est;
    GenActs ga;
    EstActs ea;
    float *scratch;
    char info[256];     /* free text from the blob ("trained_steps=...") */
    int calibrated;     /* the blob carries an age calibration (calibration.h) */
    float calib[MAX_GROUPS];
    struct Prototypes *proto;   /* the blob's age prototypes (prototypes.h), NULL where it has none */
    struct ChangeModel *change; /* the blob's change net (structured.h), NULL where it has none */
    int has_generator;          /* 0 while a blob of prototypes left the generator for later */
} Bundle;

/* Writes gen and est as a browser blob (float16 weights). */
int bundle_save(const char *path, const Generator *g, const Estimator *m, const char *info, Err *e);
/* Parses a blob from memory and builds the networks it describes. When
 * expect is not NULL, a blob for a different model is refused. */
int bundle_load(Bundle *b, const uint8_t *buf, size_t len, const ModelConfig *expect,
                const char *what, Err *e);
/* The generator's weights from a second blob (the "gen." tensors of the same
 * model), for a bundle loaded without them; a blob of another model, or one
 * without a generator, is refused and the bundle is left as it was. */
int bundle_load_generator(Bundle *b, const uint8_t *buf, size_t len, const char *what, Err *e);
void bundle_free(Bundle *b);
/* The photo's own age in years; face is [3,res,res] in [-1,1]. */
float bundle_estimate_age(Bundle *b, const float *face);
/* The generator's soft group weights [G] for an age in years, through the
 * blob's age calibration where it has one. */
void bundle_age_weights(const Bundle *b, float age, float *groupw);
/* Re-ages one face to soft group weights groupw [G]; writes [3,res,res]. */
void bundle_reage(Bundle *b, const float *face, const float *groupw, float *out);
#endif
