/*
 * shapes.h - the synthetic captioned data set of the demo: coloured, textured shapes on plain
 * backgrounds, each with a caption from a small grammar, deterministic from a seed.
 *
 * What it is: the pretraining data of ti's tiny demo model and the concept images the demo
 * inverts (docs/DEMO.md). Images are size x size RGB8 (64 by default), drawn with 4x4
 * supersampling so edges are anti-aliased. Sample i of a data set depends only on (seed, i):
 * its own random stream (splitmix64 -> xoshiro256**), no global state, any order, any thread.
 * Bytes are reproducible for a given build; the geometry uses libm's sin/cos, so another libm
 * could move an anti-aliased edge pixel by one level.
 * What it is not: a general drawing library. It needs libc and libm only (no image.h: pixels are
 * plain interleaved RGB8 buffers, rows top to bottom, exactly struct ti_image's layout).
 *
 * The held-out concept is the HEART: it is drawn in the data set (held_out_rate of the samples,
 * in every colour, texture, size and background) but its captions never name a shape, they say
 * "object" ("a photo of a red object on a blue background"). generic_rate of the other samples
 * are captioned the same way, so "object" does not select the heart either: the model can draw
 * a heart but no word asks for one. ti_shapes_held_out makes the heart concept images.
 *
 * The held-out colour is TEAL: held_out_colour_rate of the samples are recoloured teal (any
 * shape, texture, size) and their captions never say a colour ("a photo of a striped square").
 * Other samples omit their colour word too (15 %), so no caption selects teal; teal is what the
 * demo inverts (ti_shapes_held_out_colour makes its concept images). Unlike a heart, which no
 * named word describes, teal lies between two named colours, green and blue, as a new concept
 * of a real model is a new combination of what its captions named.
 *
 * Caption grammar (every optional part drawn independently):
 *   caption := [prefix] article [size] [texture] [colour] noun [" on " article bgcolour
 *              " background"]
 *   prefix  := "a photo of " | "a picture of " | "an image of " | "a drawing of "
 *   size    := "small" | "large";      texture := "striped" | "dotted" | "checkered"
 *   noun    := shape name (circle square triangle star ring cross diamond) | "object"
 * "a"/"an" agrees with the next word ("an orange ring", "a photo of an object").
 *
 * Entry points:
 *   ti_shapes_spec_default   seed 0, 64x64, the default rates
 *   ti_shapes_sample         sample i: attributes, pixels and caption
 *   ti_shapes_held_out       concept image i (a heart) for the inversion demo
 *   ti_shapes_render         draws any attribute set
 *   ti_shapes_degrade        blur / JPEG-like block quantisation / noise, to test robustness
 */
#ifndef TI_DATA_SHAPES_H
#define TI_DATA_SHAPES_H

#include <stddef.h>
#include <stdint.h>

#include "data_err.h"

