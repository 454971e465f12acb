/* The structured change a generator predicts for a face, rendered onto the
 * face in the face space: the differentiable counterpart of the prototypes'
 * transform (prototypes.h), for training a network whose output is a change
 * of this face's shape, colour and detail rather than free pixels.
 *
 * A change is a low-resolution field [B, CHANGE_FIELDS, s, s]: a
 * displacement (x, y, in pixels of the S-pixel face space), a colour added
 * (R, G, B, in the image's [-1, 1] units), and for each of CHANGE_BANDS
 * octaves of the face's brightness detail a log gain. It is brought up to
 * S bilinearly (change_upsample_*) and rendered (change_render_*): the
 * detail scaled, the colour added, then the whole resampled along the
 * displacement. Nothing else is added: the output can hold no detail the
 * face does not have, scaled. */
#ifndef REAGE_CHANGE_RENDER_H
#define REAGE_CHANGE_RENDER_H

#define CHANGE_BANDS 3
#define CHANGE_FIELDS (2 + 3 + CHANGE_BANDS)
enum { CHANGE_DX = 0, CHANGE_DY = 1, CHANGE_COLOUR = 2, CHANGE_GAIN = 5 };

typedef struct { int B, S, s; } ChangeShape;

/* field [B,F,s,s] -> up [B,F,S,S], pixel centres aligned, edges repeated. */
void change_upsample_forward(float *up, const float *field, ChangeShape sh);
/* Adds the gradient of the field into dfield. */
void change_upsample_backward(float *dfield, const float *dup, ChangeShape sh);

/* y [B,3,S,S] from the face x [B,3,S,S], its brightness bands [B,K,S,S]
 * (each octave brought up to S, summing with the coarsest level to the
 * brightness) and the change up [B,F,S,S]; mid [B,3,S,S] keeps the image
 * before the resampling, for the backward pass. */
void change_render_forward(float *y, float *mid, const float *x, const float *bands, const float *up, ChangeShape sh);
/* Adds the gradient of the change into dup (the face and its bands are
 * data); scratch: 3*S*S floats. */
void change_render_backward(float *dup, const float *dy, const float *mid, const float *bands, const float *up, float *scratch,
                            ChangeShape sh);
#endif
