/* The age calibration a shipped blob may carry: which conditioning age to
 * give the generator so that its output reads as the age the user asked for.
 *
 * The generator learns each group as a whole, and its outputs for a group
 * need not read as that group's middle (trained to 45-59, adults come out
 * looking in their early forties). The calibration is one conditioning age
 * per group centre, fitted after training by tools/calibrate.c on the train
 * split: at each centre, the conditioning at which the blob's own age
 * estimator reads the outputs as that age, so that the age the page shows
 * for a result agrees with the age that was asked for. Between centres the
 * map is linear; outside them it is flat, like the groups' own weights. A
 * blob without one maps each age to itself. Stored in the blob's config
 * text as
 *
 *   age_calibration=c1,c2,...,cG     (years, non-decreasing, one per group)
 */
#ifndef REAGE_CALIBRATION_H
#define REAGE_CALIBRATION_H
#include <stddef.h>
#include "blob.h"
#include "errors.h"
#include "model.h"

#define CALIBRATION_KEY "age_calibration"

/* The conditioning age for an age in years under calib (NULL: itself). */
float calibration_map(const ModelConfig *c, const float *calib, float age);
/* Reads the key's value ("c1,...,cG"): exactly G finite numbers within the
 * first and last group centres, non-decreasing. */
int calibration_parse(const ModelConfig *c, const char *value, float *calib, Err *e);
/* The config line, "age_calibration=...\n", into buf. */
void calibration_line(const ModelConfig *c, const float *calib, char *buf, size_t n);
/* The fit. cond [K]: increasing conditioning ages; reading [G*K]: for each
 * target group g, the mean estimated age of outputs made at cond[k] (from
 * inputs of the other groups); want [G]: the reading wanted for group g.
 * For each group, the conditioning at which the readings (made
 * non-decreasing by a running maximum) reach want[g], linearly between grid
 * points and clamped to the grid's ends; then made non-decreasing across
 * groups. */
void calibration_fit(const ModelConfig *c, int K, const float *cond, const float *reading, const float *want,
                     float *calib);
/* A copy of a parsed blob (tensors bit for bit) whose config carries calib
 * in place of any calibration it had; the bytes are the caller's to free,
 * NULL when out of memory. */
uint8_t *calibration_apply(const Blob *blob, const ModelConfig *c, const float *calib, size_t *len);
#endif
