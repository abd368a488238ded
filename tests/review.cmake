# tests/review.cmake - regression tests for problems found in review (branch review1): each
# failed before its fix. test_review_merge: ti-merge's --rename with a file given twice.
if(ZLIB_FOUND)
  ti_add_test(test_review_merge SOURCES test_review_merge.c LABELS cpu LIBS ti_train
              ARGS $<TARGET_FILE:ti-merge>)
  add_dependencies(test_review_merge ti-merge)
else()
  ti_skip_test(test_review_merge cpu "built without zlib: cannot read model/vocab/bpe_simple_vocab_16e6.txt.gz")
endif()
# test_review_sample: ti-sample on a random tiny SD checkpoint (flags the reference accepts).
if(TARGET ti_train AND TARGET ti_data AND TI_HAVE_YAML)
  ti_add_test(test_review_sample SOURCES test_review_sample.c LABELS cpu LIBS ti_train
              ARGS $<TARGET_FILE:ti-sample> TIMEOUT 300)
  add_dependencies(test_review_sample ti-sample)
else()
  ti_skip_test(test_review_sample cpu "needs the image library (stb headers) and libyaml")
endif()
# test_review_manager: the embedding manager's message for a multi-token placeholder.
if(ZLIB_FOUND)
  ti_add_test(test_review_manager SOURCES test_review_manager.c LABELS cpu LIBS ti_train)
else()
  ti_skip_test(test_review_manager cpu "built without zlib: cannot read model/vocab/bpe_simple_vocab_16e6.txt.gz")
endif()
# test_review_data: data/ grids wider than a decoded image.
if(TARGET ti_data)
  ti_add_test(test_review_data SOURCES test_review_data.c LABELS cpu LIBS ti_data)
else()
  ti_skip_test(test_review_data cpu "built without stb (libstb-dev): data/ is not built")
endif()
