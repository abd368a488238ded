# tests/shapes.cmake - the synthetic shapes data set and its classifier (data/shapes*.c) and the
# ti-shapes tool. Both need ti_data, which is built only with the stb headers.
if(TARGET ti_data)
  ti_add_test(test_shapes SOURCES test_shapes.c LABELS cpu LIBS ti_data)
  add_test(NAME test_ti_shapes
           COMMAND sh ${CMAKE_CURRENT_SOURCE_DIR}/test_ti_shapes.sh $<TARGET_FILE:ti-shapes>
           WORKING_DIRECTORY ${CMAKE_SOURCE_DIR})
  set_tests_properties(test_ti_shapes PROPERTIES LABELS cpu)
else()
  ti_skip_test(test_shapes cpu "built without stb (libstb-dev): data/ is not built")
  ti_skip_test(test_ti_shapes cpu "built without stb (libstb-dev): data/ is not built")
endif()
