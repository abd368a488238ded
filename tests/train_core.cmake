# tests/train_core.cmake - the embedding manager and the trainer (train/embedding_manager.c,
# train/trainer.c). Both build the tiny configs (libyaml) and read the CLIP merges file (zlib).
if(TARGET ti_train)
  if(TI_HAVE_YAML)
    ti_add_test(test_embedding_manager SOURCES test_embedding_manager.c LABELS cpu LIBS ti_train)
  else()
    ti_skip_test(test_embedding_manager cpu "built without libyaml: the tiny configs cannot load")
  endif()
endif()
if(TARGET ti_train AND TI_HAVE_YAML AND HDF5_FOUND)
  ti_add_test(test_train_step SOURCES test_train_step.c LABELS cpu LIBS ti_train ti_h5util
              TIMEOUT 300)
elseif(TARGET ti_train)
  ti_skip_test(test_train_step cpu "needs libyaml (tiny configs) and HDF5 (the oracle fixtures)")
endif()
