/*
 * shapes_classify.h - labels an image of the shapes data set (shapes.h) with the object's shape,
 * colour, texture and the background colour, from pixel statistics alone (nothing learned).
 *
 * What it is: the demo's judge. It reads a generated image or one a model sampled and says
 * what it sees, with a confidence per attribute and -1 ("none") when there is nothing to see:
 *   background  the median of the 2-pixel border, named by the nearest palette colour;
 *   object      on the image smoothed by a 3x3 binomial filter: pixels farther from the
 *               background than 30 + 3 x the border's mean distance (noise), largest
 *               8-connected component; then cut again at half the object's own contrast (10th
 *               percentile of its interior's distances) so blurred edges are cut where sharp
 *               ones would be; holes are the background regions it encloses; none when it
 *               covers under 1 % or over 60 % of the image;
 *   colour      the palette colour c minimising the mean distance of the interior's pixels
 *               (2 pixels deep when there are enough) to the RGB segment c..shade(c): a texture
 *               paints with c and its shade, blur and compression mix them along the segment;
 *   texture     each object pixel's position t along c -> shade(c), unmixed from the
 *               background (p - bg = a (c - bg) + b (shade - c), t = b / a, pixels with
 *               a >= 0.75) where the three colours are not collinear, else projected over the
 *               2-deep interior; the share of t's variance at the textures' frequencies
 *               (period 6 horizontal and vertical, the period-8 diagonals of 4 px checks, each
 *               searched over +-1 px) gives the periodic amplitude std(t) x sqrt(share): under
 *               TI_SHAPES_MIN_TEXTURE plain; else checks when the diagonal share is the
 *               largest, stripes when one axis has under 0.35 of the other's, else dots;
 *   shape       the radial profile r(theta) of the filled object (holes filled) from its
 *               centroid at 120 directions, divided by its mean, against templates built from
 *               geometric descriptions of the shapes (this file's own, not the generator's code)
 *               rasterised sharp and blurred (TI_SHAPES_NBLUR levels), at rotations within +-15
 *               degrees: the RMS difference plus a hole term (the ring: 0.12 - hole fraction
 *               when positive; the others: the hole fraction); the nearest wins, none when it
 *               is farther than TI_SHAPES_MAX_SHAPE_DIST.
 * Confidences are 1 - best / second best score (0: a tie, 1: unambiguous).
 * What it is not: a general object detector. It expects one object on a plain background, shapes
 * upright within +-15 degrees (a diamond is a square turned by 45).
 *
 * Entry points: ti_shapes_classifier_init (templates, once), ti_shapes_classify (per image).
 */
#ifndef TI_DATA_SHAPES_CLASSIFY_H
#define TI_DATA_SHAPES_CLASSIFY_H

#include <stdint.h>

#include "data_err.h"
#include "shapes.h"

#ifdef __cplusplus
extern "C" {
#endif

#define TI_SHAPES_NDIR           120  /* directions of the radial profile (3 degrees apart) */
#define TI_SHAPES_MAX_SHAPE_DIST 0.15 /* a profile farther than this from every template: none */
#define TI_SHAPES_MIN_TEXTURE    0.09 /* periodic amplitude below this: plain */

/* Templates: each shape's radial profile (mean 1) from its centroid, and its hole fraction.
 * Fill with ti_shapes_classifier_init; read-only afterwards (share it between threads). */
#define TI_SHAPES_NBLUR 4 /* template blur levels: sigma = 0, 0.07, 0.14, 0.21 x the radius */
struct ti_shapes_classifier {
    float profile[TI_SHAPE_COUNT][TI_SHAPES_NBLUR][TI_SHAPES_NDIR];
    double hole[TI_SHAPE_COUNT];
};
/* -1 only when out of memory (a temporary raster). */
int ti_shapes_classifier_init(struct ti_shapes_classifier *c, struct ti_data_err *e);

/* What the classifier saw. Labels are enum values or -1 (none). */
struct ti_shapes_label {
    int found; /* an object was segmented (else shape, colour and texture are -1) */
    int shape, colour, texture, background;
    double shape_conf, colour_conf, texture_conf, background_conf; /* 0..1 */
    /* measurements, for reports and debugging */
    double area_frac;                  /* object pixels / image pixels */
    double hole_frac;                  /* enclosed background / (object + enclosed background) */
    double texture_std;                /* std of the interior's position along colour -> shade */
    double texture_energy[3];          /* share of that variance at the horizontal, vertical and
                                        * diagonal texture frequencies */
    double texture_amp;                /* std x sqrt(sum of the shares): the periodic amplitude */
    double cx, cy, radius;             /* centroid and mean profile radius, pixels */
    double shape_dist[TI_SHAPE_COUNT]; /* score per shape (lower is nearer) */
};

/* Classifies px (w x h RGB8, rows top to bottom). -1 on bad arguments or out of memory; an
 * image with no object is not an error (found = 0). */
int ti_shapes_classify(struct ti_shapes_label *out, const struct ti_shapes_classifier *c,
                       const uint8_t *px, int w, int h, struct ti_data_err *e);

#ifdef __cplusplus
}
#endif

#endif /* TI_DATA_SHAPES_CLASSIFY_H */
