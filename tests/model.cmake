# Model tests: parameter tables against the real checkpoints' key lists, networks against
# PyTorch fixtures, full-size runs (slow).
if(TARGET ti_model)
  ti_add_test(test_model_keys SOURCES test_model_keys.c LABELS cpu LIBS ti_model)
  if(TI_HAVE_YAML)
    ti_add_test(test_model_save SOURCES test_model_save.c LABELS cpu LIBS ti_model)
  else()
    ti_skip_test(test_model_save cpu "built without libyaml: the tiny configs cannot load")
  endif()
  if(HDF5_FOUND)
    ti_add_test(test_model_oracle SOURCES test_model_oracle.c h5_weights.c LABELS cpu
                LIBS ti_model ti_h5util)
  else()
    ti_skip_test(test_model_oracle cpu "built without HDF5 (libhdf5-dev): cannot read the fixtures")
  endif()
endif()
if(TARGET ti_model)
  # full-size SD v1 UNet forward + backward at 32x32 (CPU), and the same on CUDA vs the CPU
  ti_add_test(test_model_full SOURCES test_model_full.c LABELS "cpu;slow" LIBS ti_model TIMEOUT 1200)
  add_test(NAME test_model_full_cuda COMMAND test_model_full --cuda WORKING_DIRECTORY ${CMAKE_SOURCE_DIR})
  set_tests_properties(test_model_full_cuda PROPERTIES LABELS cuda SKIP_RETURN_CODE 77 TIMEOUT 1200)
endif()
