/*
 * text_image.h - captions drawn as images: the peer's ldm/util.py log_txt_as_img, which the
 * image logger's `conditioning` grid uses (ti-peer.md §5.4).
 *
 * The peer draws each caption on a white W x H RGB canvas in black with PIL's default bitmap
 * font, hard-wrapped every int(40 * W / 256) characters (code points, not bytes; a '\n' in the
 * caption also breaks the line). ti draws with its own 5x7 ASCII font (text_image.c) placed in
 * the same 6 x 11 pixel cells on the same 15-pixel line pitch (11 + PIL's 4-pixel line
 * spacing), so lines, wrap points and the text's extent match the peer's; the glyph shapes
 * differ. Latin-1 characters beyond ASCII are drawn as a box (the font has no accents), control
 * characters as nothing (as PIL). A caption holding a character beyond U+00FF gives a blank
 * canvas: PIL's default font encodes text as Latin-1, the peer catches the UnicodeEncodeError,
 * prints "Cant encode string for logging. Skipping." and keeps the white canvas. Ill-formed
 * UTF-8 bytes count as U+FFFD (Python's errors="replace"), so they blank the canvas too.
 *
 * Entry point: ti_image_text. Ownership as in image.h (dst allocated fresh; ti_image_free).
 */
#ifndef TI_TEXT_IMAGE_H
#define TI_TEXT_IMAGE_H

#include "data_err.h"
#include "image.h" /* defines: struct ti_image */

#define TI_TEXT_CELL_W 6  /* advance per character (PIL's default font: 6) */
#define TI_TEXT_LINE_H 15 /* line pitch: glyph cell 11 + PIL's multiline spacing 4 */

/* Draws caption (UTF-8, NUL-terminated) as log_txt_as_img does for one caption: dst becomes a
 * w x h RGB image. *blank (may be NULL) is set to 1 when the caption could not be drawn
 * (a character beyond Latin-1: the peer's "Cant encode string" case), else 0.
 * Returns 0, or -1 with a message in e (bad size, out of memory). */
int ti_image_text(struct ti_image *dst, int w, int h, const char *caption, int *blank,
                  struct ti_data_err *e);

#endif
