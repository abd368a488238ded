# tests/watermark.cmake - the reference txt2img invisible watermark (data/watermark.c) against
# fixtures of the reference encoder/decoder (scripts/oracle/watermark_fixtures.py), PNGs read
# and written with data/image.h.
if(TARGET ti_data)
  ti_add_test(test_watermark SOURCES test_watermark.c LABELS cpu LIBS ti_data)
else()
  ti_skip_test(test_watermark cpu "data/ not built (stb headers missing): cannot read the PNG fixtures")
endif()

# ti-inspect IMAGE --watermark (train/ti_inspect.c) on the same fixtures
if(TARGET ti_data AND TARGET ti-inspect)
  add_test(NAME test_ti_inspect_watermark
           COMMAND sh ${CMAKE_CURRENT_SOURCE_DIR}/test_ti_inspect_watermark.sh $<TARGET_FILE:ti-inspect>
           WORKING_DIRECTORY ${CMAKE_SOURCE_DIR})
  set_tests_properties(test_ti_inspect_watermark PROPERTIES LABELS cpu)
else()
  ti_skip_test(test_ti_inspect_watermark cpu "data/ not built (stb headers missing): ti-inspect cannot read images")
endif()
