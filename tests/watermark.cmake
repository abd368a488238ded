# tests/watermark.cmake - the reference txt2img invisible watermark (data/watermark.c) against
# fixtures of the reference encoder/decoder (scripts/oracle/watermark_fixtures.py). The test
# reads and writes PNGs with stb_image (header-only, libstb-dev).
if(TARGET ti_data AND TI_STB_INCLUDE)
  ti_add_test(test_watermark SOURCES test_watermark.c LABELS cpu LIBS ti_data)
  target_include_directories(test_watermark SYSTEM PRIVATE ${TI_STB_INCLUDE})
else()
  ti_skip_test(test_watermark cpu "stb_image.h not found (libstb-dev): cannot read the PNG fixtures")
endif()
