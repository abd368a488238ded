# tests/clip_vision.cmake - the safety checker's CLIP vision tower (model/clip_vision.c)
# against diffusers/transformers on a tiny random configuration (scripts/oracle/clip_vision.py).
if(TARGET ti_model AND HDF5_FOUND)
  ti_add_test(test_clip_vision SOURCES test_clip_vision.c h5_weights.c LABELS cpu
              LIBS ti_model ti_h5util)
elseif(TARGET ti_model)
  ti_skip_test(test_clip_vision cpu "built without HDF5 (libhdf5-dev): cannot read the fixture")
endif()

# its input preparation (data/clip_preprocess.c) against transformers' CLIPImageProcessor
if(TARGET ti_data AND HDF5_FOUND)
  ti_add_test(test_clip_preprocess SOURCES test_clip_preprocess.c LABELS cpu
              LIBS ti_data ti_h5util)
else()
  ti_skip_test(test_clip_preprocess cpu "needs data/ (stb headers) and HDF5 (libhdf5-dev)")
endif()
