/*
 * stb_impl.c - the one translation unit that compiles stb_image (decoders: JPEG, PNG, BMP, TGA,
 * GIF) and stb_image_write (JPEG, and deflate when zlib is missing) from the system's headers
 * (Debian libstb-dev). Compiled without warnings (third-party code); nothing else here.
 */
#define STB_IMAGE_IMPLEMENTATION
#define STBI_NO_STDIO /* we read files ourselves (size limits, error messages) */
#define STBI_ONLY_JPEG
#define STBI_ONLY_PNG
#define STBI_ONLY_BMP
#define STBI_ONLY_TGA
#define STBI_ONLY_GIF
/* STBI_MAX_DIMENSIONS stays at its default (2^24): image.c refuses sizes over TI_IMAGE_MAX_SIDE
 * from stbi_info first, with a message that names the claimed size */
#include "stb_image.h"

#define STB_IMAGE_WRITE_IMPLEMENTATION
#define STBI_WRITE_NO_STDIO
#include "stb_image_write.h"
