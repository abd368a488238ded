# tests/watermark.cmake - the reference txt2img invisible watermark (data/watermark.c) against
# fixtures of the reference encoder/decoder (scripts/oracle/watermark_fixtures.py), PNGs read
# and written with data/image.h.
if(TARGET ti_data)
  ti_add_test(test_watermark SOURCES test_watermark.c LABELS cpu LIBS ti_data)
else()
  ti_skip_test(test_watermark cpu "data/ not built (stb headers missing): cannot read the PNG fixtures")
endif()
