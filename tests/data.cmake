# tests/data.cmake - data/ (image decode, EXIF, resize, writers, templates, dataset; WebP and
# TIFF through libwebp / libtiff in test_data_webp / test_data_tiff). Fixtures:
# tests/fixtures/data (scripts/oracle/data_fixtures.py, PIL 9.4). Without the stb headers
# ti_data is not built and the tests are registered as SKIP.
if(TARGET ti_data)
  ti_add_test(test_data_image SOURCES test_data_image.c LABELS cpu LIBS ti_data)
else()
  ti_skip_test(test_data_image cpu "built without stb (libstb-dev): data/ is not built")
endif()
if(TARGET ti_data)
  ti_add_test(test_data_dataset SOURCES test_data_dataset.c LABELS cpu LIBS ti_data)
  # the image harness (tests/fuzz/fuzz_image.c) over every data fixture: valid, truncated and
  # hostile files through the decoder (ASan + UBSan in make test-asan)
  set(_corpus ${CMAKE_CURRENT_SOURCE_DIR}/fixtures/data)
  ti_add_test(test_replay_image SOURCES fuzz/fuzz_image.c fuzz/replay_main.c LABELS cpu
              LIBS ti_data ARGS ${_corpus}/exif ${_corpus}/formats ${_corpus}/hostile
              ${_corpus}/resize ${_corpus}/dataset ${_corpus}/webp ${_corpus}/tiff)
  # the optional decoders (libwebp, libtiff), one source: built without the library the test
  # checks the refusal message and SKIPs
  ti_add_test(test_data_webp SOURCES test_data_codecs.c LABELS cpu LIBS ti_data ARGS webp)
  ti_add_test(test_data_tiff SOURCES test_data_codecs.c LABELS cpu LIBS ti_data ARGS tiff)
else()
  ti_skip_test(test_data_dataset cpu "built without stb (libstb-dev): data/ is not built")
  ti_skip_test(test_replay_image cpu "built without stb (libstb-dev): data/ is not built")
  ti_skip_test(test_data_webp cpu "built without stb (libstb-dev): data/ is not built")
  ti_skip_test(test_data_tiff cpu "built without stb (libstb-dev): data/ is not built")
endif()
