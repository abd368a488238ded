# tests/text_image.cmake - data/text_image.c: captions drawn as images (the image logger's
# `conditioning` grid, ti-peer.md §5.4).
if(TARGET ti_data)
  ti_add_test(test_text_image SOURCES test_text_image.c LABELS cpu LIBS ti_data)
else()
  ti_skip_test(test_text_image cpu "built without stb (libstb-dev): data/ is not built")
endif()