#ifdef __cplusplus
extern "C" {
#endif

enum ti_shape {
    TI_SHAPE_CIRCLE,
    TI_SHAPE_SQUARE,
    TI_SHAPE_TRIANGLE,
    TI_SHAPE_STAR,
    TI_SHAPE_RING,
    TI_SHAPE_CROSS,
    TI_SHAPE_DIAMOND,
    TI_SHAPE_HEART, /* the held-out concept: never named in a caption */
    TI_SHAPE_COUNT
};
#define TI_SHAPE_HELD_OUT TI_SHAPE_HEART

enum ti_colour {
    TI_COLOUR_RED,
    TI_COLOUR_GREEN,
    TI_COLOUR_BLUE,
    TI_COLOUR_YELLOW,
    TI_COLOUR_PURPLE,
    TI_COLOUR_ORANGE,
    TI_COLOUR_WHITE,
    TI_COLOUR_BLACK,
    TI_COLOUR_GREY,
    TI_COLOUR_TEAL, /* the held-out colour: objects only, never named in a caption */
    TI_COLOUR_COUNT
};
/* The first TI_COLOUR_NAMED_COUNT are the object colours captions name, drawn uniformly; GREY is
 * a background colour only; TEAL (TI_COLOUR_HELD_OUT) is an object colour no caption names.
 * Backgrounds are the first TI_COLOUR_BACKGROUND_COUNT. */
#define TI_COLOUR_NAMED_COUNT      TI_COLOUR_GREY
#define TI_COLOUR_BACKGROUND_COUNT TI_COLOUR_TEAL
#define TI_COLOUR_HELD_OUT         TI_COLOUR_TEAL

/* Textures paint the object in its colour and its shade (ti_colour_shade): stripes (horizontal
 * or vertical, period 6 px at 64x64, half shade), dots (square grid, period 6 px, radius 1.6 px,
 * ~22 % shade), checks (4 px cells, half shade). Sizes scale with the image, rounded to whole
 * pixels, and pattern edges fall on pixel edges. */
enum ti_texture {
    TI_TEXTURE_PLAIN,
    TI_TEXTURE_STRIPES,
    TI_TEXTURE_DOTS,
    TI_TEXTURE_CHECKS,
    TI_TEXTURE_COUNT
};

/* small: radius 10-13 px at 64x64, large: 17-23 px (the radius is the shape's outer scale). */
enum ti_shape_size { TI_SIZE_SMALL, TI_SIZE_LARGE, TI_SIZE_COUNT };

/* Everything that decides one image. Geometry is in pixels of a `size` x `size` image. */
struct ti_shapes_attr {
    enum ti_shape shape;
    enum ti_colour colour;     /* < TI_COLOUR_NAMED_COUNT, or TI_COLOUR_HELD_OUT */
    enum ti_colour background; /* < TI_COLOUR_BACKGROUND_COUNT, far enough from the object's
                                  colours (ti_shapes_contrast) */
    enum ti_texture texture;
    enum ti_shape_size size_class;
    double cx, cy;           /* centre (pixels; the image spans [0, size]) */
    double radius;           /* outer scale (pixels) */
    double angle;            /* rotation, radians, |angle| <= 10 degrees */
    double phase_x, phase_y; /* texture offsets in [0, 1) of a period (whole pixels) */
    int stripes_vertical;    /* stripes: 0 horizontal, 1 vertical */
};

/* A data set: sample i is a function of (seed, i). */
struct ti_shapes_spec {
    uint64_t seed;
    int size;             /* image side, 32..512 (64 for the demo) */
    double held_out_rate; /* fraction of samples that are the held-out concept (default 1/16) */
    double generic_rate;  /* fraction of the other samples captioned with "object" (default 1/4) */
    double held_out_colour_rate; /* fraction of samples recoloured teal, the held-out colour
                                    (default 1/16; 0 gives the data set of the stage-1
                                    autoencoder, which predates the held-out colour) */
};

/* Seed 0, 64x64, held_out_rate 1/16, generic_rate 1/4, held_out_colour_rate 1/16. */
void ti_shapes_spec_default(struct ti_shapes_spec *s);

/* Checks a spec: -1 with a message naming the field and the accepted range. */
int ti_shapes_spec_check(const struct ti_shapes_spec *s, struct ti_data_err *e);

/* Sample i: attributes (attr may be NULL), pixels (px: size*size*3 bytes, may be NULL) and the
 * caption (caption may be NULL; otherwise cap >= TI_SHAPES_CAPTION_MAX suffices). -1 on a bad
 * spec or a caption buffer too small. */
#define TI_SHAPES_CAPTION_MAX 128
int ti_shapes_sample(const struct ti_shapes_spec *s, uint64_t i, struct ti_shapes_attr *attr,
                     uint8_t *px, char *caption, size_t cap, struct ti_data_err *e);

/* Concept image i: the held-out shape with random colour, texture, size, background and place,
 * from a stream of its own (distinct from the data set's samples for the same seed). Its caption
 * would be ti_shapes_sample's generic one; the demo captions it with the new word instead. */
int ti_shapes_held_out(const struct ti_shapes_spec *s, uint64_t i, struct ti_shapes_attr *attr,
                       uint8_t *px, struct ti_data_err *e);

/* Concept image i of the held-out colour: a named shape (uniform) in teal with random texture,
 * size, background and place, from a stream of its own. Its captions would never say a colour;
 * the demo captions it with the new word. */
int ti_shapes_held_out_colour(const struct ti_shapes_spec *s, uint64_t i,
                              struct ti_shapes_attr *attr, uint8_t *px, struct ti_data_err *e);

/* 1 for the colours an object can have (the named ones and the held-out one). */
int ti_colour_is_object(enum ti_colour c);

/* Draws `a` into px (size*size*3 bytes); -1 when an attribute is out of range. */
int ti_shapes_render(const struct ti_shapes_attr *a, int size, uint8_t *px, struct ti_data_err *e);

/* Writes the caption of `a` with the given choices (see the grammar above): bit 0 prefix, 1 size,
 * 2 texture (ignored for plain), 3 colour, 4 background; prefix_index selects the prefix,
 * generic uses "object" for the noun (forced for the held-out shape). -1 if cap is too small. */
int ti_shapes_caption(char *caption, size_t cap, const struct ti_shapes_attr *a, unsigned parts,
                      int prefix_index, int generic, struct ti_data_err *e);

/* Names as they appear in captions: "circle" ... "heart" (the held-out shape's name is for
 * tools and reports, never captions), "red" ... "grey", texture adjectives "plain", "striped",
 * "dotted", "checkered", sizes "small", "large". NULL when out of range. */
const char *ti_shape_name(enum ti_shape s);
const char *ti_colour_name(enum ti_colour c);
const char *ti_texture_name(enum ti_texture t);
const char *ti_shape_size_name(enum ti_shape_size s);

/* The palette (RGB8) and the shade textures use: the colour darkened to 45 % when its luma is
 * above 0.45, else mixed 55 % toward white (so both halves of a texture keep the hue). */
void ti_colour_rgb(enum ti_colour c, uint8_t rgb[3]);
void ti_colour_shade(enum ti_colour c, uint8_t rgb[3]);

/* Smallest RGB distance (0..441) between the background and the object's colours (its shade
 * too when textured); the generator only draws combinations with at least TI_SHAPES_MIN_CONTRAST.
 */
#define TI_SHAPES_MIN_CONTRAST 110.0
double ti_shapes_contrast(enum ti_colour object, enum ti_texture t, enum ti_colour background);

/* Degradations for robustness measurements (applied in this order, each off at 0):
 *   blur_sigma   Gaussian blur, pixels (a tiny VAE's reconstructions are soft)
 *   jpeg_quality 1..100: 8x8 DCT quantisation of YCbCr with the JPEG tables scaled by IJG's
 *                quality rule and 2x2 chroma averaging (block and ringing artifacts)
 *   noise_sigma  additive Gaussian noise (0..255 scale), seeded
 * -1 on bad arguments or out of memory. */
struct ti_shapes_degrade_opts {
    double blur_sigma;
    int jpeg_quality;
    double noise_sigma;
    uint64_t seed;
};
int ti_shapes_degrade(uint8_t *px, int w, int h, const struct ti_shapes_degrade_opts *o,
                      struct ti_data_err *e);

#ifdef __cplusplus
}
#endif

#endif /* TI_DATA_SHAPES_H */
