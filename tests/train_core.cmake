# tests/train_core.cmake - the embedding manager and the trainer (train/embedding_manager.c,
# train/trainer.c). Both build the tiny configs (libyaml) and read the CLIP merges file (zlib).
if(TARGET ti_train)
  if(TI_HAVE_YAML)
    ti_add_test(test_embedding_manager SOURCES test_embedding_manager.c LABELS cpu LIBS ti_train)
  else()
    ti_skip_test(test_embedding_manager cpu "built without libyaml: the tiny configs cannot load")
  endif()
endif()
