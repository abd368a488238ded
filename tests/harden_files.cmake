# tests/harden_files.cmake - the file readers against hostile and damaged inputs (pickle global
# allowlist, tensor element counts, the archive version record) and ti-inspect's context width.
ti_add_test(test_io_harden SOURCES test_io_harden.c LABELS cpu LIBS ti_train
            ARGS $<TARGET_FILE:ti-inspect> $<TARGET_FILE:ti-convert>)
add_dependencies(test_io_harden ti-inspect ti-convert)
if(TI_HAVE_YAML)
  target_compile_definitions(test_io_harden PRIVATE TI_TEST_HAVE_YAML=1)
endif()
