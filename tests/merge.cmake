# tests/merge.cmake - ti-merge (train/ti_merge.c, train/merge.c): merging embedding files of every
# format with the peer's rules, prompts and prints; test_merge_python loads the merged file in real
# torch (Debian's python3 + python3-torch; SKIP without them).
if(ZLIB_FOUND)
  ti_add_test(test_merge SOURCES test_merge.c LABELS cpu LIBS ti_train ARGS $<TARGET_FILE:ti-merge>)
  add_dependencies(test_merge ti-merge)
else()
  ti_skip_test(test_merge cpu "built without zlib: cannot read model/vocab/bpe_simple_vocab_16e6.txt.gz")
endif()
if(ZLIB_FOUND)
  ti_add_test(test_merge_python SOURCES test_merge_python.c LABELS python LIBS ti_train
              ARGS $<TARGET_FILE:ti-merge> TIMEOUT 300)
  add_dependencies(test_merge_python ti-merge)
else()
  ti_skip_test(test_merge_python python "built without zlib: cannot read model/vocab/bpe_simple_vocab_16e6.txt.gz")
endif()
