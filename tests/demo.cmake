# make demo's short form: scripts/demo.sh end to end on the shipped tiny models (models/tiny-sd, models/tiny-ldm)
if(TARGET ti-train AND TARGET ti-sample AND TARGET ti-shapes AND TI_HAVE_YAML)
  add_test(NAME test_demo COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/test_demo.sh ${CMAKE_BINARY_DIR}
           WORKING_DIRECTORY ${CMAKE_SOURCE_DIR})
  set_tests_properties(test_demo PROPERTIES LABELS cpu SKIP_RETURN_CODE 77 TIMEOUT 600)
else()
  ti_skip_test(test_demo cpu "ti-train, ti-sample or ti-shapes not built (needs libyaml and data/)")
endif()
