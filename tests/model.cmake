# Model tests: parameter tables against the real checkpoints' key lists, networks against
# PyTorch fixtures, full-size runs (slow).
if(TARGET ti_model)
  ti_add_test(test_model_keys SOURCES test_model_keys.c LABELS cpu LIBS ti_model)
  if(HDF5_FOUND)
    ti_add_test(test_model_oracle SOURCES test_model_oracle.c h5_weights.c LABELS cpu
                LIBS ti_model ti_h5util)
  endif()
endif()
