/*
 * templates.h - the peer's caption templates, verbatim (ti-peer.md §4.2), and the one-line
 * formatter that fills their "{}" slots as Python's str.format does for these strings.
 *
 * Duplicates are intentional: the peer draws uniformly from the list, so a repeated template is
 * drawn more often. Object lists come from ldm/data/personalized.py, style lists from
 * personalized_style.py (whose 13th dual template, "a painting of one {} in the style of {}",
 * takes its two arguments in the other sense of the sentence; it is kept as it is).
 */
#ifndef TI_DATA_TEMPLATES_H
#define TI_DATA_TEMPLATES_H

#include <stddef.h>

#include "data_err.h"

#ifdef __cplusplus
extern "C" {
#endif

extern const char *const ti_templates_object[]; /* imagenet_templates_small: 81 (57 unique) */
extern const int ti_n_templates_object;
extern const char *const ti_templates_object_dual[]; /* imagenet_dual_templates_small: 27 */
extern const int ti_n_templates_object_dual;
extern const char *const ti_templates_style[]; /* style imagenet_templates_small: 19 */
extern const int ti_n_templates_style;
extern const char *const ti_templates_style_dual[]; /* style dual: 17 */
extern const int ti_n_templates_style_dual;
/* per_img_token_list: the 22 Hebrew letters alef..tav (UTF-8), used as per-image tokens */
extern const char *const ti_per_image_tokens[22];
#define TI_N_PER_IMAGE_TOKENS 22

/* out = tmpl with its first "{}" replaced by a and its second by b (b may be NULL for
 * one-slot templates). -1 when out (cap bytes, NUL included) is too small or tmpl has more
 * slots than arguments. */
int ti_template_format(char *out, size_t cap, const char *tmpl, const char *a, const char *b,
                       struct ti_data_err *e);

/* A caption template file (ti-train --templates): one template per line, "{}" where the new
 * word goes (AUTOMATIC1111's "[name]" is read as "{}"). Blank lines and lines whose first
 * non-blank character is '#' are skipped; a line ending in "\r\n" loses the "\r"; surrounding
 * blanks are trimmed. Every template must hold exactly one slot; "[filewords]" (AUTOMATIC1111's
 * per-image captions) is refused, ti has none. At most TI_TEMPLATES_MAX templates of at most
 * TI_TEMPLATE_LEN_MAX bytes. On success *out holds the templates (free with
 * ti_templates_free); on error -1 with a message naming the file, the line and what was
 * expected. */
#define TI_TEMPLATES_MAX    4096
#define TI_TEMPLATE_LEN_MAX 512
struct ti_template_list {
    char **t;
    int n;
};
int ti_templates_load(struct ti_template_list *out, const char *path, struct ti_data_err *e);
void ti_templates_free(struct ti_template_list *l);

#ifdef __cplusplus
}
#endif

#endif /* TI_DATA_TEMPLATES_H */
