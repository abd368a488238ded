/*
 * shapes_classify.h - labels an image of the shapes data set (shapes.h) with the object's shape,
 * colour, texture and the background colour, from pixel statistics alone (nothing learned).
 *
 * What it is: the demo's judge. It reads a generated image or one a model sampled and says
 * what it sees, with a confidence per attribute and -1 ("none") when there is nothing to see:
 *   background  the median of the 2-pixel border, named by the nearest palette colour;
 *   object      pixels farther than a threshold (45 + 3 x the border's spread) from the
 *               background, largest 8-connected component; holes are the background regions
 *               it encloses; none when it covers under 1 % or over 60 % of the image;
 *   colour      the palette colour c minimising the mean over the object's interior pixels of
 *               min(|p - c|, |p - shade(c)|) (a texture paints with c and its shade);
 *   texture     interior pixels nearer the shade than c: under 5 % plain; otherwise stripes when
 *               label changes run along one axis only (min/max of the horizontal and vertical
 *               change rates < 0.45), else checks when over 33 % are shade, else dots;
 *   shape       the radial profile r(theta) of the filled object (holes filled) from its
 *               centroid at 120 directions, divided by its mean, against templates built from
 *               geometric descriptions of the shapes (this file's own, not the generator's code)
 *               at rotations within +-15 degrees: RMS difference plus 0.5 x the difference in
 *               hole fraction (a ring's is 0.3025); the nearest wins, none when it is farther
 *               than TI_SHAPES_MAX_SHAPE_DIST.
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
