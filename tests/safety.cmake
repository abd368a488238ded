# tests/safety.cmake - ti-sample's invisible watermark and safety checker (the reference txt2img's
# put_watermark and check_safety), end to end on the tiny SD config, and the full-size checker's
# key/shape table (scripts/oracle/safety_fixtures.py).
if(TARGET ti_model)
  ti_add_test(test_safety_keys SOURCES test_safety_keys.c LABELS cpu LIBS ti_model)
endif()
if(TARGET ti_train AND TARGET ti_data AND TI_HAVE_YAML)
  ti_add_test(test_ti_sample_safety SOURCES test_ti_sample_safety.c LABELS cpu LIBS ti_train
              ARGS $<TARGET_FILE:ti-sample> TIMEOUT 600)
  add_dependencies(test_ti_sample_safety ti-sample)
  # the full-size ViT-L/14 checker (random weights written by the oracle script, 1.2 GB in a
  # temporary folder): loads and checks one image on the CPU; SKIP without the oracle Python
  add_test(NAME test_safety_fullsize
           COMMAND test_ti_sample_safety $<TARGET_FILE:ti-sample> full
           WORKING_DIRECTORY ${CMAKE_SOURCE_DIR})
  set_tests_properties(test_safety_fullsize PROPERTIES LABELS slow SKIP_RETURN_CODE 77 TIMEOUT 900)
else()
  ti_skip_test(test_ti_sample_safety cpu "needs the image library (stb headers) and libyaml")
endif()
