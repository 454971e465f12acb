/* The native build with oneDNN: conv2d_forward/backward (layers.h) run
 * either through oneDNN's convolution primitives or on the im2col + sgemm
 * path, chosen per shape and direction (forward, input gradient, weight
 * gradient). Neither path wins everywhere, and where each wins depends on
 * the processor, so in programs that asked for it (conv_paths_measure, in
 * layers.h) each shape's first call times both and the faster serves the
 * rest of the process. */
#ifndef REAGE_CONV_DNNL_H
#define REAGE_CONV_DNNL_H
#include <stdio.h>
#include "layers.h"

typedef enum {
    CONV_PATH_MEASURE, /* time both on first use, keep the faster (training, benchmarks) */
    CONV_PATH_ONEDNN,  /* oneDNN wherever it takes the shape (everything else) */
    CONV_PATH_IM2COL   /* im2col + sgemm everywhere (tests, comparisons) */
} ConvPathMode;

/* Overrides the environment's REAGE_CONV_PATH (measure | onednn | im2col)
 * and the program's default. */
void conv_path_mode(ConvPathMode m);
/* One line per shape measured so far: each direction's path and times. */
void conv_path_report(FILE *f);
#endif
