# tests/data.cmake - data/ (image decode, EXIF, resize, writers, templates, dataset). Fixtures:
# tests/fixtures/data (scripts/oracle/data_fixtures.py, PIL 9.4). Without the stb headers
# ti_data is not built and the tests are registered as SKIP.
if(TARGET ti_data)
  ti_add_test(test_data_image SOURCES test_data_image.c LABELS cpu LIBS ti_data)
else()
  ti_skip_test(test_data_image cpu "built without stb (libstb-dev): data/ is not built")
endif()
